"""The extension service helper against a real NATS server."""
import asyncio
import json
import time

import nats
import pytest

from executor.core.extension_service import serve_extension

pytestmark = pytest.mark.nats


async def test_extension_service_replies_with_handler_result(nats_server):
    nc = await nats.connect(nats_server.url)

    async def shout(request):
        return {"payload": {"text": request["payload"]["text"].upper()}}

    server = await serve_extension(nc, "test.ext.shout", shout, queue="q")
    reply = await nc.request("test.ext.shout", json.dumps({"payload": {"text": "hi"}}).encode(), timeout=2)
    await server.stop()
    await nc.close()

    assert json.loads(reply.data) == {"payload": {"text": "HI"}}


async def test_extension_service_handles_requests_concurrently(nats_server):
    nc = await nats.connect(nats_server.url)

    async def slow(request):
        await asyncio.sleep(0.2)
        return {}

    started = time.perf_counter()
    async with await serve_extension(nc, "test.ext.slow", slow, queue="q", max_concurrency=10):
        await asyncio.gather(*(nc.request("test.ext.slow", b"{}", timeout=2) for _ in range(10)))
    elapsed = time.perf_counter() - started
    await nc.close()

    assert elapsed < 0.6


async def test_extension_service_reports_bad_request_and_handler_error(nats_server):
    nc = await nats.connect(nats_server.url)

    async def broken(request):
        raise RuntimeError("boom")

    async with await serve_extension(nc, "test.ext.broken", broken, queue="q"):
        not_json = await nc.request("test.ext.broken", b"not json", timeout=2)
        failing = await nc.request("test.ext.broken", b"{}", timeout=2)
    await nc.close()

    assert json.loads(not_json.data)["error"]["code"] == "invalid_request"
    assert json.loads(failing.data)["error"]["code"] == "extension_failed"
    assert "boom" in json.loads(failing.data)["error"]["message"]
