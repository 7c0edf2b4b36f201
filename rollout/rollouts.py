"""Every change to a rollout goes through these functions, one per action.

Each runs in one transaction that locks the rollout's row. An advance takes the lock without
waiting (``NOWAIT`` on PostgreSQL): when an abort, a rollback or another advance holds it, the
advance fails with ``RolloutConflict`` (409). Abort and rollback wait for the lock, so they
always win over an advance in flight and run after it. The flag changes go through
``rollout.services``, so they show in the flags' audit trail under the rollout's actor.
Lock order: the rollout row first, then the registry revision row the flag services lock.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from registry.services import RegistryConflict
from registry.validation import FieldError, InvalidDocument
from rollout import services, triggers
from rollout.evidence import EvidenceSummary, summarize
from rollout.flags import MASTER_SWITCH, TENANT_ALLOWLIST
from rollout.models import Rollout, RolloutEvent, RolloutPhase
from rollout.phases import CANARY_PHASE, LAST_PHASE, PHASES, PHASES_BY_NUMBER, STAGE_FLAGS
from rollout.services import Actor, id_errors

logger = logging.getLogger("rollout.rollouts")

MAX_REASON_LENGTH = 1000
OPEN_STATES = (Rollout.State.ACTIVE, Rollout.State.COMPLETED)


class RolloutConflict(RegistryConflict):
    """A rollout action that its current state forbids, or that lost the race for the rollout's lock."""


# Start


@transaction.atomic
def start_rollout(stage: str, *, internal_tenants: Sequence[str], canary_tenants: Sequence[str],
                  canary_steps: Sequence[int] | None = None, actor: Actor) -> Rollout:
    """Create the rollout of ``stage`` with its four phases; phase 1 is active and no flag changes.

    ``canary_steps`` are the growing numbers of canary tenants that phase 3 enables, by default
    2, then 5, then 10 (each cut to the number of canary tenants). Only one rollout per stage
    may be open (active or completed).
    """
    internal_tenants, canary_tenants = list(internal_tenants), list(canary_tenants)
    steps = _default_steps(len(canary_tenants)) if canary_steps is None else list(canary_steps)
    _raise_if_invalid(_start_errors(stage, internal_tenants, canary_tenants, steps))
    open_rollout = Rollout.objects.select_for_update().filter(stage=stage, state__in=OPEN_STATES).first()
    if open_rollout is not None:
        raise RolloutConflict(
            "rollout_open", f"Rollout {open_rollout.pk} of stage {stage!r} is still {open_rollout.state}; "
            "abort it or roll it back first.",
        )

    now = timezone.now()
    rollout = Rollout.objects.create(
        stage=stage, internal_tenants=internal_tenants, canary_tenants=canary_tenants, canary_steps=steps,
        created_by=_real_user(actor), created_by_name=actor.name,
    )
    RolloutPhase.objects.bulk_create([
        RolloutPhase(
            rollout=rollout, number=phase.number, name=phase.name, planned_duration=phase.planned_duration,
            actions=list(phase.actions), success_criteria=list(phase.success_criteria),
            state=RolloutPhase.State.ACTIVE if phase.number == 1 else RolloutPhase.State.PENDING,
            started_at=now if phase.number == 1 else None,
        )
        for phase in PHASES
    ])
    _record(rollout, RolloutEvent.Kind.START, actor, details={
        "internal_tenants": internal_tenants, "canary_tenants": canary_tenants, "canary_steps": steps,
    })
    logger.info("Rollout %s of stage %s started by %s", rollout.pk, stage, actor.name)
    return rollout


# Advance and canary steps


