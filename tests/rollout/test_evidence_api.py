"""The evidence API: the summary's shape, the window parameter, mismatches and auth."""
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from rollout.models import EvidenceWindow, ShadowMismatch

pytestmark = pytest.mark.django_db

EVIDENCE = "/api/v1/evidence"
MISMATCHES = "/api/v1/evidence/mismatches"


def window(mode, *, age=timedelta(minutes=1), tenant="acme", count=100, buckets=None, errors=None):
    EvidenceWindow.objects.create(
        window_start=timezone.now() - age, window_seconds=10, tenant_id=tenant, policy_id="acme-default",
        stage="pre", execution_mode=mode, count=count, error_counts=errors or {}, latency_buckets=buckets or {},
        latency_sum_ms=0.0, conflicts=0, shadow_compared=0, shadow_mismatches=0,
    )


def test_evidence_compares_parallel_with_sequential(read_client):
    window("parallel", buckets={"20": 100}, errors={"timeout": 1})
    window("sequential", buckets={"50": 100})
    window("parallel", age=timedelta(hours=2), buckets={"1": 100})

    body = read_client.get(EVIDENCE, {"stage": "pre", "window": "15m"}).json()

    assert (body["stage"], body["window_seconds"]) == ("pre", 900)
    assert body["parallel"]["count"] == 100
    assert body["parallel"]["error_rate"] == pytest.approx(0.01)
    assert body["parallel"]["p50_ms"] == pytest.approx(17.5)
    assert body["sequential"]["p95_ms"] == pytest.approx(49.5)
    assert body["latency_reduction"] == pytest.approx(1 - 17.5 / 45.0, abs=1e-4)
    assert set(body["parallel"]) == {"count", "errors", "errors_by_type", "error_rate", "p50_ms", "p95_ms",
                                     "conflicts", "shadow_compared", "shadow_mismatches"}
    assert body["by_tenant"]["acme"]["parallel"]["count"] == 100


def test_evidence_without_data_shows_nulls(read_client):
    body = read_client.get(EVIDENCE, {"stage": "post", "window": "1h"}).json()

    assert body["parallel"]["count"] == 0
    assert body["parallel"]["error_rate"] is None
    assert body["latency_reduction"] is None


def test_evidence_filters_by_tenant(read_client):
    window("parallel", tenant="acme")
    window("parallel", tenant="globex", count=7)

    body = read_client.get(EVIDENCE, {"stage": "pre", "tenant_id": "globex"}).json()

    assert body["parallel"]["count"] == 7


@pytest.mark.parametrize("query", [
    {"stage": "pre", "window": "15"},
    {"stage": "pre", "window": "tenminutes"},
    {"stage": "pre", "window": "0m"},
    {"stage": "pre", "window": "400d"},
    {"stage": "middle"},
    {},
])
def test_bad_query_is_a_400_naming_the_parameter(read_client, query):
    response = read_client.get(EVIDENCE, query)

    assert response.status_code == 400
    [detail] = response.json()["error"]["details"]
    assert detail["field"] in {"window", "stage"}


def test_mismatches_are_listed_newest_first(read_client):
    ShadowMismatch.objects.create(tenant_id="acme", policy_id="p1", stage="pre", group_id="g1", trace_id="t1",
                                  members=["a", "b"], diff=[{"path": "metadata.k", "parallel": "1",
                                                             "sequential": "2"}], truncated=False)
    ShadowMismatch.objects.create(tenant_id="globex", policy_id="p2", stage="pre", group_id="g2", trace_id="t2",
                                  members=["c", "d"], diff=[], truncated=True)

    everything = read_client.get(MISMATCHES).json()
    acme = read_client.get(MISMATCHES, {"tenant_id": "acme"}).json()

    assert [entry["trace_id"] for entry in everything] == ["t2", "t1"]
    assert acme[0]["diff"] == [{"path": "metadata.k", "parallel": "1", "sequential": "2"}]
    assert acme[0]["members"] == ["a", "b"]


def test_evidence_needs_credentials():
    anonymous = APIClient()

    assert anonymous.get(EVIDENCE, {"stage": "pre"}).status_code in (401, 403)
    assert anonymous.get(MISMATCHES).status_code in (401, 403)
