"""The admin for ops staff: pages render, saves go through the services, errors sit on their rows."""
import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User

from registry import services
from registry.models import ApiToken, Extension, ExtensionVersion, PolicyStep, RoutingPolicy, Tenant
from registry.revision import current_revision

pytestmark = pytest.mark.django_db


def management_form(prefix, total, initial=0):
    return {
        f"{prefix}-TOTAL_FORMS": str(total),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }


def step_rows(prefix, rows, choice_field="mode"):
    data = management_form(prefix, len(rows))
    for index, row in enumerate(rows):
        data[f"{prefix}-{index}-position"] = str(index)
        data[f"{prefix}-{index}-extension_id"] = row["id"]
        data[f"{prefix}-{index}-{choice_field}"] = row.get(choice_field, "")
        data[f"{prefix}-{index}-depends_on"] = row.get("depends_on", "")
        data[f"{prefix}-{index}-config"] = row.get("config", "")
    return data


def policy_form(policy_id="acme-admin", pre=(), validators=(), post=(), tenant=None, router_keys="{}"):
    data = {"policy_id": policy_id, "tenant": str(tenant.pk), "router_keys": router_keys}
    data.update(step_rows("steps", list(pre)))
    data.update(step_rows("steps-2", list(validators), "on_fail"))
    data.update(step_rows("steps-3", list(post)))
    return data


def inline_forms(response, index):
    return response.context["inline_admin_formsets"][index].formset.forms


@pytest.fixture
def ops_client(client, db):
    ops = User.objects.create_user("ops", password="x", is_staff=True)
    codenames = [
        f"{action}_{model}"
        for action in ("view", "add", "change", "delete")
        for model in ("extension", "extensionversion", "tenant", "routingpolicy", "policystep")
    ]
    ops.user_permissions.set(Permission.objects.filter(content_type__app_label="registry", codename__in=codenames))
    client.force_login(ops)
    return client


@pytest.fixture
def stored_policy(pipeline_extensions, tenant):
    return services.create_policy(
        {
            "policy_id": "acme-default",
            "tenant_id": "acme",
            "pre": [
                {"id": "normalize_text", "mode": "required", "depends_on": []},
                {"id": "enrich_context", "mode": "optional", "depends_on": ["normalize_text"], "retries": 2},
            ],
            "sticky": {"enabled": True},
        }
    )


@pytest.mark.parametrize("model", ["tenant", "extension", "routingpolicy", "apitoken"])
def test_changelist_and_add_pages_render(admin_client, model, stored_policy):
    services.create_api_token("router", "read")

    assert admin_client.get(f"/admin/registry/{model}/").status_code == 200
    assert admin_client.get(f"/admin/registry/{model}/add/").status_code == 200
    assert admin_client.get(f"/admin/registry/{model}/?q=acme").status_code == 200


def test_change_pages_render(admin_client, stored_policy):
    token, _ = services.create_api_token("router", "read")
    pages = [
        f"/admin/registry/tenant/{Tenant.objects.get().pk}/change/",
        f"/admin/registry/extension/{Extension.objects.get(extension_id='normalize_text').pk}/change/",
        f"/admin/registry/routingpolicy/{stored_policy.pk}/change/",
        f"/admin/registry/apitoken/{token.pk}/change/",
    ]

    for page in pages:
        assert admin_client.get(page).status_code == 200, page


def test_extension_list_shows_side_effect_filter(admin_client, pipeline_extensions):
    response = admin_client.get("/admin/registry/extension/?side_effect_free=no")

    assert list(response.context["cl"].result_list) == [pipeline_extensions["audit_log"]]


def test_tenant_add_saves_through_services(ops_client):
    revision = current_revision()

    response = ops_client.post("/admin/registry/tenant/add/", {"tenant_id": "globex", "name": "Globex", "description": ""})

    assert response.status_code == 302
    assert Tenant.objects.filter(tenant_id="globex").exists()
    assert current_revision() == revision + 1
    assert LogEntry.objects.filter(object_repr="globex").exists()


def test_extension_add_creates_active_version(ops_client):
    data = {"extension_id": "normalize_text", "type": "pre", "enabled": "on", "owner": ""}
    data.update(management_form("versions", 1))
    data.update(
        {
            "versions-0-active": "on",
            "versions-0-version": "1.0.0",
            "versions-0-subject": "beamline.ext.pre.normalize_text.v1",
            "versions-0-timeout_ms": "100",
            "versions-0-retry": "0",
            "versions-0-side_effect_free": "on",
            "versions-0-description": "Normalizes text",
            "versions-0-config": "",
            "versions-0-metadata_extra": "",
        }
    )

    response = ops_client.post("/admin/registry/extension/add/", data)

    assert response.status_code == 302, response.context and response.context["errors"]
    extension = Extension.objects.get()
    assert extension.active_version.version == "1.0.0"
    assert extension.active_version.side_effect_free is True


