"""Benchmark of the executor against a bare nats-py ``asyncio.gather``, run as ``python -m bench.run``.

It starts its own NATS server on a free port of 127.0.0.1, serves test pre-processors with
fixed delays through ``serve_extension``, and measures in one run:

- ``pre_stage_3x30ms``: three pre-processors that each sleep 30 ms, run sequentially, in a
  parallel group, and as a bare ``asyncio.gather`` of the same three requests (p50, p95 in ms);
- ``group_overhead_ms``: a parallel group's latency minus its slowest call's, both timed
  inside the executor, with 0 ms extensions (p50, p99);
- ``pipelines_per_second``: 0 ms extensions, for each mode at 1, 16, 64 and 256 pipelines in
  flight.

It prints a table and writes ``bench/results.json``.
"""
from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import platform
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client

from executor.core import codec
from executor.core.calls import traceparent
from executor.core.extension_service import ExtensionServer, serve_extension
from executor.core.flags import ParallelFlags
from executor.core.model import ExtensionSpec, PolicySpec, Snapshot, StepSpec
from executor.core.observer import GroupEvent, NoopObserver
from executor.core.request import new_trace_id
from executor.core.runtime import PipelineRunner
from executor.core.transport import NatsTransport
from executor.nats_server import LocalNatsServer

RESULTS_PATH = Path(__file__).with_name("results.json")

LATENCY_SAMPLES = 80
OVERHEAD_SAMPLES = 2000
THROUGHPUT_SECONDS = 2.0
IN_FLIGHT_LEVELS = (1, 16, 64, 256)
SLOW_DELAY_S = 0.030
EXTENSION_NAMES = ("normalize", "detect", "extract")

PARALLEL_FLAGS = ParallelFlags(parallel_execution_enabled=True, parallel_pre_processors_enabled=True)
SEQUENTIAL_FLAGS = ParallelFlags()

Pipeline = Callable[[], Awaitable[Any]]


class GroupOverheadRecorder(NoopObserver):
    """Keeps ``latency - slowest call`` of every parallel group, in ms."""

    def __init__(self) -> None:
        self.overheads_ms: list[float] = []

    def group_finished(self, event: GroupEvent) -> None:
        if event.execution_mode == "parallel":
            self.overheads_ms.append(event.latency_ms - event.max_member_latency_ms)


def subject(name: str, delay_s: float) -> str:
    return f"bench.ext.pre.{name}_{int(delay_s * 1000)}ms.v1"


def extension_handler(name: str, delay_s: float) -> Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]:
    """Return a pre-processor that sleeps ``delay_s`` and echoes its input with one key added."""

    async def handle(request: dict[str, Any]) -> dict[str, Any]:
        if delay_s:
            await asyncio.sleep(delay_s)
        payload = dict(request["payload"])
        payload[name] = True
        return {"payload": payload, "metadata": request["metadata"]}

    return handle


def build_snapshot(delay_s: float, flags: ParallelFlags) -> Snapshot:
    extensions = {
        name: ExtensionSpec(id=name, type="pre", subject=subject(name, delay_s), timeout_ms=1000, retry=0,
                            side_effect_free=True)
        for name in EXTENSION_NAMES
    }
    steps = tuple(StepSpec(id=name, mode="required", on_fail=None, depends_on=(), config=None)
                  for name in EXTENSION_NAMES)
    policy = PolicySpec(policy_id="bench", tenant_id="bench", stages={"pre": steps})
    return Snapshot(revision=1, extensions=extensions, policies={"bench": policy}, flags=flags)


def pipeline_request() -> dict[str, Any]:
    return {"tenant_id": "bench", "policy_id": "bench", "payload": {"text": "Hello, world"}, "stages": ["pre"]}


