"""Evidence: stage outcomes counted per short time window, for comparing parallel with sequential.

The executor feeds every pipeline reply to an ``EvidenceAggregator``. Each stage that ran is
counted in the window of its tenant, policy, stage and execution mode; the mode is ``parallel``
when any group of the stage ran in parallel. The window gets one more execution, an error keyed
by the type of the first failed member, the stage latency in a fixed histogram, and the merge
conflicts. Shadow
comparisons are counted in the same windows. Recording is a few dictionary updates, cheap enough
for the request path; writing the windows out is the adapter's job, through ``drain``.
"""
from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

PARALLEL = "parallel"
SEQUENTIAL = "sequential"

LATENCY_BOUNDS_MS: tuple[float, ...] = (
    1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100, 120, 150, 200, 250, 300,
    400, 500, 600, 800, 1000, 1250, 1500, 2000, 2500, 3000, 4000, 5000, 6000, 8000, 10000,
)
"""Upper bounds (inclusive, in ms) of the latency histogram's buckets; one more bucket holds the rest."""

OVERFLOW_BUCKET = "inf"
"""The key of the bucket above the last bound."""

BUCKET_KEYS: tuple[str, ...] = tuple(f"{bound:g}" for bound in LATENCY_BOUNDS_MS) + (OVERFLOW_BUCKET,)
"""Bucket keys as stored: each bound written as a number (``"1"``, ``"1250"``), then ``"inf"``."""

UNKNOWN_ERROR = "unknown"

_FAILED = "failed"
_SKIPPED = "skipped"


@dataclass
class _Counts:
    count: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    buckets: list[int] = field(default_factory=lambda: [0] * len(BUCKET_KEYS))
    latency_sum_ms: float = 0.0
    conflicts: int = 0
    shadow_compared: int = 0
    shadow_mismatches: int = 0


@dataclass(frozen=True)
class EvidenceRecord:
    """One window's figures for one tenant, policy, stage and execution mode.

    ``window_start`` is in seconds since the epoch. ``latency_buckets`` holds only the buckets
    with a count, keyed as in ``BUCKET_KEYS``. ``shadow_compared`` counts every comparison made,
    ``shadow_mismatches`` the ones that differed.
    """

    window_start: float
    window_seconds: int
    tenant_id: str
    policy_id: str
    stage: str
    execution_mode: str
    count: int
    error_counts: dict[str, int]
    latency_buckets: dict[str, int]
    latency_sum_ms: float
    conflicts: int
    shadow_compared: int
    shadow_mismatches: int


_Key = tuple[float, str, str, str, str]