@transaction.atomic
def advance_phase(rollout: Rollout, *, actor: Actor, override_reason: str | None = None,
                  expected_phase: int | None = None) -> Rollout:
    """End the active phase and start the next one, turning on the flags it needs.

    The phase passes when ``phase_criteria`` all pass on the evidence recorded since it
    started, or when ``override_reason`` explains why it passes without them. Advancing from
    phase 4 completes the rollout. Raises ``RolloutConflict`` when the rollout is not active,
    is not in ``expected_phase``, is locked by another action, or its criteria are not met.
    """
    rollout = _lock(rollout.pk, wait=False)
    _raise_unless_active(rollout)
    if expected_phase is not None and rollout.current_phase != expected_phase:
        raise RolloutConflict(
            "phase_changed", f"Rollout {rollout.pk} is in phase {rollout.current_phase}, not {expected_phase}; "
            "reload it and decide again.",
        )
    override_reason = (override_reason or "").strip()
    _raise_if_invalid(_reason_errors("override_reason", override_reason, required=False))

    phase = rollout.phases.get(number=rollout.current_phase)
    criteria = phase_criteria(rollout, phase)
    passed = all(result.result == triggers.PASS for result in criteria) and bool(criteria)
    if not passed and not override_reason:
        unmet = "; ".join(f"{result.trigger}: {result.result} ({result.message})" for result in criteria)
        raise RolloutConflict(
            "criteria_not_met", f"Phase {phase.number} ({phase.name}) has not met its success criteria on the "
            f"recorded evidence: {unmet or 'they are not judged on evidence'}. Give an override reason to advance anyway.",
        )

    now = timezone.now()
    phase.state = RolloutPhase.State.PASSED if passed else RolloutPhase.State.OVERRIDDEN
    phase.ended_at = now
    phase.moved_by = actor.name
    phase.override_reason = "" if passed else override_reason
    phase.criteria_results = [result.as_dict() for result in criteria]
    phase.save()

    revisions: list[int] = []
    if phase.number == LAST_PHASE:
        rollout.state = Rollout.State.COMPLETED
    else:
        rollout.current_phase = phase.number + 1
        if rollout.current_phase == CANARY_PHASE:
            rollout.canary_step = 1 if rollout.canary_steps else 0
        rollout.phases.filter(number=rollout.current_phase).update(state=RolloutPhase.State.ACTIVE, started_at=now)
        revisions = _apply_phase_flags(rollout, actor)
    rollout.save()

    kind = RolloutEvent.Kind.ADVANCE if passed else RolloutEvent.Kind.OVERRIDE
    _record(rollout, kind, actor, phase=phase.number, reason=phase.override_reason, details={
        "criteria": phase.criteria_results, "to_phase": None if rollout.state == Rollout.State.COMPLETED
        else rollout.current_phase, "flag_revisions": revisions,
    })
    logger.info("Rollout %s passed phase %s (%s) by %s", rollout.pk, phase.number, phase.state, actor.name)
    return rollout


@transaction.atomic
def expand_canary(rollout: Rollout, *, actor: Actor) -> Rollout:
    """Enable the next step of canary tenants in phase 3 and record the step."""
    rollout = _lock(rollout.pk, wait=False)
    _raise_unless_active(rollout)
    if rollout.current_phase != CANARY_PHASE:
        raise RolloutConflict("not_canary_phase", f"Rollout {rollout.pk} is in phase {rollout.current_phase}; "
                              f"canary steps happen in phase {CANARY_PHASE}.")
    if rollout.canary_step >= len(rollout.canary_steps):
        raise RolloutConflict("no_canary_step_left", f"Rollout {rollout.pk} has enabled all "
                              f"{len(rollout.enabled_canaries)} canary tenants; advance to phase 4 next.")

    rollout.canary_step += 1
    rollout.save()
    revisions = _apply_phase_flags(rollout, actor)
    _record(rollout, RolloutEvent.Kind.CANARY_STEP, actor, details={
        "step": rollout.canary_step, "enabled_canaries": rollout.enabled_canaries, "flag_revisions": revisions,
    })
    return rollout


# Abort and rollback


@transaction.atomic
def abort(rollout: Rollout, *, actor: Actor, reason: str) -> Rollout:
    """Stop an active rollout and turn its stage's switch off, so the stage runs sequentially again."""
    _raise_if_invalid(_reason_errors("reason", reason, required=True))
    rollout = _lock(rollout.pk, wait=True)
    _raise_unless_active(rollout)

    entries = services.set_flag(STAGE_FLAGS[rollout.stage], False, actor=actor,
                                reason=f"Rollout {rollout.pk} aborted: {reason}")
    _end_rollout(rollout, Rollout.State.ABORTED, RolloutPhase.State.ABORTED, actor)
    _record(rollout, RolloutEvent.Kind.ABORT, actor, reason=reason,
            details={"flag_revisions": [entry.revision for entry in entries]})
    logger.warning("Rollout %s aborted by %s in phase %s: %s", rollout.pk, actor.name, rollout.current_phase, reason)
    return rollout


