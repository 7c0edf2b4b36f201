"""The policies API: documents, round trips, validation errors and what is saved."""
import pytest

from registry.models import PolicyStep, RoutingPolicy

pytestmark = pytest.mark.django_db


@pytest.fixture
def ready(pipeline_extensions, tenant):
    """The extensions and tenant the example policy refers to."""
    return pipeline_extensions


def test_depends_on_example_round_trips(write_client, ready, depends_on_policy):
    depends_on_policy["pre"][1].pop("depends_on")

    created = write_client.post("/api/v1/policies/", depends_on_policy, format="json")
    fetched = write_client.get("/api/v1/policies/acme-default/").json()

    assert created.status_code == 201, created.json()
    assert fetched == depends_on_policy
    assert "depends_on" not in fetched["pre"][1]
    assert fetched["pre"][0]["depends_on"] == []


def test_missing_and_empty_depends_on_stored_apart(write_client, ready, depends_on_policy):
    depends_on_policy["pre"][1].pop("depends_on")

    write_client.post("/api/v1/policies/", depends_on_policy, format="json")

    stored = dict(PolicyStep.objects.filter(stage="pre").values_list("extension_id", "depends_on"))
    assert stored == {"normalize_text": [], "detect_language": None, "enrich_context": ["normalize_text"]}


def test_router_keys_and_extra_step_keys_come_back_unchanged(write_client, ready, depends_on_policy):
    depends_on_policy["providers"] = [{"name": "openai", "weight": 70}, {"name": "local", "weight": 30}]
    depends_on_policy["fallbacks"] = {"on_timeout": ["local"]}
    depends_on_policy["sticky"] = {"enabled": True, "ttl_seconds": 600}
    depends_on_policy["version"] = "3"
    depends_on_policy["x-router-future"] = None
    depends_on_policy["validators"] = [{"id": "schema_check", "on_fail": "warn", "note": "kept"}]
    depends_on_policy["post"] = []

    write_client.post("/api/v1/policies/", depends_on_policy, format="json")

    assert write_client.get("/api/v1/policies/acme-default/").json() == depends_on_policy


def test_cycle_is_400_naming_the_cycle(write_client, ready, depends_on_policy):
    depends_on_policy["pre"][0]["depends_on"] = ["enrich_context"]

    response = write_client.post("/api/v1/policies/", depends_on_policy, format="json")

    body = response.json()["error"]
    assert response.status_code == 400
    assert body["code"] == "invalid_policy"
    cycle = [detail for detail in body["details"] if detail["code"] == "dependency_cycle"]
    assert len(cycle) == 1
    assert sorted(cycle[0]["step_ids"]) == ["enrich_context", "normalize_text"]
    assert "→" in cycle[0]["message"]
    assert cycle[0]["stage"] == "pre"
    assert cycle[0]["path"].endswith(".depends_on")
    assert not RoutingPolicy.objects.exists()
    assert not PolicyStep.objects.exists()


def test_dependency_on_missing_step_is_400(write_client, ready, depends_on_policy):
    depends_on_policy["pre"][2]["depends_on"] = ["normalize_txt"]

    response = write_client.post("/api/v1/policies/", depends_on_policy, format="json")

    detail = response.json()["error"]["details"][0]
    assert response.status_code == 400
    assert detail["code"] == "unknown_dependency"
    assert detail["path"] == "pre[2].depends_on"
    assert detail["step"] == "enrich_context"
    assert detail["step_ids"] == ["enrich_context", "normalize_txt"]
    assert not RoutingPolicy.objects.exists()


def test_duplicate_step_id_is_400(write_client, ready, depends_on_policy):
    depends_on_policy["pre"].append({"id": "detect_language", "mode": "optional"})

    response = write_client.post("/api/v1/policies/", depends_on_policy, format="json")

    detail = response.json()["error"]["details"][0]
    assert response.status_code == 400
    assert detail["code"] == "duplicate_step"
    assert detail["path"] == "pre[3].id"
    assert detail["step_ids"] == ["detect_language"]
    assert not RoutingPolicy.objects.exists()