def test_extension_add_rejects_subject_of_other_type(ops_client):
    data = {"extension_id": "normalize_text", "type": "pre", "enabled": "on", "owner": ""}
    data.update(management_form("versions", 1))
    data.update(
        {
            "versions-0-active": "on",
            "versions-0-subject": "beamline.ext.post.normalize_text.v1",
            "versions-0-timeout_ms": "100",
            "versions-0-retry": "0",
        }
    )

    response = ops_client.post("/admin/registry/extension/add/", data)

    assert response.status_code == 200
    assert "beamline.ext.pre.<name>.v<N>" in " ".join(inline_forms(response, 0)[0].errors["subject"])
    assert not Extension.objects.exists()


def version_rows(extension):
    versions = list(extension.versions.order_by("created_at", "id"))
    data = management_form("versions", len(versions), len(versions))
    for index, version in enumerate(versions):
        data.update(
            {
                f"versions-{index}-id": str(version.pk),
                f"versions-{index}-extension": str(extension.pk),
                f"versions-{index}-version": version.version,
                f"versions-{index}-subject": version.subject,
                f"versions-{index}-timeout_ms": str(version.timeout_ms),
                f"versions-{index}-retry": str(version.retry),
                f"versions-{index}-description": version.description,
                f"versions-{index}-config": "",
                f"versions-{index}-metadata_extra": "",
            }
        )
        if version.side_effect_free:
            data[f"versions-{index}-side_effect_free"] = "on"
        if version.is_active:
            data[f"versions-{index}-active"] = "on"
    return data


def test_extension_change_activates_the_chosen_version(ops_client, make_extension):
    extension = make_extension("normalize_text", version="1.0.0")
    services.create_version(extension, {"version": "2.0.0"})
    data = {"type": "pre", "enabled": "on", "owner": "", **version_rows(extension)}
    data.pop("versions-0-active")
    data["versions-1-active"] = "on"

    response = ops_client.post(f"/admin/registry/extension/{extension.pk}/change/", data)

    assert response.status_code == 302
    assert extension.active_version.version == "2.0.0"


def test_extension_change_needs_exactly_one_active(ops_client, make_extension):
    extension = make_extension("normalize_text", version="1.0.0")
    services.create_version(extension, {"version": "2.0.0"})
    data = {"type": "pre", "enabled": "on", "owner": "", **version_rows(extension)}
    data["versions-1-active"] = "on"

    response = ops_client.post(f"/admin/registry/extension/{extension.pk}/change/", data)

    assert response.status_code == 200
    assert "Exactly one version must be active" in " ".join(response.context["inline_admin_formsets"][0].formset.non_form_errors())
    assert extension.active_version.version == "1.0.0"


def test_bulk_action_asks_for_confirmation(ops_client, pipeline_extensions):
    audit_log = pipeline_extensions["audit_log"]
    revision = current_revision()

    response = ops_client.post(
        "/admin/registry/extension/", {"action": "mark_side_effect_free", "_selected_action": [str(audit_log.pk)]}
    )

    assert response.status_code == 200
    assert "admin/registry/extension/side_effect_confirmation.html" in [t.name for t in response.templates]
    assert b"csrfmiddlewaretoken" in response.content
    assert audit_log.active_version.side_effect_free is False
    assert current_revision() == revision


def test_bulk_action_confirmed_saves_each_and_logs(ops_client, pipeline_extensions):
    audit_log = pipeline_extensions["audit_log"]
    revision = current_revision()

    response = ops_client.post(
        "/admin/registry/extension/",
        {"action": "mark_side_effect_free", "_selected_action": [str(audit_log.pk)], "confirm": "yes"},
    )

    assert response.status_code == 302
    assert audit_log.active_version.side_effect_free is True
    assert current_revision() == revision + 1
    assert LogEntry.objects.filter(object_id=str(audit_log.pk)).count() == 1


def test_bulk_action_marks_having_side_effects(ops_client, pipeline_extensions):
    normalize_text = pipeline_extensions["normalize_text"]

    ops_client.post(
        "/admin/registry/extension/",
        {"action": "mark_has_side_effects", "_selected_action": [str(normalize_text.pk)], "confirm": "yes"},
    )

    assert normalize_text.active_version.side_effect_free is False


def test_bulk_action_needs_change_permission(client, pipeline_extensions):
    viewer = User.objects.create_user("viewer", password="x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_extension"))
    client.force_login(viewer)

    response = client.get("/admin/registry/extension/")

    assert "mark_side_effect_free" not in response.content.decode()


def test_policy_add_saves_document(ops_client, pipeline_extensions, tenant):
    data = policy_form(
        tenant=tenant,
        pre=[{"id": "normalize_text", "mode": "required", "depends_on": "[]"}, {"id": "detect_language", "mode": "optional"}],
        validators=[{"id": "schema_check", "on_fail": "warn"}],
        router_keys='{"sticky": {"enabled": true}}',
    )
    revision = current_revision()

    response = ops_client.post("/admin/registry/routingpolicy/add/", data)

    assert response.status_code == 302, response.context and response.context["errors"]
    assert ops_client.get("/admin/").status_code == 200
    from registry.documents import policy_document

    assert policy_document(RoutingPolicy.objects.get()) == {
        "policy_id": "acme-admin",
        "tenant_id": "acme",
        "pre": [
            {"id": "normalize_text", "mode": "required", "depends_on": []},
            {"id": "detect_language", "mode": "optional"},
        ],
        "validators": [{"id": "schema_check", "on_fail": "warn"}],
        "sticky": {"enabled": True},
    }
    assert current_revision() == revision + 1


