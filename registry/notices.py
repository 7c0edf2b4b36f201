"""Change notices: after a change to the registry or the flags commits, tell every executor.

Executors reload their snapshot when a notice arrives and poll the revision as a fallback,
so a notice that is lost delays a reload by one poll interval and no more.
"""
from __future__ import annotations

CHANGE_NOTICE_SUBJECT = "beamline.console.v1.changed"


def publish_change_notice(revision: int) -> None:
    """Publish ``revision`` on the change-notice subject; call it from ``transaction.on_commit``."""
    # NOTE: not wired to NATS yet; executors pick changes up by polling the revision.
    return None
