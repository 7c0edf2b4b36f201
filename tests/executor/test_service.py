"""ExecutorService over a real NATS server: replies, request errors, overload and NATS outages."""
import asyncio
import json
import time

import nats
import pytest

from executor.core.extension_service import serve_extension
from executor.core.runtime import PipelineRunner
from executor.core.service import ExecutorService, StaticSnapshotProvider
from executor.core.transport import NatsTransport
from executor.nats_server import LocalNatsServer

from .conftest import executor_tasks
from .helpers import echo_with, extension, policy, request, sleeper, snapshot, step, subject_of

pytestmark = pytest.mark.nats

SUBJECT = "test.executor.execute"


async def ask(nc, body, timeout=3.0):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    reply = await nc.request(SUBJECT, data, timeout=timeout)
    return json.loads(reply.data)


@pytest.fixture
async def nc(nats_server):
    connection = await nats.connect(nats_server.url)
    yield connection
    await connection.close()


def two_step_snapshot(delay=0.0):
    return snapshot([extension("a"), extension("b")], [policy([step("a"), step("b")])]), [
        (subject_of("a"), echo_with({"a": 1}, delay=delay)),
        (subject_of("b"), echo_with({"b": 1}, delay=delay)),
    ]


async def start_extensions(nc, handlers):
    return [await serve_extension(nc, subject, handler, queue="tests") for subject, handler in handlers]


async def test_service_runs_pipeline_over_nats(nc):
    state, handlers = two_step_snapshot()
    extensions = await start_extensions(nc, handlers)
    runner = PipelineRunner(NatsTransport(nc), max_in_flight=8)

    async with ExecutorService(nc, runner, StaticSnapshotProvider(state), subject=SUBJECT, max_concurrency=8):
        reply = await ask(nc, request({"text": "x"}, stages=["pre"]))
    for server in extensions:
        await server.stop()

    assert reply["status"] == "ok"
    assert reply["payload"] == {"text": "x", "a": 1, "b": 1}
    assert reply["execution"]["mode"] == "parallel"


async def test_service_handles_requests_concurrently(nc):
    state, handlers = two_step_snapshot(delay=0.1)
    extensions = await start_extensions(nc, handlers)
    runner = PipelineRunner(NatsTransport(nc), max_in_flight=32)

    async with ExecutorService(nc, runner, StaticSnapshotProvider(state), subject=SUBJECT, max_concurrency=32):
        started = time.perf_counter()
        replies = await asyncio.gather(*(ask(nc, request(stages=["pre"])) for _ in range(20)))
        elapsed = time.perf_counter() - started
    for server in extensions:
        await server.stop()

    assert [reply["status"] for reply in replies] == ["ok"] * 20
    assert elapsed < 0.6


@pytest.mark.parametrize(
    ("body", "error_type", "path"),
    [
        (b"{not json", "invalid_request", "$"),
        ({"tenant_id": "t1", "policy_id": "p1"}, "invalid_request", "payload"),
        ({"tenant_id": "t1", "policy_id": "p1", "payload": {}, "stages": ["nope"]}, "invalid_request", "stages[0]"),
        ({"tenant_id": "t1", "policy_id": "unknown", "payload": {}}, "policy_not_found", None),
        ({"tenant_id": "intruder", "policy_id": "p1", "payload": {}}, "policy_not_found", None),
    ],
    ids=["bad-json", "no-payload", "unknown-stage", "unknown-policy", "other-tenant"],
)
async def test_service_request_errors(nc, body, error_type, path):
    runner = PipelineRunner(NatsTransport(nc), max_in_flight=4)
    state = snapshot([], [policy()])

    async with ExecutorService(nc, runner, StaticSnapshotProvider(state), subject=SUBJECT, max_concurrency=4):
        reply = await ask(nc, body)

    assert reply["status"] == "failed"
    assert reply["error"]["type"] == error_type
    assert reply["error"].get("path") == path
    assert reply["execution"] is None


async def test_service_without_snapshot_replies_unavailable(nc):
    runner = PipelineRunner(NatsTransport(nc), max_in_flight=4)

    async with ExecutorService(nc, runner, StaticSnapshotProvider(None), subject=SUBJECT, max_concurrency=4):
        reply = await ask(nc, request())

    assert reply["status"] == "failed"
    assert reply["error"]["type"] == "snapshot_unavailable"


