"""Summing recorded evidence: parallel against sequential, per tenant and policy, and over time."""
from datetime import UTC, datetime, timedelta

import pytest

from rollout.evidence import EMPTY_SIDE, evidence_series, summarize
from rollout.models import EvidenceWindow

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def window(mode, *, at=T0, tenant="acme", policy="acme-default", stage="pre", count=100, errors=None,
           buckets=None, conflicts=0, compared=0, mismatches=0):
    return EvidenceWindow.objects.create(
        window_start=at, window_seconds=10, tenant_id=tenant, policy_id=policy, stage=stage, execution_mode=mode,
        count=count, error_counts=errors or {}, latency_buckets=buckets or {}, latency_sum_ms=0.0,
        conflicts=conflicts, shadow_compared=compared, shadow_mismatches=mismatches,
    )


def test_no_data_gives_none_never_zero():
    summary = summarize("pre", since=T0)

    assert summary.parallel == EMPTY_SIDE
    assert summary.parallel.error_rate is None
    assert summary.parallel.p95_ms is None
    assert summary.latency_reduction is None
    assert summary.by_tenant == {}


def test_one_side_only_leaves_other_empty():
    window("parallel", count=10, buckets={"20": 10})

    summary = summarize("pre", since=T0)

    assert summary.parallel.count == 10
    assert summary.parallel.error_rate == 0.0
    assert summary.sequential.count == 0
    assert summary.sequential.p50_ms is None
    assert summary.latency_reduction is None


def test_several_executors_rows_summed():
    window("parallel", count=50, errors={"timeout": 1}, buckets={"12": 50}, conflicts=1, compared=5)
    window("parallel", count=50, errors={"timeout": 2, "bad_reply": 1}, buckets={"30": 50}, mismatches=1, compared=5)
    window("sequential", count=100, errors={"timeout": 1}, buckets={"60": 100})

    summary = summarize("pre", since=T0)

    parallel = summary.parallel
    assert (parallel.count, parallel.errors, parallel.errors_by_type) == (100, 4, {"bad_reply": 1, "timeout": 3})
    assert parallel.error_rate == pytest.approx(0.04)
    assert parallel.p50_ms == pytest.approx(12.0)
    assert parallel.p95_ms == pytest.approx(29.5)
    assert (parallel.conflicts, parallel.shadow_compared, parallel.shadow_mismatches) == (1, 10, 1)
    assert summary.sequential.p50_ms == pytest.approx(55.0)
    assert summary.latency_reduction == pytest.approx(1 - 12.0 / 55.0, abs=1e-4)


def test_filters_and_splits_by_tenant_policy():
    window("parallel", tenant="acme", policy="p1", count=10, buckets={"10": 10})
    window("sequential", tenant="globex", policy="p2", count=20, buckets={"20": 20})
    window("parallel", stage="post", count=99)
    window("parallel", at=T0 - timedelta(minutes=1), count=99)
    window("parallel", at=T0 + timedelta(minutes=5), count=99)

    summary = summarize("pre", since=T0, until=T0 + timedelta(minutes=5))
    acme_only = summarize("pre", since=T0, until=T0 + timedelta(minutes=5), tenant_ids=["acme"])
    p2_only = summarize("pre", since=T0, until=T0 + timedelta(minutes=5), policy_ids=["p2"])

    assert (summary.parallel.count, summary.sequential.count) == (10, 20)
    assert set(summary.by_tenant) == {"acme", "globex"}
    acme_parallel, acme_sequential = summary.by_tenant["acme"]
    assert acme_parallel.count == 10
    assert acme_sequential == EMPTY_SIDE
    assert summary.by_policy["p2"][1].count == 20
    assert (acme_only.parallel.count, acme_only.sequential.count) == (10, 0)
    assert (p2_only.parallel.count, p2_only.sequential.count) == (0, 20)


def test_summary_reads_in_one_query(django_assert_num_queries):
    for minute in range(30):
        window("parallel", at=T0 + timedelta(minutes=minute), buckets={"10": 100})

    with django_assert_num_queries(1):
        summary = summarize("pre", since=T0)

    assert summary.parallel.count == 3000


def test_series_points_per_bucket_and_mode():
    window("parallel", at=T0, count=10, errors={"timeout": 1}, buckets={"10": 10})
    window("parallel", at=T0 + timedelta(seconds=30), count=10, buckets={"10": 10})
    window("sequential", at=T0 + timedelta(seconds=70), tenant="globex", count=5, buckets={"40": 5})

    points = evidence_series("pre", since=T0, until=T0 + timedelta(minutes=5), bucket_s=60)

    assert [(p.bucket_start, p.tenant_id, p.execution_mode, p.count) for p in points] == [
        (T0, "acme", "parallel", 20),
        (T0 + timedelta(seconds=60), "globex", "sequential", 5),
    ]
    assert points[0].error_rate == pytest.approx(0.05)
    assert points[1].p50_ms == pytest.approx(35.0)
