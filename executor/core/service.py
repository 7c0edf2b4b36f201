"""The executor as a NATS service on ``beamline.executor.v1.execute``.

Requests are handled concurrently: each message gets its own task, and at most
``max_concurrency`` run at once. Replies, all JSON:

- a pipeline outcome: the ``PipelineRunner`` reply ``{status, payload, metadata, error?, execution}``;
- a body that is not JSON, or a request that breaks the contract:
  ``{"status": "failed", "error": {"type": "invalid_request", "message": ..., "path": ...}}``
  (the HTTP endpoint maps it to 400);
- an unknown policy, or one of another tenant: ``error.type`` ``policy_not_found`` (404);
- ``max_concurrency`` requests already running: ``error.type`` ``overloaded`` (503);
- no snapshot loaded yet: ``error.type`` ``snapshot_unavailable`` (503).

Request-error replies carry ``payload``, ``metadata`` and ``execution`` as ``null``.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from executor.core import codec
from executor.core.errors import InvalidRequest, Overloaded, RequestError
from executor.core.evidence import EvidenceAggregator
from executor.core.model import Snapshot
from executor.core.runtime import PipelineRunner
from executor.core.shadow import ShadowCapture, ShadowComparer

logger = logging.getLogger("executor.service")

EXECUTE_SUBJECT = "beamline.executor.v1.execute"
EXECUTOR_QUEUE = "beamline-executor"


class SnapshotProvider(Protocol):
    """The source of the snapshot in force; ``current()`` returns ``None`` until one is loaded."""

    def current(self) -> Snapshot | None:
        """Return the snapshot in force now, or ``None`` when none is loaded yet."""
        ...


class StaticSnapshotProvider:
    """A provider that returns the snapshot it was last given, for tests and benchmarks."""

    def __init__(self, snapshot: Snapshot | None = None) -> None:
        self.snapshot = snapshot

    def current(self) -> Snapshot | None:
        return self.snapshot


def failure_reply(error_type: str, message: str, **details: Any) -> dict[str, Any]:
    """Return a ``failed`` reply for a request that could not be run at all."""
    return {
        "status": "failed",
        "payload": None,
        "metadata": None,
        "error": {"type": error_type, "message": message, **details},
        "execution": None,
    }


def request_error_reply(error: RequestError) -> dict[str, Any]:
    """Return the ``failed`` reply for a request error (invalid, policy not found, overloaded)."""
    reply = failure_reply(error.code, str(error))
    reply["error"] = error.as_error()
    return reply


async def reply_for(runner: PipelineRunner, snapshot_provider: SnapshotProvider, data: bytes,
                    traceparent: str | None = None, *,
                    shadow_captures: list[ShadowCapture] | None = None) -> dict[str, Any]:
    """Decode one request body, run it and return the reply; raises only ``CancelledError``.

    ``traceparent`` is the request's W3C header, which the pipeline's trace continues from.
    ``shadow_captures``, when a list, collects the parallel groups to compare after the reply.
    """
    try:
        request = codec.decode(data)
    except ValueError as error:
        return request_error_reply(InvalidRequest("$", f"the body is not valid JSON: {error}."))

    snapshot = snapshot_provider.current()
    if snapshot is None:
        return failure_reply("snapshot_unavailable", "The executor has not loaded the registry yet; retry shortly.")

    try:
        return await runner.execute(snapshot, request, traceparent=traceparent, shadow_captures=shadow_captures)
    except RequestError as error:
        return request_error_reply(error)


class ExecutorService:
    """Serves pipeline requests from NATS in a queue group; use ``async with`` or start/stop.

    ``stop()`` unsubscribes so no new request arrives, waits up to ``grace_s`` for running
    pipelines to reply, and cancels the rest.

    After each reply has been sent, ``evidence`` (when given) counts it, and ``shadow`` (when
    given) compares the request's parallel groups with sequential runs if it was sampled.
    """

    def __init__(self, nc: Client, runner: PipelineRunner, snapshot_provider: SnapshotProvider, *,
                 subject: str = EXECUTE_SUBJECT, queue: str = EXECUTOR_QUEUE, max_concurrency: int,
                 evidence: EvidenceAggregator | None = None, shadow: ShadowComparer | None = None) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}.")
        self.subject = subject
        self.queue = queue
        self.max_concurrency = max_concurrency
        self._nc = nc
        self._runner = runner
        self._snapshot_provider = snapshot_provider
        self._evidence = evidence
        self._shadow = shadow
        self._tasks: set[asyncio.Task[None]] = set()
        self._subscription: Subscription | None = None

    @property
    def running(self) -> bool:
        """Whether the service is subscribed."""
        return self._subscription is not None

    @property
    def in_flight(self) -> int:
        """The number of requests being handled now."""
        return len(self._tasks)

    async def start(self) -> None:
        """Subscribe to the execute subject; raises ``RuntimeError`` when already running."""
        if self._subscription is not None:
            raise RuntimeError(f"The executor service on {self.subject!r} is already running.")
        self._subscription = await self._nc.subscribe(self.subject, queue=self.queue, cb=self._on_message)
        # Until the server has the subscription, a request finds no responder; flushing makes
        # the service reachable as soon as start() returns.
        await self._nc.flush()
        logger.info("Executor service started on %s (queue %s, max concurrency %s)",
                    self.subject, self.queue, self.max_concurrency)

    async def stop(self, grace_s: float = 5.0) -> None:
        """Unsubscribe, let running requests finish within ``grace_s``, then cancel the rest."""
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            try:
                await subscription.unsubscribe()
            except Exception as error:  # noqa: BLE001 - the connection may already be closed
                logger.warning("Unsubscribing from %s failed: %s", self.subject, error)

        cancelled = 0
        if self._tasks:
            _, still_running = await asyncio.wait(set(self._tasks), timeout=grace_s)
            for task in still_running:
                task.cancel()
            cancelled = len(still_running)
            await asyncio.gather(*still_running, return_exceptions=True)
        logger.info("Executor service on %s stopped (%s requests cancelled)", self.subject, cancelled)

    async def __aenter__(self) -> ExecutorService:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _on_message(self, msg: Msg) -> None:
        # nats-py runs a subscription's callback for one message at a time, so the pipeline
        # runs in a task of its own and the callback returns at once.
        if len(self._tasks) >= self.max_concurrency:
            overloaded = Overloaded(f"The executor already handles {self.max_concurrency} requests; retry later.")
            await self._respond(msg, request_error_reply(overloaded))
            return
        task = asyncio.create_task(self._handle(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, msg: Msg) -> None:
        headers = msg.headers
        traceparent = None if not headers else headers.get("traceparent")
        shadow = self._shadow
        captures: list[ShadowCapture] | None = [] if shadow is not None and shadow.sample() else None
        reply = await reply_for(self._runner, self._snapshot_provider, msg.data, traceparent,
                                shadow_captures=captures)
        await self._respond(msg, reply)

        if self._evidence is not None:
            try:
                self._evidence.record_reply(reply)
            except Exception:  # noqa: BLE001 - evidence must never cost a request
                logger.exception("Recording evidence for a %s reply failed", reply.get("status"))
        if captures and shadow is not None:
            shadow.submit(captures)

    async def _respond(self, msg: Msg, reply: dict[str, Any]) -> None:
        if not msg.reply:
            return
        try:
            await msg.respond(codec.encode(reply))
        except Exception as error:  # noqa: BLE001 - a lost reply must not stop the service
            logger.warning("Replying to %s failed (status %s): %s", msg.reply, reply.get("status"), error)
