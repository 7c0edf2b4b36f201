"""The executor's in-memory snapshot, reloaded on change notices and by polling the revision.

Requests read ``current()`` and never the database. Loading happens on one worker thread
of its own, so the ORM keeps a single connection and the event loop never blocks on it.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from django.db import close_old_connections, connections
from nats.aio.msg import Msg

from executor.core.model import Snapshot

logger = logging.getLogger("executor.snapshot")

T = TypeVar("T")


class DatabaseSnapshotProvider:
    """Holds the latest snapshot and swaps it for a new one when the revision moves.

    ``load`` builds a whole snapshot from the database and ``read_revision`` returns the
    revision stored there; both are synchronous and run on the provider's own thread.
    When the database cannot be reached, the last snapshot stays in use.
    """

    def __init__(
        self,
        load: Callable[[], Snapshot],
        read_revision: Callable[[], int],
        poll_interval_s: float = 2.0,
    ) -> None:
        self._load = load
        self._read_revision = read_revision
        self.poll_interval_s = poll_interval_s
        self._snapshot: Snapshot | None = None
        self._database_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="snapshot-db")
        self._reload_lock = asyncio.Lock()

    def current(self) -> Snapshot | None:
        """Return the snapshot requests run against, or None before the first load."""
        return self._snapshot

    async def reload(self, reason: str) -> None:
        """Load a new snapshot now; on failure keep the current one and log why."""
        async with self._reload_lock:
            try:
                snapshot = await self.run_in_database_thread(self._load)
            except Exception as error:  # noqa: BLE001 - the executor must go on with what it has
                logger.warning(
                    "Reloading the snapshot (%s) failed; keeping revision %s: %s",
                    reason,
                    self._snapshot.revision if self._snapshot else None,
                    error,
                )
                return

            previous = self._snapshot.revision if self._snapshot else None
            self._snapshot = snapshot
            logger.info("Snapshot revision %s loaded (was %s) after %s", snapshot.revision, previous, reason)

    async def reload_if_revision_moved(self, reason: str) -> None:
        """Reload when the database's revision differs from the snapshot's."""
        try:
            revision = await self.run_in_database_thread(self._read_revision)
        except Exception as error:  # noqa: BLE001 - polling tries again on its next round
            logger.warning("Reading the registry revision failed: %s", error)
            return

        if self._snapshot is None or revision != self._snapshot.revision:
            await self.reload(reason)

    async def on_change_notice(self, msg: Msg) -> None:
        """NATS callback for a change notice: reload unless the snapshot already has that revision."""
        try:
            revision = int(json.loads(msg.data)["revision"])
        except (ValueError, KeyError, TypeError):
            logger.warning("Ignoring a malformed change notice: %r", msg.data[:200])
            return

        if self._snapshot is None or revision > self._snapshot.revision:
            await self.reload(f"change notice for revision {revision}")

    async def poll_forever(self) -> None:
        """Poll the revision every ``poll_interval_s`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.poll_interval_s)
            await self.reload_if_revision_moved("revision poll")

    def close(self) -> None:
        """Close the database thread's connection and stop the thread."""
        self._database_thread.submit(connections.close_all)
        self._database_thread.shutdown(wait=True, cancel_futures=False)

    async def run_in_database_thread(self, function: Callable[[], T]) -> T:
        """Run ``function`` on the provider's database thread, so the ORM keeps one connection."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._database_thread, _with_fresh_connection, function)


def _with_fresh_connection(function: Callable[[], T]) -> T:
    # A connection the database has dropped while the executor idled is replaced rather
    # than failing every load after it.
    close_old_connections()
    try:
        return function()
    finally:
        close_old_connections()
