"""Serve the reference extensions over NATS until a signal or a lost connection stops them.

Each extension subscribes to its subject in a queue group of its own, so several copies of
this process share the load. The handlers are plain blocking functions. They run in a pool
of worker threads, so a slow one (a file write, a long text) does not stall the event loop
that carries every extension's NATS traffic.
"""
from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import nats
from nats.aio.client import Client
from nats.errors import NoServersError

from executor.core.extension_service import ExtensionHandler, ExtensionServer, serve_extension
from executor.extensions._contract import Handler, Reply, Request
from executor.extensions.registry import ReferenceExtension

logger = logging.getLogger("executor.extensions")

QUEUE_GROUP_PREFIX = "beamline-ext-"
DEFAULT_MAX_CONCURRENCY = 16
STOP_GRACE_S = 5.0
# About 30 s of retries, at start and after a lost connection; then the process exits so
# whatever supervises it can see the failure.
RECONNECT_WAIT_S = 1.0
MAX_RECONNECT_ATTEMPTS = 30


class NatsConnectionFailed(RuntimeError):
    """The NATS server at the given URL could not be reached."""


def queue_group_for(extension: ReferenceExtension) -> str:
    """Return the queue group the copies of ``extension`` share."""
    return QUEUE_GROUP_PREFIX + extension.id


def run_in_pool(handle: Handler, pool: ThreadPoolExecutor) -> ExtensionHandler:
    """Return an async handler that runs the blocking ``handle`` in ``pool``."""

    async def handler(request: Request) -> Reply:
        return await asyncio.get_running_loop().run_in_executor(pool, handle, request)

    return handler


async def serve_reference_extensions(
    nc: Client,
    extensions: Iterable[ReferenceExtension],
    pool: ThreadPoolExecutor,
    *,
    max_concurrency: int,
) -> list[ExtensionServer]:
    """Warm up and start one NATS service per extension; return the running servers.

    When one fails to start, the ones already started are stopped before the error is raised.
    """
    loop = asyncio.get_running_loop()
    servers: list[ExtensionServer] = []
    try:
        for extension in extensions:
            if extension.warm_up is not None:
                await loop.run_in_executor(pool, extension.warm_up)
            server = await serve_extension(
                nc,
                extension.subject,
                run_in_pool(extension.handle, pool),
                queue=queue_group_for(extension),
                max_concurrency=max_concurrency,
            )
            servers.append(server)
    except BaseException:
        await stop_servers(servers)
        raise
    return servers


async def stop_servers(servers: Iterable[ExtensionServer]) -> None:
    """Stop every server, letting requests in progress finish within the grace period."""
    await asyncio.gather(*(server.stop(grace_s=STOP_GRACE_S) for server in servers))


async def connect(nats_url: str, stop: asyncio.Event) -> Client:
    """Connect to ``nats_url``; ``stop`` is set if the connection closes for good later.

    Raises ``NatsConnectionFailed`` when the server cannot be reached within the retries.
    """

    async def log_error(error: Exception) -> None:
        logger.warning("NATS connection error at %s: %s", nats_url, error)

    async def stop_when_closed() -> None:
        stop.set()

    try:
        return await nats.connect(
            nats_url,
            name="beamline-reference-extensions",
            reconnect_time_wait=RECONNECT_WAIT_S,
            max_reconnect_attempts=MAX_RECONNECT_ATTEMPTS,
            error_cb=log_error,
            closed_cb=stop_when_closed,
        )
    except (NoServersError, OSError, asyncio.TimeoutError) as error:
        raise NatsConnectionFailed(
            f"Could not connect to NATS at {nats_url}: {error or type(error).__name__}. "
            "Check the URL and that the server is running."
        ) from error


async def run_extensions(
    nats_url: str,
    extensions: list[ReferenceExtension],
    *,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    stop: asyncio.Event,
) -> None:
    """Serve ``extensions`` on ``nats_url`` until ``stop`` is set, then drain and disconnect.

    Raises ``NatsConnectionFailed`` when the connection cannot be made, or is lost and not
    regained within the retries.
    """
    nc = await connect(nats_url, stop)
    connection_lost = False
    log_fields: dict[str, Any] = {
        "nats_url": nats_url,
        "extensions": [extension.id for extension in extensions],
        "max_concurrency": max_concurrency,
    }
    try:
        with ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="extension") as pool:
            servers = await serve_reference_extensions(nc, extensions, pool, max_concurrency=max_concurrency)
            logger.info("Reference extensions started", extra=log_fields)
            try:
                await stop.wait()
            finally:
                connection_lost = nc.is_closed
                await stop_servers(servers)
    finally:
        if not nc.is_closed:
            await nc.drain()
    logger.info("Reference extensions stopped", extra=log_fields)

    if connection_lost:
        raise NatsConnectionFailed(
            f"The NATS connection to {nats_url} was lost and not regained after "
            f"{MAX_RECONNECT_ATTEMPTS} reconnect attempts."
        )


def run_until_signal(nats_url: str, extensions: list[ReferenceExtension], *, max_concurrency: int) -> None:
    """Run ``run_extensions`` in a new event loop until SIGINT or SIGTERM."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signal_number, stop.set)
        await run_extensions(nats_url, extensions, max_concurrency=max_concurrency, stop=stop)

    asyncio.run(main())
