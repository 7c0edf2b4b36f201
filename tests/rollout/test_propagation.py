"""Flag changes reach a running executor over a real NATS server within one second."""
import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nats
import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.db import connections

from executor.core.flags import parallel_decision
from executor.core.service import EXECUTE_SUBJECT
from executor.extensions.registry import select_extensions
from executor.extensions.service import serve_reference_extensions, stop_servers
from executor.flag_source import DatabaseFlagSource
from executor.process import ExecutorProcess
from tests.rollout.conftest import token_client

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.nats]

ROOT = Path(__file__).resolve().parents[2]
DEMO_REGISTRY = ROOT / "executor" / "extensions" / "demo_registry.json"
DEMO_FLAGS = {
    "EXTENSION_PIPELINE_PARALLEL_EXECUTION_ENABLED": "true",
    "EXTENSION_PIPELINE_PARALLEL_PRE_PROCESSORS_ENABLED": "true",
    "EXTENSION_PIPELINE_PARALLEL_EXECUTION_TENANT_ALLOWLIST": "tenant-parallel",
}
REQUEST = {
    "tenant_id": "tenant-parallel",
    "policy_id": "policy-parallel-demo",
    "payload": {"message_id": "m-1", "message_type": "text", "payload": {"text": "Hello all"}, "metadata": {}},
}


@pytest.fixture(autouse=True)
async def close_connections_of_sync_thread():
    # sync_to_async runs the ORM on a thread of its own; its connection must not outlive the test.
    yield
    await sync_to_async(connections.close_all)()


@pytest.fixture
def demo_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("BEAMLINE_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    call_command("import_registry", str(DEMO_REGISTRY), stdout=open("/dev/null", "w"))


@pytest.fixture
async def reference_extensions(nats_server):
    client = await nats.connect(nats_server.url)
    pool = ThreadPoolExecutor(max_workers=4)
    servers = await serve_reference_extensions(client, select_extensions(None), pool, max_concurrency=16)
    yield
    await stop_servers(servers)
    await client.close()
    pool.shutdown()


@pytest.fixture
async def executor_process(nats_server, demo_registry, reference_extensions, settings):
    settings.NATS_URL = nats_server.url
    # A poll interval far above the one-second budget, so only the change notice can meet it.
    process = ExecutorProcess(nats_server.url, DatabaseFlagSource(DEMO_FLAGS), max_in_flight=64, poll_interval_s=60.0)
    async with process:
        yield process


@pytest.fixture
async def client(nats_server):
    connection = await nats.connect(nats_server.url)
    yield connection
    await connection.close()


async def execution_mode(client):
    reply = await client.request(EXECUTE_SUBJECT, json.dumps(REQUEST).encode(), timeout=5)
    return json.loads(reply.data)["execution"]["mode"]


async def wait_for_mode(client, mode, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await execution_mode(client) == mode:
            return True
        await asyncio.sleep(0.01)
    return False


async def test_disabled_tenant_turns_sequential(executor_process, client):
    api = await sync_to_async(token_client)("write")
    assert await execution_mode(client) == "parallel"

    started = time.monotonic()
    response = await sync_to_async(api.put)(
        "/api/v1/parallel-execution/tenants/tenant-parallel", {"enabled": False, "reason": "test"}, format="json"
    )

    assert response.status_code == 200
    assert await wait_for_mode(client, "sequential", timeout_s=1.0)
    assert time.monotonic() - started < 1.0


async def test_master_switch_off_turns_sequential(executor_process, client):
    api = await sync_to_async(token_client)("write")
    await sync_to_async(api.put)("/api/v1/parallel-execution/tenants/tenant-parallel", {"enabled": True}, format="json")

    response = await sync_to_async(api.patch)(
        "/api/v1/parallel-execution", {"parallel_execution_enabled": False, "reason": "rollback"}, format="json"
    )

    assert response.status_code == 200
    assert await wait_for_mode(client, "sequential", timeout_s=1.0)


async def test_enabled_tenant_reaches_snapshot(executor_process, client):
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
