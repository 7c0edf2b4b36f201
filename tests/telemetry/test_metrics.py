"""The executor's Prometheus metrics: the router's names and labels, buckets and bounded labels."""
from prometheus_client import disable_created_metrics, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from executor.core.flags import ParallelFlags
from executor.telemetry.metrics import DURATION_BUCKETS
from tests.telemetry.helpers import TRACE_ID, observed_runner, parallel_world, pre_request

# The metric families and labels the router's dashboards and alerts are written against.
ROUTER_METRICS = {
    "router_extension_parallel_group_total": {"stage", "group_id", "policy_id"},
    "router_extension_parallel_group_duration_seconds": {"stage", "group_id", "policy_id"},
    "router_extension_parallel_group_size": {"stage", "group_id", "policy_id"},
    "router_extension_parallel_execution_errors_total": {"stage", "group_id", "policy_id", "error_type"},
}
OWN_METRICS = {
    "router_extension_sequential_group_duration_seconds": {"stage", "group_id", "policy_id"},
    "router_extension_invocations_total": {"stage", "extension_id", "execution_mode", "status"},
    "router_extension_invocation_duration_seconds": {"stage", "extension_id", "execution_mode"},
    "router_extension_merge_conflicts_total": {"stage", "group_id", "policy_id", "section"},
}
SUFFIXES = ("_bucket", "_sum", "_count")


def exposed(registry):
    """Return ``{family name as scraped: set of label names}`` and every sample.

    The executor's metrics endpoint turns the ``_created`` series off; so does this.
    """
    disable_created_metrics()
    text = generate_latest(registry).decode()
    names = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    labels = {name: set() for name in names}
    samples = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.append(sample)
            owner = next((name for name in names if sample.name == name), None)
            if owner is None:
                owner = next(name for name in names if any(sample.name == name + suffix for suffix in SUFFIXES))
            labels[owner] |= set(sample.labels) - {"le"}
    return labels, samples


async def run_parallel_and_sequential():
    transport, state = parallel_world(slow_timeout_ms=50)
    runner, registry = observed_runner(transport)
    await runner.execute(state, pre_request(trace_id=TRACE_ID))
    sequential = type(state)(state.revision, state.extensions, state.policies, ParallelFlags())
    await runner.execute(sequential, pre_request(trace_id=TRACE_ID))
    return registry


async def test_exposed_names_and_labels_are_the_routers():
    registry = await run_parallel_and_sequential()

    labels, _ = exposed(registry)

    assert labels == {**ROUTER_METRICS, **OWN_METRICS}


async def test_invocations_carry_execution_mode_and_status():
    registry = await run_parallel_and_sequential()

    _, samples = exposed(registry)

    invocations = {
        (s.labels["extension_id"], s.labels["execution_mode"], s.labels["status"]): s.value
        for s in samples if s.name == "router_extension_invocations_total"
    }
    assert invocations == {
        ("a", "parallel", "ok"): 1.0, ("b", "parallel", "ok"): 1.0, ("c", "parallel", "failed"): 1.0,
        ("a", "sequential", "ok"): 1.0, ("b", "sequential", "ok"): 1.0, ("c", "sequential", "failed"): 1.0,
    }


async def test_group_size_errors_and_conflicts_are_counted():
    registry = await run_parallel_and_sequential()

    _, samples = exposed(registry)
    by_name = {}
    for sample in samples:
        by_name.setdefault(sample.name, []).append(sample)

    assert [s.value for s in by_name["router_extension_parallel_group_size"]] == [3.0]
    assert [s.value for s in by_name["router_extension_parallel_group_total"]] == [1.0]
    errors = by_name["router_extension_parallel_execution_errors_total"]
    assert [(s.labels["error_type"], s.value) for s in errors] == [("timeout", 1.0)]
    conflicts = by_name["router_extension_merge_conflicts_total"]
    assert [(s.labels["section"], s.value) for s in conflicts] == [("payload", 1.0)]
    sequential_counts = [s.value for s in by_name["router_extension_sequential_group_duration_seconds_count"]]
    assert sorted(sequential_counts) == [1.0, 1.0, 1.0]


async def test_buckets_resolve_one_millisecond_to_ten_seconds():
    registry = await run_parallel_and_sequential()

    _, samples = exposed(registry)
    bounds = sorted({
        float(s.labels["le"]) for s in samples
        if s.name == "router_extension_parallel_group_duration_seconds_bucket"
    })

    assert bounds[0] == 0.001
    assert bounds[-2] == 10.0
    assert bounds[-1] == float("inf")
    assert tuple(bounds[:-1]) == DURATION_BUCKETS
    # No gap between neighbouring buckets is wider than a factor of 2.5.
    assert all(high / low <= 2.5 for low, high in zip(bounds[:-2], bounds[1:-1]))


async def test_label_values_are_bounded():
    registry = await run_parallel_and_sequential()

    _, samples = exposed(registry)
    values = {value for sample in samples for value in sample.labels.values()}

    assert TRACE_ID not in values
    assert "t1" not in values  # tenant ids are not labels
    assert all(len(value) <= 64 for value in values)
