"""NATS from synchronous Django code: one connection per process, on a background event loop.

The console's views and signal handlers are synchronous, while nats-py is asyncio only.
``NatsBridge`` keeps one long-lived connection on a daemon thread, so a change notice or
an execution request costs a round trip and not a new connection each time.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg

logger = logging.getLogger("beamline_console.nats")

T = TypeVar("T")


class NatsBridgeError(RuntimeError):
    """The bridge has no NATS URL, or NATS could not be reached in time."""


class NatsBridge:
    """A NATS connection on a daemon thread, usable from synchronous code.

    The connection is made on first use and reconnects by itself; ``close`` ends it.
    """

    def __init__(self, url: str, connect_timeout: float = 2.0) -> None:
        if not url:
            raise NatsBridgeError("NATS_URL is not set, so the console cannot reach NATS.")
        self.url = url
        self.connect_timeout = connect_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Client | None = None
        self._lock = threading.Lock()

    def publish(self, subject: str, data: bytes, timeout: float = 2.0) -> None:
        """Publish ``data`` on ``subject`` and flush, waiting at most ``timeout`` seconds."""
        self._run(self._publish(subject, data), timeout)

    def request(
        self, subject: str, data: bytes, timeout: float, headers: dict[str, str] | None = None
    ) -> Msg:
        """Send a request and return the reply; raises nats-py's errors as they come."""
        return self._run(self._request(subject, data, timeout, headers), timeout + self.connect_timeout)

    def close(self) -> None:
        """Close the connection and stop the background loop."""
        with self._lock:
            loop, client = self._loop, self._client
            self._loop = self._client = None
        if loop is None:
            return

        if client is not None:
            asyncio.run_coroutine_threadsafe(client.close(), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)

    async def _publish(self, subject: str, data: bytes) -> None:
        client = await self._connected_client()
        await client.publish(subject, data)
        await client.flush(timeout=1)

    async def _request(
        self, subject: str, data: bytes, timeout: float, headers: dict[str, str] | None
    ) -> Msg:
        client = await self._connected_client()
        return await client.request(subject, data, timeout=timeout, headers=headers)

    async def _connected_client(self) -> Client:
        if self._client is None:
            self._client = await nats.connect(
                self.url,
                name="beamline-console",
                connect_timeout=self.connect_timeout,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                error_cb=_log_connection_error,
            )
        return self._client

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._event_loop())
        try:
            return future.result(timeout=timeout)
        except TimeoutError as error:
            future.cancel()
            raise NatsBridgeError(f"NATS at {self.url} did not respond within {timeout:.1f} s.") from error

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=self._loop.run_forever, name="nats-bridge", daemon=True
                )
                thread.start()
            return self._loop


async def _log_connection_error(error: Exception) -> None:
    logger.warning("NATS connection error: %s", error)


_bridge: NatsBridge | None = None
_bridge_lock = threading.Lock()


def get_bridge() -> NatsBridge:
    """Return this process's bridge to ``settings.NATS_URL``, creating it on first use."""
    global _bridge
    from django.conf import settings

    with _bridge_lock:
        if _bridge is None or _bridge.url != settings.NATS_URL:
            _bridge = NatsBridge(settings.NATS_URL)
        return _bridge
