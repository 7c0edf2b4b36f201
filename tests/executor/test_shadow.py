"""Shadow comparison over a real NATS server: matches, mismatches, barriers, timing and bounds."""
import asyncio
import json
import time

import nats
import pytest
from prometheus_client import CollectorRegistry

from executor.core.evidence import EvidenceAggregator
from executor.core.extension_service import serve_extension
from executor.core.runtime import PipelineRunner
from executor.core.service import ExecutorService, StaticSnapshotProvider
from executor.core.shadow import MAX_DIFF_CHARS, MAX_VALUE_CHARS, ShadowComparer, bounded_diff
from executor.core.transport import NatsTransport
from executor.telemetry.shadow_metrics import register_shadow_metrics

from .helpers import echo_with, extension, policy, request, snapshot, step, subject_of

pytestmark = pytest.mark.nats

SUBJECT = "test.shadow.execute"


@pytest.fixture
async def nc(nats_server):
    connection = await nats.connect(nats_server.url)
    yield connection
    await connection.close()


class Counted:
    """Wraps a handler and counts its calls.

    With ``open_calls``, calls for a message text seen ``open_calls`` times already (the shadow's
    repeat of a request) wait for ``gate``.
    """

    def __init__(self, handler, open_calls=None):
        self.handler = handler
        self.calls = 0
        self.open_calls = open_calls
        self.by_text = {}
        self.gate = asyncio.Event()

    async def __call__(self, body):
        self.calls += 1
        text = body["payload"].get("text")
        self.by_text[text] = self.by_text.get(text, 0) + 1
        if self.open_calls is not None and self.by_text[text] > self.open_calls:
            await self.gate.wait()
        return await self.handler(body)


def tagger(body):
    return {"payload": body["payload"], "metadata": {**body["metadata"], "lang": "en"}}


def greeter(body):
    greeting = {"en": "hello"}.get(body["metadata"].get("lang"), "?")
    return {"payload": {**body["payload"], "greeting": greeting}, "metadata": body["metadata"]}


def sync_handler(function):
    async def handler(body):
        return function(body)
    return handler


class Rig:
    """An executor service with evidence and a shadow comparer, and its extensions."""

    def __init__(self, nc, state, handlers, *, sample_rate=1.0, max_concurrent=4):
        self.nc = nc
        self.state = state
        self.handlers = handlers
        self.evidence = EvidenceAggregator()
        self.mismatches = []
        self.shadow = ShadowComparer(NatsTransport(nc), sample_rate=sample_rate, max_concurrent=max_concurrent,
                                     evidence=self.evidence, on_mismatch=self.mismatches.append)
        runner = PipelineRunner(NatsTransport(nc), max_in_flight=16)
        self.service = ExecutorService(nc, runner, StaticSnapshotProvider(state), subject=SUBJECT,
                                       max_concurrency=16, evidence=self.evidence, shadow=self.shadow)
        self.servers = []

    async def __aenter__(self):
        for extension_id, handler in self.handlers.items():
            self.servers.append(await serve_extension(self.nc, subject_of(extension_id), handler, queue="shadow"))
        await self.service.start()
        return self

    async def __aexit__(self, *exc_info):
        await self.service.stop()
        await self.shadow.stop()
        for server in self.servers:
            await server.stop()

    async def ask(self, body, timeout=3.0):
        reply = await self.nc.request(SUBJECT, json.dumps(body).encode(), timeout=timeout)
        return json.loads(reply.data)


def parallel_pair(first, second, *, extra_steps=(), extra_extensions=()):
    return snapshot([extension(first), extension(second), *extra_extensions],
                    [policy([step(first), step(second), *extra_steps])])


async def test_independent_members_match(nc):
    handlers = {"a": echo_with({"a": 1}), "b": echo_with({"b": 2})}
    async with Rig(nc, parallel_pair("a", "b"), handlers) as rig:
        reply = await rig.ask(request({"text": "x"}, stages=["pre"]))
        await rig.shadow.wait_idle()

    assert reply["execution"]["mode"] == "parallel"
    assert (rig.shadow.compared, rig.shadow.mismatched) == (1, 0)
    [record] = rig.evidence.drain(include_open=True)
    assert (record.execution_mode, record.count, record.shadow_compared, record.shadow_mismatches) == (
        "parallel", 1, 1, 0)
    assert rig.mismatches == []


async def test_order_dependent_pair_is_mismatch(nc):
    handlers = {"tag": sync_handler(tagger), "greet": sync_handler(greeter)}
    async with Rig(nc, parallel_pair("tag", "greet"), handlers) as rig:
        reply = await rig.ask(request({"text": "x"}, stages=["pre"]))
        await rig.shadow.wait_idle()

    assert reply["payload"]["greeting"] == "?"
    [mismatch] = rig.mismatches
    assert mismatch.members == ("tag", "greet")
    assert (mismatch.stage, mismatch.tenant_id, mismatch.policy_id) == ("pre", "t1", "p1")
    assert mismatch.diff == [{"path": "payload.greeting", "parallel": '"?"', "sequential": '"hello"'}]
    assert mismatch.truncated is False
    [record] = rig.evidence.drain(include_open=True)
    assert (record.shadow_compared, record.shadow_mismatches) == (1, 1)


