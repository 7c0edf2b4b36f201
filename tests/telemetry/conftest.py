"""Fixtures of the telemetry tests."""
import pytest


@pytest.fixture
def fail_missing_prometheus():
    """Fails a test that needs promtool or prometheus where CI requires them."""
    pytest.fail("REQUIRE_PROMETHEUS_TESTS is set but promtool or prometheus is not installed")