@transaction.atomic
def rollback(rollout: Rollout, *, scope: str, scope_id: str = "", actor: Actor, reason: str,
             trigger: triggers.TriggerResult | None = None, baseline_side: dict[str, Any] | None = None) -> RolloutEvent:
    """Turn parallel execution off for every tenant, one tenant or one policy, and record the rollback.

    ``scope`` ``all`` turns the master switch off and ends the rollout; ``tenant`` and ``policy``
    set an override to off for ``scope_id`` and leave the rollout open. ``trigger`` is the
    trigger that fired, for an automatic rollback; ``baseline_side`` the sequential figures at
    that moment, which the verification compares against. A rollback by hand gives none, so the
    sequential figures of the last evaluation window are recorded. The verification is then scheduled.
    """
    _raise_if_invalid(_rollback_errors(scope, scope_id) + _reason_errors("reason", reason, required=True))
    rollout = _lock(rollout.pk, wait=True)
    if rollout.state not in OPEN_STATES:
        raise RolloutConflict("rollout_closed", f"Rollout {rollout.pk} is {rollout.state}; there is nothing to roll back.")

    flag_reason = f"Rollout {rollout.pk} rolled back ({scope} {scope_id}".rstrip() + f"): {reason}"
    if scope == RolloutEvent.Scope.ALL:
        entries = services.set_flag(MASTER_SWITCH, False, actor=actor, reason=flag_reason)
        _end_rollout(rollout, Rollout.State.ROLLED_BACK, RolloutPhase.State.ROLLED_BACK, actor)
    elif scope == RolloutEvent.Scope.TENANT:
        entry = services.set_tenant_override(scope_id, False, actor=actor, reason=flag_reason)
        entries = [entry] if entry else []
    else:
        entry = services.set_policy_override(scope_id, False, actor=actor, reason=flag_reason)
        entries = [entry] if entry else []

    if baseline_side is None:
        baseline_side = _recent_sequential_figures(rollout)
    event = _record(
        rollout, RolloutEvent.Kind.ROLLBACK, actor, reason=reason, scope=scope, scope_id=scope_id,
        trigger=trigger.trigger if trigger else "", value=trigger.value if trigger else None,
        baseline=trigger.baseline if trigger else None, threshold=trigger.threshold if trigger else None,
        verification=RolloutEvent.Verification.PENDING,
        details={
            "flag_revisions": [entry.revision for entry in entries],
            "trigger_message": trigger.message if trigger else "",
            "baseline_side": baseline_side,
        },
    )
    logger.warning("Rollout %s rolled back (%s %s) by %s through %s: %s",
                   rollout.pk, scope, scope_id, actor.name, actor.through, reason)
    transaction.on_commit(lambda: _schedule_verification(event.pk))
    return event


# Criteria


def phase_criteria(rollout: Rollout, phase: RolloutPhase, *, now: datetime | None = None) -> list[triggers.TriggerResult]:
    """Evaluate ``phase``'s criteria on the evidence since it started; empty for phase 1, judged by people."""
    if not PHASES_BY_NUMBER[phase.number].judged_on_evidence or phase.started_at is None:
        return []
    summary = summarize(rollout.stage, since=phase.started_at, until=now)
    return criteria_on(summary)


def criteria_on(summary: EvidenceSummary, thresholds: triggers.Thresholds | None = None) -> list[triggers.TriggerResult]:
    """The four triggers and the latency reduction on ``summary``: a phase passes when all pass."""
    thresholds = thresholds or triggers.Thresholds.from_settings()
    return [
        *triggers.evaluate(summary.parallel, summary.sequential, thresholds),
        triggers.latency_reduction(summary.parallel, summary.sequential, thresholds),
    ]


# Helpers


def _lock(rollout_id: int, *, wait: bool) -> Rollout:
    try:
        return Rollout.objects.select_for_update(nowait=not wait).get(pk=rollout_id)
    except DatabaseError as error:
        # PostgreSQL's NOWAIT raises LockNotAvailable while another action holds the row.
        raise RolloutConflict(
            "rollout_busy", f"Another action on rollout {rollout_id} is in progress; try again when it finished.",
        ) from error


def _apply_phase_flags(rollout: Rollout, actor: Actor) -> list[int]:
    """Turn on the flags of the rollout's current phase; return the revisions the changes made."""
    number = rollout.current_phase
    prefix = f"Rollout {rollout.pk} phase {number} ({PHASES_BY_NUMBER[number].name})"
    if number == LAST_PHASE:
        changes: dict[str, Any] = {MASTER_SWITCH: True, STAGE_FLAGS[rollout.stage]: True, TENANT_ALLOWLIST: []}
        entries = services.change_flags(changes, actor=actor, reason=f"{prefix}: every tenant", confirm_all_tenants=True)
    else:
        tenants = list(dict.fromkeys([*rollout.internal_tenants, *rollout.enabled_canaries]))
        changes = {MASTER_SWITCH: True, STAGE_FLAGS[rollout.stage]: True, TENANT_ALLOWLIST: tenants}
        entries = services.change_flags(changes, actor=actor, reason=f"{prefix}: tenants {', '.join(tenants)}")
    return sorted({entry.revision for entry in entries})


