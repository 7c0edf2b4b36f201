"""The executor's evidence aggregator: windows, modes, errors, histograms and percentiles."""
import pytest

from executor.core.evidence import BUCKET_KEYS, EvidenceAggregator, percentile_ms


class FakeClock:
    def __init__(self, now=1_000.0):
        self.now = now

    def __call__(self):
        return self.now


def member(id_, status="ok", error_type=None):
    record = {"id": id_, "status": status, "attempts": 1, "latency_ms": 1.0}
    if error_type:
        record["error_type"] = error_type
    return record


def group(mode, *members, conflicts=0):
    record = {"group_id": "g", "execution_mode": mode, "dependency_level": 0, "latency_ms": 1.0,
              "members": list(members)}
    if conflicts:
        record["conflicts"] = [{"section": "metadata", "key": "k", "overridden": "a", "winner": "b"}] * conflicts
    return record


def reply(*stages, tenant="acme", policy="acme-default"):
    return {"status": "ok", "execution": {"tenant_id": tenant, "policy_id": policy, "mode": "parallel",
                                          "stages": list(stages)}}


def stage(name, latency_ms, *groups):
    return {"stage": name, "latency_ms": latency_ms, "groups": list(groups)}


def test_parallel_group_makes_stage_parallel():
    clock = FakeClock(1_003.0)
    aggregator = EvidenceAggregator(window_s=10, clock=clock)

    aggregator.record_reply(reply(stage("pre", 12.5, group("sequential", member("a")),
                                        group("parallel", member("b"), member("c"), conflicts=2))))
    aggregator.record_reply(reply(stage("pre", 3.0, group("sequential", member("a")))))
    records = {record.execution_mode: record for record in aggregator.drain(now=1_010.0)}

    parallel, sequential = records["parallel"], records["sequential"]
    assert (parallel.window_start, parallel.window_seconds, parallel.stage) == (1_000.0, 10, "pre")
    assert (parallel.count, parallel.conflicts, parallel.latency_buckets) == (1, 2, {"15": 1})
    assert (sequential.count, sequential.conflicts, sequential.latency_buckets) == (1, 0, {"3": 1})
    assert parallel.latency_sum_ms == 12.5


def test_failed_member_and_skipped_stages():
    aggregator = EvidenceAggregator(window_s=10, clock=FakeClock())

    aggregator.record_reply(reply(
        stage("pre", 40.0, group("parallel", member("a", "failed", "timeout"), member("b", "cancelled"))),
        stage("validators", 0.0, group("sequential", member("v", "skipped"))),
        stage("post", 0.0),
    ))
    records = aggregator.drain(include_open=True)

    assert len(records) == 1
    assert records[0].stage == "pre"
    assert records[0].error_counts == {"timeout": 1}


def test_reply_without_execution_ignored():
    aggregator = EvidenceAggregator(clock=FakeClock())

    aggregator.record_reply({"status": "failed", "execution": None})

    assert len(aggregator) == 0


def test_drain_returns_closed_windows():
    clock = FakeClock(1_005.0)
    aggregator = EvidenceAggregator(window_s=10, clock=clock)
    aggregator.record_reply(reply(stage("pre", 1.0, group("sequential", member("a")))))
    clock.now = 1_012.0
    aggregator.record_reply(reply(stage("pre", 1.0, group("sequential", member("a")))))

    closed = aggregator.drain()
    still_open = aggregator.drain(include_open=True)

    assert [record.window_start for record in closed] == [1_000.0]
    assert [record.window_start for record in still_open] == [1_010.0]
    assert len(aggregator) == 0


def test_windows_split_by_tenant_policy():
    aggregator = EvidenceAggregator(clock=FakeClock())
    for tenant, policy in (("acme", "p1"), ("acme", "p2"), ("globex", "p1"), ("acme", "p1")):
        aggregator.record_reply(reply(stage("pre", 1.0, group("sequential", member("a"))), tenant=tenant, policy=policy))

    counts = {(r.tenant_id, r.policy_id): r.count for r in aggregator.drain(include_open=True)}

    assert counts == {("acme", "p1"): 2, ("acme", "p2"): 1, ("globex", "p1"): 1}


def test_shadow_counts_on_parallel_side():
    aggregator = EvidenceAggregator(clock=FakeClock())

    aggregator.record_shadow("acme", "p1", "pre", matched=True)
    aggregator.record_shadow("acme", "p1", "pre", matched=False)
    [record] = aggregator.drain(include_open=True)

    assert (record.execution_mode, record.count, record.shadow_compared, record.shadow_mismatches) == (
        "parallel", 0, 2, 1)


@pytest.mark.parametrize(("latency_ms", "bucket"), [
    (0.0, "1"), (1.0, "1"), (1.01, "2"), (33.0, "40"), (9_999.0, "10000"), (10_000.0, "10000"), (60_000.0, "inf"),
])
def test_latency_bucket_by_upper_bound(latency_ms, bucket):
    aggregator = EvidenceAggregator(clock=FakeClock())

    aggregator.record_reply(reply(stage("pre", latency_ms, group("sequential", member("a")))))

    assert aggregator.drain(include_open=True)[0].latency_buckets == {bucket: 1}


def test_percentile_interpolates_in_bucket():
    # 100 values: 50 in (10, 12] and 50 in (25, 30].
    buckets = {"12": 50, "30": 50}

    assert percentile_ms(buckets, 0.5) == pytest.approx(12.0)
    assert percentile_ms(buckets, 0.25) == pytest.approx(11.0)
    assert percentile_ms(buckets, 0.95) == pytest.approx(29.5)


def test_percentile_empty_and_overflow():
    assert percentile_ms({}, 0.5) is None
    assert percentile_ms({"inf": 3}, 0.95) == 10_000.0
    assert BUCKET_KEYS[0] == "1"
    assert BUCKET_KEYS[-1] == "inf"


def test_record_reply_takes_microseconds():
    import time
    aggregator = EvidenceAggregator(clock=FakeClock())
    sample = reply(stage("pre", 20.0, group("parallel", member("a"), member("b"), member("c"))),
                   stage("validators", 2.0, group("sequential", member("v"))),
                   stage("post", 5.0, group("sequential", member("p"))))

    started = time.perf_counter()
    for _ in range(10_000):
        aggregator.record_reply(sample)
    per_reply_us = (time.perf_counter() - started) / 10_000 * 1e6

    assert per_reply_us < 50
