"""The console's /metrics under several worker processes: prometheus_client's multiprocess mode."""
import os
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
REQUESTS_PER_WORKER = 3

# One "worker": a process that serves requests through the console's middleware.
WORKER = f"""
import django
django.setup()
from django.test import Client
client = Client(HTTP_HOST="127.0.0.1")
for _ in range({REQUESTS_PER_WORKER}):
    client.get("/no-such-page/")
"""
SCRAPE = """
import django
django.setup()
from django.test import Client
print(Client(HTTP_HOST="127.0.0.1").get("/metrics").content.decode())
"""


def run(code, environment):
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def get_requests(text):
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "django_http_requests_total_by_method_total" and sample.labels["method"] == "GET":
                total += sample.value
    return total


def test_metrics_add_up_the_requests_of_every_worker(tmp_path):
    multiproc_dir = tmp_path / "prometheus"
    multiproc_dir.mkdir()
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir),
        "BEAMLINE_VAR_DIR": str(tmp_path / "var"),
    }
    environment.pop("DATABASE_URL", None)

    for _ in range(2):
        run(WORKER, environment)
    text = run(SCRAPE, environment)

    # Both workers' requests, plus the scrape's own request counted before it answers.
    assert get_requests(text) >= 2 * REQUESTS_PER_WORKER
    assert len(list(multiproc_dir.glob("counter_*.db"))) >= 2
