"""Flag changes reach a running executor over a real NATS server within one second."""
import asyncio
import json
import time

import pytest
from asgiref.sync import sync_to_async

from executor.core.flags import parallel_decision
from executor.core.service import EXECUTE_SUBJECT
from executor.flag_source import DatabaseFlagSource
from executor.process import ExecutorProcess
from tests.conftest import DEMO_FLAGS
from tests.rollout.conftest import token_client

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.nats,
    pytest.mark.usefixtures("close_sync_thread_connections"),
]

REQUEST = {
    "tenant_id": "tenant-parallel",
    "policy_id": "policy-parallel-demo",
    "payload": {"message_id": "m-1", "message_type": "text", "payload": {"text": "Hello all"}, "metadata": {}},
}


@pytest.fixture
async def executor_process(nats_server, demo_registry, reference_extensions, settings):
    settings.NATS_URL = nats_server.url
    # A poll interval far above the one-second budget, so only the change notice can meet it.
    process = ExecutorProcess(nats_server.url, DatabaseFlagSource(DEMO_FLAGS), max_in_flight=64, poll_interval_s=60.0)
    async with process:
        yield process


async def execution_mode(nats_client):
    reply = await nats_client.request(EXECUTE_SUBJECT, json.dumps(REQUEST).encode(), timeout=5)
    return json.loads(reply.data)["execution"]["mode"]


async def wait_for_mode(nats_client, mode, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await execution_mode(nats_client) == mode:
            return True
        await asyncio.sleep(0.01)
    return False


async def test_disabled_tenant_turns_sequential(executor_process, nats_client):
    api = await sync_to_async(token_client)("write")
    assert await execution_mode(nats_client) == "parallel"

    started = time.monotonic()
    response = await sync_to_async(api.put)(
        "/api/v1/parallel-execution/tenants/tenant-parallel", {"enabled": False, "reason": "test"}, format="json"
    )

    assert response.status_code == 200
    assert await wait_for_mode(nats_client, "sequential", timeout_s=1.0)
    assert time.monotonic() - started < 1.0


async def test_master_switch_off_turns_sequential(executor_process, nats_client):
    api = await sync_to_async(token_client)("write")
    await sync_to_async(api.put)("/api/v1/parallel-execution/tenants/tenant-parallel", {"enabled": True}, format="json")

    response = await sync_to_async(api.patch)(
        "/api/v1/parallel-execution", {"parallel_execution_enabled": False, "reason": "rollback"}, format="json"
    )

    assert response.status_code == 200
    assert await wait_for_mode(nats_client, "sequential", timeout_s=1.0)


async def test_enabled_tenant_reaches_snapshot(executor_process, nats_client):
    # Read from the executor's snapshot rather than by running the other tenant's pipeline, which
    # would add metric series for its policy to the process-wide Prometheus registry.
    api = await sync_to_async(token_client)("write")

    def decision():
        flags = executor_process.snapshots.current().flags
        return parallel_decision(flags, "tenant-sequential", "policy-sequential-demo", "pre").allowed

    before = decision()
    started = time.monotonic()
    await sync_to_async(api.put)("/api/v1/parallel-execution/tenants/tenant-sequential", {"enabled": True}, format="json")
    while not decision() and time.monotonic() - started < 1.0:
        await asyncio.sleep(0.01)

    assert before is False
    assert decision() is True
