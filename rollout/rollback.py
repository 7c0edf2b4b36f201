"""The automatic rollback: evaluate the triggers on an open rollout, roll back on a failure, verify it.

The evaluation reads the evidence of the rollout's stage from the latest of: the start of the
evaluation window (``ROLLOUT_EVALUATION_WINDOW_S`` ago), the start of the active phase and the
last rollback. It evaluates the triggers overall and for each tenant and policy with parallel
executions, each against the overall sequential side, since a canary tenant has no sequential
executions of its own. The scope of the rollback is:

- the tenant, when exactly one tenant fails;
- else the policy, when exactly one policy fails;
- else every tenant (master switch off), when anything fails.

The evaluation holds the rollout's row lock while it decides, so two evaluations at once roll
back once: the second one reads the evidence from after the first one's rollback.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from rollout import rollouts, triggers
from rollout.evidence import EvidenceSummary, SideSummary, summarize
from rollout.metrics import AUTOMATIC_ROLLBACKS
from rollout.models import FlagChange, PolicyOverride, Rollout, RolloutEvent, TenantOverride
from rollout.services import Actor

logger = logging.getLogger("rollout.rollback")

AUTOMATIC_ROLLBACK_ACTOR = Actor("automatic rollback", FlagChange.Through.AUTOMATIC_ROLLBACK)


@dataclass(frozen=True)
class Decision:
    """The evaluation's outcome: the scope to roll back (None for no rollback) and the trigger that fired."""

    scope: str | None
    scope_id: str
    trigger: triggers.TriggerResult | None


NO_ROLLBACK = Decision(None, "", None)


def decide(summary: EvidenceSummary, thresholds: triggers.Thresholds | None = None) -> Decision:
    """Return the rollback that ``summary`` calls for; ``NO_ROLLBACK`` unless a trigger fails."""
    thresholds = thresholds or triggers.Thresholds.from_settings()
    baseline = summary.sequential
    failing_tenants = _failing(summary.by_tenant, baseline, thresholds)
    if len(failing_tenants) == 1:
        (tenant_id, trigger), = failing_tenants.items()
        return Decision(RolloutEvent.Scope.TENANT, tenant_id, trigger)

    failing_policies = _failing(summary.by_policy, baseline, thresholds)
    if len(failing_policies) == 1:
        (policy_id, trigger), = failing_policies.items()
        return Decision(RolloutEvent.Scope.POLICY, policy_id, trigger)

    overall = _first_failure(triggers.evaluate(summary.parallel, baseline, thresholds))
    if overall is None and failing_tenants:
        overall = next(iter(failing_tenants.values()))
    if overall is None:
        return NO_ROLLBACK
    return Decision(RolloutEvent.Scope.ALL, "", overall)


def evaluate_rollout(rollout_id: int, *, now: datetime | None = None) -> RolloutEvent | None:
    """Evaluate one open rollout and roll it back when a trigger fails; return the rollback event or None."""
    now = now or timezone.now()
    with transaction.atomic():
        rollout = Rollout.objects.select_for_update().get(pk=rollout_id)
        if rollout.state not in rollouts.OPEN_STATES:
            return None

        summary = summarize(rollout.stage, since=evaluation_start(rollout, now), until=None)
        decision = decide(summary)
        if decision.scope is None or decision.trigger is None or _already_off(decision):
            return None

        trigger = decision.trigger
        reason = f"Automatic rollback: trigger {trigger.trigger} failed. {trigger.message}"
        event = rollouts.rollback(
            rollout, scope=decision.scope, scope_id=decision.scope_id, actor=AUTOMATIC_ROLLBACK_ACTOR,
            reason=reason, trigger=trigger, baseline_side=summary.sequential.as_dict(),
        )
        scope, name = decision.scope, trigger.trigger
        transaction.on_commit(lambda: AUTOMATIC_ROLLBACKS.labels(scope=scope, reason=name).inc())
        return event


def evaluate_open_rollouts(*, now: datetime | None = None) -> list[RolloutEvent]:
    """Evaluate every open rollout; return the rollbacks made."""
    events = []
    for rollout_id in Rollout.objects.filter(state__in=rollouts.OPEN_STATES).values_list("pk", flat=True):
        event = evaluate_rollout(rollout_id, now=now)
        if event is not None:
            events.append(event)
    return events


def evaluation_start(rollout: Rollout, now: datetime) -> datetime:
    """Return the start of the evidence an evaluation reads, as the module's docstring explains."""
    starts = [now - timedelta(seconds=settings.ROLLOUT_EVALUATION_WINDOW_S)]
    phase = rollout.phases.filter(number=rollout.current_phase).first()
    if phase is not None and phase.started_at is not None:
        starts.append(phase.started_at)
    last_rollback = rollout.events.filter(kind=RolloutEvent.Kind.ROLLBACK).order_by("-created_at").first()
    if last_rollback is not None:
        starts.append(last_rollback.created_at)
    return max(starts)


# Verification


