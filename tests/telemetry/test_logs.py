"""The group logs: one JSON line per group with the router's field names and the trace id."""
import io
import json
import logging

from django.conf import settings
from pythonjsonlogger.json import JsonFormatter

from executor.core.flags import ParallelFlags
from executor.core.transport import InMemoryTransport
from tests.executor.helpers import echo_with, extension, policy, snapshot, step, subject_of
from tests.telemetry.helpers import TRACE_ID, observed_runner, parallel_world, pre_request

SUCCESS_CONTEXT = {
    "policy_id", "tenant_id", "stage", "execution_mode", "parallel_group_id", "parallel_group_size",
    "extensions", "total_latency_ms", "max_extension_latency_ms", "sequential_latency_estimate_ms",
}
ERROR_CONTEXT = {
    "policy_id", "tenant_id", "stage", "execution_mode", "parallel_group_id", "failed_extensions",
    "error_type", "total_latency_ms",
}


def json_logger(name):
    """A logger writing with the console's JSON formatter to a string buffer."""
    options = dict(settings.LOGGING["formatters"]["json"])
    formatter = JsonFormatter(**{key: value for key, value in options.items() if key != "()"})
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger(name)
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def lines(stream):
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_parallel_group_success_log_has_the_routers_fields():
    transport = InMemoryTransport()
    for name in "abc":
        transport.register(subject_of(name), echo_with({name: True}))
    state = snapshot([extension(name) for name in "abc"], [policy([step(name) for name in "abc"])])
    logger, stream = json_logger("test.telemetry.success")
    runner, _ = observed_runner(transport, logger)

    await runner.execute(state, pre_request(trace_id=TRACE_ID))

    [record] = lines(stream)
    assert record["level"] == "INFO"
    assert record["component"] == "router"
    assert record["message"] == "Parallel pre-processor group executed"
    assert record["trace_id"] == TRACE_ID
    assert "timestamp" in record
    context = record["context"]
    assert set(context) >= SUCCESS_CONTEXT
    assert context["policy_id"] == "p1"
    assert context["tenant_id"] == "t1"
    assert context["stage"] == "pre"
    assert context["execution_mode"] == "parallel"
    assert context["parallel_group_size"] == 3
    assert context["extensions"] == ["a", "b", "c"]
    assert context["max_extension_latency_ms"] <= context["total_latency_ms"]
    assert context["sequential_latency_estimate_ms"] >= context["max_extension_latency_ms"]
    assert "failed_extensions" not in context


async def test_parallel_group_failure_log_names_the_failed_extension_and_error_type():
    transport, state = parallel_world(slow_timeout_ms=30)
    logger, stream = json_logger("test.telemetry.failure")
    runner, _ = observed_runner(transport, logger)

    await runner.execute(state, pre_request(trace_id=TRACE_ID))

    [record] = lines(stream)
    assert record["level"] == "ERROR"
    assert record["message"] == "Parallel pre-processor group failed"
    assert record["trace_id"] == TRACE_ID
    context = record["context"]
    assert set(context) >= ERROR_CONTEXT
    assert context["failed_extensions"] == ["c"]
    assert context["error_type"] == "timeout"


async def test_every_sequential_step_logs_a_line():
    transport, state = parallel_world(slow_timeout_ms=30)
    state = type(state)(state.revision, state.extensions, state.policies, ParallelFlags())
    logger, stream = json_logger("test.telemetry.sequential")
    runner, _ = observed_runner(transport, logger)

    await runner.execute(state, pre_request(trace_id=TRACE_ID))

    records = lines(stream)
    assert [record["message"] for record in records] == [
        "Sequential pre-processor group executed",
        "Sequential pre-processor group executed",
        "Sequential pre-processor group failed",
    ]
    assert {record["context"]["execution_mode"] for record in records} == {"sequential"}
    assert records[2]["context"]["failed_extensions"] == ["c"]
