"""The automatic rollback triggers, evaluated on an evidence summary of parallel against sequential.

Each trigger returns ``pass``, ``fail`` or ``not_enough_data`` with its figures. The rules:

- ``error_rate``: fails when the parallel error rate is more than 10 % above the sequential
  one, that is ``parallel_rate > sequential_rate * 1.10``. The comparison is exact (integers),
  so a rate of exactly 10 % above passes. Against a sequential rate of zero the threshold is
  zero, so any parallel error fails.
- ``p95_latency``: fails when the parallel p95 is more than 20 % above the sequential p95,
  ``parallel_p95 > sequential_p95 * 1.20``; exactly 20 % above passes.
- ``race_condition``: fails on any conflicting write in a parallel group or any shadow mismatch.
- ``functional_regression``: fails on any shadow mismatch.

The error-rate and latency triggers need ``ROLLOUT_MIN_SAMPLES`` executions on each side. The
race-condition trigger fails on the first conflict whatever the sample size but passes only
after ``ROLLOUT_MIN_SAMPLES`` parallel executions. The functional-regression trigger passes
only after ``ROLLOUT_MIN_SHADOW_COMPARISONS`` shadow comparisons. The tolerances are the
settings ``ROLLOUT_ERROR_RATE_TOLERANCE_PCT`` (10) and ``ROLLOUT_P95_TOLERANCE_PCT`` (20).
Not enough data is neither healthy nor failing: it passes no phase and rolls nothing back.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any, Protocol

from django.conf import settings

PASS = "pass"
FAIL = "fail"
NOT_ENOUGH_DATA = "not_enough_data"

ERROR_RATE = "error_rate"
P95_LATENCY = "p95_latency"
RACE_CONDITION = "race_condition"
FUNCTIONAL_REGRESSION = "functional_regression"
TRIGGER_NAMES = (ERROR_RATE, P95_LATENCY, RACE_CONDITION, FUNCTIONAL_REGRESSION)

LATENCY_REDUCTION = "latency_reduction"


class Side(Protocol):
    """The figures of one execution mode that the triggers read (``rollout.evidence.SideSummary``)."""

    # Read-only properties, so that frozen dataclasses such as SideSummary satisfy the protocol.
    @property
    def count(self) -> int: ...
    @property
    def errors(self) -> int: ...
    @property
    def p50_ms(self) -> float | None: ...
    @property
    def p95_ms(self) -> float | None: ...
    @property
    def conflicts(self) -> int: ...
    @property
    def shadow_compared(self) -> int: ...
    @property
    def shadow_mismatches(self) -> int: ...


@dataclass(frozen=True)
class Thresholds:
    """The minimum sample sizes and tolerances the triggers apply."""

    min_samples: int = 100
    min_shadow_comparisons: int = 10
    error_rate_tolerance_pct: float = 10.0
    p95_tolerance_pct: float = 20.0
    target_latency_reduction_pct: float = 50.0

    @classmethod
    def from_settings(cls) -> Thresholds:
        return cls(
            min_samples=settings.ROLLOUT_MIN_SAMPLES,
            min_shadow_comparisons=settings.ROLLOUT_MIN_SHADOW_COMPARISONS,
            error_rate_tolerance_pct=settings.ROLLOUT_ERROR_RATE_TOLERANCE_PCT,
            p95_tolerance_pct=settings.ROLLOUT_P95_TOLERANCE_PCT,
            target_latency_reduction_pct=settings.ROLLOUT_TARGET_LATENCY_REDUCTION_PCT,
        )


@dataclass(frozen=True)
class TriggerResult:
    """One trigger's outcome: ``result`` is pass, fail or not_enough_data; figures may be None."""

    trigger: str
    result: str
    value: float | None
    baseline: float | None
    threshold: float | None
    message: str

    @property
    def failed(self) -> bool:
        return self.result == FAIL

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(parallel: Side, sequential: Side, thresholds: Thresholds | None = None) -> list[TriggerResult]:
    """Evaluate the four triggers on ``parallel`` against ``sequential``, in ``TRIGGER_NAMES`` order."""
    thresholds = thresholds or Thresholds.from_settings()
    return [
        error_rate(parallel, sequential, thresholds),
        p95_latency(parallel, sequential, thresholds),
        race_condition(parallel, thresholds),
        functional_regression(parallel, thresholds),
    ]


def error_rate(parallel: Side, sequential: Side, thresholds: Thresholds) -> TriggerResult:
    """Fail when the parallel error rate is more than the tolerance above the sequential rate."""
    tolerance = 1 + _fraction(thresholds.error_rate_tolerance_pct) / 100
    baseline = _rate(sequential)
    value = _rate(parallel)
    threshold = None if baseline is None else float(Fraction(sequential.errors, sequential.count) * tolerance)
    shortfall = _shortfall(parallel, sequential, thresholds.min_samples)
    if shortfall:
        return TriggerResult(ERROR_RATE, NOT_ENOUGH_DATA, value, baseline, threshold, shortfall)

    # errors_p / count_p > errors_s / count_s * tolerance, without rounding.
    failed = Fraction(parallel.errors, parallel.count) > Fraction(sequential.errors, sequential.count) * tolerance
    verb = "is more than" if failed else "is within"
    message = (
        f"Parallel error rate {value:.2%} {verb} {thresholds.error_rate_tolerance_pct:g} % above "
        f"the sequential {baseline:.2%} (threshold {threshold:.2%})."
    )
    return TriggerResult(ERROR_RATE, FAIL if failed else PASS, value, baseline, threshold, message)