def test_policy_cycle_error_sits_on_the_step_rows(ops_client, pipeline_extensions, tenant):
    data = policy_form(
        tenant=tenant,
        pre=[
            {"id": "normalize_text", "mode": "required", "depends_on": '["enrich_context"]'},
            {"id": "detect_language", "mode": "required", "depends_on": "[]"},
            {"id": "enrich_context", "mode": "required", "depends_on": '["normalize_text"]'},
        ],
    )

    response = ops_client.post("/admin/registry/routingpolicy/add/", data)

    rows = inline_forms(response, 0)
    assert response.status_code == 200
    assert "cycle" in " ".join(rows[0].errors["depends_on"])
    assert "detect_language" not in rows[0].errors["depends_on"][0]
    assert not rows[1].errors
    assert "cycle" in " ".join(rows[2].errors["depends_on"])
    assert not RoutingPolicy.objects.exists()


def test_policy_step_errors_name_row_and_field(ops_client, pipeline_extensions, tenant):
    data = policy_form(
        tenant=tenant,
        pre=[{"id": "normalize_text", "mode": ""}, {"id": "schema_check", "mode": "required"}],
        validators=[{"id": "schema_check", "on_fail": "block", "depends_on": '["ghost"]'}],
    )

    response = ops_client.post("/admin/registry/routingpolicy/add/", data)

    pre_rows = inline_forms(response, 0)
    validator_rows = inline_forms(response, 1)
    assert "mode is missing" in " ".join(pre_rows[0].errors["mode"])
    assert "type 'validator'" in " ".join(pre_rows[1].errors["extension_id"])
    assert "ghost" in " ".join(validator_rows[0].errors["depends_on"])
    assert not RoutingPolicy.objects.exists()


def test_policy_change_keeps_extra_step_keys_and_router_keys(ops_client, stored_policy, tenant):
    steps = list(stored_policy.steps.order_by("position"))
    data = {"tenant": str(tenant.pk), "router_keys": '{"sticky": {"enabled": true}}'}
    data.update(management_form("steps", 2, 2))
    for index, step in enumerate(steps):
        data.update(
            {
                f"steps-{index}-id": str(step.pk),
                f"steps-{index}-policy": str(stored_policy.pk),
                f"steps-{index}-position": str(index),
                f"steps-{index}-extension_id": step.extension_id,
                f"steps-{index}-mode": "required",
                f"steps-{index}-depends_on": "[]" if index == 0 else '["normalize_text"]',
                f"steps-{index}-config": "",
            }
        )
    data.update(management_form("steps-2", 0))
    data.update(management_form("steps-3", 0))

    response = ops_client.post(f"/admin/registry/routingpolicy/{stored_policy.pk}/change/", data)

    assert response.status_code == 302, response.context and response.context["errors"]
    enrich = PolicyStep.objects.get(extension_id="enrich_context")
    assert enrich.mode == "required"
    assert enrich.extra == {"retries": 2}
    assert RoutingPolicy.objects.get().declared_stages == ["pre"]


def test_token_add_shows_secret_once(admin_client):
    response = admin_client.post("/admin/registry/apitoken/add/", {"name": "router-prod", "user": "", "scope": "write"})

    secret = response.context["secret"]
    token = ApiToken.objects.get()
    assert response.status_code == 200
    assert token.secret_hash == ApiToken.hash_secret(secret)
    assert secret not in admin_client.get("/admin/registry/apitoken/").content.decode()
    assert secret not in admin_client.get(f"/admin/registry/apitoken/{token.pk}/change/").content.decode()


def test_token_revoke_action(admin_client):
    token, _ = services.create_api_token("router", "read")

    admin_client.post("/admin/registry/apitoken/", {"action": "revoke_tokens", "_selected_action": [str(token.pk)]})

    token.refresh_from_db()
    assert token.revoked_at is not None


def test_extension_delete_page_protects_used_extension(admin_client, stored_policy):
    extension = Extension.objects.get(extension_id="normalize_text")

    response = admin_client.post(f"/admin/registry/extension/{extension.pk}/delete/", {"post": "yes"})

    assert response.status_code == 200
    assert "acme-default" in response.content.decode()
    assert Extension.objects.filter(pk=extension.pk).exists()


def test_extension_version_is_one_active_constraint(make_extension):
    from django.db import IntegrityError, transaction

    extension = make_extension("normalize_text")

    with pytest.raises(IntegrityError), transaction.atomic():
        ExtensionVersion.objects.create(
            extension=extension, version="2", subject="beamline.ext.pre.normalize_text.v2", timeout_ms=10, retry=0, is_active=True
        )
