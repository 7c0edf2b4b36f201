"""The executor's Prometheus metrics, with the names and labels the router's dashboards use.

Every label value is bounded: stages, group ids (a hash of a group's extension ids), policy
ids, extension ids, statuses, execution modes and error types all come from the registry or
from fixed lists. Trace ids, tenant ids and messages never become labels.
"""
from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

# 1 ms to 10 s, about three buckets a decade.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

GROUP_LABELS = ("stage", "group_id", "policy_id")
INVOCATION_LABELS = ("stage", "extension_id", "execution_mode", "status")
INVOCATION_DURATION_LABELS = ("stage", "extension_id", "execution_mode")
CONFLICT_LABELS = ("stage", "group_id", "policy_id", "section")

# Every metric family the executor exposes, as a scrape shows it, with its labels.
EXPOSED = {
    "router_extension_parallel_group_total": GROUP_LABELS,
    "router_extension_parallel_group_duration_seconds": GROUP_LABELS,
    "router_extension_parallel_group_size": GROUP_LABELS,
    "router_extension_parallel_execution_errors_total": (*GROUP_LABELS, "error_type"),
    "router_extension_sequential_group_duration_seconds": GROUP_LABELS,
    "router_extension_invocations_total": INVOCATION_LABELS,
    "router_extension_invocation_duration_seconds": INVOCATION_DURATION_LABELS,
    "router_extension_merge_conflicts_total": CONFLICT_LABELS,
}


class ExecutorMetrics:
    """The metric families, registered once on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        # prometheus_client adds ``_total`` to a counter's name itself, so counters are
        # declared without it and scrape as the names above.
        self.parallel_groups = Counter(
            "router_extension_parallel_group", "Parallel groups run.", GROUP_LABELS, registry=registry)
        self.parallel_group_duration = Histogram(
            "router_extension_parallel_group_duration_seconds",
            "Latency of a parallel group, from its first call to its merged result.",
            GROUP_LABELS, buckets=DURATION_BUCKETS, registry=registry)
        self.parallel_group_size = Gauge(
            "router_extension_parallel_group_size", "Members of a parallel group.",
            GROUP_LABELS, registry=registry, multiprocess_mode="max")
        self.parallel_errors = Counter(
            "router_extension_parallel_execution_errors",
            "Failed member calls in parallel groups, by error type.",
            (*GROUP_LABELS, "error_type"), registry=registry)
        self.sequential_group_duration = Histogram(
            "router_extension_sequential_group_duration_seconds",
            "Latency of a sequential step, the baseline parallel groups are compared with.",
            GROUP_LABELS, buckets=DURATION_BUCKETS, registry=registry)
        self.invocations = Counter(
            "router_extension_invocations", "Extension calls, retries included in one call.",
            INVOCATION_LABELS, registry=registry)
        self.invocation_duration = Histogram(
            "router_extension_invocation_duration_seconds", "Latency of one extension call with its retries.",
            INVOCATION_DURATION_LABELS, buckets=DURATION_BUCKETS, registry=registry)
        self.merge_conflicts = Counter(
            "router_extension_merge_conflicts",
            "Keys that two members of a parallel group both changed; the later-declared member wins.",
            CONFLICT_LABELS, registry=registry)


_DEFAULT: ExecutorMetrics | None = None


def default_metrics() -> ExecutorMetrics:
    """Return the metrics on prometheus_client's default registry, registering them on first use."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = ExecutorMetrics(REGISTRY)
    return _DEFAULT
