"""``TelemetryObserver``: the runner's events as Prometheus metrics and structured group logs.

Each group writes one JSON log line on the ``executor.telemetry`` logger: INFO when every
member succeeded (or a validator rejected), ERROR when a member's call failed. The line has
``component``, ``message``, ``trace_id`` and a ``context`` object whose keys are the ones the
router's log queries use.
"""
from __future__ import annotations

import logging
from typing import Any

from executor.core.calls import FAILED
from executor.core.observer import ConflictEvent, GroupEvent, InvocationEvent, NoopObserver
from executor.core.plan import PARALLEL
from executor.telemetry.metrics import ExecutorMetrics, default_metrics

LOGGER_NAME = "executor.telemetry"
# The component name the router's log queries filter on.
COMPONENT = "router"

_STAGE_NOUNS = {"pre": "pre-processor", "validators": "validator", "post": "post-processor"}


class TelemetryObserver(NoopObserver):
    """Records every invocation, group and merge conflict; quick enough for the request path.

    Metric children are looked up once per label set and kept, so an event costs a dict
    lookup and an increment or observation per metric.
    """

    def __init__(self, metrics: ExecutorMetrics | None = None, logger: logging.Logger | None = None) -> None:
        self.metrics = metrics or default_metrics()
        self.logger = logger or logging.getLogger(LOGGER_NAME)
        self._invocation_children: dict[tuple[str, ...], tuple[Any, Any]] = {}
        self._group_children: dict[tuple[str, ...], tuple[Any, ...]] = {}
        self._error_children: dict[tuple[str, ...], Any] = {}

    def invocation_finished(self, event: InvocationEvent) -> None:
        key = (event.stage, event.extension_id, event.execution_mode, event.status)
        children = self._invocation_children.get(key)
        if children is None:
            children = (
                self.metrics.invocations.labels(*key),
                self.metrics.invocation_duration.labels(event.stage, event.extension_id, event.execution_mode),
            )
            self._invocation_children[key] = children
        children[0].inc()
        children[1].observe(event.latency_ms / 1000.0)

        if event.status == FAILED and event.execution_mode == PARALLEL:
            error_key = (event.stage, event.group_id, event.policy_id, event.error_type or "unknown")
            counter = self._error_children.get(error_key)
            if counter is None:
                counter = self._error_children[error_key] = self.metrics.parallel_errors.labels(*error_key)
            counter.inc()

    def group_finished(self, event: GroupEvent) -> None:
        parallel = event.execution_mode == PARALLEL
        key = (event.stage, event.group_id, event.policy_id)
        children = self._group_children.get(key)
        if children is None:
            children = self._new_group_children(key, parallel, event.group_size)
            self._group_children[key] = children
        if parallel:
            children[0].inc()
            children[1].observe(event.latency_ms / 1000.0)
        else:
            children[0].observe(event.latency_ms / 1000.0)
        self._log_group(event, parallel)

    def merge_conflict(self, event: ConflictEvent) -> None:
        self.metrics.merge_conflicts.labels(event.stage, event.group_id, event.policy_id, event.section).inc()

    def _new_group_children(self, key: tuple[str, ...], parallel: bool, size: int) -> tuple[Any, ...]:
        if not parallel:
            return (self.metrics.sequential_group_duration.labels(*key),)
        # A group id is a hash of its members, so its size never changes.
        self.metrics.parallel_group_size.labels(*key).set(size)
        return (self.metrics.parallel_groups.labels(*key), self.metrics.parallel_group_duration.labels(*key))

    def _log_group(self, event: GroupEvent, parallel: bool) -> None:
        failed = bool(event.failed_extensions)
        level = logging.ERROR if failed else logging.INFO
        if not self.logger.isEnabledFor(level):
            return

        mode = "Parallel" if parallel else "Sequential"
        noun = _STAGE_NOUNS.get(event.stage, event.stage)
        context: dict[str, Any] = {
            "policy_id": event.policy_id,
            "tenant_id": event.tenant_id,
            "stage": event.stage,
            "execution_mode": event.execution_mode,
            "parallel_group_id": event.group_id,
            "parallel_group_size": event.group_size,
            "extensions": list(event.extensions),
            "dependency_level": event.dependency_level,
            "status": event.status,
            "total_latency_ms": round(event.latency_ms, 3),
            "max_extension_latency_ms": round(event.max_member_latency_ms, 3),
            "sequential_latency_estimate_ms": round(event.sum_member_latency_ms, 3),
        }
        if failed:
            context["failed_extensions"] = list(event.failed_extensions)
            context["error_type"] = _main_error_type(event.error_types)
            message = f"{mode} {noun} group failed"
        else:
            message = f"{mode} {noun} group executed"
        self.logger.log(level, message, extra={"component": COMPONENT, "trace_id": event.trace_id, "context": context})


def _main_error_type(error_types: tuple[str, ...]) -> str:
    """Return the first error type that is not a sibling's cancellation."""
    for error_type in error_types:
        if error_type != "cancelled":
            return error_type
    return error_types[0] if error_types else "unknown"
