"""A small pipeline world for the telemetry tests: in-memory extensions and a fresh metrics registry."""
from prometheus_client import CollectorRegistry

from executor.core.runtime import PipelineRunner
from executor.core.transport import InMemoryTransport
from executor.telemetry.metrics import ExecutorMetrics
from executor.telemetry.observer import TelemetryObserver
from tests.executor.helpers import echo_with, extension, policy, sleeper, snapshot, step, subject_of

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def parallel_world(*, slow_timeout_ms=500):
    """Three pre-processors in one parallel group; ``c`` is optional and may time out."""
    transport = InMemoryTransport()
    transport.register(subject_of("a"), echo_with({"a": 1}))
    transport.register(subject_of("b"), echo_with({"a": 2}))  # conflicts with a on payload key "a"
    transport.register(subject_of("c"), sleeper(0.2))
    state = snapshot(
        [extension("a"), extension("b"), extension("c", timeout_ms=slow_timeout_ms)],
        [policy([step("a"), step("b"), step("c", mode="optional")])],
    )
    return transport, state


def observed_runner(transport, logger=None, **kwargs):
    registry = CollectorRegistry()
    observer = TelemetryObserver(ExecutorMetrics(registry), logger)
    return PipelineRunner(transport, max_in_flight=8, observer=observer, **kwargs), registry


def pre_request(**extra):
    return {"tenant_id": "t1", "policy_id": "p1", "payload": {"text": "hi"}, "stages": ["pre"], **extra}