def p95_latency(parallel: Side, sequential: Side, thresholds: Thresholds) -> TriggerResult:
    """Fail when the parallel p95 latency is more than the tolerance above the sequential p95."""
    tolerance = 1 + _fraction(thresholds.p95_tolerance_pct) / 100
    value, baseline = parallel.p95_ms, sequential.p95_ms
    threshold = None if baseline is None else float(_fraction(baseline) * tolerance)
    shortfall = _shortfall(parallel, sequential, thresholds.min_samples)
    if not shortfall and (value is None or baseline is None):
        shortfall = "No latency figures on one side."
    if shortfall:
        return TriggerResult(P95_LATENCY, NOT_ENOUGH_DATA, value, baseline, threshold, shortfall)

    # Compared as the decimals they print as, so 3.6 ms against 3.0 ms is exactly 20 % above.
    failed = _fraction(value) > _fraction(baseline) * tolerance
    verb = "is more than" if failed else "is within"
    message = (
        f"Parallel p95 {value:.1f} ms {verb} {thresholds.p95_tolerance_pct:g} % above the sequential "
        f"{baseline:.1f} ms (threshold {threshold:.1f} ms)."
    )
    return TriggerResult(P95_LATENCY, FAIL if failed else PASS, value, baseline, threshold, message)


def race_condition(parallel: Side, thresholds: Thresholds) -> TriggerResult:
    """Fail on any conflicting write in a parallel group or any shadow mismatch."""
    value = float(parallel.conflicts + parallel.shadow_mismatches)
    if value > 0:
        message = (
            f"{parallel.conflicts} conflicting writes in parallel groups and "
            f"{parallel.shadow_mismatches} shadow mismatches."
        )
        return TriggerResult(RACE_CONDITION, FAIL, value, 0.0, 0.0, message)
    if parallel.count < thresholds.min_samples:
        message = f"{parallel.count} parallel executions; at least {thresholds.min_samples} are needed."
        return TriggerResult(RACE_CONDITION, NOT_ENOUGH_DATA, value, 0.0, 0.0, message)
    return TriggerResult(RACE_CONDITION, PASS, value, 0.0, 0.0, f"No conflicts in {parallel.count} parallel executions.")


def functional_regression(parallel: Side, thresholds: Thresholds) -> TriggerResult:
    """Fail on any shadow mismatch: a parallel result that differed from the sequential one."""
    value = float(parallel.shadow_mismatches)
    if value > 0:
        message = f"{parallel.shadow_mismatches} of {parallel.shadow_compared} shadow comparisons differed."
        return TriggerResult(FUNCTIONAL_REGRESSION, FAIL, value, 0.0, 0.0, message)
    if parallel.shadow_compared < thresholds.min_shadow_comparisons:
        message = (
            f"{parallel.shadow_compared} shadow comparisons; at least "
            f"{thresholds.min_shadow_comparisons} are needed."
        )
        return TriggerResult(FUNCTIONAL_REGRESSION, NOT_ENOUGH_DATA, value, 0.0, 0.0, message)
    message = f"All {parallel.shadow_compared} shadow comparisons matched."
    return TriggerResult(FUNCTIONAL_REGRESSION, PASS, value, 0.0, 0.0, message)


def latency_reduction(parallel: Side, sequential: Side, thresholds: Thresholds) -> TriggerResult:
    """Pass when the parallel p50 is at least the target percentage below the sequential p50.

    This is a phase's success criterion, not a rollback trigger.
    """
    target = thresholds.target_latency_reduction_pct
    shortfall = _shortfall(parallel, sequential, thresholds.min_samples)
    if not shortfall and (parallel.p50_ms is None or not sequential.p50_ms):
        shortfall = "No latency figures on one side."
    if shortfall:
        return TriggerResult(LATENCY_REDUCTION, NOT_ENOUGH_DATA, None, None, target, shortfall)

    reduction = (1 - parallel.p50_ms / sequential.p50_ms) * 100
    passed = reduction >= target
    message = f"The parallel p50 is {reduction:.0f} % below the sequential p50; the target is {target:g} %."
    return TriggerResult(LATENCY_REDUCTION, PASS if passed else FAIL, reduction, 0.0, target, message)


def _shortfall(parallel: Side, sequential: Side, min_samples: int) -> str:
    if parallel.count == 0:
        return "No parallel executions yet."
    if sequential.count == 0:
        return "No sequential executions to compare with."
    if parallel.count < min_samples or sequential.count < min_samples:
        return (
            f"{parallel.count} parallel and {sequential.count} sequential executions; "
            f"at least {min_samples} on each side are needed."
        )
    return ""


def _rate(side: Side) -> float | None:
    return side.errors / side.count if side.count else None


def _fraction(number: float) -> Fraction:
    # Through str, so that 10.1 is 101/10 and not its binary neighbour.
    return Fraction(str(number))
