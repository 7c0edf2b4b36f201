"""Reading the recorded evidence: parallel against sequential for one stage over a time range.

Executors write ``EvidenceWindow`` rows in batches, several rows per window when several
executors ran; everything here sums them. Missing data is ``None``, never 0: a side with no
executions has no error rate and no percentiles, and a latency reduction needs both sides.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from executor.core.evidence import BUCKET_KEYS, PARALLEL, SEQUENTIAL, percentile_ms
from rollout.models import EvidenceWindow

_FIELDS = ("window_start", "tenant_id", "policy_id", "execution_mode", "count", "error_counts",
           "latency_buckets", "latency_sum_ms", "conflicts", "shadow_compared", "shadow_mismatches")


@dataclass(frozen=True)
class SideSummary:
    """The figures of one execution mode.

    ``errors`` counts executions with a failed member and ``error_rate`` is ``errors / count``.
    ``p50_ms`` and ``p95_ms`` are estimated from the summed latency histogram by linear
    interpolation inside the bucket holding the rank. They are exact only to a bucket's width:
    1 ms at the low end, 2 s near 10 s. Rates and percentiles are None when ``count`` is 0.
    """

    count: int
    errors: int
    errors_by_type: dict[str, int]
    error_rate: float | None
    p50_ms: float | None
    p95_ms: float | None
    conflicts: int
    shadow_compared: int
    shadow_mismatches: int

    def as_dict(self) -> dict[str, Any]:
        """Return the figures as a JSON-ready dictionary."""
        return {
            "count": self.count, "errors": self.errors, "errors_by_type": dict(self.errors_by_type),
            "error_rate": self.error_rate, "p50_ms": self.p50_ms, "p95_ms": self.p95_ms,
            "conflicts": self.conflicts, "shadow_compared": self.shadow_compared,
            "shadow_mismatches": self.shadow_mismatches,
        }


EMPTY_SIDE = SideSummary(0, 0, {}, None, None, None, 0, 0, 0)


@dataclass(frozen=True)
class EvidenceSummary:
    """Parallel against sequential for one stage, overall and per tenant and per policy.

    ``latency_reduction`` is ``1 - parallel p50 / sequential p50`` (0.6 means parallel takes 60 %
    less time); None unless both sides have data. ``by_tenant`` and ``by_policy`` map each id
    seen in the range to ``(parallel, sequential)``.
    """

    stage: str
    since: datetime
    until: datetime | None
    parallel: SideSummary
    sequential: SideSummary
    latency_reduction: float | None
    by_tenant: dict[str, tuple[SideSummary, SideSummary]] = field(default_factory=dict)
    by_policy: dict[str, tuple[SideSummary, SideSummary]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Return the summary as a JSON-ready dictionary, as the API shows it."""
        return {
            "stage": self.stage,
            "since": self.since,
            "until": self.until,
            "parallel": self.parallel.as_dict(),
            "sequential": self.sequential.as_dict(),
            "latency_reduction": self.latency_reduction,
            "by_tenant": {key: _pair_dict(pair) for key, pair in self.by_tenant.items()},
            "by_policy": {key: _pair_dict(pair) for key, pair in self.by_policy.items()},
        }


@dataclass(frozen=True)
class SeriesPoint:
    """One time bucket of one tenant and execution mode, for charts."""

    bucket_start: datetime
    tenant_id: str
    execution_mode: str
    count: int
    error_rate: float | None
    p50_ms: float | None
    p95_ms: float | None

    def as_dict(self) -> dict[str, Any]:
        """Return the point as a JSON-ready dictionary."""
        return {
            "bucket_start": self.bucket_start, "tenant_id": self.tenant_id, "execution_mode": self.execution_mode,
            "count": self.count, "error_rate": self.error_rate, "p50_ms": self.p50_ms, "p95_ms": self.p95_ms,
        }


class _Totals:
    """Sums of window rows for one side."""

    __slots__ = ("count", "errors", "buckets", "conflicts", "shadow_compared", "shadow_mismatches")

    def __init__(self) -> None:
        self.count = 0
        self.errors: dict[str, int] = {}
        self.buckets: dict[str, int] = {}
        self.conflicts = 0
        self.shadow_compared = 0
        self.shadow_mismatches = 0

    def add(self, row: dict[str, Any]) -> None:
        self.count += row["count"]
        for error_type, n in (row["error_counts"] or {}).items():
            self.errors[error_type] = self.errors.get(error_type, 0) + int(n)
        for key, n in (row["latency_buckets"] or {}).items():
            self.buckets[key] = self.buckets.get(key, 0) + int(n)
        self.conflicts += row["conflicts"]
        self.shadow_compared += row["shadow_compared"]
        self.shadow_mismatches += row["shadow_mismatches"]

    def summary(self) -> SideSummary:
        if self.count == 0 and not self.shadow_compared and not self.conflicts:
            return EMPTY_SIDE
        errors = sum(self.errors.values())
        return SideSummary(
            count=self.count,
            errors=errors,
            errors_by_type=dict(sorted(self.errors.items())),
            error_rate=errors / self.count if self.count else None,
            p50_ms=_rounded(percentile_ms(self.buckets, 0.50)),
            p95_ms=_rounded(percentile_ms(self.buckets, 0.95)),
            conflicts=self.conflicts,
            shadow_compared=self.shadow_compared,
            shadow_mismatches=self.shadow_mismatches,
        )


