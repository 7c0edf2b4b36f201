"""The executor as the console runs it: a snapshot from the database, NATS, HTTP and reloads.

These tests use the real database, a real NATS server and the reference extensions.
"""
import asyncio
import time
from dataclasses import replace
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from rest_framework.test import APIClient

from bench.traffic import load_messages
from executor.core.flags import EnvironmentFlagSource, ParallelFlags
from executor.core.runtime import PipelineRunner
from executor.core.transport import NatsTransport
from executor.process import ExecutorProcess
from executor.snapshot_loader import load_snapshot
from executor.snapshot_provider import DatabaseSnapshotProvider
from registry import services
from registry.models import Extension, RoutingPolicy
from registry.revision import current_revision
from tests.conftest import DEMO_FLAGS, demo_message, execute_over_nats, wait_for_revision

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("close_sync_thread_connections")]

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = ROOT / "bench" / "messages" / "messages.jsonl"


def execution_request(tenant_id="tenant-parallel", policy_id="policy-parallel-demo", **extra):
    return {"tenant_id": tenant_id, "policy_id": policy_id, "payload": demo_message(), **extra}


@pytest.fixture
async def executor_process(nats_server, demo_registry, reference_extensions, settings):
    settings.NATS_URL = nats_server.url
    process = ExecutorProcess(
        nats_server.url, EnvironmentFlagSource(DEMO_FLAGS), max_in_flight=64, poll_interval_s=60.0
    )
    async with process:
        yield process


def write_token():
    _, secret = services.create_api_token("router", "write")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return api


async def test_allowed_tenant_runs_pre_stage_in_parallel(executor_process, nats_client):
    reply = await execute_over_nats(nats_client, execution_request())

    assert reply["status"] == "ok"
    assert reply["execution"]["mode"] == "parallel"
    first_group = reply["execution"]["stages"][0]["groups"][0]
    assert first_group["execution_mode"] == "parallel"
    assert [member["id"] for member in first_group["members"]] == [
        "normalize_text", "detect_language", "extract_metadata",
    ]
    assert reply["metadata"]["language"] == "fr"
    assert reply["metadata"]["policy_id"] == "policy-parallel-demo"


async def test_tenant_outside_allowlist_runs_sequentially(executor_process, nats_client):
    request = execution_request(tenant_id="tenant-sequential", policy_id="policy-sequential-demo")

    reply = await execute_over_nats(nats_client, request)

    assert reply["status"] == "ok"
    assert reply["execution"]["mode"] == "sequential"
    modes = {group["execution_mode"] for group in reply["execution"]["stages"][0]["groups"]}
    assert modes == {"sequential"}


async def test_validator_rejects_card_number(executor_process, nats_client):
    request = execution_request()
    request["payload"] = demo_message(text="Pay with 4111 1111 1111 1111 please")

    reply = await execute_over_nats(nats_client, request)

    assert reply["status"] == "rejected"
    assert reply["error"]["extension_id"] == "pii_guard"


async def test_http_execution_answers_with_contract_reply(executor_process):
    api = await sync_to_async(write_token)()

    response = await sync_to_async(api.post)("/api/v1/executions", execution_request(), format="json")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["execution"]["mode"] == "parallel"
    assert set(body) >= {"status", "payload", "metadata", "execution"}


async def test_http_execution_continues_callers_trace(executor_process):
    api = await sync_to_async(write_token)()
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    traceparent = f"00-{trace_id}-00f067aa0ba902b7-01"

    response = await sync_to_async(api.post)(
        "/api/v1/executions", execution_request(), format="json", HTTP_TRACEPARENT=traceparent
    )

    assert response.status_code == 200
    assert response.json()["execution"]["trace_id"] == trace_id


async def test_http_execution_of_unknown_policy_is_404(executor_process):
    api = await sync_to_async(write_token)()
    request = execution_request(policy_id="no-such-policy")

    response = await sync_to_async(api.post)("/api/v1/executions", request, format="json")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "policy_not_found"


async def test_http_execution_of_policy_of_other_tenant_is_404(executor_process):
    api = await sync_to_async(write_token)()
    request = execution_request(tenant_id="tenant-sequential", policy_id="policy-parallel-demo")

    response = await sync_to_async(api.post)("/api/v1/executions", request, format="json")

    assert response.status_code == 404