def verify_rollback(event_id: int, *, final: bool, now: datetime | None = None) -> str:
    """Check that a rollback took effect and record the result on the event; return it.

    The executions of the rollback's scope since ``ROLLOUT_VERIFICATION_GRACE_S`` after it
    must all be sequential, and their error rate and p95 within the trigger tolerances of the
    sequential figures recorded at the rollback. With fewer than ``ROLLOUT_MIN_SAMPLES``
    executions the result is ``pending`` (or ``inconclusive`` when ``final``).
    """
    now = now or timezone.now()
    with transaction.atomic():
        event = RolloutEvent.objects.select_for_update().select_related("rollout").get(pk=event_id)
        if event.verification not in ("", RolloutEvent.Verification.PENDING):
            return event.verification

        since = event.created_at + timedelta(seconds=settings.ROLLOUT_VERIFICATION_GRACE_S)
        summary = summarize(event.rollout.stage, since=since, until=now, **_scope_filter(event))
        result, checks = _verification(summary, event.details.get("baseline_side") or {})
        if result == RolloutEvent.Verification.PENDING and final:
            result = RolloutEvent.Verification.INCONCLUSIVE
        if result == RolloutEvent.Verification.PENDING:
            return result

        event.verification = result
        event.verified_at = now
        event.details = {**event.details, "verification": checks}
        event.save(update_fields=["verification", "verified_at", "details"])
        RolloutEvent.objects.create(
            rollout=event.rollout, kind=RolloutEvent.Kind.VERIFICATION, phase=event.phase,
            actor=AUTOMATIC_ROLLBACK_ACTOR.name, through=AUTOMATIC_ROLLBACK_ACTOR.through,
            scope=event.scope, scope_id=event.scope_id, verification=result, verified_at=now,
            rollback_event=event, reason=checks["summary"], details=checks,
        )
    log = logger.info if result == RolloutEvent.Verification.PASSED else logger.warning
    log("Verification of rollback %s of rollout %s: %s. %s", event.pk, event.rollout_id, result, checks["summary"])
    return result


def _verification(summary: EvidenceSummary, baseline: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    thresholds = triggers.Thresholds.from_settings()
    after = summary.sequential
    checks: dict[str, Any] = {"parallel_after": summary.parallel.count, "sequential_after": after.as_dict()}
    if summary.parallel.count:
        checks["summary"] = f"{summary.parallel.count} executions still ran in parallel after the rollback."
        return RolloutEvent.Verification.FAILED, checks
    if after.count < thresholds.min_samples or not baseline.get("count"):
        checks["summary"] = (
            f"{after.count} sequential executions after the rollback; {thresholds.min_samples} are needed, "
            "and a sequential baseline from before it."
        )
        return RolloutEvent.Verification.PENDING, checks

    baseline_side = _side_from_dict(baseline)
    results = [triggers.error_rate(after, baseline_side, thresholds), triggers.p95_latency(after, baseline_side, thresholds)]
    checks["results"] = [result.as_dict() for result in results]
    failed = [result for result in results if result.result != triggers.PASS]
    if failed:
        checks["summary"] = "Not back to baseline: " + " ".join(result.message for result in failed)
        return RolloutEvent.Verification.FAILED, checks
    checks["summary"] = (
        f"All {after.count} executions after the rollback ran sequentially; error rate and p95 are back to baseline."
    )
    return RolloutEvent.Verification.PASSED, checks


def _already_off(decision: Decision) -> bool:
    """Return True when the tenant or policy to roll back is already disabled by an override."""
    if decision.scope == RolloutEvent.Scope.TENANT:
        return TenantOverride.objects.filter(tenant_id=decision.scope_id, enabled=False).exists()
    if decision.scope == RolloutEvent.Scope.POLICY:
        return PolicyOverride.objects.filter(policy_id=decision.scope_id, enabled=False).exists()
    return False


def _scope_filter(event: RolloutEvent) -> dict[str, list[str]]:
    if event.scope == RolloutEvent.Scope.TENANT:
        return {"tenant_ids": [event.scope_id]}
    if event.scope == RolloutEvent.Scope.POLICY:
        return {"policy_ids": [event.scope_id]}
    return {}


def _side_from_dict(figures: dict[str, Any]) -> SideSummary:
    return SideSummary(
        count=figures.get("count", 0), errors=figures.get("errors", 0), errors_by_type=figures.get("errors_by_type", {}),
        error_rate=figures.get("error_rate"), p50_ms=figures.get("p50_ms"), p95_ms=figures.get("p95_ms"),
        conflicts=figures.get("conflicts", 0), shadow_compared=figures.get("shadow_compared", 0),
        shadow_mismatches=figures.get("shadow_mismatches", 0),
    )


def _failing(groups: dict[str, tuple[SideSummary, SideSummary]], baseline: SideSummary,
             thresholds: triggers.Thresholds) -> dict[str, triggers.TriggerResult]:
    failing = {}
    for key, (parallel, _sequential) in groups.items():
        if not parallel.count and not parallel.shadow_mismatches and not parallel.conflicts:
            continue
        failure = _first_failure(triggers.evaluate(parallel, baseline, thresholds))
        if failure is not None:
            failing[key] = failure
    return failing


def _first_failure(results: list[triggers.TriggerResult]) -> triggers.TriggerResult | None:
    return next((result for result in results if result.failed), None)
