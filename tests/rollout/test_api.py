"""The parallel-execution API: status, PATCH, tenant and policy overrides, history and auth."""
import pytest
from django.contrib.auth.models import Permission, User
from rest_framework.test import APIClient

from registry.revision import current_revision
from rollout.models import FlagChange, FlagOverride, TenantOverride
from rollout.status import database_flag_values

pytestmark = pytest.mark.django_db

STATUS = "/api/v1/parallel-execution"
HISTORY = "/api/v1/parallel-execution/history"
MASTER_VARIABLE = "EXTENSION_PIPELINE_PARALLEL_EXECUTION_ENABLED"


def tenant_url(tenant_id):
    return f"/api/v1/parallel-execution/tenants/{tenant_id}"


def test_status_shows_every_flag_with_source(read_client, monkeypatch):
    monkeypatch.setenv(MASTER_VARIABLE, "true")

    body = read_client.get(STATUS).json()

    assert set(body) == {"enabled", "flags", "tenant_overrides", "policy_overrides", "revision"}
    assert len(body["flags"]) == 8
    assert body["flags"]["parallel_execution_enabled"] == {
        "value": True,
        "source": "environment",
        "default": False,
        "environment_variable": MASTER_VARIABLE,
        "environment_value": True,
        "database_value": None,
    }
    assert body["flags"]["parallel_execution_max_group_size"]["value"] == 5
    assert body["flags"]["parallel_execution_tenant_allowlist"]["value"] == []
    assert body["enabled"] is True


def test_environment_database_cleared_through_api(write_client, monkeypatch):
    monkeypatch.setenv(MASTER_VARIABLE, "true")

    overridden = write_client.patch(STATUS, {"parallel_execution_enabled": False}, format="json").json()
    # The environment's empty tenant allowlist makes turning the master switch back on a change
    # for every tenant, so clearing the override needs the confirmation too.
    unconfirmed = write_client.patch(STATUS, {"parallel_execution_enabled": None}, format="json")
    cleared = write_client.patch(
        STATUS, {"parallel_execution_enabled": None, "confirm_all_tenants": True}, format="json"
    ).json()

    assert unconfirmed.status_code == 409
    assert overridden["flags"]["parallel_execution_enabled"]["value"] is False
    assert overridden["flags"]["parallel_execution_enabled"]["source"] == "database"
    assert cleared["flags"]["parallel_execution_enabled"]["value"] is True
    assert cleared["flags"]["parallel_execution_enabled"]["source"] == "environment"


def test_patch_returns_changes_with_reason(write_client):
    response = write_client.patch(
        STATUS,
        {"parallel_execution_tenant_allowlist": ["acme"], "parallel_execution_enabled": True, "reason": "canary"},
        format="json",
    )

    assert response.status_code == 200
    changes = response.json()["changes"]
    assert [(change["target"], change["new_value"]) for change in changes] == [
        ("parallel_execution_enabled", True), ("parallel_execution_tenant_allowlist", ["acme"]),
    ]
    assert {change["actor"] for change in changes} == {"token:write-client"}
    assert {change["through"] for change in changes} == {"api"}
    assert {change["reason"] for change in changes} == {"canary"}


def test_removing_last_allowlisted_tenant_is_409(write_client):
    write_client.patch(STATUS, {"parallel_execution_tenant_allowlist": ["acme"]}, format="json")
    entries = FlagChange.objects.count()
    revision = current_revision()

    response = write_client.patch(STATUS, {"parallel_execution_tenant_allowlist": []}, format="json")

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "confirmation_required"
    assert "confirm_all_tenants" in error["message"]
    assert database_flag_values()["parallel_execution_tenant_allowlist"] == ("acme",)
    assert FlagChange.objects.count() == entries
    assert current_revision() == revision