async def test_http_execution_without_tenant_is_400_with_path(executor_process):
    api = await sync_to_async(write_token)()
    request = execution_request()
    del request["tenant_id"]

    response = await sync_to_async(api.post)("/api/v1/executions", request, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["details"][0]["path"] == "tenant_id"


def test_http_execution_without_executor_is_503(nats_server, demo_registry, settings):
    settings.NATS_URL = nats_server.url
    api = write_token()

    response = api.post("/api/v1/executions", execution_request(), format="json")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "executor_unavailable"


def test_http_execution_needs_credentials(demo_registry):
    response = APIClient().post("/api/v1/executions", execution_request(), format="json")

    assert response.status_code == 401


async def test_change_notice_reloads_executor_within_a_second(executor_process, nats_client):
    policy = await sync_to_async(RoutingPolicy.objects.get)(policy_id="policy-parallel-demo")
    # Read before the change: the notice may reload the snapshot before the change call returns.
    expected = executor_process.snapshots.current().revision + 1
    started = time.monotonic()

    await sync_to_async(services.patch_policy)(policy, {"sticky": {"enabled": False}})

    assert await wait_for_revision(executor_process, expected, timeout_s=1.0)
    assert time.monotonic() - started < 1.0


async def test_disabling_extension_reaches_running_executor(executor_process, nats_client):
    extension = await sync_to_async(Extension.objects.get)(extension_id="detect_language")
    expected = executor_process.snapshots.current().revision + 1
    await sync_to_async(services.patch_extension)(extension, {"enabled": False})
    assert await wait_for_revision(executor_process, expected, timeout_s=1.0)

    reply = await execute_over_nats(nats_client, execution_request())

    members = {
        member["id"]: member
        for group in reply["execution"]["stages"][0]["groups"]
        for member in group["members"]
    }
    assert members["detect_language"]["error_type"] == "extension_disabled"
    assert reply["status"] == "ok"  # detect_language is optional in the demo policy


async def test_polling_finds_change_without_notice(demo_registry, settings):
    settings.NATS_URL = ""
    provider = DatabaseSnapshotProvider(
        load=lambda: load_snapshot(EnvironmentFlagSource({})),
        read_revision=current_revision,
        poll_interval_s=0.05,
    )
    await provider.reload("test start")
    before = provider.current().revision
    poller = asyncio.create_task(provider.poll_forever())

    policy = await sync_to_async(RoutingPolicy.objects.get)(policy_id="policy-parallel-demo")
    await sync_to_async(services.patch_policy)(policy, {"sticky": {"enabled": False}})
    deadline = time.monotonic() + 2
    while provider.current().revision == before and time.monotonic() < deadline:
        await asyncio.sleep(0.01)

    poller.cancel()
    await asyncio.gather(poller, return_exceptions=True)
    provider.close()
    assert provider.current().revision == before + 1


async def test_snapshot_kept_when_database_fails():
    first_snapshot = object()
    loads = [first_snapshot, ConnectionError("database is down")]

    def load():
        outcome = loads.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return type("Loaded", (), {"revision": 7})() if outcome is first_snapshot else outcome

    provider = DatabaseSnapshotProvider(load=load, read_revision=lambda: 8, poll_interval_s=1)
    await provider.reload("start")
    kept = provider.current()

    await provider.reload_if_revision_moved("poll")

    provider.close()
    assert loads == []
    assert provider.current() is kept
    assert kept.revision == 7


async def test_provider_without_database_has_no_snapshot():
    provider = DatabaseSnapshotProvider(load=lambda: 1 / 0, read_revision=lambda: 1)

    await provider.reload("start")

    provider.close()
    assert provider.current() is None


async def test_message_set_gives_identical_results_parallel_and_sequential(
    demo_registry, reference_extensions, nats_client
):
    base = await sync_to_async(load_snapshot)(EnvironmentFlagSource({}))
    parallel = replace(base, flags=ParallelFlags(
        parallel_execution_enabled=True,
        parallel_pre_processors_enabled=True,
        parallel_validators_enabled=True,
        parallel_post_processors_enabled=True,
    ))
    runner = PipelineRunner(NatsTransport(nats_client), max_in_flight=64)
    messages = load_messages(MESSAGES)

    differences = []
    for message in messages:
        request = {
            "tenant_id": "tenant-parallel",
            "policy_id": "policy-parallel-demo",
            "payload": message,
            "stages": ["pre", "validators", "post"],
        }
        sequential_reply = await runner.execute(base, request)
        parallel_reply = await runner.execute(parallel, request)
        assert parallel_reply["execution"]["mode"] == "parallel"
        assert sequential_reply["execution"]["mode"] == "sequential"
        for key in ("status", "payload", "metadata", "error"):
            if sequential_reply.get(key) != parallel_reply.get(key):
                differences.append((message["message_id"], key))

    assert len(messages) >= 40
    assert differences == []
