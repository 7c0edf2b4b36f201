"""Review by ops staff: approval, rejection with a reason, and that only approved versions activate."""
import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from registry import services
from registry.models import Extension, ExtensionVersion

from .conftest import make_user

pytestmark = pytest.mark.django_db

ENTRY = {
    "id": "shout_text",
    "type": "pre",
    "subject": "beamline.ext.pre.shout_text.v1",
    "timeout_ms": 50,
    "retry": 0,
    "metadata": {"side_effect_free": True, "description": "Upper-cases the text."},
}
CHANGELIST = "/admin/registry/extensionversion/"


def action_post(action, versions, **extra):
    return {"action": action, "_selected_action": [str(version.pk) for version in versions], **extra}


@pytest.fixture
def submitted(author):
    return services.submit_extension({**ENTRY, "version": "1.0.0"}, author=author)


def test_groups_and_permissions_come_from_migration():
    authors = Group.objects.get(name="Extension authors")
    ops = Group.objects.get(name="Ops staff")

    author_codenames = set(authors.permissions.values_list("codename", flat=True))
    ops_codenames = set(ops.permissions.values_list("codename", flat=True))
    assert author_codenames == {"submit_extension"}
    assert {"review_extensionversion", "probe_extensionversion", "change_extension", "view_logentry"} <= ops_codenames
    assert "submit_extension" not in ops_codenames


def test_approval_form_shows_before_anything_changes(ops_client, submitted):
    response = ops_client.post(CHANGELIST, action_post("approve_versions", [submitted]))

    submitted.refresh_from_db()
    assert response.status_code == 200
    assert "Approve these versions?" in response.content.decode()
    assert submitted.review_status == "pending"


def test_ops_approval_activates_first_version_and_logs(ops_client, ops, submitted):
    response = ops_client.post(
        CHANGELIST, action_post("approve_versions", [submitted], confirm="yes", reason="Checked the code.")
    )

    submitted.refresh_from_db()
    log = LogEntry.objects.get(object_id=str(submitted.pk))
    assert response.status_code == 302
    assert submitted.review_status == "approved"
    assert submitted.review_reason == "Checked the code."
    assert submitted.reviewed_by == ops
    assert submitted.reviewed_at is not None
    assert submitted.is_active is True
    assert log.user == ops
    assert "Approved: Checked the code." in log.change_message


def test_approving_later_version_leaves_active_one(ops, author, submitted):
    services.approve_version(submitted, reviewer=ops)
    later = services.submit_version(submitted.extension, {"version": "1.1.0"}, author=author)

    services.approve_version(later, reviewer=ops)

    assert Extension.objects.get().active_version == submitted


def test_rejection_needs_a_reason(ops_client, submitted):
    response = ops_client.post(CHANGELIST, action_post("reject_versions", [submitted], confirm="yes", reason=" "))

    submitted.refresh_from_db()
    assert response.status_code == 200
    assert "Give the reason for rejecting" in response.content.decode()
    assert submitted.review_status == "pending"


def test_rejection_records_reason(ops_client, submitted):
    ops_client.post(
        CHANGELIST, action_post("reject_versions", [submitted], confirm="yes", reason="Subject is not versioned right.")
    )

    submitted.refresh_from_db()
    assert submitted.review_status == "rejected"
    assert submitted.review_reason == "Subject is not versioned right."
    assert submitted.is_active is False


def test_reviewer_cannot_approve_own_submission(client, db):
    author_and_ops = make_user("sam", "Ops staff", is_staff=True)
    author_and_ops.groups.add(Group.objects.get(name="Extension authors"))
    version = services.submit_extension(ENTRY, author=author_and_ops)
    client.force_login(author_and_ops)

    response = client.post(CHANGELIST, action_post("approve_versions", [version], confirm="yes"), follow=True)

    version.refresh_from_db()
    assert version.review_status == "pending"
    assert "another member of ops staff must review it" in response.content.decode()
    with pytest.raises(services.RegistryConflict):
        services.approve_version(version, reviewer=author_and_ops)


def test_author_cannot_use_review_actions(client, author, submitted):
    author.is_staff = True  # even with the staff flag, the group grants no admin permission
    author.save()
    client.force_login(author)

    response = client.post(CHANGELIST, action_post("approve_versions", [submitted], confirm="yes"))

    submitted.refresh_from_db()
    assert response.status_code == 403
    assert submitted.review_status == "pending"


def test_pending_version_cannot_be_activated_by_service(author, submitted):
    with pytest.raises(services.RegistryConflict) as raised:
        services.activate_version(submitted)

    assert raised.value.code == "not_approved"


def test_pending_version_cannot_be_activated_by_api(ops, author, submitted):
    services.approve_version(submitted, reviewer=ops)
    services.submit_version(submitted.extension, {"version": "2.0.0"}, author=author)
    token, secret = services.create_api_token("ops", "write", user=ops)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")

    response = api.post("/api/v1/extensions/shout_text/versions/2.0.0/activate")
    versions = api.get("/api/v1/extensions/shout_text/versions/").json()

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_approved"
    assert [(item["version"], item["review"]["status"]) for item in versions] == [
        ("1.0.0", "approved"),
        ("2.0.0", "pending"),
    ]


def test_pending_version_cannot_be_activated_in_admin(ops_client, ops, author, submitted):
    services.approve_version(submitted, reviewer=ops)
    pending = services.submit_version(submitted.extension, {"version": "2.0.0"}, author=author)
    extension = submitted.extension
    data = {"extension_id": "shout_text", "type": "pre", "enabled": "on", "owner": str(author.pk)}
    data.update({
        "versions-TOTAL_FORMS": "2", "versions-INITIAL_FORMS": "2", "versions-MIN_NUM_FORMS": "0",
        "versions-MAX_NUM_FORMS": "1000",
    })
    for index, version in enumerate([submitted, pending]):
        data.update({
            f"versions-{index}-id": str(version.pk),
            f"versions-{index}-extension": str(extension.pk),
            f"versions-{index}-version": version.version,
            f"versions-{index}-subject": version.subject,
            f"versions-{index}-timeout_ms": str(version.timeout_ms),
            f"versions-{index}-retry": str(version.retry),
            f"versions-{index}-description": "",
            f"versions-{index}-config": "",
            f"versions-{index}-metadata_extra": "",
        })
    data["versions-1-active"] = "on"

    response = ops_client.post(f"/admin/registry/extension/{extension.pk}/change/", data)

    assert response.status_code == 200
    assert "only an approved version can be active" in response.content.decode()
    assert Extension.objects.get().active_version == submitted


def test_versions_created_by_ops_are_approved(ops):
    extension = services.create_extension(ENTRY, user=ops)
    later = services.create_version(extension, {"version": "2"}, user=ops)

    assert extension.active_version.review_status == "approved"
    assert later.review_status == "approved"
    assert later.reviewed_by == ops


def test_unapproved_extension_not_listed(ops, submitted):
    token, secret = services.create_api_token("reader", "read")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")

    before = api.get("/api/v1/extensions/").json()
    services.approve_version(submitted, reviewer=ops)
    after = api.get("/api/v1/extensions/").json()

    assert before == []
    assert [entry["id"] for entry in after] == ["shout_text"]


def test_registry_list_shows_probe_column(ops_client, ops, submitted):
    services.approve_version(submitted, reviewer=ops)
    services.record_probe_result(submitted, ExtensionVersion.ProbeStatus.FAILED, "differs at metadata.calls")

    page = ops_client.get("/admin/registry/extension/").content.decode()

    assert "runs sequentially until it passes" in page
