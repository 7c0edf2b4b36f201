"""Concurrent rollout actions on PostgreSQL: two advances make one; abort and rollback wait and win."""
import threading
import time

import pytest
from django.db import connection, connections, transaction

from rollout import rollouts
from rollout.models import Rollout
from rollout.rollouts import RolloutConflict

from .rollout_seed import OPS_ACTOR, start, walk_to_phase

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql",
                       reason="SQLite locks the whole database, so it has no row locks to race for."),
]


@pytest.fixture(autouse=True)
def no_verification_task(monkeypatch):
    monkeypatch.setattr(rollouts, "_schedule_verification", lambda event_id: None)


def in_thread(function, results, barrier):
    def run():
        try:
            barrier.wait(timeout=5)
            results.append(function())
        except Exception as error:  # noqa: BLE001 - the test asserts on what each thread raised
            results.append(error)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_two_advances_at_once_make_one():
    rollout = walk_to_phase(start(), 2)
    results: list = []
    barrier = threading.Barrier(2)

    def advance():
        return rollouts.advance_phase(rollout, actor=OPS_ACTOR, override_reason="Both at once.", expected_phase=2)

    threads = [in_thread(advance, results, barrier) for _ in range(2)]
    for thread in threads:
        thread.join(timeout=10)

    conflicts = [result for result in results if isinstance(result, RolloutConflict)]
    advanced = [result for result in results if isinstance(result, Rollout)]
    assert len(advanced) == 1
    assert len(conflicts) == 1
    assert conflicts[0].code in ("rollout_busy", "phase_changed")
    assert Rollout.objects.get().current_phase == 3


def hold_rollout_lock(rollout_id, locked, seconds):
    def run():
        try:
            with transaction.atomic():
                Rollout.objects.select_for_update().get(pk=rollout_id)
                locked.set()
                time.sleep(seconds)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_advance_while_locked_is_conflict():
    rollout = walk_to_phase(start(), 2)
    locked = threading.Event()
    holder = hold_rollout_lock(rollout.pk, locked, 0.5)
    assert locked.wait(timeout=5)

    with pytest.raises(RolloutConflict) as raised:
        rollouts.advance_phase(rollout, actor=OPS_ACTOR, override_reason="Too late.")
    holder.join(timeout=5)

    assert raised.value.code == "rollout_busy"


def test_rollback_waits_for_lock_and_wins():
    rollout = walk_to_phase(start(), 3)
    locked = threading.Event()
    holder = hold_rollout_lock(rollout.pk, locked, 0.3)
    assert locked.wait(timeout=5)

    event = rollouts.rollback(rollout, scope="all", actor=OPS_ACTOR, reason="Incident.")
    holder.join(timeout=5)

    assert event.kind == "rollback"
    assert Rollout.objects.get().state == Rollout.State.ROLLED_BACK
    with pytest.raises(RolloutConflict):
        rollouts.advance_phase(rollout, actor=OPS_ACTOR, override_reason="After the rollback.")