def test_confirmed_emptying_is_applied(write_client):
    write_client.patch(STATUS, {"parallel_execution_tenant_allowlist": ["acme"]}, format="json")

    response = write_client.patch(
        STATUS, {"parallel_execution_tenant_allowlist": [], "confirm_all_tenants": True}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["flags"]["parallel_execution_tenant_allowlist"]["value"] == []


def test_patch_with_one_bad_flag_changes_nothing(write_client):
    response = write_client.patch(
        STATUS, {"parallel_pre_processors_enabled": True, "parallel_execution_max_group_size": 100}, format="json"
    )

    assert response.status_code == 400
    details = response.json()["error"]["details"]
    assert [(detail["path"], detail["code"]) for detail in details] == [
        ("parallel_execution_max_group_size", "out_of_range")
    ]
    assert FlagOverride.objects.count() == 0


@pytest.mark.parametrize("body, path", [
    ({}, "flags"),
    ({"reason": "only a reason"}, "flags"),
    ({"parallel_execution_enabled": False, "confirm_all_tenants": "yes"}, "confirm_all_tenants"),
    ({"parallel_execution_tenant_allowlist": ["acme", ""]}, "parallel_execution_tenant_allowlist[1]"),
    ({"parallel_execution_enabled": False, "reason": 5}, "reason"),
])
def test_malformed_patch_is_400(write_client, body, path):
    response = write_client.patch(STATUS, body, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["path"] == path


def test_tenant_override_put_and_delete(write_client):
    put = write_client.put(tenant_url("acme"), {"enabled": False, "reason": "errors up"}, format="json")
    status_body = write_client.get(STATUS).json()
    delete = write_client.delete(tenant_url("acme"))
    delete_again = write_client.delete(tenant_url("acme"))

    assert put.status_code == 200
    assert put.json() == {"tenant_id": "acme", "enabled": False, "revision": current_revision() - 1}
    assert [(item["tenant_id"], item["enabled"]) for item in status_body["tenant_overrides"]] == [("acme", False)]
    assert delete.status_code == 204
    assert delete_again.status_code == 404
    assert TenantOverride.objects.count() == 0


@pytest.mark.parametrize("body", [{}, {"enabled": "false"}, {"enabled": None}])
def test_tenant_override_needs_boolean(write_client, body):
    response = write_client.put(tenant_url("acme"), body, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["path"] == "enabled"


def test_policy_override_put_and_unknown_policy(write_client, policies):
    known = write_client.put("/api/v1/parallel-execution/policies/acme-bulk", {"enabled": False}, format="json")
    unknown = write_client.put("/api/v1/parallel-execution/policies/ghost", {"enabled": False}, format="json")

    assert known.status_code == 200
    assert write_client.get(STATUS).json()["policy_overrides"][0]["policy_id"] == "acme-bulk"
    assert unknown.status_code == 400
    assert unknown.json()["error"]["details"][0]["code"] == "unknown_policy"


def test_history_newest_first_and_filtered(write_client):
    write_client.put(tenant_url("acme"), {"enabled": False}, format="json")
    write_client.patch(STATUS, {"parallel_execution_max_group_size": 7, "reason": "tuning"}, format="json")
    write_client.delete(tenant_url("acme") + "?reason=recovered")

    everything = write_client.get(HISTORY).json()
    tenant_only = write_client.get(HISTORY, {"target_type": "tenant", "target": "acme"}).json()
    limited = write_client.get(HISTORY, {"limit": 1}).json()

    assert [entry["target"] for entry in everything] == ["acme", "parallel_execution_max_group_size", "acme"]
    assert set(everything[0]) == {
        "id", "created_at", "actor", "through", "target_type", "target", "old_value", "new_value", "reason", "revision",
    }
    assert everything[0]["reason"] == "recovered"
    assert [(entry["old_value"], entry["new_value"]) for entry in tenant_only] == [(False, None), (None, False)]
    assert len(limited) == 1


@pytest.mark.parametrize("query", [{"through": "email"}, {"target_type": "x"}, {"limit": "0"}, {"limit": "many"}])
def test_history_rejects_bad_query(read_client, query):
    response = read_client.get(HISTORY, query)

    assert response.status_code == 400


@pytest.mark.parametrize("method, url, body", [
    ("get", STATUS, None),
    ("patch", STATUS, {"parallel_execution_enabled": False}),
    ("put", tenant_url("acme"), {"enabled": False}),
    ("delete", tenant_url("acme"), None),
    ("get", HISTORY, None),
])
def test_requests_without_credentials_are_401(method, url, body):
    response = getattr(APIClient(), method)(url, body, format="json")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize("method, url, body", [
    ("patch", STATUS, {"parallel_execution_enabled": False}),
    ("put", tenant_url("acme"), {"enabled": False}),
    ("delete", tenant_url("acme"), None),
])
def test_read_token_cannot_write(read_client, method, url, body):
    response = getattr(read_client, method)(url, body, format="json")

    assert response.status_code == 403
    assert FlagChange.objects.count() == 0


def test_read_token_can_read(read_client):
    assert read_client.get(STATUS).status_code == 200
    assert read_client.get(HISTORY).status_code == 200


def test_staff_session_needs_rollout_permissions():
    staff = User.objects.create_user("ops", password="x", is_staff=True)
    client = APIClient()
    client.force_login(staff)

    denied = client.put(tenant_url("acme"), {"enabled": False}, format="json")
    staff.user_permissions.add(Permission.objects.get(codename="change_tenantoverride"))
    staff = User.objects.get(pk=staff.pk)  # drop the cached permissions
    client.force_login(staff)
    allowed = client.put(tenant_url("acme"), {"enabled": False}, format="json")

    assert denied.status_code == 403
    assert allowed.status_code == 200
    assert FlagChange.objects.get().actor == "ops"
