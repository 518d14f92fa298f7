"""node.client.subscribe against a stand-in node on loopback whose answer to
``GET /v1/sessions/{key}`` (the document a subscription follows) no node sends: longer
than ``ClientLimits.answer_bytes_max``, not a JSON object, nested deeper than Python
parses. Each is a ``SubscribeError`` saying so, never a raw exception nor a full memory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from node.client.subscribe import SubscribeError, projections
from node.limits import ClientLimits
from tests.support.ports import free_port

#: The cap the tests give the client: small, so an answer past it is quick to send.
ANSWER_BYTES_MAX = 64 * 1024
#: What the endless answer sends before giving up on the client (past the cap).
ENDLESS_BYTES = 4 * ANSWER_BYTES_MAX
DEADLINE_S = 10.0


async def _session(request: web.Request) -> web.StreamResponse:
    mode = request.match_info["mode"]
    if mode == "deep":  # deeper than Python parses, within the cap
        return web.Response(body=b"[" * 50_000, content_type="application/json")
    if mode == "list":
        return web.json_response(["automerge:4NMNnkMhL8jXrdJ9jamS58PAVdXu"])
    if mode == "text":
        return web.Response(text="<html>a login page</html>", content_type="text/html")
    if mode == "declared":  # a length no answer has, and nothing after it
        response = web.StreamResponse(headers={"Content-Length": str(2**40)})
        await response.prepare(request)
        return response
    response = web.StreamResponse()  # endless: chunked, no length said
    response.content_type = "application/json"
    await response.prepare(request)
    chunk = b"[" + b" " * (16 * 1024 - 1)
    try:
        for _ in range(ENDLESS_BYTES // len(chunk)):
            await response.write(chunk)
    except (ConnectionError, RuntimeError):
        pass  # the client stopped reading: as it should
    return response


@pytest.fixture
async def hostile() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/m/{mode}/v1/sessions/{key}", _session)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(("mode", "said"), [
    ("deep", "nested too deep"),
    ("list", "not a JSON object"),
    ("text", "not a JSON object"),
    ("endless", "answer_bytes_max"),
    ("declared", "answer_bytes_max"),
])
async def test_an_answer_no_node_sends_is_a_subscribe_error(hostile: str, mode: str,
                                                            said: str) -> None:
    limits = ClientLimits(answer_bytes_max=ANSWER_BYTES_MAX)
    with pytest.raises(SubscribeError, match=said):
        async with asyncio.timeout(DEADLINE_S):
            async for _ in projections(f"{hostile}/m/{mode}", "s1", limits=limits):
                pass


def test_the_stand_in_sends_more_than_the_cap() -> None:
    assert ENDLESS_BYTES > ANSWER_BYTES_MAX
    assert ClientLimits().answer_bytes_max > ANSWER_BYTES_MAX  # the test's cap is its own
