"""The rollouts API: shapes, permissions (authors none, ops staff all) and conflicts."""
import pytest
from django.contrib.auth.models import Group, User
from rest_framework.test import APIClient

from rollout.models import FlagChange, Rollout, RolloutEvent

from .rollout_seed import CANARIES, INTERNAL, seed_healthy, start, walk_to_phase

pytestmark = pytest.mark.django_db


def signed_in(username, group, *, is_staff):
    user = User.objects.create_user(username, password="a-long-test-password", is_staff=is_staff)
    user.groups.add(Group.objects.get(name=group))
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def ops_api():
    return signed_in("olga", "Ops staff", is_staff=True)


@pytest.fixture
def author_api():
    return signed_in("ada", "Extension authors", is_staff=True)


@pytest.fixture(autouse=True)
def no_verification_task(monkeypatch):
    from rollout import rollouts

    monkeypatch.setattr(rollouts, "_schedule_verification", lambda event_id: None)


def test_ops_starts_rollout(ops_api):
    response = ops_api.post("/api/v1/rollouts", {"stage": "pre", "internal_tenants": INTERNAL,
                                                 "canary_tenants": CANARIES[:3]}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["stage"] == "pre"
    assert body["current_phase"] == 1
    assert body["canary_steps"] == [2, 3]
    assert body["created_by"] == "olga"
    assert [phase["name"] for phase in body["phases"]][0] == "Development and testing"
    assert body["events"][0]["kind"] == "start"


def test_start_with_unknown_stage_is_400(ops_api):
    response = ops_api.post("/api/v1/rollouts", {"stage": "middle", "internal_tenants": INTERNAL}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["path"] == "stage"


def test_list_and_detail_shapes(ops_api):
    rollout = start()

    listed = ops_api.get("/api/v1/rollouts").json()
    detail = ops_api.get(f"/api/v1/rollouts/{rollout.pk}").json()

    assert [item["id"] for item in listed] == [rollout.pk]
    assert "phases" not in listed[0]
    assert len(detail["phases"]) == 4
    assert set(detail["phases"][0]) >= {"number", "name", "planned_duration", "actions", "success_criteria",
                                        "state", "started_at", "ended_at", "moved_by", "override_reason"}


def test_advance_with_override_reason(ops_api):
    rollout = start()

    response = ops_api.post(f"/api/v1/rollouts/{rollout.pk}/advance",
                            {"override_reason": "CI run 812 passed.", "phase": 1}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert body["current_phase"] == 2
    assert body["phases"][0]["state"] == "overridden"
    assert body["phases"][0]["override_reason"] == "CI run 812 passed."
    assert FlagChange.objects.filter(actor="olga", through="api").exists()


def test_advance_without_evidence_is_409(ops_api):
    rollout = walk_to_phase(start(), 2)

    response = ops_api.post(f"/api/v1/rollouts/{rollout.pk}/advance", {}, format="json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "criteria_not_met"


def test_advance_from_stale_phase_is_409(ops_api):
    rollout = walk_to_phase(start(), 2)

    response = ops_api.post(f"/api/v1/rollouts/{rollout.pk}/advance", {"override_reason": "x", "phase": 1},
                            format="json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "phase_changed"


def test_canary_step_and_abort(ops_api):
    rollout = walk_to_phase(start(), 3)

    stepped = ops_api.post(f"/api/v1/rollouts/{rollout.pk}/canary-step")
    aborted = ops_api.post(f"/api/v1/rollouts/{rollout.pk}/abort", {"reason": "Paused for the holidays."},
                           format="json")

    assert stepped.json()["enabled_canaries"] == CANARIES[:5]
    assert aborted.status_code == 200
    assert aborted.json()["state"] == "aborted"


def test_abort_without_reason_is_400(ops_api):
    rollout = start()

    response = ops_api.post(f"/api/v1/rollouts/{rollout.pk}/abort", {}, format="json")

    assert response.status_code == 400


def test_rollback_of_tenant_by_api(ops_api):
    rollout = walk_to_phase(start(), 3)

    response = ops_api.post(f"/api/v1/rollouts/{rollout.pk}/rollback",
                            {"scope": "tenant", "tenant_id": CANARIES[0], "reason": "Customer complaint."},
                            format="json")

    assert response.status_code == 201
    body = response.json()
    assert (body["kind"], body["scope"], body["scope_id"]) == ("rollback", "tenant", CANARIES[0])
    assert body["through"] == "api"
    assert body["verification"] == "pending"
    change = FlagChange.objects.get(target=CANARIES[0])
    assert change.through == "api"
    assert "Customer complaint." in change.reason


def test_full_rollback_by_api(ops_api):
    rollout = walk_to_phase(start(), 3)

    response = ops_api.post(f"/api/v1/rollouts/{rollout.pk}/rollback", {"scope": "all", "reason": "Incident 7."},
                            format="json")

    assert response.status_code == 201
    assert Rollout.objects.get().state == "rolled_back"
    again = ops_api.post(f"/api/v1/rollouts/{rollout.pk}/rollback", {"scope": "all", "reason": "Again."},
                         format="json")
    assert again.status_code == 409


def test_rollback_with_bad_scope_is_400(ops_api):
    rollout = start()

    response = ops_api.post(f"/api/v1/rollouts/{rollout.pk}/rollback", {"scope": "tenant", "reason": "x"},
                            format="json")

    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["path"] == "tenant_id"


def test_automatic_rollback_event_in_api(ops_api):
    from rollout import rollback

    from .rollout_seed import seed_window

    rollout = walk_to_phase(start(), 3)
    seed_healthy(CANARIES[0])
    seed_window(CANARIES[1], "parallel", 200, errors=40, latency_ms=25, compared=20)
    rollback.evaluate_rollout(rollout.pk)

    events = ops_api.get(f"/api/v1/rollouts/{rollout.pk}").json()["events"]

    event = next(event for event in events if event["kind"] == "rollback")
    assert event["trigger"] == "error_rate"
    assert event["value"] == pytest.approx(0.2)
    assert event["baseline"] == 0.0
    assert event["threshold"] == 0.0
    assert (event["scope"], event["scope_id"]) == ("tenant", CANARIES[1])


def test_evidence_of_rollout(ops_api, settings):
    settings.ROLLOUT_MIN_SAMPLES = 100
    settings.ROLLOUT_MIN_SHADOW_COMPARISONS = 10
    rollout = walk_to_phase(start(), 2)
    seed_healthy(INTERNAL[0])

    response = ops_api.get(f"/api/v1/rollouts/{rollout.pk}/evidence?window=15m")

    assert response.status_code == 200
    body = response.json()
    assert body["window_seconds"] == 900
    assert body["parallel"]["count"] == 200
    assert body["sequential"]["count"] == 200
    assert body["latency_reduction"] > 0.5
    assert [trigger["result"] for trigger in body["triggers"]] == ["pass"] * 5
    assert set(body["by_tenant"]) == {INTERNAL[0], "tenant-baseline"}


@pytest.mark.parametrize("window", ["0", "15x", "31d", ""])
def test_evidence_with_bad_window_is_400(ops_api, window):
    rollout = start()

    response = ops_api.get(f"/api/v1/rollouts/{rollout.pk}/evidence?window={window}")

    assert response.status_code == 400


def test_unknown_rollout_is_404(ops_api):
    assert ops_api.get("/api/v1/rollouts/999").status_code == 404


@pytest.mark.parametrize("method, path", [
    ("get", "/api/v1/rollouts"),
    ("get", "/api/v1/rollouts/{id}"),
    ("post", "/api/v1/rollouts/{id}/advance"),
    ("post", "/api/v1/rollouts/{id}/abort"),
    ("post", "/api/v1/rollouts/{id}/rollback"),
    ("get", "/api/v1/rollouts/{id}/evidence"),
])
def test_author_gets_403(author_api, method, path):
    rollout = start()

    response = getattr(author_api, method)(path.format(id=rollout.pk), {}, format="json")

    assert response.status_code == 403
    assert Rollout.objects.get().current_phase == 1
    assert not RolloutEvent.objects.exclude(kind="start").exists()


def test_anonymous_gets_401():
    assert APIClient().get("/api/v1/rollouts").status_code == 401
