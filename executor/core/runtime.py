"""``PipelineRunner``: runs the requested stages of a policy and builds the contract's reply.

The reply is ``{status, payload, metadata, error?, execution}``, where ``status`` is ``ok``,
``rejected`` (a blocking validator rejected) or ``failed`` (a fail-closed step failed, or
the policy cannot be planned). Every pipeline outcome is a reply. ``execute`` raises only the
request errors ``InvalidRequest``, ``PolicyNotFound`` and ``Overloaded``, and
``CancelledError`` when its caller cancels it.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from executor.core.calls import CANCELLED, FAILED, OK, REJECTED, SKIPPED, VALIDATORS, CallInput, ExtensionCaller, MemberOutcome
from executor.core.errors import ExtensionReplyError, Overloaded, PlanError
from executor.core.groups import GroupResult, GroupRunner, ends_pipeline
from executor.core.model import Snapshot
from executor.core.observer import (
    ConflictEvent,
    GroupEvent,
    InvocationEvent,
    PipelineEvent,
    PipelineObserver,
)
from executor.core.plan import PARALLEL, SEQUENTIAL, PlannedGroup, StagePlan, build_stage_plan
from executor.core.request import PipelineRequest, find_policy, parse_request
from executor.core.shadow import ShadowCapture
from executor.core.tracing import PipelineSpan, PipelineTracer, parse_traceparent
from executor.core.transport import Transport

logger = logging.getLogger("executor.runtime")


class PipelineRunner:
    """Runs pipelines against a ``Snapshot`` through a ``Transport``.

    At most ``max_in_flight`` pipelines run at once; one more raises ``Overloaded`` at once
    rather than waiting. Stage plans are cached per snapshot, tenant, policy and stage, and the
    cache starts over whenever ``execute`` gets a different snapshot object.
    """

    def __init__(self, transport: Transport, *, max_in_flight: int, retry_backoff_s: float = 0.01,
                 observer: PipelineObserver | None = None, tracer: PipelineTracer | None = None) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}.")
        self.max_in_flight = max_in_flight
        self._groups = GroupRunner(ExtensionCaller(transport, retry_backoff_s), retry_backoff_s)
        # Without an observer the runner builds no events at all, which keeps the hot path lean.
        self._observer: PipelineObserver | None = observer
        self._tracer: PipelineTracer | None = tracer
        self._in_flight = 0
        self._plan_snapshot: Snapshot | None = None
        self._plans: dict[tuple[str, str, str], StagePlan] = {}

    @property
    def in_flight(self) -> int:
        """The number of pipelines running now."""
        return self._in_flight

    async def execute(self, snapshot: Snapshot, request: Mapping[str, Any], *,
                      traceparent: str | None = None,
                      shadow_captures: list[ShadowCapture] | None = None) -> dict[str, Any]:
        """Run ``request`` against ``snapshot`` and return the contract's reply.

        ``traceparent`` is the caller's W3C header, if it sent one: a request without a
        ``trace_id`` takes the header's, and when the two agree the pipeline's spans continue
        under the caller's span. An invalid header is ignored.

        Raises ``InvalidRequest`` (with the field path), ``PolicyNotFound`` for an unknown
        policy or one of another tenant, and ``Overloaded`` when ``max_in_flight`` pipelines
        are already running.
        """
        parent = parse_traceparent(traceparent) if traceparent else None
        if parent is not None and isinstance(request, Mapping) and request.get("trace_id") is None:
            request = {**request, "trace_id": parent.trace_id}
        parsed = parse_request(request)
        find_policy(snapshot, parsed)
        if self._in_flight >= self.max_in_flight:
            raise Overloaded(f"The executor already runs {self.max_in_flight} pipelines; retry later.")

        span: PipelineSpan | None = None
        if self._tracer is not None:
            if parent is not None and parent.trace_id != parsed.trace_id:
                parent = None
            span = self._tracer.start_pipeline(parsed.policy_id, parsed.tenant_id, parsed.trace_id, parent)

        self._in_flight += 1
        try:
            return await _PipelineRun(self, snapshot, parsed, span, shadow_captures).run()
        finally:
            self._in_flight -= 1

    def stage_plan(self, snapshot: Snapshot, request: PipelineRequest, stage: str) -> StagePlan:
        """Return the cached plan of one stage, building it on first use; raises ``PlanError``."""
        if snapshot is not self._plan_snapshot:
            self._plan_snapshot = snapshot
            self._plans = {}

        key = (request.tenant_id, request.policy_id, stage)
        plan = self._plans.get(key)
        if plan is None:
            policy = find_policy(snapshot, request)
            plan = build_stage_plan(policy, snapshot.extensions, snapshot.flags, request.tenant_id, stage)
            self._plans[key] = plan
        return plan


class _PipelineRun:
    """The state of one pipeline run, from the first stage to the reply."""

    def __init__(self, runner: PipelineRunner, snapshot: Snapshot, request: PipelineRequest,
                 span: PipelineSpan | None, shadow_captures: list[ShadowCapture] | None = None) -> None:
        self.runner = runner
        self.shadow_captures = shadow_captures
        self.span = span
        self.snapshot = snapshot
        self.request = request
        self.observer = runner._observer
        self.payload: Any = request.payload
        self.metadata: dict[str, Any] = request.metadata
        self.status = OK
        self.error: dict[str, Any] | None = None
        self.any_parallel = False
        self.warnings: list[dict[str, Any]] = []

    async def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        stages: list[dict[str, Any]] = []
        for stage in self.request.stages:
            if self.status != OK:
                stages.append(self._skipped_stage(stage))
                continue
            stages.append(await self._run_stage(stage))

        latency_ms = (time.perf_counter() - started) * 1000.0
        self._report_pipeline(latency_ms)
        if self.span is not None:
            self.span.end(self.status, None if self.error is None else self.error["type"], self._execution_mode())
        return self._reply(stages, latency_ms)

    async def _run_stage(self, stage: str) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            plan = self.runner.stage_plan(self.snapshot, self.request, stage)
        except PlanError as error:
            self._fail_on_plan(stage, error)
            return {"stage": stage, "groups": [], "latency_ms": 0.0}

        groups: list[dict[str, Any]] = []
        for group in plan.groups:
            if self.status != OK:
                groups.append(_skipped_group(group))
                continue
            groups.append(await self._run_group(stage, group))
        return {"stage": stage, "groups": groups, "latency_ms": _ms((time.perf_counter() - started) * 1000.0)}

    async def _run_group(self, stage: str, group: PlannedGroup) -> dict[str, Any]:
        group_span = None if self.span is None else self.span.start_group(stage, group)
        call_input = CallInput(self.request.trace_id, self.request.tenant_id, self.payload, self.metadata, group_span)
        try:
            result = await self.runner._groups.run(
                stage, group, self.snapshot.extensions, call_input,
                self.snapshot.flags.parallel_execution_timeout_multiplier,
            )
        except BaseException:
            if group_span is not None:
                group_span.end(CANCELLED, (CANCELLED,), 0.0)
            raise
        if group_span is not None:
            group_span.end(_group_status(result), _error_types(result), result.latency_ms)
        self.payload, self.metadata = result.payload, result.metadata
        if group.execution_mode == PARALLEL:
            self.any_parallel = True
            if self.shadow_captures is not None:
                self._capture_for_shadow(self.shadow_captures, stage, call_input, result)

        self._note_member_outcomes(stage, result)
        self._report_group(stage, result)
        return _group_record(stage, result)

    def _capture_for_shadow(self, captures: list[ShadowCapture], stage: str, call_input: CallInput,
                            result: GroupResult) -> None:
        if stage == VALIDATORS or result.stopper is not None:
            return
        if any(outcome.status != OK for outcome in result.outcomes):
            return
        extensions = self.snapshot.extensions
        steps = tuple(member.step for member in result.group.members)
        captures.append(ShadowCapture(
            self.request.trace_id, self.request.tenant_id, self.request.policy_id, stage, result.group.group_id,
            steps, {step.id: extensions[step.id] for step in steps if step.id in extensions},
            call_input.payload, call_input.metadata, result.payload, result.metadata,
        ))

    def _note_member_outcomes(self, stage: str, result: GroupResult) -> None:
        for outcome in result.outcomes:
            if outcome.status != OK and not ends_pipeline(stage, outcome):
                self._note_failed_open(stage, result.group, outcome)
        if result.stopper is not None:
            self._stop(stage, result.group, result.stopper)

    def _note_failed_open(self, stage: str, group: PlannedGroup, outcome: MemberOutcome) -> None:
        if stage == VALIDATORS and outcome.step.on_fail == "ignore":
            return
        self.warnings.append({
            "stage": stage, "group_id": group.group_id, "extension_id": outcome.step.id,
            "status": outcome.status, "error_type": outcome.error_type,
        })
        logger.warning(
            "Extension %s %s and was left out (stage %s, group %s, policy %s, tenant %s, trace %s): %s",
            outcome.step.id, outcome.status, stage, group.group_id, self.request.policy_id,
            self.request.tenant_id, self.request.trace_id, outcome.error or outcome.reject_reason,
        )

    def _stop(self, stage: str, group: PlannedGroup, outcome: MemberOutcome) -> None:
        where = {"extension_id": outcome.step.id, "stage": stage, "group_id": group.group_id}
        if outcome.status == REJECTED:
            self.status = REJECTED
            self.error = {"type": "rejected", "message": outcome.reject_reason or "rejected by validator",
                          **where, "details": outcome.reject_details}
            return

        self.status = FAILED
        self.error = {"type": outcome.error_type, "message": str(outcome.error), **where}
        if isinstance(outcome.error, ExtensionReplyError):
            self.error["extension_error"] = {"code": outcome.error.code, "message": outcome.error.message}

    def _fail_on_plan(self, stage: str, error: PlanError) -> None:
        self.status = FAILED
        self.error = {"type": error.code, "message": str(error), "stage": stage}

    def _skipped_stage(self, stage: str) -> dict[str, Any]:
        try:
            plan = self.runner.stage_plan(self.snapshot, self.request, stage)
        except PlanError:
            return {"stage": stage, "groups": [], "latency_ms": 0.0}
        return {"stage": stage, "groups": [_skipped_group(group) for group in plan.groups], "latency_ms": 0.0}

    def _report_group(self, stage: str, result: GroupResult) -> None:
        group = result.group
        request = self.request
        for conflict in result.conflicts:
            logger.warning(
                "Merge conflict on %s key %r: %s overrides %s (stage %s, group %s, policy %s, tenant %s, trace %s)",
                conflict.section, conflict.key, conflict.winner_id, conflict.loser_id, stage, group.group_id,
                request.policy_id, request.tenant_id, request.trace_id,
            )
        if self.observer is None:
            return
        _notify(self.observer.merge_conflict, *(
            ConflictEvent(stage, request.policy_id, request.tenant_id, request.trace_id, group.group_id,
                          conflict.section, conflict.key, conflict.loser_id, conflict.winner_id)
            for conflict in result.conflicts
        ))
        _notify(self.observer.invocation_finished, *(
            InvocationEvent(stage, request.policy_id, request.tenant_id, request.trace_id, group.group_id,
                            len(group.members), group.execution_mode, group.dependency_level, outcome.step.id,
                            outcome.status, outcome.error_type, outcome.attempts, outcome.latency_ms)
            for outcome in result.outcomes
        ))
        outcomes = result.outcomes
        _notify(self.observer.group_finished, GroupEvent(
            stage, request.policy_id, request.tenant_id, request.trace_id, group.group_id, len(group.members),
            group.execution_mode, group.dependency_level, _group_status(result), _error_types(result),
            result.latency_ms, result.max_member_latency_ms,
            tuple(outcome.step.id for outcome in outcomes),
            tuple(outcome.step.id for outcome in outcomes if outcome.status == FAILED),
            sum(outcome.latency_ms for outcome in outcomes),
        ))

    def _report_pipeline(self, latency_ms: float) -> None:
        request = self.request
        error_type = None if self.error is None else self.error["type"]
        if self.status != OK:
            logger.info(
                "Pipeline %s for tenant %s %s with %s at %s/%s (trace %s)", request.policy_id, request.tenant_id,
                self.status, error_type, self.error.get("stage") if self.error else None,
                self.error.get("extension_id") if self.error else None, request.trace_id,
            )
        if self.observer is None:
            return
        _notify(self.observer.pipeline_finished, PipelineEvent(
            request.policy_id, request.tenant_id, request.trace_id, self.snapshot.revision, self.status,
            error_type, self._execution_mode(), latency_ms,
        ))

    def _execution_mode(self) -> str:
        return PARALLEL if self.any_parallel else SEQUENTIAL

    def _reply(self, stages: list[dict[str, Any]], latency_ms: float) -> dict[str, Any]:
        execution: dict[str, Any] = {
            "mode": self._execution_mode(),
            "stages": stages,
            "latency_ms": _ms(latency_ms),
            "trace_id": self.request.trace_id,
            "policy_id": self.request.policy_id,
            "tenant_id": self.request.tenant_id,
            "revision": self.snapshot.revision,
        }
        if self.warnings:
            execution["warnings"] = self.warnings

        reply: dict[str, Any] = {"status": self.status, "payload": self.payload, "metadata": self.metadata}
        if self.error is not None:
            reply["error"] = self.error
        reply["execution"] = execution
        return reply


def _notify(hook: Any, *events: Any) -> None:
    for event in events:
        try:
            hook(event)
        except Exception:  # noqa: BLE001 - an observer bug must not fail the pipeline
            logger.exception("Pipeline observer hook %s failed", getattr(hook, "__qualname__", hook))


def _error_types(result: GroupResult) -> tuple[str, ...]:
    return tuple(outcome.error_type for outcome in result.outcomes if outcome.error_type)


def _group_status(result: GroupResult) -> str:
    if result.stopper is not None:
        return result.stopper.status
    return OK


def _group_record(stage: str, result: GroupResult) -> dict[str, Any]:
    group = result.group
    record: dict[str, Any] = {
        "group_id": group.group_id,
        "execution_mode": group.execution_mode,
        "dependency_level": group.dependency_level,
        "latency_ms": _ms(result.latency_ms),
        "members": [_member_record(stage, outcome) for outcome in result.outcomes],
    }
    if result.conflicts:
        record["conflicts"] = [
            {"section": conflict.section, "key": conflict.key, "overridden": conflict.loser_id,
             "winner": conflict.winner_id}
            for conflict in result.conflicts
        ]
    return record


def _member_record(stage: str, outcome: MemberOutcome) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": outcome.step.id,
        "status": outcome.status,
        "attempts": outcome.attempts,
        "latency_ms": _ms(outcome.latency_ms),
    }
    if stage == VALIDATORS:
        record["on_fail"] = outcome.step.on_fail or "block"
    else:
        record["mode"] = outcome.step.mode or "required"
    if outcome.error is not None:
        record["error_type"] = outcome.error.error_type
        record["error"] = str(outcome.error)
    if outcome.reject_reason is not None:
        record["reason"] = outcome.reject_reason
    return record


def _skipped_group(group: PlannedGroup) -> dict[str, Any]:
    return {
        "group_id": group.group_id,
        "execution_mode": group.execution_mode,
        "dependency_level": group.dependency_level,
        "latency_ms": 0.0,
        "members": [
            {"id": member.step.id, "status": SKIPPED, "attempts": 0, "latency_ms": 0.0}
            for member in group.members
        ],
    }


def _ms(value: float) -> float:
    return round(value, 3)
