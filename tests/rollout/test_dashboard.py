"""The rollout dashboard: the phase timeline and the per-tenant SVG charts with rollbacks marked."""
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from rollout import rollback, rollouts
from rollout.dashboard import line_chart
from rollout.evidence import SeriesPoint

from .rollout_seed import CANARIES, seed_healthy, seed_window, start, walk_to_phase

pytestmark = pytest.mark.django_db


@pytest.fixture
def ops_client(client):
    user = User.objects.create_user("olga", password="a-long-test-password", is_staff=True)
    user.groups.add(Group.objects.get(name="Ops staff"))
    client.force_login(user)
    return client


@pytest.fixture(autouse=True)
def no_verification_task(monkeypatch):
    monkeypatch.setattr(rollouts, "_schedule_verification", lambda event_id: None)


def test_dashboard_shows_timeline_charts_and_rollback(ops_client):
    rollout = walk_to_phase(start(), 3)
    now = timezone.now()
    seed_healthy(CANARIES[0], start=now)
    seed_window(CANARIES[1], "parallel", 200, errors=40, latency_ms=25, compared=20, start=now)
    rollback.evaluate_rollout(rollout.pk)

    page = ops_client.get(f"/admin/rollout/rollout/{rollout.pk}/dashboard/").content.decode()

    assert 'id="timeline-phase-3"' in page
    assert "Canary rollout" in page
    assert f'id="charts-{CANARIES[0]}"' in page
    assert f'id="charts-{CANARIES[1]}"' in page
    assert page.count('class="rollout-chart"') == 6  # latency and errors for three tenants
    assert "series-parallel-p95_ms" in page
    assert "series-sequential-p95_ms" in page
    assert "marker-rollback" in page
    assert f"rollback error_rate {CANARIES[1]}" in page


def test_dashboard_without_evidence_says_so(ops_client):
    rollout = start()

    page = ops_client.get(f"/admin/rollout/rollout/{rollout.pk}/dashboard/").content.decode()

    assert 'id="no-evidence"' in page


def test_latest_dashboard_redirects_to_open_rollout(ops_client):
    rollout = start()

    response = ops_client.get("/admin/rollout/rollout/dashboard/")

    assert response["Location"] == f"/admin/rollout/rollout/{rollout.pk}/dashboard/"


def test_line_chart_scales_points_into_the_frame():
    since = timezone.now()
    points = [
        SeriesPoint(since, "t", "parallel", 10, 0.0, 20.0, 40.0),
        SeriesPoint(since + timedelta(seconds=50), "t", "parallel", 10, 0.5, 30.0, 90.0),
        SeriesPoint(since + timedelta(seconds=50), "t", "sequential", 10, 0.0, 60.0, 100.0),
    ]

    svg = line_chart(points, ("p95_ms",), since, since + timedelta(seconds=100), [], unit="ms")

    assert svg.startswith("<svg")
    # 40 ms and 90 ms on a 0-100 ms axis 158 px high, at 0 s and 50 s of 100 s over 572 px.
    assert 'points="56.0,108.8 342.0,29.8"' in svg
    assert ">100 ms<" in svg


def test_line_chart_escapes_marker_labels():
    from rollout.dashboard import Marker

    since = timezone.now()
    svg = line_chart([], ("error_rate",), since, since + timedelta(seconds=10),
                     [Marker(since, "rollback <b>", "rollback")], unit="%")

    assert "&lt;b&gt;" in svg
    assert "<b>" not in svg
