"""The automatic rollback triggers as a table of cases, on hand-made summaries."""
import pytest

from rollout import triggers
from rollout.evidence import SideSummary
from rollout.triggers import FAIL, NOT_ENOUGH_DATA, PASS, Thresholds

THRESHOLDS = Thresholds(min_samples=100, min_shadow_comparisons=10, error_rate_tolerance_pct=10.0,
                        p95_tolerance_pct=20.0, target_latency_reduction_pct=50.0)


def side(count=1000, errors=0, p50=50.0, p95=100.0, conflicts=0, compared=20, mismatches=0):
    return SideSummary(count, errors, {"timeout": errors} if errors else {}, errors / count if count else None,
                       p50 if count else None, p95 if count else None, conflicts, compared, mismatches)


ERROR_RATE_CASES = [
    # (id, parallel, sequential, expected result)
    ("no sequential data", side(errors=5), side(count=0), NOT_ENOUGH_DATA),
    ("no parallel data", side(count=0), side(errors=5), NOT_ENOUGH_DATA),
    ("too few parallel", side(count=99, errors=50), side(), NOT_ENOUGH_DATA),
    ("too few sequential", side(), side(count=99), NOT_ENOUGH_DATA),
    ("zero baseline, zero errors", side(), side(), PASS),
    ("zero baseline, one error", side(errors=1), side(), FAIL),
    ("same rate", side(errors=100), side(errors=100), PASS),
    ("exactly 10 % above", side(errors=110), side(errors=100), PASS),
    ("just over 10 % above", side(errors=111), side(errors=100), FAIL),
    ("exactly 10 % above, odd counts", side(count=2000, errors=220), side(count=1000, errors=100), PASS),
    ("lower than sequential", side(errors=50), side(errors=100), PASS),
]


@pytest.mark.parametrize("parallel, sequential, expected", [case[1:] for case in ERROR_RATE_CASES],
                         ids=[case[0] for case in ERROR_RATE_CASES])
def test_error_rate_rule(parallel, sequential, expected):
    result = triggers.error_rate(parallel, sequential, THRESHOLDS)

    assert result.result == expected
    assert result.trigger == triggers.ERROR_RATE


def test_error_rate_reports_figures():
    result = triggers.error_rate(side(errors=200), side(errors=100), THRESHOLDS)

    assert result.value == pytest.approx(0.2)
    assert result.baseline == pytest.approx(0.1)
    assert result.threshold == pytest.approx(0.11)


def test_error_rate_zero_baseline_threshold_is_zero():
    result = triggers.error_rate(side(errors=1), side(), THRESHOLDS)

    assert result.baseline == 0.0
    assert result.threshold == 0.0
    assert result.value == pytest.approx(0.001)


P95_CASES = [
    ("no sequential data", side(p95=500.0), side(count=0), NOT_ENOUGH_DATA),
    ("too few samples", side(count=10, p95=500.0), side(count=10), NOT_ENOUGH_DATA),
    ("faster than sequential", side(p95=40.0), side(p95=100.0), PASS),
    ("exactly 20 % above", side(p95=120.0), side(p95=100.0), PASS),
    ("just over 20 % above", side(p95=120.001), side(p95=100.0), FAIL),
    ("exactly 20 % above, fractional", side(p95=3.6), side(p95=3.0), PASS),
    ("far above", side(p95=400.0), side(p95=100.0), FAIL),
]


@pytest.mark.parametrize("parallel, sequential, expected", [case[1:] for case in P95_CASES],
                         ids=[case[0] for case in P95_CASES])
def test_p95_rule(parallel, sequential, expected):
    result = triggers.p95_latency(parallel, sequential, THRESHOLDS)

    assert result.result == expected


def test_p95_reports_figures():
    result = triggers.p95_latency(side(p95=300.0), side(p95=100.0), THRESHOLDS)

    assert (result.value, result.baseline, result.threshold) == (300.0, 100.0, 120.0)


RACE_CASES = [
    ("no parallel data", side(count=0, compared=0), NOT_ENOUGH_DATA),
    ("one conflict with few samples", side(count=3, conflicts=1), FAIL),
    ("one shadow mismatch", side(mismatches=1), FAIL),
    ("enough samples and no conflict", side(), PASS),
    ("too few samples and no conflict", side(count=99), NOT_ENOUGH_DATA),
]


@pytest.mark.parametrize("parallel, expected", [case[1:] for case in RACE_CASES], ids=[case[0] for case in RACE_CASES])
def test_race_condition_rule(parallel, expected):
    assert triggers.race_condition(parallel, THRESHOLDS).result == expected


FUNCTIONAL_CASES = [
    ("no shadow comparisons", side(compared=0), NOT_ENOUGH_DATA),
    ("too few comparisons", side(compared=9), NOT_ENOUGH_DATA),
    ("enough matching comparisons", side(compared=10), PASS),
    ("one mismatch among few", side(compared=2, mismatches=1), FAIL),
]


@pytest.mark.parametrize("parallel, expected", [case[1:] for case in FUNCTIONAL_CASES],
                         ids=[case[0] for case in FUNCTIONAL_CASES])
def test_functional_regression_rule(parallel, expected):
    assert triggers.functional_regression(parallel, THRESHOLDS).result == expected


LATENCY_REDUCTION_CASES = [
    ("half the time", side(p50=50.0), side(p50=100.0), PASS),
    ("a third less", side(p50=66.0), side(p50=100.0), FAIL),
    ("no sequential data", side(p50=50.0), side(count=0), NOT_ENOUGH_DATA),
]


@pytest.mark.parametrize("parallel, sequential, expected", [case[1:] for case in LATENCY_REDUCTION_CASES],
                         ids=[case[0] for case in LATENCY_REDUCTION_CASES])
def test_latency_reduction_criterion(parallel, sequential, expected):
    assert triggers.latency_reduction(parallel, sequential, THRESHOLDS).result == expected


def test_evaluate_returns_four_triggers_in_order():
    results = triggers.evaluate(side(), side(), THRESHOLDS)

    assert [result.trigger for result in results] == list(triggers.TRIGGER_NAMES)
    assert {result.result for result in results} == {PASS}


def test_thresholds_come_from_settings(settings):
    settings.ROLLOUT_MIN_SAMPLES = 7
    settings.ROLLOUT_ERROR_RATE_TOLERANCE_PCT = 25.0

    thresholds = Thresholds.from_settings()

    assert thresholds.min_samples == 7
    assert thresholds.error_rate_tolerance_pct == 25.0
