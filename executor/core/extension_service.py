"""Run an extension as a NATS request/reply service that handles requests concurrently.

Contract of ``serve_extension``:

- It subscribes to ``subject`` in the queue group ``queue``, so several processes share the load.
- Each request body is decoded as a JSON object and passed to ``handler``. The dict the
  handler returns is sent back as the JSON reply. Pre- and post-processors return
  ``{payload?, metadata?}``, validators ``{status: "ok"|"reject", reason?, details?}``.
- A body that is not a JSON object gets ``{"error": {"code": "invalid_request", "message": ...}}``
  and the handler is not called. A handler that raises gets
  ``{"error": {"code": "extension_failed", "message": ...}}``; both are replies the executor
  treats as failures of the extension.
- At most ``max_concurrency`` handlers run at once. Further messages wait in the subscription's
  pending queue, so a slow handler never blocks the ones already running.
- ``ExtensionServer.stop()`` unsubscribes, lets running handlers finish within ``grace_s``
  and cancels the rest. The server is also an async context manager, which starts it unless
  it is already started, so ``async with await serve_extension(...)`` works too.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from executor.core import codec

logger = logging.getLogger("executor.extension_service")

ExtensionHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class ExtensionServer:
    """One extension's subscription and the handler tasks it has started."""

    def __init__(self, nc: Client, subject: str, handler: ExtensionHandler, *, queue: str,
                 max_concurrency: int) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}.")
        self.subject = subject
        self.queue = queue
        self._nc = nc
        self._handler = handler
        self._slots = asyncio.Semaphore(max_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        """Subscribe to the extension's subject, or raise ``RuntimeError`` when already started."""
        if self._subscription is not None:
            raise RuntimeError(f"The extension service on {self.subject!r} is already started.")
        self._subscription = await self._nc.subscribe(self.subject, queue=self.queue, cb=self._on_message)
        # The server must have the subscription before start() returns, or a caller that
        # starts right after finds no responder.
        await self._nc.flush()
        logger.info("Extension service started on %s (queue %s)", self.subject, self.queue)

    async def stop(self, grace_s: float = 1.0) -> None:
        """Unsubscribe, wait up to ``grace_s`` for running handlers, then cancel what is left."""
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            try:
                await subscription.unsubscribe()
            except Exception as error:  # noqa: BLE001 - the connection may already be closed
                logger.warning("Unsubscribing from %s failed: %s", self.subject, error)

        if self._tasks:
            _, still_running = await asyncio.wait(set(self._tasks), timeout=grace_s)
            for task in still_running:
                task.cancel()
            await asyncio.gather(*still_running, return_exceptions=True)
        logger.info("Extension service on %s stopped", self.subject)

    async def __aenter__(self) -> ExtensionServer:
        if self._subscription is None:
            await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _on_message(self, msg: Msg) -> None:
        # nats-py hands a subscription one message at a time, so the handler runs in a task of
        # its own. Waiting here for a free slot is the back-pressure.
        await self._slots.acquire()
        task = asyncio.create_task(self._handle(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, msg: Msg) -> None:
        try:
            reply = await self._reply_for(msg.data)
            if msg.reply:
                await msg.respond(codec.encode(reply))
        except Exception as error:  # noqa: BLE001 - one failed reply must not stop the service
            logger.warning("Replying on %s failed: %s", self.subject, error)
        finally:
            self._slots.release()

    async def _reply_for(self, data: bytes) -> dict[str, Any]:
        try:
            request = codec.decode(data)
        except ValueError as error:
            return _error_reply("invalid_request", f"The request is not valid JSON: {error}.")
        if not isinstance(request, dict):
            return _error_reply("invalid_request", "The request must be a JSON object.")

        try:
            return await self._handler(request)
        except Exception as error:  # noqa: BLE001 - reported to the caller as an error reply
            logger.exception("Extension handler on %s failed", self.subject)
            return _error_reply("extension_failed", f"{type(error).__name__}: {error}")


def _error_reply(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


async def serve_extension(nc: Client, subject: str, handler: ExtensionHandler, *, queue: str,
                          max_concurrency: int = 64) -> ExtensionServer:
    """Start serving ``handler`` on ``subject`` and return the running ``ExtensionServer``.

    Call ``stop()`` on the result, or use ``async with ExtensionServer(...)`` instead.
    """
    server = ExtensionServer(nc, subject, handler, queue=queue, max_concurrency=max_concurrency)
    await server.start()
    return server
