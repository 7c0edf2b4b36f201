"""The tracing hook of the runtime: spans around a pipeline, its groups and each extension call.

``PipelineRunner`` takes an optional ``PipelineTracer``. Without one it makes no spans and
sends each call a ``traceparent`` of the request's trace with a new span id. With one, it
asks the tracer for a pipeline span, a span per group and a span per call, and each call's
``traceparent`` names that call's span as the parent, so an extension's own spans join the
same trace under it.

The hook is plain Python so that the runtime does not depend on a tracing library; the
OpenTelemetry implementation lives in ``executor.telemetry.tracing``. Span methods run on the
event loop inside the request: they must be quick and must not raise.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from executor.core.plan import PlannedGroup

_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE_ID = "0" * 32
_ZERO_SPAN_ID = "0" * 16


@dataclass(frozen=True)
class TraceParent:
    """A parsed W3C ``traceparent`` header (version 00)."""

    trace_id: str
    span_id: str
    flags: int

    def header(self) -> str:
        """Return the header value."""
        return f"00-{self.trace_id}-{self.span_id}-{self.flags:02x}"


def parse_traceparent(value: str | None) -> TraceParent | None:
    """Return ``value`` parsed, or ``None`` when it is missing or not a valid version-00 header."""
    if not value:
        return None
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    trace_id, span_id, flags = match.groups()
    if trace_id == _ZERO_TRACE_ID or span_id == _ZERO_SPAN_ID:
        return None
    return TraceParent(trace_id, span_id, int(flags, 16))


class MemberSpan(Protocol):
    """The span of one step's extension call, with every attempt it takes."""

    @property
    def traceparent(self) -> str:
        """The ``traceparent`` header value to send with the call: this span as the parent."""
        ...

    def end(self, status: str, error_type: str | None, attempts: int, latency_ms: float) -> None:
        """End the span with the call's outcome."""
        ...


class GroupSpan(Protocol):
    """The span of one group; a tracer may make none for a sequential group of one step."""

    def start_member(self, extension_id: str) -> MemberSpan:
        """Start the span of one member's call."""
        ...

    def end(self, status: str, error_types: tuple[str, ...], latency_ms: float) -> None:
        """End the span with the group's outcome."""
        ...


class PipelineSpan(Protocol):
    """The span of one pipeline run."""

    def start_group(self, stage: str, group: PlannedGroup) -> GroupSpan:
        """Start the span of a group of ``stage``."""
        ...

    def end(self, status: str, error_type: str | None, execution_mode: str) -> None:
        """End the span with the pipeline's outcome."""
        ...


class PipelineTracer(Protocol):
    """Makes the spans of pipeline runs."""

    def start_pipeline(self, policy_id: str, tenant_id: str, trace_id: str,
                       parent: TraceParent | None) -> PipelineSpan:
        """Start a pipeline span in trace ``trace_id``, under ``parent`` when the caller sent one."""
        ...
