"""Fixtures for the author pages, review and probe tests: users in the two groups, live extensions."""
import asyncio
import threading
from collections.abc import Callable, Iterator

import nats
import pytest
from django.contrib.auth.models import Group, User

from executor.core.extension_service import serve_extension

AUTHORS_GROUP = "Extension authors"
OPS_STAFF_GROUP = "Ops staff"


def make_user(username: str, group: str, *, is_staff: bool = False) -> User:
    user = User.objects.create_user(username, password="a-long-test-password", is_staff=is_staff)
    user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def author(db) -> User:
    return make_user("ada", AUTHORS_GROUP)


@pytest.fixture
def other_author(db) -> User:
    return make_user("grace", AUTHORS_GROUP)


@pytest.fixture
def ops(db) -> User:
    return make_user("olga", OPS_STAFF_GROUP, is_staff=True)


@pytest.fixture
def author_client(client, author):
    client.force_login(author)
    return client


@pytest.fixture
def ops_client(client, ops):
    client.force_login(ops)
    return client


def submission(**changes) -> dict:
    """Return the POST data of a valid, fully affirmed submission of a new pre-processor."""
    data = {
        "extension_id": "shout_text",
        "type": "pre",
        "version": "1.0.0",
        "subject": "beamline.ext.pre.shout_text.v1",
        "timeout_ms": "100",
        "retry": "0",
        "description": "Upper-cases the message text.",
        "no_external_calls": "on",
        "no_database_writes": "on",
        "no_external_telemetry": "on",
        "no_outside_state": "on",
        "idempotent": "on",
        "side_effects": "",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


class ThreadedExtension:
    """An extension served over NATS from a background thread, for tests of synchronous code."""

    def __init__(self, url: str, subject: str, handler) -> None:
        self.url = url
        self.subject = subject
        self.handler = handler
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> "ThreadedExtension":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=5)
        return self

    def __exit__(self, *exc_info) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    async def _start(self) -> None:
        self._nc = await nats.connect(self.url)
        self._server = await serve_extension(self._nc, self.subject, self.handler, queue="probe-tests")

    async def _stop(self) -> None:
        await self._server.stop()
        await self._nc.close()


@pytest.fixture
def serve_in_thread(nats_server) -> Iterator[Callable[[str, object], ThreadedExtension]]:
    """Start an extension on ``subject`` that replies with ``handler``; stopped after the test."""
    started: list[ThreadedExtension] = []

    def serve(subject: str, handler) -> ThreadedExtension:
        extension = ThreadedExtension(nats_server.url, subject, handler).__enter__()
        started.append(extension)
        return extension

    yield serve
    for extension in started:
        extension.__exit__(None, None, None)


def counting_handler():
    """Return a handler that adds a per-process call counter to the context: not idempotent."""
    calls = 0

    async def handle(request):
        nonlocal calls
        calls += 1
        return {"payload": request["payload"], "metadata": {"calls": calls}}

    return handle


async def echo_upper_handler(request):
    """A deterministic handler: the same request always gets the same reply."""
    message = request["payload"]
    return {"payload": {**message, "shouted": str(message.get("payload", {}).get("text", "")).upper()}}
