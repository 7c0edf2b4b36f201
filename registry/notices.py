"""Change notices: after a change to the registry or the flags commits, tell every executor.

Executors reload their snapshot when a notice arrives and poll the revision as a fallback,
so a notice that is lost delays a reload by one poll interval and no more.
"""
from __future__ import annotations

import json
import logging

from django.conf import settings

logger = logging.getLogger("registry.notices")

CHANGE_NOTICE_SUBJECT = "beamline.console.v1.changed"


def publish_change_notice(revision: int) -> None:
    """Publish ``revision`` on the change-notice subject; call it from ``transaction.on_commit``.

    A failure is logged and not raised: the change is already committed, and executors
    will find the new revision by polling.
    """
    if not settings.NATS_URL:
        return

    from beamline_console.nats_bridge import get_bridge

    notice = json.dumps({"revision": revision}).encode()
    try:
        get_bridge().publish(CHANGE_NOTICE_SUBJECT, notice)
    except Exception as error:  # noqa: BLE001 - any failure here must not undo a committed change
        logger.warning(
            "Could not publish the change notice for revision %s; executors will pick it up by polling: %s",
            revision,
            error,
        )
