"""What telemetry costs the executor per group, run as ``python -m bench.telemetry`` (part of ``make bench``).

One pipeline with one parallel group of three 0 ms pre-processors, one in flight, timed in
three set-ups, interleaved so drift affects all alike:

- ``off``: no observer and no tracer;
- ``metrics_logs``: what ``run_executor`` does without an OTLP endpoint: Prometheus metrics
  and one JSON log line per group, written through the console's JSON formatter to
  ``/dev/null``;
- ``metrics_logs_traces``: the same plus OpenTelemetry spans (pipeline, group and three
  invocations) through a ``BatchSpanProcessor`` to an exporter that drops them.

Each set-up is timed twice: over NATS (the executor's time per group with its three calls,
``nats-server`` and the extensions in the same process) and over the in-memory transport
(the executor's own CPU time per group, with no I/O at all). It prints a table and writes
``bench/telemetry.json``.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nats
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from prometheus_client import CollectorRegistry
from pythonjsonlogger.json import JsonFormatter

from bench.run import (
    EXTENSION_NAMES,
    PARALLEL_FLAGS,
    build_snapshot,
    executor_pipeline,
    extension_handler,
    machine_info,
    percentile,
    start_extensions,
    subject,
)
from executor.core.runtime import PipelineRunner
from executor.core.transport import InMemoryTransport, NatsTransport, Transport
from executor.nats_server import LocalNatsServer
from executor.telemetry.metrics import ExecutorMetrics
from executor.telemetry.observer import TelemetryObserver
from executor.telemetry.tracing import OtelPipelineTracer, new_tracer_provider

RESULTS_PATH = Path(__file__).with_name("telemetry.json")
WARM_UP = 200
NATS_SAMPLES = 3000
MEMORY_SAMPLES = 10000
SETUPS = ("off", "metrics_logs", "metrics_logs_traces")
TARGET_RATIO = 1.20


class DroppingExporter(SpanExporter):
    """Accepts spans and drops them, so the benchmark times the executor's side of tracing only."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def discarding_json_logger() -> logging.Logger:
    logger = logging.getLogger("bench.telemetry.groups")
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the run
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s",
                                       rename_fields={"asctime": "timestamp", "levelname": "level", "name": "logger"}))
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def runners(transport: Transport) -> tuple[dict[str, PipelineRunner], Any]:
    logger = discarding_json_logger()
    provider = new_tracer_provider(BatchSpanProcessor(DroppingExporter()), service_name="bench")
    built = {
        "off": PipelineRunner(transport, max_in_flight=16),
        "metrics_logs": PipelineRunner(
            transport, max_in_flight=16, observer=TelemetryObserver(ExecutorMetrics(CollectorRegistry()), logger)),
        "metrics_logs_traces": PipelineRunner(
            transport, max_in_flight=16, observer=TelemetryObserver(ExecutorMetrics(CollectorRegistry()), logger),
            tracer=OtelPipelineTracer(provider)),
    }
    return built, provider


async def time_setups(transport: Transport, samples: int) -> dict[str, dict[str, float]]:
    built, provider = runners(transport)
    snapshot = build_snapshot(0.0, PARALLEL_FLAGS)
    pipelines = {name: executor_pipeline(runner, snapshot) for name, runner in built.items()}
    try:
        for _ in range(WARM_UP):
            for pipeline in pipelines.values():
                await pipeline()
        timings: dict[str, list[float]] = {name: [] for name in pipelines}
        for _ in range(samples):
            for name, pipeline in pipelines.items():
                started = time.perf_counter()
                await pipeline()
                timings[name].append((time.perf_counter() - started) * 1000.0)
    finally:
        provider.shutdown()
    return {name: {"p50": percentile(values, 0.50), "p99": percentile(values, 0.99),
                   "mean": round(sum(values) / len(values), 4)}
            for name, values in timings.items()}


async def run_benchmark(url: str) -> dict[str, Any]:
    extension_nc = await nats.connect(url)
    executor_nc = await nats.connect(url)
    servers = await start_extensions(extension_nc)
    try:
        print("Timing one parallel group of three over NATS ...", flush=True)
        over_nats = await time_setups(NatsTransport(executor_nc), NATS_SAMPLES)
    finally:
        for server in servers:
            await server.stop(grace_s=0.5)
        await executor_nc.close()
        await extension_nc.close()

    print("Timing the same group over the in-memory transport ...", flush=True)
    memory = InMemoryTransport()
    for name in EXTENSION_NAMES:
        memory.register(subject(name, 0.0), extension_handler(name, 0.0))
    in_memory = await time_setups(memory, MEMORY_SAMPLES)
    return {"per_group_over_nats_ms": over_nats, "per_group_in_memory_ms": in_memory}


def ratios(results: dict[str, Any], key: str) -> dict[str, float]:
    off = results[key]["off"]["p50"]
    return {name: round(results[key][name]["p50"] / off, 3) for name in SETUPS[1:]}


def print_table(results: dict[str, Any]) -> None:
    for key, title in (("per_group_over_nats_ms", "over NATS"), ("per_group_in_memory_ms", "in memory")):
        print(f"\none parallel group of three, {title}      p50 ms    p99 ms   on/off (p50)")
        off = results[key]["off"]["p50"]
        for name in SETUPS:
            figures = results[key][name]
            print(f"  {name:<36} {figures['p50']:>8.3f}  {figures['p99']:>8.3f}   {figures['p50'] / off:>6.2f}")
    nats_ratio = ratios(results, "per_group_over_nats_ms")["metrics_logs"]
    verdict = "met" if nats_ratio <= TARGET_RATIO else "MISSED"
    print(f"\ntarget: [{verdict}] metrics and logs on within 20 % of off, over NATS (ratio {nats_ratio:.2f})")


def main() -> None:
    with LocalNatsServer() as server:
        results = asyncio.run(run_benchmark(server.url))
    results["ratios_p50"] = {key: ratios(results, key) for key in ("per_group_over_nats_ms", "per_group_in_memory_ms")}
    results["machine"] = machine_info()
    RESULTS_PATH.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print(f"\nwrote {RESULTS_PATH}")


if __name__ == "__main__":
    main()
