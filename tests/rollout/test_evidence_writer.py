"""Writing evidence in batches: few rows for many requests, retries on database errors, and the executor."""
import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext

from executor.core.evidence import EvidenceAggregator
from executor.core.flags import EnvironmentFlagSource
from executor.core.service import EXECUTE_SUBJECT
from executor.core.shadow import ShadowResult
from executor.evidence_writer import EvidenceWriter
from executor.process import ExecutorProcess
from rollout.evidence import summarize
from rollout.models import EvidenceWindow, ShadowMismatch
from tests.conftest import DEMO_FLAGS

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("close_sync_thread_connections")]


class FakeClock:
    def __init__(self, now=1_700_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


def reply(tenant="acme", mode="parallel", latency_ms=12.0):
    members = [{"id": "a", "status": "ok"}, {"id": "b", "status": "ok"}]
    return {"execution": {"tenant_id": tenant, "policy_id": "p1", "stages": [
        {"stage": "pre", "latency_ms": latency_ms,
         "groups": [{"group_id": "g", "execution_mode": mode, "members": members}]},
    ]}}


def mismatch(trace_id="t1"):
    return ShadowResult(trace_id, "acme", "p1", "pre", "g", ("a", "b"), False,
                        [{"path": "payload.x", "parallel": "1", "sequential": "2"}], False)


async def run_here(function):
    return await sync_to_async(function, thread_sensitive=True)()


def count_rows():
    return EvidenceWindow.objects.count(), ShadowMismatch.objects.count()


def test_many_requests_few_rows():
    aggregator = EvidenceAggregator(window_s=10, clock=FakeClock())
    for index in range(1_000):
        aggregator.record_reply(reply(tenant=("acme", "globex")[index % 2], mode=("parallel", "sequential")[index % 2]))
    queries = []

    async def run_counting_queries(function):
        def counted():
            with CaptureQueriesContext(connection) as captured:
                result = function()
            queries.extend(query["sql"] for query in captured.captured_queries)
            return result
        return await sync_to_async(counted)()

    writer = EvidenceWriter(aggregator, run_counting_queries, flush_interval_s=5)
    writer.add_mismatch(mismatch())

    written = asyncio.run(writer.flush(include_open=True))

    assert written == 3
    assert count_rows() == (2, 1)
    inserts = [sql for sql in queries if sql.startswith("INSERT")]
    assert len(inserts) == 2
    assert EvidenceWindow.objects.get(tenant_id="acme").count == 500


def test_open_windows_wait_for_stop():
    clock = FakeClock(1_700_000_005.0)
    aggregator = EvidenceAggregator(window_s=10, clock=clock)
    aggregator.record_reply(reply())
    clock.now += 10
    aggregator.record_reply(reply())
    writer = EvidenceWriter(aggregator, run_here, flush_interval_s=5)

    first = asyncio.run(writer.flush())
    last = asyncio.run(writer.flush(include_open=True))

    assert (first, last) == (1, 1)
    assert EvidenceWindow.objects.count() == 2


def test_database_error_keeps_rows():
    aggregator = EvidenceAggregator(clock=FakeClock())
    aggregator.record_reply(reply())
    failures = [OperationalError("the database is down")]

    async def flaky(function):
        if failures:
            raise failures.pop()
        return await run_here(function)

    writer = EvidenceWriter(aggregator, flaky, flush_interval_s=5)
    writer.add_mismatch(mismatch())

    failed = asyncio.run(writer.flush(include_open=True))
    pending = writer.pending
    retried = asyncio.run(writer.flush())

    assert (failed, pending, retried) == (0, 1, 2)
    assert count_rows() == (1, 1)


def test_pending_cap_drops_oldest():
    clock = FakeClock()
    aggregator = EvidenceAggregator(clock=clock)

    async def down(function):
        raise OperationalError("the database is down")

    writer = EvidenceWriter(aggregator, down, flush_interval_s=5, max_pending=3)

    async def five_failed_flushes():
        for tenant in ("t1", "t2", "t3", "t4", "t5"):
            aggregator.record_reply(reply(tenant=tenant))
            await writer.flush(include_open=True)

    asyncio.run(five_failed_flushes())

    assert writer.pending == 3
    assert writer.dropped == 2
    assert [record.tenant_id for record in writer._windows] == ["t3", "t4", "t5"]


@pytest.mark.nats
async def test_executor_writes_evidence_on_stop(nats_server, nats_client, demo_registry,
                                                                      reference_extensions, settings):
    settings.NATS_URL = nats_server.url
    process = ExecutorProcess(nats_server.url, EnvironmentFlagSource(DEMO_FLAGS), max_in_flight=64,
                              poll_interval_s=60.0, evidence_flush_s=60.0, shadow_sample_rate=1.0)
    body = {"tenant_id": "tenant-parallel", "policy_id": "policy-parallel-demo",
            "payload": {"message_id": "m-1", "message_type": "text", "payload": {"text": "Bonjour à tous"},
                        "metadata": {}}}
    async with process:
        for _ in range(20):
            reply = json.loads((await nats_client.request(EXECUTE_SUBJECT, json.dumps(body).encode(), timeout=5)).data)
            assert reply["status"] == "ok"
        await process.shadow.wait_idle()

    rows = await sync_to_async(lambda: list(EvidenceWindow.objects.filter(stage="pre")))()
    summary = await sync_to_async(lambda: summarize("pre", since=min(row.window_start for row in rows)))()
    assert 1 <= len(rows) <= 4
    assert summary.parallel.count == 20
    assert summary.parallel.shadow_compared == 20
    assert summary.parallel.shadow_mismatches == 0
    assert summary.parallel.p50_ms is not None
