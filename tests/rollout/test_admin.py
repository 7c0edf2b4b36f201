"""The rollout admin: the flags page, overrides with confirmation, and the read-only audit trail."""
import pytest
from django.contrib.auth.models import Permission, User

from rollout import services
from rollout.models import FlagChange, FlagOverride, PolicyOverride, TenantOverride
from rollout.status import database_flag_values

pytestmark = pytest.mark.django_db

FLAGS_PAGE = "/admin/rollout/flagoverride/"


def override_url(name):
    return f"/admin/rollout/flagoverride/{name}/override/"


@pytest.fixture
def ops_client(client):
    ops = User.objects.create_user("ops", password="x", is_staff=True)
    ops.user_permissions.set(Permission.objects.filter(content_type__app_label="rollout"))
    client.force_login(ops)
    return client


def test_flags_page_shows_value_and_source(ops_client, monkeypatch):
    monkeypatch.setenv("EXTENSION_PIPELINE_PARALLEL_EXECUTION_ENABLED", "true")

    response = ops_client.get(FLAGS_PAGE)

    states = {state.definition.name: state for state in response.context["states"]}
    assert response.status_code == 200
    assert (states["parallel_execution_enabled"].value, states["parallel_execution_enabled"].source) == (True, "environment")
    assert "EXTENSION_PIPELINE_PARALLEL_EXECUTION_ENABLED" in response.content.decode()


def test_override_page_sets_and_clears_value(ops_client):
    page = ops_client.get(override_url("parallel_execution_max_group_size"))
    saved = ops_client.post(override_url("parallel_execution_max_group_size"), {"value": "9", "reason": "more members"})
    after_save = database_flag_values().get("parallel_execution_max_group_size")
    cleared = ops_client.post(override_url("parallel_execution_max_group_size"), {"_clear": "1", "value": ""})

    assert page.status_code == 200
    assert saved.status_code == 302
    assert after_save == 9
    assert cleared.status_code == 302
    assert not FlagOverride.objects.exists()
    entries = list(FlagChange.objects.order_by("id"))
    assert [(entry.actor, entry.through, entry.new_value) for entry in entries] == [("ops", "admin", 9), ("ops", "admin", None)]
    assert entries[0].user.username == "ops"


def test_override_out_of_range_shows_form_error(ops_client):
    response = ops_client.post(override_url("parallel_execution_timeout_multiplier"), {"value": "11"})

    assert response.status_code == 200
    assert response.context["form"].errors["value"]
    assert not FlagOverride.objects.exists()


def test_emptying_allowlist_asks_for_confirmation(ops_client, actor):
    services.set_flag("parallel_execution_tenant_allowlist", ["acme"], actor=actor)

    asked = ops_client.post(override_url("parallel_execution_tenant_allowlist"), {"value": "", "reason": "all in"})
    unchanged = database_flag_values()["parallel_execution_tenant_allowlist"]
    confirmed = ops_client.post(
        override_url("parallel_execution_tenant_allowlist"), {"value": "", "reason": "all in", "confirm_all_tenants": "on"}
    )

    assert asked.status_code == 200
    assert "admin/rollout/flagoverride/confirm.html" in [template.name for template in asked.templates]
    assert ("reason", "all in") in asked.context["resubmitted"]
    assert unchanged == ("acme",)
    assert confirmed.status_code == 302
    assert database_flag_values()["parallel_execution_tenant_allowlist"] == ()


def test_confirmation_page_needs_csrf_token(ops_client, actor):
    services.set_flag("parallel_execution_tenant_allowlist", ["acme"], actor=actor)
    ops_client.handler.enforce_csrf_checks = True

    response = ops_client.post(override_url("parallel_execution_tenant_allowlist"), {"value": "", "confirm_all_tenants": "on"})

    assert response.status_code == 403
    assert database_flag_values()["parallel_execution_tenant_allowlist"] == ("acme",)


def test_tenant_override_admin_saves_through_services(ops_client):
    added = ops_client.post("/admin/rollout/tenantoverride/add/", {"tenant_id": "acme", "enabled": "", "reason": "errors"})
    override = TenantOverride.objects.get()
    deleted = ops_client.post(f"/admin/rollout/tenantoverride/{override.pk}/delete/", {"post": "yes"})

    assert added.status_code == 302
    assert override.enabled is False
    assert deleted.status_code == 302
    assert not TenantOverride.objects.exists()
    assert [(entry.through, entry.reason, entry.new_value) for entry in FlagChange.objects.order_by("id")] == [
        ("admin", "errors", False), ("admin", "", None),
    ]


def test_tenant_override_admin_rejects_id_with_comma(ops_client):
    response = ops_client.post("/admin/rollout/tenantoverride/add/", {"tenant_id": "a,b", "enabled": "on"})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["tenant_id"]


def test_policy_override_admin_offers_existing_policies(ops_client, policies):
    page = ops_client.get("/admin/rollout/policyoverride/add/")
    added = ops_client.post("/admin/rollout/policyoverride/add/", {"policy_id": "acme-bulk", "enabled": "on"})

    choices = [value for value, _ in page.context["adminform"].form.fields["policy_id"].choices]
    assert choices == ["acme-bulk", "acme-default"]
    assert added.status_code == 302
    assert PolicyOverride.objects.get().policy_id == "acme-bulk"


def test_audit_trail_is_read_only(ops_client, actor):
    [entry] = services.set_flag("parallel_execution_max_group_size", 4, actor=actor)

    listing = ops_client.get("/admin/rollout/flagchange/")
    detail = ops_client.post(f"/admin/rollout/flagchange/{entry.pk}/change/", {"reason": "edited"})
    add = ops_client.get("/admin/rollout/flagchange/add/")

    assert listing.status_code == 200
    assert "parallel_execution_max_group_size" in listing.content.decode()
    assert add.status_code == 403
    assert detail.status_code == 403
    assert FlagChange.objects.get().reason == ""


def test_flags_page_needs_permission(client):
    staff = User.objects.create_user("viewer", password="x", is_staff=True)
    client.force_login(staff)

    assert client.get(FLAGS_PAGE).status_code == 403
    assert client.get(override_url("parallel_execution_enabled")).status_code == 403
