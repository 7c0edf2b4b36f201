"""Automatic rollback: the scope decision, the rollback event and audit trail, the metric and the verification."""
from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client import REGISTRY

from rollout import rollback, rollouts
from rollout.evidence import summarize
from rollout.flags import MASTER_SWITCH
from rollout.models import FlagChange, Rollout, RolloutEvent, TenantOverride
from rollout.status import database_flag_values

from .rollout_seed import CANARIES, OPS_ACTOR, seed_healthy, seed_window, start, walk_to_phase

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def rollback_settings(settings):
    settings.ROLLOUT_MIN_SAMPLES = 100
    settings.ROLLOUT_MIN_SHADOW_COMPARISONS = 10
    settings.ROLLOUT_VERIFICATION_GRACE_S = 0


@pytest.fixture
def no_verification_task(monkeypatch):
    scheduled = []
    monkeypatch.setattr(rollouts, "_schedule_verification", scheduled.append)
    return scheduled


def canary_rollout():
    return walk_to_phase(start(), 3)


def rollbacks_counted(scope, reason):
    return REGISTRY.get_sample_value("beamline_rollout_automatic_rollbacks_total", {"scope": scope, "reason": reason}) or 0


def test_healthy_evidence_rolls_nothing_back(no_verification_task):
    rollout = canary_rollout()
    seed_healthy(CANARIES[0])

    assert rollback.evaluate_rollout(rollout.pk) is None
    assert database_flag_values()[MASTER_SWITCH] is True


def test_not_enough_data_rolls_nothing_back(no_verification_task):
    rollout = canary_rollout()
    seed_window(CANARIES[0], "parallel", 10, errors=10)
    seed_window("tenant-baseline", "sequential", 10)

    assert rollback.evaluate_rollout(rollout.pk) is None


def test_errors_confined_to_one_tenant_roll_back_that_tenant(no_verification_task, django_capture_on_commit_callbacks):
    rollout = canary_rollout()
    seed_healthy(CANARIES[0])
    seed_window(CANARIES[1], "parallel", 200, errors=40, latency_ms=25, compared=20)
    before = rollbacks_counted("tenant", "error_rate")

    with django_capture_on_commit_callbacks(execute=True):
        event = rollback.evaluate_rollout(rollout.pk)

    assert event.scope == RolloutEvent.Scope.TENANT
    assert event.scope_id == CANARIES[1]
    assert event.trigger == "error_rate"
    assert event.value == pytest.approx(0.2)
    assert event.baseline == 0.0
    assert event.threshold == 0.0
    assert event.through == "automatic_rollback"
    assert event.verification == RolloutEvent.Verification.PENDING
    assert TenantOverride.objects.get(tenant_id=CANARIES[1]).enabled is False
    assert Rollout.objects.get().state == Rollout.State.ACTIVE
    assert rollbacks_counted("tenant", "error_rate") == before + 1
    assert no_verification_task == [event.pk]


def test_rollback_shows_in_flags_audit_trail(no_verification_task):
    rollout = canary_rollout()
    seed_healthy(CANARIES[0])
    seed_window(CANARIES[1], "parallel", 200, errors=40, latency_ms=25, compared=20)

    rollback.evaluate_rollout(rollout.pk)

    change = FlagChange.objects.get(through=FlagChange.Through.AUTOMATIC_ROLLBACK)
    assert change.target == CANARIES[1]
    assert change.new_value is False
    assert "error_rate" in change.reason


def test_failures_in_several_tenants_turn_master_switch_off(no_verification_task):
    rollout = canary_rollout()
    seed_window("tenant-baseline", "sequential", 400, latency_ms=60)
    for tenant_id, policy_id in ((CANARIES[0], "policy-a"), (CANARIES[1], "policy-b")):
        seed_window(tenant_id, "parallel", 200, latency_ms=300, compared=20, policy_id=policy_id)

    event = rollback.evaluate_rollout(rollout.pk)

    assert event.scope == RolloutEvent.Scope.ALL
    assert event.trigger == "p95_latency"
    assert (event.value, event.baseline, event.threshold) == (pytest.approx(297.5), pytest.approx(59.5),
                                                              pytest.approx(71.4))
    assert database_flag_values()[MASTER_SWITCH] is False
    rollout.refresh_from_db()
    assert rollout.state == Rollout.State.ROLLED_BACK
    assert rollout.phases.get(number=3).state == "rolled_back"


def test_failures_in_one_policy_roll_back_that_policy(no_verification_task, policies):
    rollout = canary_rollout()
    seed_window("tenant-baseline", "sequential", 400, latency_ms=60)
    for tenant_id in CANARIES[:2]:
        seed_window(tenant_id, "parallel", 200, latency_ms=25, compared=20, policy_id="acme-default")
        seed_window(tenant_id, "parallel", 10, latency_ms=25, mismatches=1, compared=1, policy_id="acme-bulk")

    event = rollback.evaluate_rollout(rollout.pk)

    assert event.scope == RolloutEvent.Scope.POLICY
    assert event.scope_id == "acme-bulk"
    assert event.trigger == "race_condition"


