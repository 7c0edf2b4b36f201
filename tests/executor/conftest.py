"""Extension hosts: the same tests run over the in-memory transport and over real NATS."""
import asyncio

import nats
import pytest

from executor.core.extension_service import serve_extension
from executor.core.transport import InMemoryTransport, NatsTransport


class MemoryHost:
    """Extensions registered on an ``InMemoryTransport``."""

    kind = "memory"

    def __init__(self):
        self.transport = InMemoryTransport()

    async def add(self, subject, handler):
        self.transport.register(subject, handler)

    async def add_raw(self, subject, data):
        async def handler(request):
            return data

        self.transport.register(subject, handler)

    async def close(self):
        return None


class NatsHost:
    """Extensions served over a real NATS server with ``serve_extension``."""

    kind = "nats"

    def __init__(self, nc):
        self.nc = nc
        self.transport = NatsTransport(nc)
        self._servers = []
        self._subscriptions = []

    async def add(self, subject, handler):
        self._servers.append(await serve_extension(self.nc, subject, handler, queue="tests", max_concurrency=64))

    async def add_raw(self, subject, data):
        async def respond(msg):
            await msg.respond(data)

        self._subscriptions.append(await self.nc.subscribe(subject, cb=respond))

    async def close(self):
        for server in self._servers:
            await server.stop(grace_s=0.0)
        for subscription in self._subscriptions:
            await subscription.unsubscribe()
        await self.nc.close()


@pytest.fixture(params=["memory", "nats"])
async def host(request):
    if request.param == "memory":
        extension_host = MemoryHost()
    else:
        server = request.getfixturevalue("nats_server")
        extension_host = NatsHost(await nats.connect(server.url))
    yield extension_host
    await extension_host.close()


@pytest.fixture
def memory_host():
    return MemoryHost()


def executor_tasks():
    """Return the tasks of parallel group members that are still alive."""
    return [
        task for task in asyncio.all_tasks()
        if not task.done() and "GroupRunner" in task.get_coro().__qualname__
    ]