async def test_barrier_step_never_rerun(nc):
    barrier = Counted(echo_with({"sent": True}))
    first, second = Counted(echo_with({"a": 1})), Counted(echo_with({"b": 1}))
    state = parallel_pair("a", "b", extra_steps=[step("notify", depends_on=None)],
                          extra_extensions=[extension("notify", side_effect_free=False)])
    async with Rig(nc, state, {"a": first, "b": second, "notify": barrier}) as rig:
        for _ in range(3):
            await rig.ask(request({"text": "x"}, stages=["pre"]))
        await rig.shadow.wait_idle()

    assert barrier.calls == 3
    assert (first.calls, second.calls) == (6, 6)
    assert rig.shadow.compared == 3


async def test_reply_precedes_shadow_run(nc):
    # The second call of b is the shadow's; it waits until the test opens the gate.
    held = Counted(echo_with({"b": 1}), open_calls=1)
    async with Rig(nc, parallel_pair("a", "b"), {"a": echo_with({"a": 1}), "b": held}) as rig:
        started = time.perf_counter()
        reply = await rig.ask(request({"text": "x"}, stages=["pre"]), timeout=2.0)
        reply_s = time.perf_counter() - started
        await asyncio.sleep(0.05)
        running_after_reply = rig.shadow.running
        held.gate.set()
        await rig.shadow.wait_idle()

    assert reply["status"] == "ok"
    assert reply_s < 1.0
    assert running_after_reply == 1
    assert rig.shadow.compared == 1


async def test_saturated_shadow_skips_and_stops(nc):
    held = Counted(echo_with({"b": 1}), open_calls=1)
    async with Rig(nc, parallel_pair("a", "b"), {"a": echo_with({"a": 1}), "b": held}, max_concurrent=1) as rig:
        await rig.ask(request({"text": "x"}, stages=["pre"]))
        await rig.ask(request({"text": "y"}, stages=["pre"]))
        await asyncio.sleep(0.05)
        skipped, running = rig.shadow.skipped, rig.shadow.running
        started = time.perf_counter()
        await rig.shadow.stop()
        stop_s = time.perf_counter() - started

    assert (skipped, running) == (1, 1)
    assert rig.shadow.running == 0
    assert rig.shadow.compared == 0
    assert stop_s < 1.0


async def test_zero_sample_rate_compares_nothing(nc):
    first = Counted(echo_with({"a": 1}))
    async with Rig(nc, parallel_pair("a", "b"), {"a": first, "b": echo_with({"b": 1})}, sample_rate=0.0) as rig:
        await rig.ask(request({"text": "x"}, stages=["pre"]))
        await rig.shadow.wait_idle()

    assert first.calls == 1
    assert rig.shadow.compared == 0


def test_diff_bounded_and_flagged():
    parallel = {"metadata": {f"k{i}": "x" * 1000 for i in range(50)}}
    sequential = {"metadata": {f"k{i}": "y" * 1000 for i in range(50)}}

    diff, truncated = bounded_diff(parallel, sequential)

    assert truncated is True
    assert all(len(entry["parallel"]) <= MAX_VALUE_CHARS for entry in diff)
    assert len(json.dumps(diff)) < MAX_DIFF_CHARS + 1000


def test_diff_names_missing_keys_and_items():
    diff, truncated = bounded_diff({"payload": {"items": [1, 2]}, "metadata": {"a": 1}},
                                   {"payload": {"items": [1, 3]}, "metadata": {}})

    assert diff == [
        {"path": "payload.items[1]", "parallel": "2", "sequential": "3"},
        {"path": "metadata.a", "parallel": "1", "sequential": "<missing>"},
    ]
    assert truncated is False


async def test_shadow_outcomes_exposed_as_counter(nc):
    handlers = {"tag": sync_handler(tagger), "greet": sync_handler(greeter)}
    registry = CollectorRegistry()
    async with Rig(nc, parallel_pair("tag", "greet"), handlers) as rig:
        register_shadow_metrics(rig.shadow, registry)
        await rig.ask(request({"text": "x"}, stages=["pre"]))
        await rig.shadow.wait_idle()

    def outcome(name):
        return registry.get_sample_value("router_extension_shadow_comparisons_total", {"outcome": name})

    assert outcome("mismatch") == 1
    assert outcome("match") == 0
    assert outcome("failed") == 0
    assert outcome("skipped") == 0