def test_second_evaluation_does_not_roll_back_again(no_verification_task):
    rollout = canary_rollout()
    seed_healthy(CANARIES[0])
    # The window starts before the first rollback, so the second evaluation no longer reads it.
    seed_window(CANARIES[1], "parallel", 200, errors=40, latency_ms=25, compared=20, start=timezone.now())

    first = rollback.evaluate_rollout(rollout.pk)
    second = rollback.evaluate_rollout(rollout.pk)

    assert first is not None
    assert second is None
    assert RolloutEvent.objects.filter(kind=RolloutEvent.Kind.ROLLBACK).count() == 1


def test_closed_rollout_is_not_evaluated(no_verification_task):
    rollout = canary_rollout()
    rollouts.abort(rollout, actor=OPS_ACTOR, reason="Stopped by hand.")
    seed_window(CANARIES[1], "parallel", 200, errors=40, latency_ms=25)

    assert rollback.evaluate_open_rollouts() == []


def full_rollback_event():
    rollout = canary_rollout()
    seed_window("tenant-baseline", "sequential", 200, latency_ms=60, start=timezone.now() - timedelta(seconds=2))
    baseline = summarize("pre", since=timezone.now() - timedelta(seconds=5)).sequential.as_dict()
    return rollouts.rollback(rollout, scope="all", actor=OPS_ACTOR, reason="By hand.", baseline_side=baseline)


def later(event):
    return event.created_at + timedelta(seconds=60)


def test_verification_passes_when_sequential_and_at_baseline(no_verification_task):
    event = full_rollback_event()
    seed_window(CANARIES[0], "sequential", 150, latency_ms=60, start=event.created_at + timedelta(seconds=1))

    assert rollback.verify_rollback(event.pk, final=False, now=later(event)) == "passed"

    event.refresh_from_db()
    assert event.verification == "passed"
    assert event.verified_at is not None
    verification = RolloutEvent.objects.get(kind=RolloutEvent.Kind.VERIFICATION)
    assert verification.rollback_event == event
    assert "back to baseline" in verification.reason


def test_verification_fails_when_parallel_executions_continue(no_verification_task):
    event = full_rollback_event()
    seed_window(CANARIES[0], "sequential", 150, latency_ms=60, start=event.created_at + timedelta(seconds=1))
    seed_window(CANARIES[0], "parallel", 3, latency_ms=25, start=event.created_at + timedelta(seconds=1))

    assert rollback.verify_rollback(event.pk, final=False, now=later(event)) == "failed"


def test_verification_fails_when_errors_stay_high(no_verification_task):
    event = full_rollback_event()
    seed_window(CANARIES[0], "sequential", 150, errors=30, latency_ms=60, start=event.created_at + timedelta(seconds=1))

    assert rollback.verify_rollback(event.pk, final=False, now=later(event)) == "failed"
    assert "Not back to baseline" in RolloutEvent.objects.get(kind="verification").reason


def test_verification_waits_for_data_then_is_inconclusive(no_verification_task):
    event = full_rollback_event()

    assert rollback.verify_rollback(event.pk, final=False) == "pending"
    assert not RolloutEvent.objects.filter(kind=RolloutEvent.Kind.VERIFICATION).exists()
    assert rollback.verify_rollback(event.pk, final=True) == "inconclusive"


def test_manual_rollback_of_one_tenant(no_verification_task):
    rollout = canary_rollout()

    event = rollouts.rollback(rollout, scope="tenant", scope_id=CANARIES[0], actor=OPS_ACTOR, reason="Complaint.")

    assert event.trigger == ""
    assert event.actor == "olga"
    assert TenantOverride.objects.get(tenant_id=CANARIES[0]).enabled is False


def test_manual_rollback_verifies_against_recent_baseline(no_verification_task):
    rollout = canary_rollout()
    seed_window("tenant-baseline", "sequential", 200, latency_ms=60, start=timezone.now() - timedelta(seconds=2))

    event = rollouts.rollback(rollout, scope="tenant", scope_id=CANARIES[0], actor=OPS_ACTOR, reason="Complaint.")
    seed_window(CANARIES[0], "sequential", 150, latency_ms=60, start=event.created_at + timedelta(seconds=1))

    assert event.details["baseline_side"]["count"] == 200
    assert rollback.verify_rollback(event.pk, final=False, now=later(event)) == "passed"


def test_rollback_of_closed_rollout_is_conflict(no_verification_task):
    rollout = canary_rollout()
    rollouts.rollback(rollout, scope="all", actor=OPS_ACTOR, reason="First.")

    with pytest.raises(rollouts.RolloutConflict):
        rollouts.rollback(rollout, scope="all", actor=OPS_ACTOR, reason="Second.")


def test_tasks_evaluate_and_reschedule_verification(no_verification_task, monkeypatch, settings,
                                                    django_capture_on_commit_callbacks):
    from rollout import tasks

    canary_rollout()
    seed_healthy(CANARIES[0])
    seed_window(CANARIES[1], "parallel", 200, errors=40, latency_ms=25, compared=20)
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.evaluate_rollouts() == [RolloutEvent.objects.get(kind="rollback").pk]

    retried = []
    monkeypatch.setattr(tasks.verify_rollback, "apply_async", lambda args, countdown: retried.append(args))
    settings.ROLLOUT_VERIFICATION_ATTEMPTS = 3
    assert tasks.verify_rollback(no_verification_task[0]) == "pending"
    assert retried == [(no_verification_task[0], 2)]