async def test_service_overload_answer(nc):
    state = snapshot([extension("slow")], [policy([step("slow")])])
    extensions = await start_extensions(nc, [(subject_of("slow"), sleeper(0.3))])
    runner = PipelineRunner(NatsTransport(nc), max_in_flight=8)

    async with ExecutorService(nc, runner, StaticSnapshotProvider(state), subject=SUBJECT, max_concurrency=1):
        first = asyncio.create_task(ask(nc, request(stages=["pre"])))
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        second = await ask(nc, request(stages=["pre"]))
        second_elapsed = time.perf_counter() - started
        first_reply = await first
    for server in extensions:
        await server.stop()

    assert first_reply["status"] == "ok"
    assert second["status"] == "failed"
    assert second["error"]["type"] == "overloaded"
    assert second_elapsed < 0.1


async def test_service_stop_cancels_running_pipelines(nc):
    state = snapshot([extension("a", timeout_ms=3000), extension("b", timeout_ms=3000)],
                     [policy([step("a"), step("b")])])
    extensions = await start_extensions(nc, [(subject_of("a"), sleeper(2.0)), (subject_of("b"), sleeper(2.0))])
    runner = PipelineRunner(NatsTransport(nc), max_in_flight=8)
    service = ExecutorService(nc, runner, StaticSnapshotProvider(state), subject=SUBJECT, max_concurrency=8)
    await service.start()

    pending = asyncio.create_task(ask(nc, request(stages=["pre"]), timeout=0.5))
    await asyncio.sleep(0.1)
    assert service.in_flight == 1
    await service.stop(grace_s=0.05)

    assert service.running is False
    assert service.in_flight == 0
    assert runner.in_flight == 0
    assert executor_tasks() == []
    with pytest.raises(nats.errors.TimeoutError):
        await pending
    for server in extensions:
        await server.stop(grace_s=0.0)


async def wait_connected(connection, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not connection.is_connected and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return connection.is_connected


@pytest.mark.slow
async def test_chaos_nats_stopped_mid_flight():
    server = LocalNatsServer()
    server.start()
    reconnecting = {"max_reconnect_attempts": -1, "reconnect_time_wait": 0.05, "allow_reconnect": True}
    executor_nc = await nats.connect(server.url, **reconnecting)
    extension_nc = await nats.connect(server.url, **reconnecting)
    client_nc = await nats.connect(server.url, **reconnecting)
    state = snapshot([extension("a", timeout_ms=600), extension("b", timeout_ms=600)],
                     [policy([step("a"), step("b")])])
    extensions = await start_extensions(extension_nc, [(subject_of("a"), echo_with({"a": 1}, delay=0.3)),
                                                       (subject_of("b"), echo_with({"b": 1}, delay=0.3))])
    runner = PipelineRunner(NatsTransport(executor_nc), max_in_flight=64)
    service = ExecutorService(executor_nc, runner, StaticSnapshotProvider(state), subject=SUBJECT,
                              max_concurrency=64)
    await service.start()

    try:
        in_flight = [asyncio.create_task(runner.execute(state, request(stages=["pre"]))) for _ in range(20)]
        await asyncio.sleep(0.1)
        server.stop()
        replies = await asyncio.wait_for(asyncio.gather(*in_flight), timeout=3.0)
        while_down = await runner.execute(state, request(stages=["pre"]))

        assert [reply["status"] for reply in replies] == ["failed"] * 20
        assert {reply["error"]["type"] for reply in replies} <= {"nats_unavailable", "timeout"}
        assert "nats_unavailable" in {reply["error"]["type"] for reply in replies}
        assert while_down["error"]["type"] == "nats_unavailable"
        assert service.running is True
        assert executor_tasks() == []

        server.start()
        for connection in (executor_nc, extension_nc, client_nc):
            assert await wait_connected(connection)
        await executor_nc.flush()
        await extension_nc.flush()
        after = await ask(client_nc, request({"text": "back"}, stages=["pre"]))

        assert after["status"] == "ok"
        assert after["payload"] == {"text": "back", "a": 1, "b": 1}
    finally:
        await service.stop(grace_s=0.1)
        for extension_server in extensions:
            await extension_server.stop(grace_s=0.0)
        for connection in (executor_nc, extension_nc, client_nc):
            await connection.close()
        server.stop()
