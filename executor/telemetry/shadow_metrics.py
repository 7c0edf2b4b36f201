"""The shadow comparer's counts as a Prometheus counter, read at scrape time.

``router_extension_shadow_comparisons_total{outcome}`` with ``outcome`` one of ``match``,
``mismatch``, ``failed`` (a member failed in the sequential re-run, so nothing was compared)
and ``skipped`` (every comparison slot was busy). Reading the comparer's own counters when
Prometheus scrapes keeps the request path free of metric updates.
"""
from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from executor.core.shadow import ShadowComparer

SHADOW_COMPARISONS = "router_extension_shadow_comparisons"


class ShadowComparisonCollector(Collector):
    """Exposes one ``ShadowComparer``'s counts; register it once per executor process."""

    def __init__(self, comparer: ShadowComparer) -> None:
        self._comparer = comparer

    def collect(self) -> Iterator[CounterMetricFamily]:
        comparer = self._comparer
        family = CounterMetricFamily(
            SHADOW_COMPARISONS,
            "Sampled parallel groups re-run one member after another and compared, by outcome.",
            labels=["outcome"],
        )
        family.add_metric(["match"], comparer.compared - comparer.mismatched)
        family.add_metric(["mismatch"], comparer.mismatched)
        family.add_metric(["failed"], comparer.failed)
        family.add_metric(["skipped"], comparer.skipped)
        yield family


def register_shadow_metrics(comparer: ShadowComparer,
                            registry: CollectorRegistry = REGISTRY) -> ShadowComparisonCollector:
    """Register a collector for ``comparer`` on ``registry`` and return it, for unregistering at stop."""
    collector = ShadowComparisonCollector(comparer)
    registry.register(collector)
    return collector