def bare_gather(nc: Client, delay_s: float) -> Pipeline:
    """Return a pipeline that is only nats-py: the three requests in one ``asyncio.gather``.

    Each request carries the same body and ``traceparent`` header the executor sends, because
    the extension contract requires both and nats-py handles a message with headers more slowly.
    """
    subjects = [subject(name, delay_s) for name in EXTENSION_NAMES]

    async def run() -> Any:
        trace_id = new_trace_id()
        body = codec.encode({"trace_id": trace_id, "tenant_id": "bench",
                             "payload": {"text": "Hello, world"}, "metadata": {"policy_id": "bench"}})
        return await asyncio.gather(*(
            nc.request(item, body, timeout=1.0, headers={"traceparent": traceparent(trace_id)})
            for item in subjects
        ))

    return run


def executor_pipeline(runner: PipelineRunner, snapshot: Snapshot) -> Pipeline:
    async def run() -> Any:
        reply = await runner.execute(snapshot, pipeline_request())
        if reply["status"] != "ok":
            raise RuntimeError(f"Benchmark pipeline failed: {reply.get('error')}")
        return reply

    return run


def percentile(values: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of ``values``."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return round(ordered[index], 3)


async def timed_ms(pipeline: Pipeline) -> float:
    started = time.perf_counter()
    await pipeline()
    return (time.perf_counter() - started) * 1000.0


async def measure_latencies(pipelines: dict[str, Pipeline], samples: int) -> dict[str, dict[str, float]]:
    """Time each pipeline ``samples`` times, interleaved so drift affects all modes alike."""
    for pipeline in pipelines.values():
        await pipeline()

    timings: dict[str, list[float]] = {name: [] for name in pipelines}
    for _ in range(samples):
        for name, pipeline in pipelines.items():
            timings[name].append(await timed_ms(pipeline))
    return {name: {"p50": percentile(values, 0.50), "p95": percentile(values, 0.95)}
            for name, values in timings.items()}


async def measure_throughput(pipeline: Pipeline, in_flight: int, seconds: float) -> float:
    """Run ``in_flight`` workers that repeat ``pipeline`` for ``seconds``; return pipelines per second."""
    completed = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal completed
        while time.perf_counter() < deadline:
            await pipeline()
            completed += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return round(completed / (time.perf_counter() - started), 1)


async def start_extensions(nc: Client) -> list[ExtensionServer]:
    servers = []
    for delay_s in (SLOW_DELAY_S, 0.0):
        for name in EXTENSION_NAMES:
            servers.append(await serve_extension(nc, subject(name, delay_s), extension_handler(name, delay_s),
                                                 queue="bench", max_concurrency=1024))
    await nc.flush()
    return servers


async def run_benchmark(url: str) -> dict[str, Any]:
    extension_nc = await nats.connect(url)
    executor_nc = await nats.connect(url, pending_size=64 * 1024 * 1024)
    servers = await start_extensions(extension_nc)
    recorder = GroupOverheadRecorder()
    runner = PipelineRunner(NatsTransport(executor_nc), max_in_flight=4096, observer=recorder)

    try:
        results: dict[str, Any] = {}
        print("Timing the 3 x 30 ms pre stage ...", flush=True)
        results["pre_stage_3x30ms"] = await measure_latencies({
            "sequential_ms": executor_pipeline(runner, build_snapshot(SLOW_DELAY_S, SEQUENTIAL_FLAGS)),
            "parallel_ms": executor_pipeline(runner, build_snapshot(SLOW_DELAY_S, PARALLEL_FLAGS)),
            "bare_gather_ms": bare_gather(executor_nc, SLOW_DELAY_S),
        }, LATENCY_SAMPLES)

        print("Timing group overhead ...", flush=True)
        results["group_overhead_ms"] = await measure_group_overhead(runner, recorder)

        print("Measuring pipelines per second ...", flush=True)
        results["pipelines_per_second"] = await measure_all_throughput(runner, executor_nc)
        return results
    finally:
        for server in servers:
            await server.stop(grace_s=0.5)
        await executor_nc.close()
        await extension_nc.close()


async def measure_group_overhead(runner: PipelineRunner, recorder: GroupOverheadRecorder) -> dict[str, float]:
    pipeline = executor_pipeline(runner, build_snapshot(0.0, PARALLEL_FLAGS))
    for _ in range(100):
        await pipeline()
    recorder.overheads_ms.clear()

    for _ in range(OVERHEAD_SAMPLES):
        await pipeline()
    samples = list(recorder.overheads_ms)
    return {"p50": percentile(samples, 0.50), "p99": percentile(samples, 0.99)}


async def measure_all_throughput(runner: PipelineRunner, nc: Client) -> dict[str, dict[str, float]]:
    pipelines = {
        "sequential": executor_pipeline(runner, build_snapshot(0.0, SEQUENTIAL_FLAGS)),
        "parallel": executor_pipeline(runner, build_snapshot(0.0, PARALLEL_FLAGS)),
        "bare_gather": bare_gather(nc, 0.0),
    }
    results: dict[str, dict[str, float]] = {name: {} for name in pipelines}
    for in_flight in IN_FLIGHT_LEVELS:
        for name, pipeline in pipelines.items():
            await measure_throughput(pipeline, in_flight, 0.2)
            results[name][str(in_flight)] = await measure_throughput(pipeline, in_flight, THROUGHPUT_SECONDS)
    return results


def machine_info() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "python_version": platform.python_version(),
        "nats_py_version": importlib.metadata.version("nats-py"),
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def print_table(results: dict[str, Any]) -> None:
    latency = results["pre_stage_3x30ms"]
    print("\npre stage, 3 pre-processors x 30 ms     p50 ms    p95 ms")
    for name in ("sequential_ms", "parallel_ms", "bare_gather_ms"):
        print(f"  {name:<36} {latency[name]['p50']:>8.2f}  {latency[name]['p95']:>8.2f}")

    overhead = results["group_overhead_ms"]
    print(f"\ngroup overhead (group - slowest call)   p50 {overhead['p50']:.3f} ms   p99 {overhead['p99']:.3f} ms")

    throughput = results["pipelines_per_second"]
    print("\npipelines/s, 0 ms extensions   " + "".join(f"{level:>10}" for level in IN_FLIGHT_LEVELS))
    for name, by_level in throughput.items():
        print(f"  {name:<29}" + "".join(f"{by_level[str(level)]:>10.0f}" for level in IN_FLIGHT_LEVELS))

    machine = results["machine"]
    print(f"\n{machine['cpu_count']} CPUs, {machine['cpu_model']}, Python {machine['python_version']}")
    print_targets(results)


def print_targets(results: dict[str, Any]) -> None:
    latency = results["pre_stage_3x30ms"]
    throughput = results["pipelines_per_second"]
    checks = [
        ("parallel p50 <= 33 ms", latency["parallel_ms"]["p50"] <= 33.0),
        ("parallel p50 within 1 ms of bare gather",
         latency["parallel_ms"]["p50"] - latency["bare_gather_ms"]["p50"] <= 1.0),
        ("group overhead p50 <= 1 ms", results["group_overhead_ms"]["p50"] <= 1.0),
        ("parallel at 256 in flight >= half of bare gather",
         throughput["parallel"]["256"] >= 0.5 * throughput["bare_gather"]["256"]),
    ]
    print("\ntargets:")
    for label, met in checks:
        print(f"  [{'met' if met else 'MISSED'}] {label}")


def write_results(results: dict[str, Any]) -> None:
    temporary = RESULTS_PATH.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(results, indent=2) + "\n")
    temporary.replace(RESULTS_PATH)


def main() -> None:
    with LocalNatsServer() as server:
        results = asyncio.run(run_benchmark(server.url))
    results["machine"] = machine_info()
    write_results(results)
    print_table(results)
    print(f"\nwrote {RESULTS_PATH}")


if __name__ == "__main__":
    main()
