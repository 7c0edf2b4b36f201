"""The rollout's Prometheus metrics, on prometheus_client's default registry.

The automatic rollback runs in the Celery worker, so the counter lives in the worker's
process: give the worker and the console the same ``PROMETHEUS_MULTIPROC_DIR`` to see it on
the console's /metrics (docs/OBSERVABILITY.md).
"""
from prometheus_client import Counter

AUTOMATIC_ROLLBACKS = Counter(
    "beamline_rollout_automatic_rollbacks",
    "Automatic rollbacks of parallel execution, by scope (all, tenant, policy) and the trigger that fired.",
    ["scope", "reason"],
)
