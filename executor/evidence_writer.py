"""Writing the executor's evidence windows and shadow mismatches to the database in batches.

Every ``flush_interval_s`` seconds the writer drains the aggregator's closed windows and writes
them, with the shadow mismatches noted since, in one transaction of bulk inserts on the
executor's database thread, never on the request path. When the write fails, the rows are kept
and tried again on the next flush. Past ``max_pending`` rows the oldest are dropped with a
warning, because a long database outage must not exhaust memory. ``flush(include_open=True)`` on stop
writes the windows still open too.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from django.db import transaction

from executor.core.evidence import EvidenceAggregator, EvidenceRecord
from executor.core.shadow import ShadowResult
from rollout.models import EvidenceWindow, ShadowMismatch

logger = logging.getLogger("executor.evidence")

DatabaseRunner = Callable[[Callable[[], object]], Awaitable[object]]
"""Runs a synchronous function on the executor's database thread and awaits its result."""

BATCH_SIZE = 500


class EvidenceWriter:
    """Flushes an ``EvidenceAggregator`` and shadow mismatches to the database; use from the event loop."""

    def __init__(self, aggregator: EvidenceAggregator, run_in_database: DatabaseRunner, *,
                 flush_interval_s: float, max_pending: int = 20_000, max_pending_mismatches: int = 1_000) -> None:
        if flush_interval_s <= 0:
            raise ValueError(f"flush_interval_s must be positive, got {flush_interval_s}.")
        self.aggregator = aggregator
        self.flush_interval_s = flush_interval_s
        self.max_pending = max_pending
        self.max_pending_mismatches = max_pending_mismatches
        self._run_in_database = run_in_database
        self._windows: list[EvidenceRecord] = []
        self._mismatches: list[ShadowResult] = []
        self._flush_lock = asyncio.Lock()
        self.dropped = 0

    @property
    def pending(self) -> int:
        """Window rows drained but not yet written."""
        return len(self._windows)

    def add_mismatch(self, result: ShadowResult) -> None:
        """Keep one shadow mismatch for the next flush (``ShadowComparer``'s ``on_mismatch``)."""
        self._mismatches.append(result)
        if len(self._mismatches) > self.max_pending_mismatches:
            excess = len(self._mismatches) - self.max_pending_mismatches
            del self._mismatches[:excess]
            logger.warning("Dropped the %s oldest unwritten shadow mismatches; the database is not keeping up",
                           excess)

    async def flush(self, include_open: bool = False) -> int:
        """Write the closed windows (all with ``include_open``) and mismatches; return the rows written.

        On a database error the rows stay pending for the next flush, up to ``max_pending``.
        """
        async with self._flush_lock:
            self._windows.extend(self.aggregator.drain(include_open=include_open))
            self._bound_windows()
            windows, self._windows = self._windows, []
            mismatches, self._mismatches = self._mismatches, []
            if not windows and not mismatches:
                return 0

            try:
                await self._run_in_database(lambda: _write(windows, mismatches))
            except Exception as error:  # noqa: BLE001 - the executor goes on; the next flush retries
                self._windows[:0] = windows
                self._mismatches[:0] = mismatches
                self._bound_windows()
                logger.warning("Writing %s evidence windows and %s shadow mismatches failed; retrying later: %s",
                               len(windows), len(mismatches), error)
                return 0
            logger.debug("Wrote %s evidence windows and %s shadow mismatches", len(windows), len(mismatches))
            return len(windows) + len(mismatches)

    async def run_forever(self) -> None:
        """Flush every ``flush_interval_s`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.flush_interval_s)
            await self.flush()

    def _bound_windows(self) -> None:
        excess = len(self._windows) - self.max_pending
        if excess > 0:
            del self._windows[:excess]
            self.dropped += excess
            logger.warning("Dropped the %s oldest unwritten evidence windows (%s dropped in all); "
                           "the database is not keeping up", excess, self.dropped)


def _write(windows: list[EvidenceRecord], mismatches: list[ShadowResult]) -> None:
    with transaction.atomic():
        if windows:
            EvidenceWindow.objects.bulk_create([_window_row(record) for record in windows], batch_size=BATCH_SIZE)
        if mismatches:
            ShadowMismatch.objects.bulk_create([_mismatch_row(result) for result in mismatches],
                                               batch_size=BATCH_SIZE)


def _window_row(record: EvidenceRecord) -> EvidenceWindow:
    return EvidenceWindow(
        window_start=datetime.fromtimestamp(record.window_start, tz=UTC),
        window_seconds=record.window_seconds,
        tenant_id=record.tenant_id[:100],
        policy_id=record.policy_id[:200],
        stage=record.stage[:16],
        execution_mode=record.execution_mode[:16],
        count=record.count,
        error_counts=record.error_counts,
        latency_buckets=record.latency_buckets,
        latency_sum_ms=record.latency_sum_ms,
        conflicts=record.conflicts,
        shadow_compared=record.shadow_compared,
        shadow_mismatches=record.shadow_mismatches,
    )


def _mismatch_row(result: ShadowResult) -> ShadowMismatch:
    return ShadowMismatch(
        tenant_id=result.tenant_id[:100],
        policy_id=result.policy_id[:200],
        stage=result.stage[:16],
        group_id=result.group_id[:200],
        trace_id=result.trace_id[:64],
        members=list(result.members),
        diff=result.diff,
        truncated=result.truncated,
    )
