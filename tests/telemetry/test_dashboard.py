"""The Grafana dashboard: every query uses metrics the executor exposes, and parses in Prometheus."""
import json
import re
import subprocess
from pathlib import Path

import yaml

from executor.telemetry.metrics import EXPOSED
from tests.telemetry.promtool import PROMTOOL, needs_promtool

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "extension-parallel-execution.json"
# Exposed by the rollout feature; the alert rules use it too.
ROLLBACK_METRIC = "beamline_rollout_automatic_rollbacks_total"
METRIC_NAME = re.compile(r"\b(?:router|beamline)_[a-z0-9_]+")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def load_dashboard():
    return json.loads(DASHBOARD.read_text())


def panel_queries(dashboard):
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel["targets"]]


def family_of(name):
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in EXPOSED:
            return name[: -len(suffix)]
    return name


def test_every_query_uses_only_exposed_metrics():
    known = set(EXPOSED) | {ROLLBACK_METRIC}

    used = {family_of(name) for _, expr in panel_queries(load_dashboard()) for name in METRIC_NAME.findall(expr)}

    assert used <= known, used - known


def test_dashboard_shows_latency_errors_sizes_and_conflicts():
    queries = " ".join(expr for _, expr in panel_queries(load_dashboard()))

    for quantile in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}, sum by (le) (rate(router_extension_parallel_group_duration" in queries
        assert f"histogram_quantile({quantile}, sum by (le) (rate(router_extension_sequential_group_duration" in queries
    assert "sum by (error_type) (rate(router_extension_parallel_execution_errors_total" in queries
    assert "router_extension_parallel_group_size" in queries
    assert "router_extension_merge_conflicts_total" in queries


def test_panels_have_unique_ids_and_a_query_each():
    panels = load_dashboard()["panels"]

    assert len({panel["id"] for panel in panels}) == len(panels)
    assert all(panel["targets"] for panel in panels)


@needs_promtool
def test_every_query_parses_in_prometheus(tmp_path):
    # Grafana's variables replaced by values Prometheus accepts, each query as a recording rule.
    replacements = {"$__rate_interval": "5m", "$__range": "1h", "$stage": ".*", "$policy_id": ".*"}
    rules = []
    for index, (_, expr) in enumerate(panel_queries(load_dashboard())):
        for variable, value in replacements.items():
            expr = expr.replace(variable, value)
        rules.append({"record": f"dashboard:query_{index}", "expr": expr})
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))

    result = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stdout + result.stderr