def test_every_error_reported_at_once(write_client, ready, depends_on_policy):
    depends_on_policy["pre"][0]["mode"] = "sometimes"
    depends_on_policy["pre"][1]["id"] = "schema_check"
    depends_on_policy["validators"] = [{"id": "schema_check"}]
    depends_on_policy["post"] = "audit_log"

    response = write_client.post("/api/v1/policies/", depends_on_policy, format="json")

    paths = {detail["path"]: detail["code"] for detail in response.json()["error"]["details"]}
    assert paths == {
        "pre[0].mode": "invalid_choice",
        "pre[1].id": "wrong_extension_type",
        "validators[0].on_fail": "missing_field",
        "post": "invalid_type",
    }


def test_invalid_update_keeps_the_saved_policy(write_client, ready, depends_on_policy):
    write_client.post("/api/v1/policies/", depends_on_policy, format="json")
    broken = {**depends_on_policy, "pre": [{"id": "normalize_text", "mode": "required", "depends_on": ["ghost"]}]}

    response = write_client.put("/api/v1/policies/acme-default/", broken, format="json")

    assert response.status_code == 400
    assert write_client.get("/api/v1/policies/acme-default/").json() == depends_on_policy


def test_patch_replaces_a_stage_whole_and_keeps_the_rest(write_client, ready, depends_on_policy):
    depends_on_policy["sticky"] = {"enabled": True}
    write_client.post("/api/v1/policies/", depends_on_policy, format="json")
    validators = [{"id": "schema_check", "on_fail": "block", "depends_on": []}]

    response = write_client.patch("/api/v1/policies/acme-default/", {"validators": validators}, format="json")

    assert response.status_code == 200, response.json()
    assert response.json() == {**depends_on_policy, "validators": validators}


def test_patch_validates_the_result_whole(write_client, ready, depends_on_policy):
    write_client.post("/api/v1/policies/", depends_on_policy, format="json")

    response = write_client.patch("/api/v1/policies/acme-default/", {"tenant_id": "nobody"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["code"] == "unknown_tenant"


def test_list_filters_by_tenant(write_client, ready, depends_on_policy):
    from registry import services

    services.create_tenant({"tenant_id": "globex", "name": "Globex"})
    write_client.post("/api/v1/policies/", depends_on_policy, format="json")
    write_client.post("/api/v1/policies/", {**depends_on_policy, "policy_id": "globex-main", "tenant_id": "globex"}, format="json")

    listed = write_client.get("/api/v1/policies/?tenant_id=globex").json()

    assert [policy["policy_id"] for policy in listed] == ["globex-main"]


def test_delete_removes_policy_and_steps(write_client, ready, depends_on_policy):
    write_client.post("/api/v1/policies/", depends_on_policy, format="json")

    response = write_client.delete("/api/v1/policies/acme-default/")

    assert response.status_code == 204
    assert not PolicyStep.objects.exists()


def test_list_costs_constant_queries(write_client, ready, depends_on_policy, django_assert_max_num_queries):
    for number in range(20):
        write_client.post("/api/v1/policies/", {**depends_on_policy, "policy_id": f"policy-{number}"}, format="json")

    with django_assert_max_num_queries(4):
        response = write_client.get("/api/v1/policies/")

    assert len(response.json()) == 20


@pytest.mark.parametrize("url", ["/api/v1/policies/", "/api/v1/extensions/", "/api/v1/tenants/"])
def test_body_that_is_not_an_object_is_400(write_client, url):
    response = write_client.post(url, [1, 2], format="json")

    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["code"] == "invalid_type"


def test_tenant_api_round_trip(write_client):
    tenant = {"tenant_id": "globex", "name": "Globex", "description": "Second tenant"}

    created = write_client.post("/api/v1/tenants/", tenant, format="json")
    patched = write_client.patch("/api/v1/tenants/globex/", {"name": "Globex Corp"}, format="json")
    renamed = write_client.put("/api/v1/tenants/globex/", {**tenant, "tenant_id": "other"}, format="json")

    assert created.status_code == 201
    assert write_client.get("/api/v1/tenants/globex").json()["name"] == "Globex Corp"
    assert patched.json() == {**tenant, "name": "Globex Corp"}
    assert renamed.status_code == 400
    assert renamed.json()["error"]["details"][0]["code"] == "immutable_field"


def test_tenant_with_policies_cannot_be_deleted(write_client, ready, depends_on_policy):
    write_client.post("/api/v1/policies/", depends_on_policy, format="json")

    response = write_client.delete("/api/v1/tenants/acme/")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "tenant_in_use"
