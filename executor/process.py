"""One executor process: NATS connection, snapshot, change notices, polling and the service.

It also records metrics and group logs through a ``TelemetryObserver``, serves ``/metrics``
on ``metrics_port`` (0: no endpoint), and makes OpenTelemetry spans when an OTLP endpoint is
configured (see docs/OBSERVABILITY.md).

It aggregates evidence from every reply and writes it in batches every
``EXECUTOR_EVIDENCE_FLUSH_SECONDS`` on the database thread, and compares a sample
(``EXECUTOR_SHADOW_SAMPLE_RATE``) of parallel executions with sequential runs after replying.

``manage.py run_executor`` runs it until SIGINT or SIGTERM; tests run it in their own event loop.
"""
from __future__ import annotations

import asyncio
import logging

import nats
from django.conf import settings
from nats.aio.client import Client
from prometheus_client import REGISTRY

from executor.core.evidence import EvidenceAggregator
from executor.core.flags import FlagSource
from executor.core.observer import PipelineObserver
from executor.core.runtime import PipelineRunner
from executor.core.tracing import PipelineTracer
from executor.core.service import ExecutorService
from executor.core.shadow import ShadowComparer
from executor.core.transport import NatsTransport
from executor.evidence_writer import EvidenceWriter
from executor.snapshot_loader import load_snapshot
from executor.snapshot_provider import DatabaseSnapshotProvider
from executor.telemetry.observer import TelemetryObserver
from executor.telemetry.server import MetricsServer, start_metrics_server
from executor.telemetry.shadow_metrics import ShadowComparisonCollector, register_shadow_metrics
from executor.telemetry.tracing import configure_tracing
from registry.notices import CHANGE_NOTICE_SUBJECT
from registry.revision import current_revision

logger = logging.getLogger("executor.process")


class ExecutorProcess:
    """The executor's parts, started in order by ``start`` and stopped in reverse by ``stop``."""

    def __init__(
        self,
        nats_url: str,
        flag_source: FlagSource,
        *,
        max_in_flight: int,
        poll_interval_s: float,
        metrics_port: int = 0,
        metrics_address: str = "127.0.0.1",
        observer: PipelineObserver | None = None,
        tracer: PipelineTracer | None = None,
        evidence_flush_s: float | None = None,
        shadow_sample_rate: float | None = None,
    ) -> None:
        """``observer`` defaults to a ``TelemetryObserver``; ``tracer`` to OTLP export when configured.

        ``evidence_flush_s`` and ``shadow_sample_rate`` default to the settings
        ``EXECUTOR_EVIDENCE_FLUSH_SECONDS`` and ``EXECUTOR_SHADOW_SAMPLE_RATE``.
        """
        self.nats_url = nats_url
        self.max_in_flight = max_in_flight
        self.metrics_port = metrics_port
        self.metrics_address = metrics_address
        self.metrics_server: MetricsServer | None = None
        self._observer = observer
        self._tracer = tracer
        self._tracer_provider = None
        self.snapshots = DatabaseSnapshotProvider(
            load=lambda: load_snapshot(flag_source),
            read_revision=current_revision,
            poll_interval_s=poll_interval_s,
        )
        self.evidence = EvidenceAggregator()
        self.evidence_writer = EvidenceWriter(
            self.evidence,
            self.snapshots.run_in_database_thread,
            flush_interval_s=settings.EXECUTOR_EVIDENCE_FLUSH_SECONDS if evidence_flush_s is None else evidence_flush_s,
        )
        self.shadow_sample_rate = (
            settings.EXECUTOR_SHADOW_SAMPLE_RATE if shadow_sample_rate is None else shadow_sample_rate
        )
        self.shadow: ShadowComparer | None = None
        self._shadow_collector: ShadowComparisonCollector | None = None
        self._nc: Client | None = None
        self._service: ExecutorService | None = None
        self._poller: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load the snapshot, connect to NATS, follow change notices and serve requests."""
        await self.snapshots.reload("start-up")
        self._nc = await nats.connect(
            self.nats_url,
            name="beamline-executor",
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            error_cb=_log_nats_error,
            disconnected_cb=_log_disconnected,
            reconnected_cb=_log_reconnected,
        )
        await self._nc.subscribe(CHANGE_NOTICE_SUBJECT, cb=self.snapshots.on_change_notice)
        self._poller = asyncio.create_task(self.snapshots.poll_forever(), name="snapshot-poll")

        if self.metrics_port:
            self.metrics_server = start_metrics_server(self.metrics_port, self.metrics_address)
        tracer = self._tracer
        if tracer is None:
            configured = configure_tracing()
            if configured is not None:
                tracer, self._tracer_provider = configured
                logger.info("Exporting traces over OTLP/HTTP")
        transport = NatsTransport(self._nc)
        runner = PipelineRunner(transport, max_in_flight=self.max_in_flight,
                                observer=self._observer or TelemetryObserver(), tracer=tracer)
        if self.shadow_sample_rate > 0:
            self.shadow = ShadowComparer(transport, sample_rate=self.shadow_sample_rate, evidence=self.evidence,
                                         on_mismatch=self.evidence_writer.add_mismatch)
            self._shadow_collector = register_shadow_metrics(self.shadow)
        self._flusher = asyncio.create_task(self.evidence_writer.run_forever(), name="evidence-flush")
        self._service = ExecutorService(self._nc, runner, self.snapshots, max_concurrency=self.max_in_flight,
                                        evidence=self.evidence, shadow=self.shadow)
        await self._service.start()
        logger.info("Executor started on %s", self.nats_url)

    async def stop(self) -> None:
        """Stop serving, let running pipelines finish briefly, and close everything."""
        if self._service is not None:
            await self._service.stop()
        if self.shadow is not None:
            await self.shadow.stop()
        if self._shadow_collector is not None:
            REGISTRY.unregister(self._shadow_collector)
            self._shadow_collector = None
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
            await self.evidence_writer.flush(include_open=True)
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        if self._nc is not None:
            await self._nc.close()
        self.snapshots.close()
        if self.metrics_server is not None:
            self.metrics_server.stop()
            self.metrics_server = None
        if self._tracer_provider is not None:
            self._tracer_provider.shutdown()
            self._tracer_provider = None
        logger.info("Executor stopped")

    async def __aenter__(self) -> ExecutorProcess:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


async def _log_nats_error(error: Exception) -> None:
    logger.warning("NATS connection error: %s", error)


async def _log_disconnected() -> None:
    logger.warning("Disconnected from NATS; pipelines fail with nats_unavailable until it is back")


async def _log_reconnected() -> None:
    logger.info("Reconnected to NATS")
