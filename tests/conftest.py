"""Fixtures shared by every test package."""
import asyncio
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nats
import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.db import connections

from executor.core.service import EXECUTE_SUBJECT
from executor.extensions.registry import select_extensions
from executor.extensions.service import serve_reference_extensions, stop_servers
from executor.nats_server import LocalNatsServer

ROOT = Path(__file__).resolve().parents[1]
DEMO_REGISTRY = ROOT / "executor" / "extensions" / "demo_registry.json"

# The flags `make run` sets: parallel pre-processors for the demo tenant `tenant-parallel` only.
DEMO_FLAGS = {
    "EXTENSION_PIPELINE_PARALLEL_EXECUTION_ENABLED": "true",
    "EXTENSION_PIPELINE_PARALLEL_PRE_PROCESSORS_ENABLED": "true",
    "EXTENSION_PIPELINE_PARALLEL_EXECUTION_TENANT_ALLOWLIST": "tenant-parallel",
}


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """Close stray connections to the test database before pytest-django drops it.

    Threads of the live server and of executors started by tests may still hold a connection
    at the end of the run, and PostgreSQL refuses to drop a database that is in use.
    """
    yield
    with django_db_blocker.unblock():
        connections.close_all()
        with connections["default"].cursor() as cursor:
            if connections["default"].vendor == "postgresql":
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
        connections.close_all()


@pytest.fixture(scope="session")
def nats_server() -> Iterator[LocalNatsServer]:
    """A real NATS server on a free port of 127.0.0.1, started once for the test session."""
    with LocalNatsServer() as server:
        yield server


@pytest.fixture
async def nats_client(nats_server):
    """A NATS connection to the session's server, closed after the test."""
    connection = await nats.connect(nats_server.url)
    yield connection
    await connection.close()


@pytest.fixture
def demo_registry(tmp_path, monkeypatch):
    """The demo tenants, reference extensions and policies, imported as `make run` does."""
    monkeypatch.setenv("BEAMLINE_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    with open("/dev/null", "w") as quiet:
        call_command("import_registry", str(DEMO_REGISTRY), stdout=quiet)


@pytest.fixture
async def reference_extensions(nats_server):
    """Every reference extension served on the session's NATS server."""
    client = await nats.connect(nats_server.url)
    pool = ThreadPoolExecutor(max_workers=4)
    servers = await serve_reference_extensions(client, select_extensions(None), pool, max_concurrency=16)
    yield
    await stop_servers(servers)
    await client.close()
    pool.shutdown()


@pytest.fixture
async def close_sync_thread_connections():
    """Close the database connection of the thread that ``sync_to_async`` uses, after the test.

    A connection left open there keeps the test database from being dropped at the end of the run.
    """
    yield
    await sync_to_async(connections.close_all)()


def demo_message(number: int = 1, text: str = "Bonjour à tous, écrivez à ops@example.com #lancement") -> dict:
    """A message in the shape the reference extensions read, with its text under ``payload``."""
    return {"message_id": f"m-{number}", "message_type": "text", "payload": {"text": text}, "metadata": {}}


async def execute_over_nats(nats_client, request: dict) -> dict:
    """Send ``request`` to the executor service and return its decoded reply."""
    reply = await nats_client.request(EXECUTE_SUBJECT, json.dumps(request).encode(), timeout=5)
    return json.loads(reply.data)


async def wait_for_revision(process, revision: int, timeout_s: float) -> bool:
    """Wait until ``process``'s snapshot has ``revision`` or a later one; False on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        snapshot = process.snapshots.current()
        if snapshot is not None and snapshot.revision >= revision:
            return True
        await asyncio.sleep(0.01)
    return False
