"""The extensions API: registry entries, versions and their round trip."""
import pytest

from registry.models import Extension, ExtensionVersion

from .conftest import entry

pytestmark = pytest.mark.django_db


def test_section_example_post_then_get_unchanged(write_client, normalize_text_entry):
    created = write_client.post("/api/v1/extensions/", normalize_text_entry, format="json")
    fetched = write_client.get("/api/v1/extensions/normalize_text/")

    assert created.status_code == 201, created.json()
    assert fetched.status_code == 200
    assert fetched.json() == normalize_text_entry
    assert created.json() == normalize_text_entry


def test_entry_with_version_config_and_extra_metadata_round_trips(write_client):
    document = entry("detect_language", version="2.1.0", config={"languages": ["en", "de"]})
    document["metadata"]["owner_team"] = "nlp"

    write_client.post("/api/v1/extensions/", document, format="json")

    assert write_client.get("/api/v1/extensions/detect_language").json() == document


def test_entry_without_metadata_gets_defaults(write_client):
    document = entry("detect_language")
    del document["metadata"]

    response = write_client.post("/api/v1/extensions/", document, format="json")

    assert response.json()["metadata"] == {"side_effect_free": False, "description": ""}


def test_list_filters_by_type_and_enabled(write_client, make_extension):
    make_extension("normalize_text")
    make_extension("detect_language", enabled=False)
    make_extension("schema_check", "validator")

    pre_enabled = write_client.get("/api/v1/extensions/?type=pre&enabled=true").json()
    disabled = write_client.get("/api/v1/extensions/?enabled=false").json()

    assert [item["id"] for item in pre_enabled] == ["normalize_text"]
    assert [item["id"] for item in disabled] == ["detect_language"]


def test_list_rejects_unknown_type_filter(write_client):
    response = write_client.get("/api/v1/extensions/?type=middle")

    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["path"] == "type"


def test_put_replaces_active_version_in_place(write_client, make_extension):
    make_extension("normalize_text")
    replacement = entry("normalize_text", timeout_ms=250, retry=2)

    response = write_client.put("/api/v1/extensions/normalize_text/", replacement, format="json")

    assert response.status_code == 200
    assert response.json() == replacement
    assert ExtensionVersion.objects.filter(extension__extension_id="normalize_text").count() == 1


def test_patch_metadata_keeps_description(write_client, make_extension):
    make_extension("normalize_text", metadata={"side_effect_free": False, "description": "Keeps me"})

    response = write_client.patch(
        "/api/v1/extensions/normalize_text/", {"metadata": {"side_effect_free": True}}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["metadata"] == {"side_effect_free": True, "description": "Keeps me"}


def test_patch_validates_like_full_update(write_client, make_extension):
    make_extension("normalize_text")

    response = write_client.patch("/api/v1/extensions/normalize_text/", {"timeout_ms": 9000}, format="json")

    assert response.status_code == 400
    detail = response.json()["error"]["details"][0]
    assert detail["path"] == "timeout_ms"
    assert "10 to 5000" in detail["message"]


def test_patch_null_removes_config(write_client, make_extension):
    make_extension("normalize_text", config={"lower": True})

    response = write_client.patch("/api/v1/extensions/normalize_text/", {"config": None}, format="json")

    assert "config" not in response.json()


def test_put_cannot_change_id(write_client, make_extension):
    make_extension("normalize_text")

    response = write_client.put("/api/v1/extensions/normalize_text/", entry("other_name"), format="json")

    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["code"] == "immutable_field"


def test_invalid_entry_reports_every_field(write_client):
    document = entry("normalize_text", subject="beamline.ext.post.normalize_text.v1", retry=7, enabled="yes")
    document["metadata"]["side_effect_free"] = "true"

    response = write_client.post("/api/v1/extensions/", document, format="json")

    body = response.json()["error"]
    assert response.status_code == 400
    assert body["code"] == "invalid_extension"
    assert {detail["path"] for detail in body["details"]} == {
        "subject",
        "retry",
        "enabled",
        "metadata.side_effect_free",
    }
    assert not Extension.objects.exists()


def test_duplicate_id_is_a_conflict(write_client, normalize_text_entry):
    write_client.post("/api/v1/extensions/", normalize_text_entry, format="json")

    response = write_client.post("/api/v1/extensions/", normalize_text_entry, format="json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "already_exists"


def test_delete_refused_while_a_policy_uses_it(write_client, pipeline_extensions, tenant, depends_on_policy):
    write_client.post("/api/v1/policies/", depends_on_policy, format="json")

    response = write_client.delete("/api/v1/extensions/normalize_text/")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "extension_in_use"


def test_delete_removes_unused_extension(write_client, make_extension):
    make_extension("normalize_text")

    response = write_client.delete("/api/v1/extensions/normalize_text/")

    assert response.status_code == 204
    assert not Extension.objects.exists()


def test_unknown_extension_is_404_with_code(write_client):
    response = write_client.get("/api/v1/extensions/missing/")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_new_version_is_inactive_unless_activated(write_client, make_extension):
    make_extension("normalize_text", version="1.0.0")

    created = write_client.post(
        "/api/v1/extensions/normalize_text/versions/",
        {"version": "2.0.0", "timeout_ms": 300},
        format="json",
    )
    entry_after = write_client.get("/api/v1/extensions/normalize_text/").json()

    assert created.status_code == 201, created.json()
    assert created.json()["is_active"] is False
    assert created.json()["subject"] == "beamline.ext.pre.normalize_text.v1"
    assert entry_after["version"] == "1.0.0"
    assert entry_after["timeout_ms"] == 100


def test_activate_switches_the_entry(write_client, make_extension):
    make_extension("normalize_text", version="1.0.0")
    write_client.post(
        "/api/v1/extensions/normalize_text/versions/",
        {"version": "2.0.0", "metadata": {"side_effect_free": False}},
        format="json",
    )

    response = write_client.post("/api/v1/extensions/normalize_text/versions/2.0.0/activate")
    versions = write_client.get("/api/v1/extensions/normalize_text/versions/").json()

    assert response.status_code == 200
    assert response.json()["version"] == "2.0.0"
    assert response.json()["metadata"]["side_effect_free"] is False
    assert [(item["version"], item["is_active"]) for item in versions] == [("1.0.0", False), ("2.0.0", True)]


def test_create_version_with_activate(write_client, make_extension):
    make_extension("normalize_text", version="1.0.0")

    write_client.post(
        "/api/v1/extensions/normalize_text/versions/", {"version": "1.1.0", "activate": True}, format="json"
    )

    assert write_client.get("/api/v1/extensions/normalize_text/").json()["version"] == "1.1.0"


def test_version_label_must_be_new(write_client, make_extension):
    make_extension("normalize_text", version="1.0.0")

    response = write_client.post(
        "/api/v1/extensions/normalize_text/versions/", {"version": "1.0.0"}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["code"] == "duplicate_version"


def test_version_subject_must_fit_type(write_client, make_extension):
    make_extension("normalize_text", version="1.0.0")

    response = write_client.post(
        "/api/v1/extensions/normalize_text/versions/",
        {"version": "2.0.0", "subject": "beamline.provider.normalize_text.v2"},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["path"] == "subject"


def test_list_costs_constant_queries(write_client, make_extension, django_assert_max_num_queries):
    for number in range(20):
        make_extension(f"extension_{number}")

    with django_assert_max_num_queries(4):
        response = write_client.get("/api/v1/extensions/")

    assert len(response.json()) == 20
