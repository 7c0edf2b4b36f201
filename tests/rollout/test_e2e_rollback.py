"""End to end: a canary tenant in phase 3 fails in parallel, and the console rolls it back by itself.

Real parts: the NATS server, the executor with its evidence flush, PostgreSQL, and a Celery
worker and beat started as subprocesses on a Redis broker (its own database number) with a
short evaluation interval. The fault: ``extract_metadata`` fails whenever another extension
call is in flight at the same moment, which happens only when its group runs in parallel,
because the test sends one request at a time and shadow runs are off.
"""
import dataclasses
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nats
import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.utils import timezone

from executor.extensions.registry import select_extensions
from executor.extensions.service import serve_reference_extensions, stop_servers
from executor.flag_source import DatabaseFlagSource
from executor.process import ExecutorProcess
from rollout import rollouts
from rollout.models import EvidenceWindow, FlagChange, Rollout, RolloutEvent
from rollout.services import Actor
from tests.conftest import demo_message, execute_over_nats, wait_for_revision

ROOT = Path(__file__).resolve().parents[2]
REDIS_HOST, REDIS_PORT, REDIS_DB = "127.0.0.1", 6379, 13
EVALUATION_INTERVAL_S = 2.0
CANARY, CANARY_POLICY = "tenant-parallel", "policy-parallel-demo"
BASELINE, BASELINE_POLICY = "tenant-sequential", "policy-sequential-demo"
OPS = Actor("olga", FlagChange.Through.COMMAND)
WORKER_SETTINGS = {
    "ROLLOUT_EVALUATION_INTERVAL_S": str(EVALUATION_INTERVAL_S),
    "ROLLOUT_EVALUATION_WINDOW_S": "120",
    "ROLLOUT_MIN_SAMPLES": "10",
    "ROLLOUT_VERIFICATION_DELAY_S": "3",
    "ROLLOUT_VERIFICATION_GRACE_S": "1",
    "ROLLOUT_VERIFICATION_ATTEMPTS": "10",
}


def _redis_available() -> bool:
    try:
        import redis
    except ImportError:
        return False
    try:
        return bool(redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB, socket_timeout=1).ping())
    except redis.RedisError:
        return False


pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_sync_thread_connections"),
    pytest.mark.skipif(connection.vendor != "postgresql",
                       reason="The worker subprocess must share the test database, which SQLite's in-memory test database cannot."),
    pytest.mark.skipif(not _redis_available(), reason=f"No Redis at {REDIS_HOST}:{REDIS_PORT} for the Celery broker."),
]


