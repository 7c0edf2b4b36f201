"""OpenTelemetry spans for pipeline runs, through the runtime's tracing hook.

A pipeline run is a ``router.extension.pipeline`` span. Under it, each parallel group is a
``router.extension.parallel_group`` span with one ``router.extension.invocation`` span per
member; a sequential step has no group span, and its invocation span sits under the pipeline
span. The group and invocation spans carry ``extension.execution_mode``,
``extension.parallel_group_id``, ``extension.parallel_group_size`` and
``extension.dependency_level``.

The pipeline span continues the caller's trace: under the caller's span when the request came
with a ``traceparent``, and otherwise as a root span in the request's ``trace_id``. Each
extension call's ``traceparent`` names its invocation span as the parent.

``configure_tracing`` exports spans over OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set, and returns ``None`` otherwise, in which case
the executor makes no spans at all.
"""
from __future__ import annotations

import contextvars
import os
from collections.abc import Mapping
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
    set_span_in_context,
)

from executor.core.calls import FAILED
from executor.core.plan import PARALLEL, PlannedGroup
from executor.core.tracing import TraceParent

PIPELINE_SPAN = "router.extension.pipeline"
GROUP_SPAN = "router.extension.parallel_group"
INVOCATION_SPAN = "router.extension.invocation"
DEFAULT_SERVICE_NAME = "beamline-executor"
INSTRUMENTATION_NAME = "beamline.executor"

_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_EMPTY_CONTEXT = Context()
_request_trace_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("request_trace_id", default=None)


class RequestTraceIdGenerator(RandomIdGenerator):
    """Gives a root span the request's trace id, so a request without a parent span keeps its trace."""

    def generate_trace_id(self) -> int:
        trace_id = _request_trace_id.get()
        return trace_id if trace_id is not None else super().generate_trace_id()


def new_tracer_provider(span_processor: SpanProcessor, service_name: str | None = None) -> TracerProvider:
    """Return a provider whose root spans can take a request's trace id, sending spans to ``span_processor``."""
    name = service_name or os.environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME
    provider = TracerProvider(resource=Resource.create({"service.name": name}), id_generator=RequestTraceIdGenerator())
    provider.add_span_processor(span_processor)
    return provider


def configure_tracing(environ: Mapping[str, str] | None = None) -> tuple[OtelPipelineTracer, TracerProvider] | None:
    """Return a tracer exporting over OTLP/HTTP and its provider, or ``None`` when no endpoint is set.

    The exporter reads the standard ``OTEL_EXPORTER_OTLP_*`` variables itself. Call the
    provider's ``shutdown()`` at exit so the last spans are sent.
    """
    environ = os.environ if environ is None else environ
    if not any(environ.get(name) for name in _ENDPOINT_VARIABLES):
        return None
    # Imported here so that a process without an endpoint never loads the exporter.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = new_tracer_provider(BatchSpanProcessor(OTLPSpanExporter()))
    return OtelPipelineTracer(provider), provider


class OtelPipelineTracer:
    """The runtime's ``PipelineTracer`` on an OpenTelemetry ``TracerProvider``."""

    def __init__(self, provider: TracerProvider) -> None:
        self._tracer: Tracer = provider.get_tracer(INSTRUMENTATION_NAME)

    def start_pipeline(self, policy_id: str, tenant_id: str, trace_id: str,
                       parent: TraceParent | None) -> _PipelineSpan:
        attributes = {"router.policy_id": policy_id, "router.tenant_id": tenant_id}
        if parent is not None:
            remote = SpanContext(int(parent.trace_id, 16), int(parent.span_id, 16), is_remote=True,
                                 trace_flags=TraceFlags(parent.flags))
            span = self._tracer.start_span(PIPELINE_SPAN, set_span_in_context(NonRecordingSpan(remote)),
                                           SpanKind.SERVER, attributes)
        else:
            token = _request_trace_id.set(int(trace_id, 16))
            try:
                span = self._tracer.start_span(PIPELINE_SPAN, _EMPTY_CONTEXT, SpanKind.SERVER, attributes)
            finally:
                _request_trace_id.reset(token)
        return _PipelineSpan(self._tracer, span, policy_id, tenant_id)


class _PipelineSpan:
    __slots__ = ("_tracer", "_span", "_context", "_policy_id", "_tenant_id")

    def __init__(self, tracer: Tracer, span: Span, policy_id: str, tenant_id: str) -> None:
        self._tracer = tracer
        self._span = span
        self._context = set_span_in_context(span)
        self._policy_id = policy_id
        self._tenant_id = tenant_id

    def start_group(self, stage: str, group: PlannedGroup) -> _GroupSpan:
        attributes: dict[str, Any] = {
            "extension.execution_mode": group.execution_mode,
            "extension.parallel_group_id": group.group_id,
            "extension.parallel_group_size": len(group.members),
            "extension.dependency_level": group.dependency_level,
            "router.stage": stage,
            "router.policy_id": self._policy_id,
        }
        if group.execution_mode != PARALLEL:
            return _GroupSpan(self._tracer, None, self._context, attributes)
        span = self._tracer.start_span(GROUP_SPAN, self._context, SpanKind.INTERNAL, attributes)
        return _GroupSpan(self._tracer, span, set_span_in_context(span), attributes)

    def end(self, status: str, error_type: str | None, execution_mode: str) -> None:
        span = self._span
        span.set_attribute("router.status", status)
        span.set_attribute("extension.execution_mode", execution_mode)
        if error_type is not None:
            span.set_attribute("error.type", error_type)
        if status == FAILED:
            span.set_status(Status(StatusCode.ERROR, error_type))
        span.end()


class _GroupSpan:
    __slots__ = ("_tracer", "_span", "_context", "_attributes")

    def __init__(self, tracer: Tracer, span: Span | None, context: Context, attributes: dict[str, Any]) -> None:
        self._tracer = tracer
        self._span = span
        self._context = context
        self._attributes = attributes

    def start_member(self, extension_id: str) -> _MemberSpan:
        attributes = dict(self._attributes)
        attributes["extension.id"] = extension_id
        return _MemberSpan(self._tracer.start_span(INVOCATION_SPAN, self._context, SpanKind.CLIENT, attributes))

    def end(self, status: str, error_types: tuple[str, ...], latency_ms: float) -> None:
        span = self._span
        if span is None:
            return
        span.set_attribute("router.status", status)
        span.set_attribute("total_latency_ms", round(latency_ms, 3))
        if error_types:
            span.set_attribute("error.types", list(error_types))
        if status == FAILED:
            span.set_status(Status(StatusCode.ERROR, error_types[0] if error_types else None))
        span.end()


class _MemberSpan:
    __slots__ = ("_span", "traceparent")

    def __init__(self, span: Span) -> None:
        self._span = span
        context = span.get_span_context()
        # Only the sampled flag goes on: the trace id may be the caller's, so this process
        # cannot vouch for the newer "random trace id" flag.
        self.traceparent = f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags & 1:02x}"

    def end(self, status: str, error_type: str | None, attempts: int, latency_ms: float) -> None:
        span = self._span
        span.set_attribute("extension.status", status)
        span.set_attribute("extension.attempts", attempts)
        span.set_attribute("latency_ms", round(latency_ms, 3))
        if error_type is not None:
            span.set_attribute("error.type", error_type)
            if status == FAILED:
                span.set_status(Status(StatusCode.ERROR, error_type))
        span.end()