class EvidenceAggregator:
    """Counts stage outcomes per window; not thread-safe, so use it from the event loop only.

    ``clock`` returns seconds since the epoch (``time.time`` by default); a window is closed
    once the clock has passed its end.
    """

    def __init__(self, window_s: int = 10, clock: Callable[[], float] = time.time) -> None:
        if window_s < 1:
            raise ValueError(f"window_s must be at least 1 second, got {window_s}.")
        self.window_s = window_s
        self._clock = clock
        self._windows: dict[_Key, _Counts] = {}

    def __len__(self) -> int:
        """The number of windows (of any tenant, policy, stage and mode) held now."""
        return len(self._windows)

    def record_reply(self, reply: Mapping[str, Any]) -> None:
        """Count the stages of one pipeline reply; a reply without ``execution`` is ignored."""
        execution = reply.get("execution")
        if not execution:
            return
        start = self._window_start()
        tenant_id = execution.get("tenant_id") or ""
        policy_id = execution.get("policy_id") or ""
        for stage in execution.get("stages") or ():
            self._record_stage(start, tenant_id, policy_id, stage)

    def record_shadow(self, tenant_id: str, policy_id: str, stage: str, *, matched: bool) -> None:
        """Count one shadow comparison of a parallel ``stage``; ``matched`` is False for a mismatch."""
        counts = self._counts((self._window_start(), tenant_id, policy_id, stage, PARALLEL))
        counts.shadow_compared += 1
        if not matched:
            counts.shadow_mismatches += 1

    def drain(self, now: float | None = None, include_open: bool = False) -> list[EvidenceRecord]:
        """Remove and return the windows closed at ``now`` (the clock's time by default).

        ``include_open`` returns the windows still open as well, as the executor does on stop.
        """
        if now is None:
            now = self._clock()
        closed = [key for key in self._windows if include_open or key[0] + self.window_s <= now]
        return [self._record(key, self._windows.pop(key)) for key in closed]

    def _window_start(self) -> float:
        now = self._clock()
        return float(int(now // self.window_s) * self.window_s)

    def _counts(self, key: _Key) -> _Counts:
        counts = self._windows.get(key)
        if counts is None:
            counts = self._windows[key] = _Counts()
        return counts

    def _record_stage(self, start: float, tenant_id: str, policy_id: str, stage: Mapping[str, Any]) -> None:
        mode = None
        error_type = None
        conflicts = 0
        for group in stage.get("groups") or ():
            members = group.get("members") or ()
            if not members or members[0].get("status") == _SKIPPED:
                continue
            if mode is not PARALLEL:
                mode = PARALLEL if group.get("execution_mode") == PARALLEL else SEQUENTIAL
            if error_type is None:
                error_type = _first_error_type(members)
            conflicts += len(group.get("conflicts") or ())
        if mode is None:
            return

        counts = self._counts((start, tenant_id, policy_id, stage.get("stage") or "", mode))
        counts.count += 1
        latency_ms = float(stage.get("latency_ms") or 0.0)
        counts.buckets[bisect_left(LATENCY_BOUNDS_MS, latency_ms)] += 1
        counts.latency_sum_ms += latency_ms
        counts.conflicts += conflicts
        if error_type is not None:
            counts.errors[error_type] = counts.errors.get(error_type, 0) + 1

    def _record(self, key: _Key, counts: _Counts) -> EvidenceRecord:
        start, tenant_id, policy_id, stage, mode = key
        buckets = {BUCKET_KEYS[index]: n for index, n in enumerate(counts.buckets) if n}
        return EvidenceRecord(
            start, self.window_s, tenant_id, policy_id, stage, mode, counts.count, dict(counts.errors),
            buckets, round(counts.latency_sum_ms, 3), counts.conflicts, counts.shadow_compared,
            counts.shadow_mismatches,
        )


def _first_error_type(members: Any) -> str | None:
    for member in members:
        if member.get("status") == _FAILED:
            return member.get("error_type") or UNKNOWN_ERROR
    return None


def bucket_lower_bound(key: str) -> float:
    """Return the lower bound (exclusive, in ms) of the bucket stored under ``key``."""
    index = BUCKET_KEYS.index(key)
    return 0.0 if index == 0 else float(LATENCY_BOUNDS_MS[index - 1])


def percentile_ms(buckets: Mapping[str, int], quantile: float) -> float | None:
    """Estimate a latency percentile from summed histogram buckets; None when they are empty.

    The estimate interpolates linearly inside the bucket that holds the rank, so it is exact
    only up to the bucket's width. A rank in the overflow bucket returns the last bound.
    Keys that are not in ``BUCKET_KEYS`` are ignored.
    """
    counts = [int(buckets.get(key, 0) or 0) for key in BUCKET_KEYS]
    total = sum(counts)
    if total <= 0:
        return None

    rank = quantile * total
    seen = 0
    for index, n in enumerate(counts):
        if n and seen + n >= rank:
            if index == len(LATENCY_BOUNDS_MS):
                return float(LATENCY_BOUNDS_MS[-1])
            lower = 0.0 if index == 0 else float(LATENCY_BOUNDS_MS[index - 1])
            upper = float(LATENCY_BOUNDS_MS[index])
            return lower + (upper - lower) * max(rank - seen, 0.0) / n
        seen += n
    return float(LATENCY_BOUNDS_MS[-1])
