"""The rollout's phases: their data, advancing on evidence or override, canary steps, abort and flags."""
import pytest

from rollout import rollouts
from rollout.flags import MASTER_SWITCH, TENANT_ALLOWLIST
from rollout.models import FlagChange, Rollout, RolloutEvent, RolloutPhase
from rollout.rollouts import RolloutConflict
from rollout.status import database_flag_values
from registry.validation import InvalidDocument

from .rollout_seed import CANARIES, INTERNAL, OPS_ACTOR, seed_healthy, seed_window, start, walk_to_phase

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def small_samples(settings):
    settings.ROLLOUT_MIN_SAMPLES = 100
    settings.ROLLOUT_MIN_SHADOW_COMPARISONS = 10


def test_start_creates_four_phases_as_planned():
    rollout = start()

    phases = list(rollout.phases.all())
    assert [phase.number for phase in phases] == [1, 2, 3, 4]
    assert [phase.name for phase in phases] == ["Development and testing", "Internal testing", "Canary rollout",
                                                "Full rollout"]
    assert [phase.planned_duration for phase in phases] == ["2-3 weeks", "1-2 weeks", "2-3 weeks", "2-4 weeks"]
    assert "Expand gradually to 5-10 tenants" in phases[2].actions
    assert "No race conditions observed" in phases[1].success_criteria
    assert [phase.state for phase in phases] == ["active", "pending", "pending", "pending"]
    assert phases[0].started_at is not None
    assert rollout.canary_steps == [2, 5, 10]
    assert rollout.events.get().kind == RolloutEvent.Kind.START


def test_start_changes_no_flag():
    start()

    assert not FlagChange.objects.exists()


def test_second_open_rollout_of_stage_is_conflict():
    start()

    with pytest.raises(RolloutConflict) as raised:
        start()
    assert raised.value.code == "rollout_open"


def test_start_rejects_shrinking_canary_steps():
    with pytest.raises(InvalidDocument) as raised:
        start(canary_steps=[5, 2])
    assert raised.value.errors[0].path == "canary_steps"


def test_phase_one_needs_override_reason():
    rollout = start()

    with pytest.raises(RolloutConflict) as raised:
        rollouts.advance_phase(rollout, actor=OPS_ACTOR)
    assert raised.value.code == "criteria_not_met"
    assert Rollout.objects.get().current_phase == 1


def test_override_records_reason_and_enables_internal_tenant():
    rollout = rollouts.advance_phase(start(), actor=OPS_ACTOR, override_reason="CI run 812 passed, chaos tests too.")

    phase = rollout.phases.get(number=1)
    assert phase.state == RolloutPhase.State.OVERRIDDEN
    assert phase.override_reason == "CI run 812 passed, chaos tests too."
    assert phase.moved_by == "olga"
    assert rollout.current_phase == 2
    assert rollout.phases.get(number=2).state == RolloutPhase.State.ACTIVE
    event = rollout.events.get(kind=RolloutEvent.Kind.OVERRIDE)
    assert event.reason == "CI run 812 passed, chaos tests too."
    flags = database_flag_values()
    assert flags[MASTER_SWITCH] is True
    assert flags["parallel_pre_processors_enabled"] is True
    assert list(flags[TENANT_ALLOWLIST]) == INTERNAL


def test_phase_flag_changes_are_in_audit_trail():
    walk_to_phase(start(), 2)

    change = FlagChange.objects.get(target=TENANT_ALLOWLIST)
    assert change.actor == "olga"
    assert change.new_value == INTERNAL
    assert "phase 2 (Internal testing)" in change.reason


def test_phase_without_enough_data_does_not_pass():
    rollout = walk_to_phase(start(), 2)
    seed_window("tenant-internal", "parallel", 5, latency_ms=25)
    seed_window("tenant-baseline", "sequential", 5, latency_ms=60)

    with pytest.raises(RolloutConflict) as raised:
        rollouts.advance_phase(rollout, actor=OPS_ACTOR)
    assert "not_enough_data" in raised.value.message


