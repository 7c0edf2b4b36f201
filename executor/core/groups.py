"""Running one planned group: a single step, or parallel members with fail-closed cancellation.

Every member of a parallel group gets the same input. The group's deadline is its slowest
member's call budget (timeout x (retry + 1) plus backoffs) times the timeout multiplier. A
member that ends the pipeline (a failed ``required`` processor, or a ``block`` validator that
rejects or fails) cancels its running siblings at once, and they are awaited before the group
returns, so nothing from the group is left running.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from executor.core.calls import (
    CANCELLED,
    FAILED,
    OK,
    VALIDATORS,
    CallInput,
    ExtensionCaller,
    MemberOutcome,
    call_budget_s,
)
from executor.core.errors import Cancelled, GroupDeadlineExceeded
from executor.core.merge import Conflict, apply_reply, changes_of, merge_group
from executor.core.model import ExtensionSpec
from executor.core.plan import PARALLEL, PlannedGroup, PlannedStep


@dataclass
class GroupResult:
    """A group's member outcomes in declared order, its merged output and what ended it.

    ``stopper`` is the first member in declared order that ends the pipeline, if any.
    NOTE: it is chosen among the members that had finished when the group stopped. A member
    declared earlier that would also have rejected, but was still running, is cancelled first.
    """

    group: PlannedGroup
    outcomes: list[MemberOutcome]
    payload: Any
    metadata: dict[str, Any]
    latency_ms: float
    conflicts: tuple[Conflict, ...] = ()
    stopper: MemberOutcome | None = None
    max_member_latency_ms: float = field(init=False)

    def __post_init__(self) -> None:
        self.max_member_latency_ms = max((outcome.latency_ms for outcome in self.outcomes), default=0.0)


def ends_pipeline(stage: str, outcome: MemberOutcome) -> bool:
    """Return whether ``outcome`` stops the pipeline (fail-closed) rather than being left out.

    A missing ``mode`` counts as ``required`` and a missing ``on_fail`` as ``block``.
    """
    if outcome.status == OK:
        return False
    if stage == VALIDATORS:
        return outcome.step.on_fail in (None, "block")
    return outcome.step.mode != "optional"


class _StopGroup(Exception):
    """Raised by a member task whose outcome ends the pipeline, to wake the group at once."""


class GroupRunner:
    """Runs planned groups through an ``ExtensionCaller``."""

    def __init__(self, caller: ExtensionCaller, retry_backoff_s: float) -> None:
        self._caller = caller
        self._retry_backoff_s = retry_backoff_s

    async def run(self, stage: str, group: PlannedGroup, extensions: Mapping[str, ExtensionSpec],
                  call_input: CallInput, timeout_multiplier: float) -> GroupResult:
        """Run ``group`` on ``call_input`` and return its result; only ``CancelledError`` escapes."""
        started = time.perf_counter()
        if group.execution_mode == PARALLEL:
            outcomes = await self._run_parallel(stage, group, extensions, call_input, timeout_multiplier)
        else:
            outcomes = [await self._run_single(stage, group.members[0], extensions, call_input)]

        result = _result_of(stage, group, outcomes, call_input)
        result.latency_ms = (time.perf_counter() - started) * 1000.0
        return result

    async def _run_single(self, stage: str, member: PlannedStep, extensions: Mapping[str, ExtensionSpec],
                          call_input: CallInput) -> MemberOutcome:
        outcome = MemberOutcome(member.step)
        return await self._caller.call(stage, member.step, extensions.get(member.step.id), call_input, outcome)

    async def _run_parallel(self, stage: str, group: PlannedGroup, extensions: Mapping[str, ExtensionSpec],
                            call_input: CallInput, timeout_multiplier: float) -> list[MemberOutcome]:
        outcomes = [MemberOutcome(member.step) for member in group.members]
        tasks = [
            asyncio.create_task(self._run_member(stage, member, extensions, call_input, outcome))
            for member, outcome in zip(group.members, outcomes)
        ]
        deadline_s = self._group_deadline_s(group, extensions, timeout_multiplier)

        try:
            _, pending = await asyncio.wait(tasks, timeout=deadline_s, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            stopped = await _settle(tasks)

        for task, outcome in zip(tasks, outcomes):
            if task in pending:
                _finish_unfinished(outcome, stopped, deadline_s)
        return outcomes

    async def _run_member(self, stage: str, member: PlannedStep, extensions: Mapping[str, ExtensionSpec],
                          call_input: CallInput, outcome: MemberOutcome) -> None:
        await self._caller.call(stage, member.step, extensions.get(member.step.id), call_input, outcome)
        if ends_pipeline(stage, outcome):
            raise _StopGroup

    def _group_deadline_s(self, group: PlannedGroup, extensions: Mapping[str, ExtensionSpec],
                          timeout_multiplier: float) -> float:
        budgets = [
            call_budget_s(extensions[member.step.id], self._retry_backoff_s)
            for member in group.members
            if member.step.id in extensions
        ]
        return max(budgets, default=0.0) * timeout_multiplier


async def _settle(tasks: list[asyncio.Task[None]]) -> bool:
    """Cancel and await the tasks still running; return whether a member stopped the group."""
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)

    stopped = False
    for task in tasks:
        if task.cancelled():
            continue
        error = task.exception()
        if isinstance(error, _StopGroup):
            stopped = True
        elif error is not None:
            raise error
    return stopped


def _finish_unfinished(outcome: MemberOutcome, stopped: bool, deadline_s: float) -> None:
    if stopped:
        outcome.finish(CANCELLED, Cancelled("Cancelled because another member of the group ended the pipeline."))
        return
    outcome.finish(FAILED, GroupDeadlineExceeded(f"Still running at the group deadline of {deadline_s:.3f} s."))


def _result_of(stage: str, group: PlannedGroup, outcomes: list[MemberOutcome], call_input: CallInput) -> GroupResult:
    stopper = next((outcome for outcome in outcomes if ends_pipeline(stage, outcome)
                    and outcome.status != CANCELLED), None)
    if stage == VALIDATORS or stopper is not None:
        return GroupResult(group, outcomes, call_input.payload, call_input.metadata, 0.0, stopper=stopper)

    replies = [(outcome.step.id, outcome.reply) for outcome in outcomes if outcome.status == OK and outcome.reply]
    if len(outcomes) == 1:
        payload, metadata = call_input.payload, call_input.metadata
        if replies:
            payload, metadata = apply_reply(payload, metadata, replies[0][1])
        return GroupResult(group, outcomes, payload, metadata, 0.0)

    changes = [changes_of(step_id, call_input.payload, call_input.metadata, reply) for step_id, reply in replies]
    merged = merge_group(call_input.payload, call_input.metadata, changes)
    return GroupResult(group, outcomes, merged.payload, merged.metadata, 0.0, conflicts=merged.conflicts)
