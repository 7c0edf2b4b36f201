"""The rollout's Celery tasks: the periodic evaluation (beat) and the verification of a rollback."""
from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from rollout import rollback
from rollout.models import RolloutEvent

logger = logging.getLogger("rollout.tasks")


@shared_task(name="rollout.tasks.evaluate_rollouts", ignore_result=True)
def evaluate_rollouts() -> list[int]:
    """Evaluate every open rollout's triggers and roll back where one fails; return the rollback event ids."""
    return [event.pk for event in rollback.evaluate_open_rollouts()]


@shared_task(name="rollout.tasks.verify_rollback", bind=True, ignore_result=True)
def verify_rollback(task, event_id: int, attempt: int = 1) -> str:
    """Verify rollback ``event_id``; with too few executions yet, try again later, up to the configured attempts."""
    final = attempt >= settings.ROLLOUT_VERIFICATION_ATTEMPTS
    result = rollback.verify_rollback(event_id, final=final)
    if result == RolloutEvent.Verification.PENDING:
        logger.info("Verification of rollback %s: not enough executions yet, attempt %s", event_id, attempt)
        task.apply_async((event_id, attempt + 1), countdown=settings.ROLLOUT_VERIFICATION_DELAY_S)
    return result
