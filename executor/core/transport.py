"""How the executor sends one request to an extension and gets its reply.

``NatsTransport`` is the real one; ``InMemoryTransport`` calls registered coroutines in the
same process, for fast tests. Both raise only ``ExtensionCallError`` subclasses, so no
nats-py exception reaches the runtime.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from nats import errors as nats_errors
from nats.aio.client import Client

from executor.core import codec
from executor.core.errors import ExtensionCallError, ExtensionTimeout, NatsUnavailable, NoResponders


class Transport(Protocol):
    """Sends a request to an extension's subject and returns the raw reply body."""

    async def request(self, subject: str, data: bytes, headers: dict[str, str], timeout: float) -> bytes:
        """Return the reply to ``data`` on ``subject`` within ``timeout`` seconds.

        Raises ``ExtensionTimeout``, ``NoResponders`` or ``NatsUnavailable``.
        """
        ...


_NOT_SENT_ERRORS = (
    nats_errors.ConnectionClosedError,
    nats_errors.ConnectionDrainingError,
    nats_errors.ConnectionReconnectingError,
    nats_errors.OutboundBufferLimitError,
    nats_errors.NoServersError,
    nats_errors.StaleConnectionError,
)


class NatsTransport:
    """A ``Transport`` over a connected nats-py client; the caller owns the connection."""

    def __init__(self, nc: Client) -> None:
        self._nc = nc

    async def request(self, subject: str, data: bytes, headers: dict[str, str], timeout: float) -> bytes:
        # nats-py would buffer a request made while reconnecting and let it time out. Failing
        # at once marks the request as never sent, so the caller may retry it.
        if not self._nc.is_connected:
            raise NatsUnavailable(f"The request to {subject} was not sent: NATS is not connected.",
                                  request_sent=False)
        try:
            reply = await self._nc.request(subject, data, timeout=timeout, headers=headers)
        except nats_errors.NoRespondersError as error:
            raise NoResponders(f"No extension subscribes to {subject}.") from error
        except nats_errors.TimeoutError as error:
            raise self._timeout_error(subject, timeout) from error
        except _NOT_SENT_ERRORS as error:
            raise NatsUnavailable(
                f"The request to {subject} was not sent: NATS is unavailable ({type(error).__name__}).",
                request_sent=False,
            ) from error
        return reply.data

    def _timeout_error(self, subject: str, timeout: float) -> ExtensionCallError:
        # A request stranded by a lost connection times out like any other. When the
        # connection is down by then, the error names that cause instead.
        if not self._nc.is_connected:
            return NatsUnavailable(
                f"No reply from {subject} within {timeout:.3f} s because the NATS connection was lost.",
                request_sent=True,
            )
        return ExtensionTimeout(f"No reply from {subject} within {timeout:.3f} s.")


InMemoryHandler = Callable[[dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True)
class RecordedCall:
    """One request an ``InMemoryTransport`` received."""

    subject: str
    request: dict[str, Any]
    headers: dict[str, str]


class InMemoryTransport:
    """A ``Transport`` that calls coroutines registered per subject, in this process.

    A handler gets the decoded request and returns a dict (sent as JSON) or ``bytes`` (sent
    as they are, to test bad replies). It may sleep to simulate latency, or raise an
    ``ExtensionCallError`` to simulate a transport failure. An unregistered subject raises
    ``NoResponders``; after ``set_available(False)`` every request raises ``NatsUnavailable``.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, InMemoryHandler] = {}
        self._available = True
        self.calls: list[RecordedCall] = []

    def register(self, subject: str, handler: InMemoryHandler) -> None:
        """Serve ``subject`` with ``handler``, replacing any earlier one."""
        self._handlers[subject] = handler

    def unregister(self, subject: str) -> None:
        """Stop serving ``subject``."""
        self._handlers.pop(subject, None)

    def set_available(self, available: bool) -> None:
        """Simulate the NATS connection going down (``False``) or coming back (``True``)."""
        self._available = available

    async def request(self, subject: str, data: bytes, headers: dict[str, str], timeout: float) -> bytes:
        if not self._available:
            raise NatsUnavailable(f"The request to {subject} was not sent: NATS is unavailable.",
                                  request_sent=False)
        handler = self._handlers.get(subject)
        if handler is None:
            raise NoResponders(f"No extension subscribes to {subject}.")

        request = codec.decode(data)
        self.calls.append(RecordedCall(subject, request, dict(headers)))
        try:
            reply = await asyncio.wait_for(handler(request), timeout)
        except TimeoutError as error:
            raise ExtensionTimeout(f"No reply from {subject} within {timeout:.3f} s.") from error
        return reply if isinstance(reply, bytes) else codec.encode(reply)