def test_phase_passes_on_good_evidence():
    rollout = walk_to_phase(start(), 2)
    seed_healthy("tenant-internal")

    rollout = rollouts.advance_phase(rollout, actor=OPS_ACTOR)

    phase = rollout.phases.get(number=2)
    assert phase.state == RolloutPhase.State.PASSED
    assert phase.override_reason == ""
    assert {result["result"] for result in phase.criteria_results} == {"pass"}
    assert rollout.events.filter(kind=RolloutEvent.Kind.ADVANCE).exists()


def test_phase_with_errors_does_not_pass():
    rollout = walk_to_phase(start(), 2)
    seed_healthy("tenant-internal")
    seed_window("tenant-internal", "parallel", 100, errors=30, latency_ms=25)

    with pytest.raises(RolloutConflict) as raised:
        rollouts.advance_phase(rollout, actor=OPS_ACTOR)
    assert "error_rate: fail" in raised.value.message


def test_canary_phase_enables_first_two_then_grows():
    rollout = walk_to_phase(start(), 3)
    assert list(database_flag_values()[TENANT_ALLOWLIST]) == INTERNAL + CANARIES[:2]

    rollout = rollouts.expand_canary(rollout, actor=OPS_ACTOR)
    assert list(database_flag_values()[TENANT_ALLOWLIST]) == INTERNAL + CANARIES[:5]
    rollout = rollouts.expand_canary(rollout, actor=OPS_ACTOR)
    assert list(database_flag_values()[TENANT_ALLOWLIST]) == INTERNAL + CANARIES

    steps = rollout.events.filter(kind=RolloutEvent.Kind.CANARY_STEP).order_by("created_at", "id")
    assert [event.details["step"] for event in steps] == [2, 3]
    with pytest.raises(RolloutConflict) as raised:
        rollouts.expand_canary(rollout, actor=OPS_ACTOR)
    assert raised.value.code == "no_canary_step_left"


def test_canary_step_outside_phase_three_is_conflict():
    rollout = walk_to_phase(start(), 2)

    with pytest.raises(RolloutConflict) as raised:
        rollouts.expand_canary(rollout, actor=OPS_ACTOR)
    assert raised.value.code == "not_canary_phase"


def test_full_rollout_empties_allowlist_with_confirmation():
    walk_to_phase(start(), 4)

    assert list(database_flag_values()[TENANT_ALLOWLIST]) == []
    assert FlagChange.objects.filter(target=TENANT_ALLOWLIST, new_value=[]).exists()


def test_advancing_last_phase_completes_rollout():
    rollout = walk_to_phase(start(), 4)

    rollout = rollouts.advance_phase(rollout, actor=OPS_ACTOR, override_reason="Two weeks without incident.")

    assert rollout.state == Rollout.State.COMPLETED
    assert rollout.phases.get(number=4).state == RolloutPhase.State.OVERRIDDEN


def test_abort_turns_stage_switch_off_and_blocks_advance():
    rollout = walk_to_phase(start(), 2)

    rollout = rollouts.abort(rollout, actor=OPS_ACTOR, reason="Customer escalation.")

    assert rollout.state == Rollout.State.ABORTED
    assert rollout.phases.get(number=2).state == RolloutPhase.State.ABORTED
    assert database_flag_values()["parallel_pre_processors_enabled"] is False
    with pytest.raises(RolloutConflict):
        rollouts.advance_phase(rollout, actor=OPS_ACTOR, override_reason="anyway")


def test_abort_needs_reason():
    with pytest.raises(InvalidDocument):
        rollouts.abort(start(), actor=OPS_ACTOR, reason=" ")


def test_advance_from_stale_phase_is_conflict():
    rollout = walk_to_phase(start(), 2)

    with pytest.raises(RolloutConflict) as raised:
        rollouts.advance_phase(rollout, actor=OPS_ACTOR, override_reason="x", expected_phase=1)
    assert raised.value.code == "phase_changed"
