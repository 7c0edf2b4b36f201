"""The rollout dashboard in headless Chromium, with evidence from a real traffic run.

The traffic runs through the executor and the reference extensions on the session's NATS
server: a canary tenant in phase 3 runs in parallel, the baseline tenant sequentially, and
halfway through ops staff roll the canary back by hand. The screenshot is saved as
``rollout-dashboard.png`` next to the author pages' screenshots.
"""
import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import nats
import pytest
from django.contrib.auth.models import Permission, User
from django.db import connections

from executor.extensions.registry import select_extensions
from executor.extensions.service import serve_reference_extensions, stop_servers
from executor.flag_source import DatabaseFlagSource
from executor.process import ExecutorProcess
from rollout import rollouts
from rollout.models import FlagChange, RolloutEvent
from rollout.services import Actor
from tests.authors.test_browser import PASSWORD, browser, screenshots, shoot, sign_in_to_admin  # noqa: F401 - fixtures
from tests.conftest import demo_message, execute_over_nats, wait_for_revision

# No serialized rollback: earlier transactional tests may have flushed the groups the data
# migrations create, so the test makes the ops user itself.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

OPS = Actor("olga", FlagChange.Through.ADMIN)
CANARY, BASELINE = "tenant-parallel", "tenant-sequential"
POLICIES = {CANARY: "policy-parallel-demo", BASELINE: "policy-sequential-demo"}
TRAFFIC_S = 6.0


async def run_traffic(nats_url, rollout, revision):
    client = await nats.connect(nats_url)
    pool = ThreadPoolExecutor(max_workers=4)
    servers = await serve_reference_extensions(client, select_extensions(None), pool, max_concurrency=16)
    process = ExecutorProcess(nats_url, DatabaseFlagSource(environ={}), max_in_flight=16, poll_interval_s=0.5,
                              evidence_flush_s=0.5, shadow_sample_rate=0.0)
    # One-second windows, so a few seconds of traffic draw several points.
    process.evidence.window_s = 1
    try:
        async with process:
            assert await wait_for_revision(process, revision, timeout_s=10.0)
            started = time.monotonic()
            rolled_back = False
            number = 0
            while time.monotonic() - started < TRAFFIC_S:
                for tenant_id, policy_id in POLICIES.items():
                    number += 1
                    await _execute(client, tenant_id, policy_id, number)
                if not rolled_back and time.monotonic() - started > TRAFFIC_S / 2:
                    await asyncio.get_running_loop().run_in_executor(None, _roll_back_canary, rollout)
                    rolled_back = True
                await asyncio.sleep(0.02)
    finally:
        await stop_servers(servers)
        await client.close()
        pool.shutdown()


def _roll_back_canary(rollout):
    try:
        rollouts.rollback(rollout, scope="tenant", scope_id=CANARY, actor=OPS, reason="Customer complaint.")
    finally:
        connections.close_all()


async def _execute(nats_client, tenant_id, policy_id, number):
    request = {"tenant_id": tenant_id, "policy_id": policy_id, "payload": demo_message(number)}
    return await execute_over_nats(nats_client, request)


def test_dashboard_shows_charts_of_traffic_run(browser, live_server, screenshots, nats_server, demo_registry,  # noqa: F811
                                               monkeypatch):
    monkeypatch.setattr(rollouts, "_schedule_verification", lambda event_id: None)
    make_ops_user("olga")
    rollout = rollouts.start_rollout("pre", internal_tenants=["tenant-internal"], canary_tenants=[CANARY],
                                     canary_steps=[1], actor=OPS)
    for reason in ("Tests passed on the release candidate.", "Internal tenant ran clean for a week."):
        rollout = rollouts.advance_phase(rollout, actor=OPS, override_reason=reason)
    revision = FlagChange.objects.order_by("-revision").first().revision

    errors = []
    thread = threading.Thread(target=lambda: _run_in_thread(nats_server.url, rollout, revision, errors))
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert errors == []
    assert RolloutEvent.objects.filter(kind="rollback").exists()

    page = sign_in_to_admin(browser, live_server, "olga")
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(f"{live_server.url}/admin/rollout/rollout/dashboard/")

    assert "Canary rollout" in page.locator("#timeline-phase-3").inner_text()
    charts = page.locator(f"#charts-{CANARY} svg.rollout-chart")
    assert charts.count() == 2
    assert page.locator(f"#charts-{CANARY} polyline.series-parallel-p95_ms").count() == 1
    assert page.locator(f"#charts-{CANARY} polyline.series-sequential-p95_ms").count() == 1
    assert page.locator(f"#charts-{BASELINE} polyline.series-sequential-p95_ms").count() == 1
    assert page.locator("line.marker-rollback").count() >= 2
    assert CANARY in page.locator("#rollbacks").inner_text()
    shoot(page, screenshots, "rollout-dashboard")


def make_ops_user(username):
    user = User.objects.create_user(username, password=PASSWORD, is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="rollout",
                                                         codename__in=["view_rollout", "view_rolloutevent"]))
    return user


def _run_in_thread(nats_url, rollout, revision, errors):
    try:
        asyncio.run(run_traffic(nats_url, rollout, revision))
    except Exception as error:  # noqa: BLE001 - reported by the test's assertion
        errors.append(error)
    finally:
        connections.close_all()