def summarize(stage: str, *, since: datetime, until: datetime | None = None,
              tenant_ids: Sequence[str] | None = None, policy_ids: Sequence[str] | None = None) -> EvidenceSummary:
    """Sum the evidence of ``stage`` in windows starting at or after ``since`` and before ``until``.

    ``tenant_ids`` and ``policy_ids`` restrict the rows read; None means all of them. One query.
    """
    overall = {PARALLEL: _Totals(), SEQUENTIAL: _Totals()}
    tenants: dict[str, dict[str, _Totals]] = {}
    policies: dict[str, dict[str, _Totals]] = {}
    for row in _rows(stage, since, until, tenant_ids, policy_ids):
        mode = row["execution_mode"]
        if mode not in overall:
            continue
        overall[mode].add(row)
        _side(tenants, row["tenant_id"], mode).add(row)
        _side(policies, row["policy_id"], mode).add(row)

    parallel, sequential = overall[PARALLEL].summary(), overall[SEQUENTIAL].summary()
    return EvidenceSummary(
        stage=stage, since=since, until=until, parallel=parallel, sequential=sequential,
        latency_reduction=latency_reduction(parallel, sequential),
        by_tenant=_pairs(tenants), by_policy=_pairs(policies),
    )


def evidence_series(stage: str, *, since: datetime, until: datetime, bucket_s: int,
                    tenant_ids: Sequence[str] | None = None) -> list[SeriesPoint]:
    """Return per-tenant, per-mode points every ``bucket_s`` seconds from ``since`` to ``until``.

    Only buckets with executions get a point; points are ordered by time, tenant and mode.
    """
    if bucket_s < 1:
        raise ValueError(f"bucket_s must be at least 1 second, got {bucket_s}.")
    buckets: dict[tuple[datetime, str, str], _Totals] = {}
    for row in _rows(stage, since, until, tenant_ids, None):
        offset = int((row["window_start"] - since).total_seconds()) // bucket_s * bucket_s
        key = (since + timedelta(seconds=offset), row["tenant_id"], row["execution_mode"])
        totals = buckets.get(key)
        if totals is None:
            totals = buckets[key] = _Totals()
        totals.add(row)

    points = []
    for (start, tenant_id, mode), totals in sorted(buckets.items()):
        side = totals.summary()
        if side.count:
            points.append(SeriesPoint(start, tenant_id, mode, side.count, side.error_rate, side.p50_ms, side.p95_ms))
    return points


def latency_reduction(parallel: SideSummary, sequential: SideSummary) -> float | None:
    """Return ``1 - parallel p50 / sequential p50``, or None when either p50 is missing or zero."""
    if parallel.p50_ms is None or not sequential.p50_ms:
        return None
    return round(1.0 - parallel.p50_ms / sequential.p50_ms, 4)


def _rows(stage: str, since: datetime, until: datetime | None, tenant_ids: Sequence[str] | None,
          policy_ids: Sequence[str] | None) -> Iterable[dict[str, Any]]:
    rows = EvidenceWindow.objects.filter(stage=stage, window_start__gte=since)
    if until is not None:
        rows = rows.filter(window_start__lt=until)
    if tenant_ids is not None:
        rows = rows.filter(tenant_id__in=list(tenant_ids))
    if policy_ids is not None:
        rows = rows.filter(policy_id__in=list(policy_ids))
    return rows.order_by().values(*_FIELDS).iterator(chunk_size=2000)


def _side(groups: dict[str, dict[str, _Totals]], key: str, mode: str) -> _Totals:
    sides = groups.get(key)
    if sides is None:
        sides = groups[key] = {PARALLEL: _Totals(), SEQUENTIAL: _Totals()}
    return sides[mode]


def _pairs(groups: dict[str, dict[str, _Totals]]) -> dict[str, tuple[SideSummary, SideSummary]]:
    return {key: (sides[PARALLEL].summary(), sides[SEQUENTIAL].summary()) for key, sides in sorted(groups.items())}


def _pair_dict(pair: tuple[SideSummary, SideSummary]) -> dict[str, Any]:
    parallel, sequential = pair
    return {"parallel": parallel.as_dict(), "sequential": sequential.as_dict(),
            "latency_reduction": latency_reduction(parallel, sequential)}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


__all__ = ["BUCKET_KEYS", "EMPTY_SIDE", "EvidenceSummary", "SeriesPoint", "SideSummary", "evidence_series",
           "latency_reduction", "summarize"]
