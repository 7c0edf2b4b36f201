"""One pipeline's trace, captured with the OpenTelemetry SDK's in-memory exporter."""
import json

import nats
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from executor.core.flags import ParallelFlags
from executor.core.runtime import PipelineRunner
from executor.core.transport import NatsTransport
from executor.telemetry.tracing import GROUP_SPAN, INVOCATION_SPAN, PIPELINE_SPAN, OtelPipelineTracer, new_tracer_provider
from tests.executor.helpers import extension, policy, snapshot, step, subject_of
from tests.telemetry.helpers import TRACE_ID, pre_request

ROUTER_SPAN_ID = "00f067aa0ba902b7"
GROUP_ATTRIBUTES = (
    "extension.execution_mode", "extension.parallel_group_id", "extension.parallel_group_size",
    "extension.dependency_level",
)


@pytest.fixture
async def traced(nats_server):
    """Extensions ``a``, ``b``, ``c`` and ``d`` (``d`` depends on ``a``) that record the headers they get."""
    nc = await nats.connect(nats_server.url)
    received = {}

    def responder(name):
        async def respond(msg):
            received[name] = dict(msg.headers or {})
            request = json.loads(msg.data)
            await msg.respond(json.dumps({"payload": request["payload"], "metadata": {name: True}}).encode())
        return respond

    for name in "abcd":
        await nc.subscribe(subject_of(name), cb=responder(name))
    exporter = InMemorySpanExporter()
    provider = new_tracer_provider(SimpleSpanProcessor(exporter), service_name="test")
    runner = PipelineRunner(NatsTransport(nc), max_in_flight=4, tracer=OtelPipelineTracer(provider))
    state = snapshot(
        [extension(name) for name in "abcd"],
        [policy([step("a"), step("b"), step("c"), step("d", depends_on=("a",))])],
    )
    yield runner, state, exporter, received
    provider.shutdown()
    await nc.close()


def spans_by_name(exporter):
    spans = {}
    for span in exporter.get_finished_spans():
        spans.setdefault(span.name, []).append(span)
    return spans


async def test_group_span_has_member_spans_with_group_attributes(traced):
    runner, state, exporter, _ = traced

    reply = await runner.execute(state, pre_request(trace_id=TRACE_ID))

    assert reply["status"] == "ok"
    spans = spans_by_name(exporter)
    [pipeline] = spans[PIPELINE_SPAN]
    [group] = spans[GROUP_SPAN]
    assert group.parent.span_id == pipeline.context.span_id
    assert group.attributes["extension.execution_mode"] == "parallel"
    assert group.attributes["extension.parallel_group_size"] == 3
    assert group.attributes["extension.dependency_level"] == 0

    members = {span.attributes["extension.id"]: span for span in spans[INVOCATION_SPAN]}
    assert set(members) == {"a", "b", "c", "d"}
    for name in "abc":
        member = members[name]
        assert member.parent.span_id == group.context.span_id
        assert {key: member.attributes[key] for key in GROUP_ATTRIBUTES} == {
            key: group.attributes[key] for key in GROUP_ATTRIBUTES
        }
        assert member.attributes["extension.status"] == "ok"
        assert "latency_ms" in member.attributes
    # d depends on a: a sequential step of level 1, directly under the pipeline span.
    assert members["d"].parent.span_id == pipeline.context.span_id
    assert members["d"].attributes["extension.execution_mode"] == "sequential"
    assert members["d"].attributes["extension.parallel_group_size"] == 1
    assert members["d"].attributes["extension.dependency_level"] == 1
    assert {span.context.trace_id for span in exporter.get_finished_spans()} == {int(TRACE_ID, 16)}


async def test_each_extension_gets_a_traceparent_naming_its_own_span(traced):
    runner, state, exporter, received = traced

    await runner.execute(state, pre_request(trace_id=TRACE_ID))

    members = {span.attributes["extension.id"]: span for span in spans_by_name(exporter)[INVOCATION_SPAN]}
    for name in "abcd":
        version, trace_id, parent_id, flags = received[name]["traceparent"].split("-")
        assert (version, trace_id, flags) == ("00", TRACE_ID, "01")
        assert parent_id == f"{members[name].context.span_id:016x}"


async def test_trace_continues_under_the_routers_span(traced):
    runner, state, exporter, received = traced

    await runner.execute(state, pre_request(), traceparent=f"00-{TRACE_ID}-{ROUTER_SPAN_ID}-01")

    [pipeline] = spans_by_name(exporter)[PIPELINE_SPAN]
    assert pipeline.context.trace_id == int(TRACE_ID, 16)
    assert pipeline.parent.span_id == int(ROUTER_SPAN_ID, 16)
    assert pipeline.parent.is_remote
    assert received["a"]["traceparent"].split("-")[1] == TRACE_ID


async def test_sequential_policy_gets_one_span_per_step(traced):
    runner, state, exporter, _ = traced
    state = type(state)(state.revision, state.extensions, state.policies, ParallelFlags())

    await runner.execute(state, pre_request(trace_id=TRACE_ID))

    spans = spans_by_name(exporter)
    assert GROUP_SPAN not in spans
    assert [span.attributes["extension.id"] for span in spans[INVOCATION_SPAN]] == ["a", "b", "c", "d"]
    assert {span.attributes["extension.execution_mode"] for span in spans[INVOCATION_SPAN]} == {"sequential"}


async def test_without_tracer_calls_still_carry_the_request_trace(nats_server):
    nc = await nats.connect(nats_server.url)
    headers = []

    async def respond(msg):
        headers.append(msg.headers["traceparent"])
        await msg.respond(b"{}")

    await nc.subscribe(subject_of("a"), cb=respond)
    runner = PipelineRunner(NatsTransport(nc), max_in_flight=1)
    try:
        await runner.execute(snapshot([extension("a")], [policy([step("a")])]), pre_request(trace_id=TRACE_ID))
    finally:
        await nc.close()

    assert headers[0].split("-")[1] == TRACE_ID
