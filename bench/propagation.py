"""Benchmark of flag propagation to a running executor, run as ``python -m bench.propagation``.

It starts its own NATS server on a free port of 127.0.0.1, a throwaway SQLite database (or
the scratch database given with ``--database-url``, which it migrates and writes to), the
reference extensions and an ``ExecutorProcess`` that follows change notices. Then it makes
100 changes through ``rollout.services``, turning tenant ``tenant-parallel``'s override off
and on in turn, and times each from the service call to:

- ``snapshot_ms``: the executor's snapshot containing the change;
- ``execution_ms``: an execution for that tenant reporting the new ``execution.mode``.

The executor's poll interval is 60 s, so only the change notice can deliver a change in
time. It prints the median and p99 of both and writes ``bench/propagation.json``.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

RESULTS_PATH = Path(__file__).with_name("propagation.json")
DEMO_REGISTRY = Path(__file__).resolve().parent.parent / "executor" / "extensions" / "demo_registry.json"
CHANGES = 100
TENANT_ID = "tenant-parallel"
DEMO_FLAGS = {
    "EXTENSION_PIPELINE_PARALLEL_EXECUTION_ENABLED": "true",
    "EXTENSION_PIPELINE_PARALLEL_PRE_PROCESSORS_ENABLED": "true",
    "EXTENSION_PIPELINE_PARALLEL_EXECUTION_TENANT_ALLOWLIST": TENANT_ID,
}
REQUEST = {
    "tenant_id": TENANT_ID,
    "policy_id": "policy-parallel-demo",
    "payload": {"message_id": "m-1", "message_type": "text", "payload": {"text": "Hello all"}, "metadata": {}},
}
WAIT_LIMIT_S = 5.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--database-url",
        help="A scratch database to migrate and write to (default: a throwaway SQLite file).",
    )
    parser.add_argument("--changes", type=int, default=CHANGES, help="Number of changes to time (default: %(default)s).")
    arguments = parser.parse_args(argv)

    from executor.nats_server import LocalNatsServer

    with tempfile.TemporaryDirectory(prefix="beamline-propagation-") as work_dir, LocalNatsServer() as server:
        configure_django(Path(work_dir), arguments.database_url, server.url)
        results = asyncio.run(measure(server.url, arguments.changes))

        from beamline_console.nats_bridge import get_bridge

        get_bridge().close()  # before the server stops, so the console's connection ends quietly

    print_results(results)
    RESULTS_PATH.write_text(json.dumps(results, indent=2) + "\n")
    print(f"Wrote {RESULTS_PATH}")
    return 0


def configure_django(work_dir: Path, database_url: str | None, nats_url: str) -> None:
    """Point the settings at the scratch database and the benchmark's NATS server, then migrate."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "beamline_console.settings"
    os.environ["DATABASE_URL"] = database_url or f"sqlite:///{work_dir / 'propagation.sqlite3'}"
    os.environ["BEAMLINE_VAR_DIR"] = str(work_dir)
    os.environ["BEAMLINE_AUDIT_LOG"] = str(work_dir / "audit.jsonl")
    os.environ["NATS_URL"] = nats_url
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    os.environ.update(DEMO_FLAGS)

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    with open(os.devnull, "w") as quiet:
        call_command("import_registry", str(DEMO_REGISTRY), stdout=quiet)


async def measure(nats_url: str, changes: int) -> dict[str, Any]:
    import nats

    from executor.extensions.registry import select_extensions
    from executor.extensions.service import serve_reference_extensions, stop_servers
    from executor.flag_source import DatabaseFlagSource
    from executor.process import ExecutorProcess

    extension_client = await nats.connect(nats_url)
    extension_pool = ThreadPoolExecutor(max_workers=4)
    servers = await serve_reference_extensions(extension_client, select_extensions(None), extension_pool, max_concurrency=16)
    client = await nats.connect(nats_url)
    # The services write on a thread of their own, as a console request would, while the
    # executor reads on its snapshot thread.
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-writer")
    process = ExecutorProcess(nats_url, DatabaseFlagSource(), max_in_flight=64, poll_interval_s=60.0)
    try:
        async with process:
            snapshot_ms, execution_ms = await time_changes(process, client, writer, changes)
    finally:
        writer.submit(_close_connections).result()
        writer.shutdown()
        await client.close()
        await stop_servers(servers)
        await extension_client.close()
        extension_pool.shutdown()

    from django.db import connection

    return {
        "changes": changes,
        "snapshot_ms": summary(snapshot_ms),
        "execution_ms": summary(execution_ms),
        "database": connection.vendor,
        "machine": {"cpu_count": os.cpu_count(), "python_version": platform.python_version()},
    }


async def time_changes(process: Any, client: Any, writer: ThreadPoolExecutor,
                       changes: int) -> tuple[list[float], list[float]]:
    loop = asyncio.get_running_loop()
    snapshot_ms: list[float] = []
    execution_ms: list[float] = []
    for index in range(changes):
        enabled = index % 2 == 1
        expected_mode = "parallel" if enabled else "sequential"

        started = time.perf_counter()
        await loop.run_in_executor(writer, _set_override, enabled)
        await wait_until(lambda: _snapshot_has(process, enabled), "the executor's snapshot to change")
        snapshot_ms.append((time.perf_counter() - started) * 1000)
        while await execution_mode(client) != expected_mode:
            if time.perf_counter() - started > WAIT_LIMIT_S:
                raise TimeoutError(f"Executions did not turn {expected_mode} within {WAIT_LIMIT_S} s.")
        execution_ms.append((time.perf_counter() - started) * 1000)
    return snapshot_ms, execution_ms


async def wait_until(condition: Any, description: str) -> None:
    deadline = time.perf_counter() + WAIT_LIMIT_S
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"Waited more than {WAIT_LIMIT_S} s for {description}.")
        await asyncio.sleep(0.0005)


async def execution_mode(client: Any) -> str:
    reply = await client.request("beamline.executor.v1.execute", json.dumps(REQUEST).encode(), timeout=5)
    return json.loads(reply.data)["execution"]["mode"]


def summary(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    p99_index = min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))
    return {
        "median": round(statistics.median(ordered), 2),
        "p99": round(ordered[p99_index], 2),
        "max": round(ordered[-1], 2),
    }


def print_results(results: dict[str, Any]) -> None:
    print(f"\nFlag propagation over {results['changes']} changes ({results['database']})   median ms    p99 ms    max ms")
    for key, label in (("snapshot_ms", "change call -> executor snapshot"), ("execution_ms", "change call -> execution mode")):
        figures = results[key]
        print(f"  {label:<48} {figures['median']:>9.2f} {figures['p99']:>9.2f} {figures['max']:>9.2f}")


def _set_override(enabled: bool) -> None:
    from rollout import services
    from rollout.models import FlagChange

    actor = services.Actor("bench.propagation", FlagChange.Through.COMMAND)
    services.set_tenant_override(TENANT_ID, enabled, actor=actor, reason="propagation benchmark")


def _snapshot_has(process: Any, enabled: bool) -> bool:
    snapshot = process.snapshots.current()
    return snapshot is not None and snapshot.flags.tenant_overrides.get(TENANT_ID) is enabled


def _close_connections() -> None:
    from django.db import connections

    connections.close_all()


if __name__ == "__main__":
    raise SystemExit(main())
