"""A real Prometheus server scrapes a running executor during traffic and returns its series through the query API."""
import asyncio
import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from executor.core.flags import EnvironmentFlagSource
from executor.nats_server import free_port
from executor.process import ExecutorProcess
from tests.conftest import DEMO_FLAGS
from tests.executor.test_console_integration import execute_over_nats, execution_request
from tests.telemetry.promtool import PROMETHEUS, needs_prometheus

pytestmark = [
    pytest.mark.django_db(transaction=True),
    needs_prometheus,
    pytest.mark.usefixtures("close_sync_thread_connections"),
]

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"
READY_TIMEOUT_S = 30.0
SERIES_TIMEOUT_S = 30.0
# Other tests in the same process may have run other policies through the same metrics.
COUNT = 'router_extension_parallel_group_duration_seconds_count{policy_id="policy-parallel-demo", stage="pre"}'
P95 = "histogram_quantile(0.95, sum by (le) (rate(router_extension_parallel_group_duration_seconds_bucket[1m])))"


def get_json(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def answers(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture
async def metered_executor(nats_server, demo_registry, reference_extensions, settings):
    settings.NATS_URL = nats_server.url
    process = ExecutorProcess(nats_server.url, EnvironmentFlagSource(DEMO_FLAGS), max_in_flight=64,
                              poll_interval_s=60.0, metrics_port=free_port())
    async with process:
        yield process


@pytest.fixture
def prometheus(tmp_path, metered_executor):
    """Debian's Prometheus on a free port of 127.0.0.1, scraping the executor every second."""
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{
            "job_name": "executor",
            "static_configs": [{"targets": [f"127.0.0.1:{metered_executor.metrics_server.port}"]}],
        }],
    }
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    log = open(tmp_path / "prometheus.log", "wb")
    server = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config_path}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not answers(base_url + "/-/ready"):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail("Prometheus did not become ready:\n" + (tmp_path / "prometheus.log").read_text()[-2000:])
            time.sleep(0.1)
        yield base_url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)
        log.close()


def total(series):
    return sum(float(sample["value"][1]) for sample in series)


async def query(base_url, expr):
    url = f"{base_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    body = await asyncio.to_thread(get_json, url)
    assert body["status"] == "success", body
    return body["data"]["result"]


async def test_prometheus_reads_back_parallel_group_latency_after_traffic(prometheus, metered_executor, nats_client):
    # Traffic until two scrapes have seen groups, so that rate() has two samples to work on.
    series, p95 = [], []
    deadline = time.monotonic() + SERIES_TIMEOUT_S
    while time.monotonic() < deadline:
        for _ in range(5):
            reply = await execute_over_nats(nats_client, execution_request())
            assert reply["status"] == "ok"
        series = await query(prometheus, COUNT)
        p95 = await query(prometheus, P95)
        if total(series) >= 10 and p95:
            break
        await asyncio.sleep(0.5)

    assert series, "Prometheus never saw router_extension_parallel_group_duration_seconds"
    assert {sample["metric"]["job"] for sample in series} == {"executor"}
    assert all(len(sample["metric"]["group_id"]) == 12 for sample in series)
    assert total(series) >= 10

    buckets = await query(prometheus, "router_extension_parallel_group_duration_seconds_bucket")
    assert {bucket["metric"]["le"] for bucket in buckets} >= {"0.001", "10.0", "+Inf"}
    modes = await query(prometheus, "sum by (execution_mode) (router_extension_invocations_total)")
    assert {item["metric"]["execution_mode"] for item in modes} == {"parallel", "sequential"}
    assert p95, "rate() over the histogram found no two scrapes with groups"
    assert 0.0 < float(p95[0]["value"][1]) < 10.0

    # The same server loaded the alert rules and evaluates them without errors.
    body = await asyncio.to_thread(get_json, prometheus + "/api/v1/rules")

    rules = [rule for group in body["data"]["groups"] for rule in group["rules"]]
    assert {rule["name"] for rule in rules} == {
        "ExtensionParallelExecutionHighErrorRate",
        "ExtensionParallelExecutionLatencyDegradation",
        "ExtensionParallelExecutionAutomaticRollback",
    }
    assert {rule["health"] for rule in rules} <= {"ok", "unknown"}
