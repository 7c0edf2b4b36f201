"""The alert rules, checked and unit-tested by promtool."""
import subprocess
from pathlib import Path

import yaml

from tests.telemetry.promtool import PROMTOOL, needs_promtool

RULES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
EXPECTED_ALERTS = {
    "ExtensionParallelExecutionHighErrorRate",
    "ExtensionParallelExecutionLatencyDegradation",
    "ExtensionParallelExecutionAutomaticRollback",
}


def promtool(*args):
    return subprocess.run([PROMTOOL, *args], cwd=RULES_DIR, capture_output=True, text=True, timeout=60)


def test_rules_file_has_the_alerts():
    rules = yaml.safe_load((RULES_DIR / "alerts.yml").read_text())

    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}

    assert alerts == EXPECTED_ALERTS


def test_every_alert_has_unit_tests_that_fire():
    tests = yaml.safe_load((RULES_DIR / "alerts_test.yml").read_text())["tests"]

    fired = {
        case["alertname"]
        for test in tests for case in test["alert_rule_test"] if case["exp_alerts"]
    }

    assert fired == EXPECTED_ALERTS


@needs_promtool
def test_promtool_checks_the_rules():
    result = promtool("check", "rules", "alerts.yml")

    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_unit_tests_pass():
    result = promtool("test", "rules", "alerts_test.yml")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
