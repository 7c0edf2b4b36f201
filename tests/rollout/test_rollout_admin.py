"""The rollout admin pages: detail, actions with reason forms, event list, and who may use them."""
import pytest
from django.contrib.auth.models import Group, User

from rollout import rollback, rollouts
from rollout.models import FlagChange, Rollout, RolloutEvent

from .rollout_seed import CANARIES, seed_healthy, seed_window, start, walk_to_phase

pytestmark = pytest.mark.django_db


def user_in(username, group, *, is_staff=True):
    user = User.objects.create_user(username, password="a-long-test-password", is_staff=is_staff)
    user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def ops_client(client):
    client.force_login(user_in("olga", "Ops staff"))
    return client


@pytest.fixture
def author_client(client):
    client.force_login(user_in("ada", "Extension authors"))
    return client


@pytest.fixture(autouse=True)
def no_verification_task(monkeypatch):
    monkeypatch.setattr(rollouts, "_schedule_verification", lambda event_id: None)


def test_start_rollout_in_admin(ops_client):
    response = ops_client.post("/admin/rollout/rollout/add/", {
        "stage": "pre", "internal_tenants": "tenant-internal", "canary_tenants": "c1, c2, c3", "canary_steps": "1, 3",
    })

    rollout = Rollout.objects.get()
    assert response.status_code == 302
    assert rollout.canary_tenants == ["c1", "c2", "c3"]
    assert rollout.canary_steps == [1, 3]
    assert rollout.created_by_name == "olga"


def test_detail_page_shows_phases_and_events(ops_client):
    rollout = walk_to_phase(start(), 2)

    page = ops_client.get(f"/admin/rollout/rollout/{rollout.pk}/change/").content.decode()

    assert "Internal testing" in page
    assert "Set up by the test." in page
    assert "Roll back" in page
    assert "not_enough_data" in page


def test_advance_by_override_in_admin(ops_client):
    rollout = start()

    response = ops_client.post(f"/admin/rollout/rollout/{rollout.pk}/advance/",
                               {"override_reason": "CI run 812 passed."})

    assert response.status_code == 302
    phase = Rollout.objects.get().phases.get(number=1)
    assert phase.override_reason == "CI run 812 passed."
    assert phase.moved_by == "olga"
    assert FlagChange.objects.filter(through="admin", actor="olga").exists()


def test_advance_without_evidence_shows_error(ops_client):
    rollout = walk_to_phase(start(), 2)

    response = ops_client.post(f"/admin/rollout/rollout/{rollout.pk}/advance/", {"override_reason": ""})

    assert response.status_code == 200
    assert "has not met its success criteria" in response.content.decode()
    assert Rollout.objects.get().current_phase == 2


def test_rollback_form_needs_reason(ops_client):
    rollout = walk_to_phase(start(), 3)

    response = ops_client.post(f"/admin/rollout/rollout/{rollout.pk}/rollback/", {"scope": "all", "reason": ""})

    assert response.status_code == 200
    assert Rollout.objects.get().state == "active"


def test_rollback_of_tenant_in_admin(ops_client):
    rollout = walk_to_phase(start(), 3)

    response = ops_client.post(f"/admin/rollout/rollout/{rollout.pk}/rollback/",
                               {"scope": "tenant", "tenant_id": CANARIES[0], "reason": "Customer complaint."})

    assert response.status_code == 302
    event = RolloutEvent.objects.get(kind="rollback")
    assert (event.scope, event.scope_id, event.through) == ("tenant", CANARIES[0], "admin")
    assert FlagChange.objects.get(target=CANARIES[0]).through == "admin"


def test_rollback_action_on_changelist_opens_reason_form(ops_client):
    rollout = start()

    response = ops_client.post("/admin/rollout/rollout/", {"action": "roll_back_selected",
                                                          "_selected_action": [rollout.pk]})

    assert response.status_code == 302
    assert response["Location"] == f"/admin/rollout/rollout/{rollout.pk}/rollback/"


def test_canary_step_in_admin(ops_client):
    rollout = walk_to_phase(start(), 3)

    ops_client.post(f"/admin/rollout/rollout/{rollout.pk}/canary-step/")

    assert Rollout.objects.get().enabled_canaries == CANARIES[:5]


def test_abort_in_admin(ops_client):
    rollout = start()

    ops_client.post(f"/admin/rollout/rollout/{rollout.pk}/abort/", {"reason": "Not this quarter."})

    assert Rollout.objects.get().state == "aborted"


def test_automatic_rollback_in_event_list(ops_client):
    rollout = walk_to_phase(start(), 3)
    seed_healthy(CANARIES[0])
    seed_window(CANARIES[1], "parallel", 200, errors=40, latency_ms=25, compared=20)
    rollback.evaluate_rollout(rollout.pk)

    page = ops_client.get("/admin/rollout/rolloutevent/?kind=rollback").content.decode()

    assert "error_rate" in page
    assert "automatic_rollback" in page
    assert CANARIES[1] in page
    assert "0.2" in page


@pytest.mark.parametrize("path", [
    "/admin/rollout/rollout/",
    "/admin/rollout/rollout/{id}/change/",
    "/admin/rollout/rollout/{id}/advance/",
    "/admin/rollout/rollout/{id}/rollback/",
    "/admin/rollout/rollout/{id}/dashboard/",
    "/admin/rollout/rolloutevent/",
])
def test_author_cannot_open_rollout_pages(author_client, path):
    rollout = start()

    response = author_client.get(path.format(id=rollout.pk))

    assert response.status_code == 403


def test_author_cannot_roll_back(author_client):
    rollout = walk_to_phase(start(), 3)

    response = author_client.post(f"/admin/rollout/rollout/{rollout.pk}/rollback/", {"scope": "all", "reason": "x"})

    assert response.status_code == 403
    assert Rollout.objects.get().state == "active"
