"""The registry revision: one counter that every change to the registry increments.

Executors keep a snapshot of the registry and poll this number to learn that it changed, so
every service that writes registry data calls ``bump_revision`` in the same transaction.
"""
from __future__ import annotations

from django.db import transaction
from django.db.models import F

from registry import notices
from registry.models import RegistryRevision

REVISION_ROW_ID = 1


def bump_revision() -> int:
    """Increment the revision in the current transaction and return the new value.

    The change notice for the new value is sent after the outermost transaction commits,
    and not at all when it rolls back.
    """
    with transaction.atomic():
        # On PostgreSQL the row lock makes concurrent writers queue here until the holder
        # commits. SQLite ignores select_for_update, but its single write lock serializes the
        # UPDATE, and incrementing in SQL rather than in Python keeps the count right there too.
        RegistryRevision.objects.select_for_update().get_or_create(pk=REVISION_ROW_ID)
        RegistryRevision.objects.filter(pk=REVISION_ROW_ID).update(value=F("value") + 1)
        new_revision = RegistryRevision.objects.values_list("value", flat=True).get(pk=REVISION_ROW_ID)

    transaction.on_commit(lambda: notices.publish_change_notice(new_revision))
    return new_revision


def current_revision() -> int:
    """Return the committed revision; 0 before the first change."""
    value = RegistryRevision.objects.filter(pk=REVISION_ROW_ID).values_list("value", flat=True).first()
    return value or 0