def _end_rollout(rollout: Rollout, state: str, phase_state: str, actor: Actor) -> None:
    rollout.state = state
    rollout.save()
    rollout.phases.filter(number=rollout.current_phase, state=RolloutPhase.State.ACTIVE).update(
        state=phase_state, ended_at=timezone.now(), moved_by=actor.name,
    )


def _record(rollout: Rollout, kind: str, actor: Actor, *, phase: int | None = None, **fields: Any) -> RolloutEvent:
    return RolloutEvent.objects.create(
        rollout=rollout, kind=kind, phase=phase or rollout.current_phase, actor=actor.name, through=actor.through,
        **fields,
    )


def _schedule_verification(event_id: int) -> None:
    from rollout.tasks import verify_rollback

    try:
        verify_rollback.apply_async((event_id,), countdown=settings.ROLLOUT_VERIFICATION_DELAY_S)
    except Exception:
        # The rollback itself is committed; only its check is missing, which the runbook covers.
        logger.exception("Could not schedule the verification of rollback event %s", event_id)


def _raise_unless_active(rollout: Rollout) -> None:
    if rollout.state != Rollout.State.ACTIVE:
        raise RolloutConflict("rollout_not_active", f"Rollout {rollout.pk} is {rollout.state}, not active.")


def _real_user(actor: Actor) -> Any:
    return actor.user if actor.user is not None and actor.user.is_authenticated else None


def _default_steps(canaries: int) -> list[int]:
    return sorted({min(size, canaries) for size in (2, 5, 10)} - {0})


def _start_errors(stage: str, internal: list[Any], canaries: list[Any], steps: list[Any]) -> list[FieldError]:
    errors: list[FieldError] = []
    if stage not in STAGE_FLAGS:
        errors.append(FieldError("invalid", f"Unknown stage {stage!r}; expected one of {', '.join(STAGE_FLAGS)}.",
                                 "stage", "stage"))
    if not internal:
        errors.append(FieldError("blank", "Name at least one internal test tenant.", "internal_tenants", "internal_tenants"))
    for field, ids in (("internal_tenants", internal), ("canary_tenants", canaries)):
        for index, tenant_id in enumerate(ids):
            errors += id_errors(f"{field}[{index}]", tenant_id)
    if not all(isinstance(step, int) and not isinstance(step, bool) for step in steps):
        return errors + [FieldError("invalid_type", f"Expected whole numbers, got {steps!r}.", "canary_steps", "canary_steps")]
    if steps != sorted(set(steps)) or (steps and (steps[0] < 1 or steps[-1] > len(canaries))):
        errors.append(FieldError(
            "invalid", f"Canary steps {steps!r} must grow strictly, from 1 to the {len(canaries)} canary tenants.",
            "canary_steps", "canary_steps",
        ))
    return errors


def _rollback_errors(scope: Any, scope_id: Any) -> list[FieldError]:
    if scope not in RolloutEvent.Scope.values:
        return [FieldError("invalid", f"Unknown scope {scope!r}; expected all, tenant or policy.", "scope", "scope")]
    if scope == RolloutEvent.Scope.ALL:
        return []
    field = f"{scope}_id"
    return id_errors(field, scope_id)


def _reason_errors(field: str, reason: Any, *, required: bool) -> list[FieldError]:
    if not isinstance(reason, str):
        return [FieldError("invalid_type", f"Expected the {field} as a string, got {reason!r}.", field, field)]
    if required and not reason.strip():
        return [FieldError("blank", f"Give the {field}; it is recorded with the change.", field, field)]
    if len(reason) > MAX_REASON_LENGTH:
        return [FieldError("too_long", f"The {field} has more than {MAX_REASON_LENGTH} characters.", field, field)]
    return []


def _raise_if_invalid(errors: list[FieldError]) -> None:
    if errors:
        raise InvalidDocument("invalid_rollout", "The rollout request is invalid.", errors)


def _recent_sequential_figures(rollout: Rollout) -> dict[str, Any]:
    since = timezone.now() - timedelta(seconds=settings.ROLLOUT_EVALUATION_WINDOW_S)
    return summarize(rollout.stage, since=since).sequential.as_dict()
