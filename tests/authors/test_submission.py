"""The author pages: sign-in, the submission forms and what one author can see of another's work."""
import pytest
from django.test import Client

from registry import services
from registry.models import Extension, ExtensionVersion

from .conftest import submission

pytestmark = pytest.mark.django_db

SUBMIT_URL = "/authors/extensions/new/"
LIST_URL = "/authors/"


def test_affirmed_submission_is_pending(author_client, author):
    response = author_client.post(SUBMIT_URL, submission())

    version = ExtensionVersion.objects.get(extension__extension_id="shout_text")
    assert response.status_code == 302
    assert response["Location"] == LIST_URL
    assert version.side_effect_free is True
    assert version.review_status == "pending"
    assert version.is_active is False
    assert version.created_by == author
    assert version.extension.owner == author


@pytest.mark.parametrize(
    "unticked", ["no_external_calls", "no_database_writes", "no_external_telemetry", "no_outside_state", "idempotent"]
)
def test_unaffirmed_item_without_description_is_rejected(author_client, unticked):
    response = author_client.post(SUBMIT_URL, submission(**{unticked: None}))

    assert response.status_code == 200
    assert "Describe the side effects" in " ".join(response.context["form"].errors["side_effects"])
    assert not Extension.objects.exists()


def test_unaffirmed_item_is_saved_as_having_side_effects(author_client):
    data = submission(idempotent=None, side_effects="Adds a request counter to the context.")

    author_client.post(SUBMIT_URL, data)

    version = ExtensionVersion.objects.get()
    assert version.side_effect_free is False
    assert version.metadata_extra == {"side_effects": "Adds a request counter to the context."}


def test_posted_side_effect_free_flag_is_ignored(author_client):
    data = submission(idempotent=None, side_effects="Counts calls.", side_effect_free="on")
    data["metadata"] = '{"side_effect_free": true}'

    author_client.post(SUBMIT_URL, data)

    assert ExtensionVersion.objects.get().side_effect_free is False


def test_every_item_ticked_with_description_is_contradictory(author_client):
    response = author_client.post(SUBMIT_URL, submission(side_effects="Writes an audit row."))

    assert "Leave this empty" in " ".join(response.context["form"].errors["side_effects"])
    assert not Extension.objects.exists()


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("extension_id", "Shout-Text", "lower-case letters, digits and underscores"),
        ("subject", "beamline.ext.post.shout_text.v1", "beamline.ext.pre.<name>.v<N>"),
        ("timeout_ms", "9", "from 10 to 5000"),
        ("timeout_ms", "5001", "from 10 to 5000"),
        ("retry", "4", "from 0 to 3"),
        ("version", "1.0 beta", "for example 1.2.0"),
    ],
)
def test_invalid_field_error_sits_next_to_field(author_client, field, value, expected):
    response = author_client.post(SUBMIT_URL, submission(**{field: value}))

    errors = response.context["form"].errors
    assert list(errors) == [field]
    assert expected in errors[field][0]
    assert expected in response.content.decode().replace("&lt;", "<").replace("&gt;", ">")


def test_taken_id_is_field_error(author_client, other_author):
    services.submit_extension(
        {"id": "shout_text", "type": "pre", "subject": "beamline.ext.pre.shout_text.v1", "timeout_ms": 50, "retry": 0},
        author=other_author,
    )

    response = author_client.post(SUBMIT_URL, submission())

    assert "already registered" in response.context["form"].errors["extension_id"][0]


def test_new_version_of_own_extension_is_pending(author_client, author):
    author_client.post(SUBMIT_URL, submission())

    response = author_client.post(
        "/authors/extensions/shout_text/versions/new/",
        submission(extension_id=None, type=None, version="1.1.0", timeout_ms="200"),
    )

    versions = list(ExtensionVersion.objects.order_by("id"))
    assert response.status_code == 302
    assert [(version.version, version.review_status) for version in versions] == [
        ("1.0.0", "pending"),
        ("1.1.0", "pending"),
    ]
    assert versions[1].timeout_ms == 200
    assert versions[1].reviewed_by is None


def test_new_version_form_starts_from_latest_version(author_client):
    author_client.post(SUBMIT_URL, submission())

    response = author_client.get("/authors/extensions/shout_text/versions/new/")

    assert response.context["form"].initial["subject"] == "beamline.ext.pre.shout_text.v1"


def test_list_shows_status_reason_side_effects_and_probe(author_client, author, ops):
    author_client.post(SUBMIT_URL, submission(idempotent=None, side_effects="Counts calls."))
    version = ExtensionVersion.objects.get()
    services.reject_version(version, reviewer=ops, reason="The counter makes replies differ; drop it.")
    services.record_probe_result(version, "failed", "Message m1: differs at metadata.calls.")

    page = author_client.get(LIST_URL).content.decode()

    assert "rejected" in page
    assert "The counter makes replies differ; drop it." in page
    assert "Counts calls." in page
    assert "Message m1: differs at metadata.calls." in page


def test_author_cannot_see_another_authors_pending_submission(author_client, other_author):
    services.submit_extension(
        {
            "id": "secret_ext",
            "type": "pre",
            "subject": "beamline.ext.pre.secret_ext.v1",
            "timeout_ms": 50,
            "retry": 0,
            "metadata": {"description": "Grace's work in progress"},
        },
        author=other_author,
    )

    listing = author_client.get(LIST_URL).content.decode()
    new_version = author_client.get("/authors/extensions/secret_ext/versions/new/")
    submit_version = author_client.post(
        "/authors/extensions/secret_ext/versions/new/", submission(extension_id=None, type=None, version="9")
    )

    assert "secret_ext" not in listing
    assert "work in progress" not in listing
    assert new_version.status_code == 404
    assert submit_version.status_code == 404
    assert ExtensionVersion.objects.count() == 1


def test_author_cannot_add_version_to_ops_extension(author_client):
    services.create_extension(
        {"id": "normalize_text", "type": "pre", "subject": "beamline.ext.pre.normalize_text.v1", "timeout_ms": 50, "retry": 0}
    )

    response = author_client.get("/authors/extensions/normalize_text/versions/new/")

    assert response.status_code == 404


def test_anonymous_user_is_sent_to_author_sign_in(client):
    response = client.get(LIST_URL)

    assert response.status_code == 302
    assert response["Location"].startswith("/authors/sign-in/?next=")


def test_user_without_author_permission_is_forbidden(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("visitor", password="x"))

    assert client.get(LIST_URL).status_code == 403
    assert client.get(SUBMIT_URL).status_code == 403


def test_sign_in_and_sign_out(author):
    browser = Client()

    signed_in = browser.post("/authors/sign-in/", {"username": "ada", "password": "a-long-test-password"})
    listing = browser.get(LIST_URL)
    signed_out = browser.post("/authors/sign-out/")

    assert signed_in.status_code == 302
    assert signed_in["Location"] == LIST_URL
    assert listing.status_code == 200
    assert signed_out["Location"] == "/authors/sign-in/"
    assert browser.get(LIST_URL).status_code == 302


def test_forms_require_csrf_token(author):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(author)

    response = browser.post(SUBMIT_URL, submission())
    page = browser.get(SUBMIT_URL).content.decode()

    assert response.status_code == 403
    assert not Extension.objects.exists()
    assert 'name="csrfmiddlewaretoken"' in page


def test_author_cannot_open_the_admin(author_client):
    response = author_client.get("/admin/registry/extensionversion/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
