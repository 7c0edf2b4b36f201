"""Hooks through which metrics, traces and evidence see every pipeline, group and call.

``PipelineRunner`` calls ``invocation_finished`` once per extension call (retries included in
its ``attempts``), ``group_finished`` once per group, ``merge_conflict`` once per conflict and
``pipeline_finished`` once per pipeline. Hooks run on the event loop inside the request, so they
must be quick and must not block. An exception from a hook is logged and otherwise ignored.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class InvocationEvent:
    """One step's extension call, with every attempt it took."""

    stage: str
    policy_id: str
    tenant_id: str
    trace_id: str
    group_id: str
    group_size: int
    execution_mode: str
    dependency_level: int
    extension_id: str
    status: str
    error_type: str | None
    attempts: int
    latency_ms: float


@dataclass(frozen=True)
class GroupEvent:
    """One group; ``max_member_latency_ms`` is its slowest call, timed inside the executor.

    ``extensions`` lists the members in declared order, ``failed_extensions`` those whose call
    failed (not those cancelled because a sibling ended the pipeline), and
    ``sum_member_latency_ms`` adds up every member's call: what the group would have taken had
    its members run one after another.
    """

    stage: str
    policy_id: str
    tenant_id: str
    trace_id: str
    group_id: str
    group_size: int
    execution_mode: str
    dependency_level: int
    status: str
    error_types: tuple[str, ...]
    latency_ms: float
    max_member_latency_ms: float
    extensions: tuple[str, ...] = ()
    failed_extensions: tuple[str, ...] = ()
    sum_member_latency_ms: float = 0.0


@dataclass(frozen=True)
class ConflictEvent:
    """Two members of a group changed the same key; ``winner_id`` was declared later."""

    stage: str
    policy_id: str
    tenant_id: str
    trace_id: str
    group_id: str
    section: str
    key: str | None
    loser_id: str
    winner_id: str


@dataclass(frozen=True)
class PipelineEvent:
    """One pipeline run; ``execution_mode`` is ``parallel`` when any group ran in parallel."""

    policy_id: str
    tenant_id: str
    trace_id: str
    revision: int
    status: str
    error_type: str | None
    execution_mode: str
    latency_ms: float


class PipelineObserver(Protocol):
    """The receiver of the runner's events; ``NoopObserver`` subclasses override only the hooks they need."""

    def invocation_finished(self, event: InvocationEvent) -> None: ...

    def group_finished(self, event: GroupEvent) -> None: ...

    def merge_conflict(self, event: ConflictEvent) -> None: ...

    def pipeline_finished(self, event: PipelineEvent) -> None: ...


class NoopObserver:
    """An observer that ignores everything; subclass it and override the hooks you need."""

    def invocation_finished(self, event: InvocationEvent) -> None:
        return None

    def group_finished(self, event: GroupEvent) -> None:
        return None

    def merge_conflict(self, event: ConflictEvent) -> None:
        return None

    def pipeline_finished(self, event: PipelineEvent) -> None:
        return None