class OverlapFault:
    """Makes one extension fail when another extension call runs at the same time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight = 0

    def wrap(self, handle, *, hold_s: float, fail_on_overlap: bool):
        def handler(request):
            with self._lock:
                self._in_flight += 1
                overlapped = self._in_flight > 1
            try:
                time.sleep(hold_s)
                with self._lock:
                    overlapped = overlapped or self._in_flight > 1
                if fail_on_overlap and overlapped:
                    raise RuntimeError("Injected fault: ran at the same time as another extension.")
                return handle(request)
            finally:
                with self._lock:
                    self._in_flight -= 1

        return handler


@pytest.fixture
async def faulty_extensions(nats_server):
    fault = OverlapFault()
    extensions = []
    for extension in select_extensions(None):
        if extension.id == "normalize_text":
            extension = dataclasses.replace(extension, handle=fault.wrap(extension.handle, hold_s=0.06,
                                                                         fail_on_overlap=False))
        elif extension.id == "extract_metadata":
            extension = dataclasses.replace(extension, handle=fault.wrap(extension.handle, hold_s=0.01,
                                                                         fail_on_overlap=True))
        extensions.append(extension)
    client = await nats.connect(nats_server.url)
    pool = ThreadPoolExecutor(max_workers=8)
    servers = await serve_reference_extensions(client, extensions, pool, max_concurrency=16)
    yield
    await stop_servers(servers)
    await client.close()
    pool.shutdown()


@pytest.fixture
async def executor(nats_server, demo_registry, faulty_extensions, settings):
    settings.NATS_URL = nats_server.url
    process = ExecutorProcess(nats_server.url, DatabaseFlagSource(environ={}), max_in_flight=16,
                              poll_interval_s=0.5, evidence_flush_s=0.5, shadow_sample_rate=0.0)
    # One-second evidence windows instead of ten, so the evidence reaches the database quickly.
    process.evidence.window_s = 1
    async with process:
        yield process


@pytest.fixture
def celery(tmp_path, nats_server):
    """A Celery worker and beat on the test database and a Redis broker of their own."""
    import redis

    redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB).flushdb()
    database = connection.settings_dict
    env = {
        **os.environ,
        **WORKER_SETTINGS,
        "DJANGO_SETTINGS_MODULE": "beamline_console.settings",
        "SECRET_KEY": "end-to-end-test-key-" + "x" * 40,
        "BEAMLINE_VAR_DIR": str(tmp_path),
        "DATABASE_URL": (f"postgres://{database['USER']}:{database['PASSWORD'] or ''}@{database['HOST']}:"
                         f"{database['PORT'] or 5432}/{database['NAME']}"),
        "CELERY_BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}",
        "NATS_URL": nats_server.url,
    }
    celery_bin = str(Path(sys.executable).with_name("celery"))
    commands = {
        "worker": [celery_bin, "-A", "beamline_console", "worker", "--pool", "solo", "--loglevel", "INFO",
                   "--without-mingle", "--without-gossip", "--hostname", f"rollout-e2e-{os.getpid()}@%h"],
        "beat": [celery_bin, "-A", "beamline_console", "beat", "--loglevel", "INFO", "--max-interval", "1",
                 "--schedule", str(tmp_path / "beat-schedule")],
    }
    processes = {}
    for name, command in commands.items():
        log = open(tmp_path / f"{name}.log", "w")
        processes[name] = (subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), log)
    yield tmp_path
    for process, log in processes.values():
        process.terminate()
    for name, (process, log) in processes.items():
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()
        print(f"--- celery {name} log (last lines) ---")
        print("\n".join((tmp_path / f"{name}.log").read_text().splitlines()[-15:]))


async def execute(nats_client, tenant_id, policy_id, number):
    request = {"tenant_id": tenant_id, "policy_id": policy_id, "payload": demo_message(number)}
    return await execute_over_nats(nats_client, request)


def canary_rollout():
    rollout = rollouts.start_rollout("pre", internal_tenants=["tenant-internal"], canary_tenants=[CANARY],
                                     canary_steps=[1], actor=OPS)
    for reason in ("Tests passed on the release candidate.", "Internal tenant ran clean for a week."):
        rollout = rollouts.advance_phase(rollout, actor=OPS, override_reason=reason)
    return rollout, FlagChange.objects.order_by("-revision").first().revision


def first_rollback(rollout_id):
    return RolloutEvent.objects.filter(rollout_id=rollout_id, kind=RolloutEvent.Kind.ROLLBACK).first()


async def test_canary_failure_rolls_back_and_verifies(executor, celery, nats_client, settings):
    rollout, revision = await sync_to_async(canary_rollout)()
    assert rollout.current_phase == 3
    assert await wait_for_revision(executor, revision, timeout_s=10.0)

    # Traffic, one request at a time, until the rollback appears (bounded).
    event = None
    canary_modes = set()
    deadline = time.monotonic() + 60
    number = 0
    while event is None and time.monotonic() < deadline:
        for tenant_id, policy_id in ((CANARY, CANARY_POLICY), (BASELINE, BASELINE_POLICY)):
            number += 1
            reply = await execute(nats_client, tenant_id, policy_id, number)
            if tenant_id == CANARY:
                canary_modes.add(reply["execution"]["mode"])
        if number % 10 == 0:
            event = await sync_to_async(first_rollback)(rollout.pk)
    assert event is not None, f"No automatic rollback within 60 s; see {celery}/worker.log"
    assert "parallel" in canary_modes

    # The rollback: the trigger with its figures and the scope, in the flags' audit trail too.
    assert event.through == "automatic_rollback"
    assert event.trigger == "error_rate"
    assert event.value > 0.5
    assert event.baseline == 0.0
    assert event.threshold == 0.0
    assert (event.scope, event.scope_id) == ("tenant", CANARY)
    change = await sync_to_async(FlagChange.objects.get)(through="automatic_rollback")
    assert (change.target, change.new_value) == (CANARY, False)
    assert "error_rate" in change.reason

    # Within one evaluation interval of the evidence that showed the failure (plus the task's run time).
    min_samples = int(WORKER_SETTINGS["ROLLOUT_MIN_SAMPLES"])
    enough_at = await sync_to_async(_enough_evidence_at)(rollout.pk, min_samples)
    assert (event.created_at - enough_at).total_seconds() <= EVALUATION_INTERVAL_S + 1.5

    # Executions are sequential again for the canary, and succeed.
    assert await wait_for_revision(executor, change.revision, timeout_s=10.0)
    reply = await execute(nats_client, CANARY, CANARY_POLICY, number + 1)
    assert reply["execution"]["mode"] == "sequential"
    assert reply["status"] == "ok"

    # The verification runs after its delay on the executions since the rollback (bounded).
    deadline = time.monotonic() + 60
    while event.verification == "pending" and time.monotonic() < deadline:
        for tenant_id, policy_id in ((CANARY, CANARY_POLICY), (BASELINE, BASELINE_POLICY)):
            number += 1
            await execute(nats_client, tenant_id, policy_id, number)
        await sync_to_async(event.refresh_from_db)()
    verification = await sync_to_async(lambda: event.verifications.first())()
    assert event.verification == "passed", (event.verification, event.details.get("verification"))
    assert verification is not None
    assert verification.details["parallel_after"] == 0
    rollout = await sync_to_async(Rollout.objects.get)(pk=rollout.pk)
    assert rollout.state == Rollout.State.ACTIVE


def _enough_evidence_at(rollout_id, min_samples):
    """When the recorded evidence first had enough parallel and sequential executions of the failure."""
    phase_start = Rollout.objects.get(pk=rollout_id).phases.get(number=3).started_at
    counts = {"parallel": 0, "sequential": 0}
    for row in EvidenceWindow.objects.filter(stage="pre", window_start__gte=phase_start).order_by("recorded_at"):
        counts[row.execution_mode] = counts.get(row.execution_mode, 0) + row.count
        if min(counts.values()) >= min_samples:
            return row.recorded_at
    return timezone.now()
