"""node.client.subscribe against a stand-in node on loopback whose answer to
``GET /v1/sessions/{key}`` (the document a subscription follows) is one no node sends
(not a JSON object, nested deeper than Python parses, longer than
``ClientLimits.answer_bytes_max``), or names the document only in its body, as a node
from before the ``X-Clawsync-Automerge-Url`` header does, or in that header ahead of a
body never read (one that never ends), or in the body behind a header that an
``automerge:`` prefix does not make a document URL (read as an older node's).
Without ``reconnect``, one that is not a JSON object is a ``SubscribeError`` saying so;
with it, the subscription goes on as it does with a node out of reach. One too long is
neither read whole (a full memory) nor an error: the subscription goes on with the
document the key names."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from crdt.automerge.document import automerge_url
from node.client.subscribe import SubscribeError, projections
from node.headers import AUTOMERGE_URL_HEADER
from node.limits import ClientLimits
from sync.repo.messages import Sync, encode_peer, parse_frame
from tests.support.ports import free_port
from tests.support.waits import DEADLINE_S, until

#: The cap the tests give the client: small, so an answer past it is quick to send.
ANSWER_BYTES_MAX = 64 * 1024
#: What the endless answer sends before giving up on the client (past the cap).
ENDLESS_BYTES = 4 * ANSWER_BYTES_MAX
#: The stand-in's endless answer goes past the cap, and the cap is the test's own.
assert ANSWER_BYTES_MAX < ENDLESS_BYTES
assert ClientLimits().answer_bytes_max > ANSWER_BYTES_MAX
#: Quick retries: the stand-in refuses every websocket.
LIMITS = ClientLimits(answer_bytes_max=ANSWER_BYTES_MAX, subscribe_retry_base_s=0.01,
                      subscribe_retry_max_s=0.01)


#: The document the stand-in names in the modes that name one (not the key's own).
NAMED = automerge_url("another")
#: Headers a proxy might leave behind, by mode: an automerge: prefix and no valid id.
MANGLED = {"bogus": "automerge:bogus!", "bare": "automerge:", "junk": NAMED + "junk"}


async def _session(request: web.Request) -> web.StreamResponse:
    mode = request.match_info["mode"]
    if mode == "older":  # a node from before the header: the id only in the body
        return web.json_response({"session_key": "s1", "automerge_url": NAMED})
    if mode == "headed":  # the header, and a body that never ends: read, it would hang
        response = web.StreamResponse(headers={AUTOMERGE_URL_HEADER: NAMED})
        response.content_type = "text/html"
        await response.prepare(request)
        try:
            while True:  # until the client hangs up
                await response.write(b"<html>" + b" " * (16 * 1024))
                await asyncio.sleep(0.01)  # slow: a client that reads holds little
        except (ConnectionError, RuntimeError):
            pass
        return response
    if mode in MANGLED:  # a header that is no document URL, and the id in the body
        return web.json_response({"session_key": "s1", "automerge_url": NAMED},
                                 headers={AUTOMERGE_URL_HEADER: MANGLED[mode]})
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


@dataclass
class StandIn:
    url: str
    #: Websocket handshakes asked for, by mode (each refused with a 503 but in the
    #: modes that name a document).
    sockets: Counter[str] = field(default_factory=Counter)
    #: The document each accepted websocket asked for, by mode.
    asked: dict[str, list[str]] = field(default_factory=dict)


@pytest.fixture
async def hostile() -> AsyncIterator[StandIn]:
    app = web.Application()
    app.router.add_get("/m/{mode}/v1/sessions/{key}", _session)
    port = free_port()
    stand_in = StandIn(f"http://127.0.0.1:{port}")

    async def socket(request: web.Request) -> web.StreamResponse:
        mode = request.match_info["mode"]
        stand_in.sockets[mode] += 1
        if mode not in ("older", "headed", *MANGLED):
            return web.Response(status=503)
        # Answer the join, note the document the first request names, and hang up.
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        join = parse_frame(await ws.receive_bytes())
        await ws.send_bytes(encode_peer("stand-in", join.sender, {}))
        request_frame = parse_frame(await ws.receive_bytes())
        assert isinstance(request_frame, Sync)
        stand_in.asked.setdefault(mode, []).append(request_frame.document_id)
        await ws.close()
        return ws

    app.router.add_get("/m/{mode}/automerge", socket)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield stand_in
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(("mode", "said"), [
    ("deep", "not a JSON object"),
    ("list", "not a JSON object"),
    ("text", "not a JSON object: b'<html>a login page"),
])
async def test_without_reconnect_an_answer_not_json_is_a_subscribe_error(
        hostile: StandIn, mode: str, said: str) -> None:
    with pytest.raises(SubscribeError, match=re.escape(said)):
        async with asyncio.timeout(DEADLINE_S):
            async for _ in projections(f"{hostile.url}/m/{mode}", "s1", limits=LIMITS,
                                       reconnect=False):
                pass
    assert not hostile.sockets[mode]


@pytest.mark.parametrize(("mode", "reconnect"), [
    ("text", True), ("deep", True), ("endless", True), ("declared", True),
    ("endless", False), ("declared", False),
])
async def test_the_subscription_goes_on_to_the_document(
        hostile: StandIn, mode: str, reconnect: bool) -> None:
    # With reconnect, a proxy's page or an answer too long is no reason to end: the
    # subscription backs off and tries again (here, the websocket the stand-in refuses).
    views = projections(f"{hostile.url}/m/{mode}", "s1", limits=LIMITS, reconnect=reconnect)
    task = asyncio.ensure_future(anext(views))
    try:
        await until(lambda: hostile.sockets[mode] >= (3 if reconnect else 1) or task.done())
        if reconnect:
            assert not task.done()
        else:  # no retry: the refused websocket ends it, not the answer
            with pytest.raises(SubscribeError, match="cannot open"):
                await task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, SubscribeError):
            await task
        await views.aclose()


@pytest.mark.parametrize("mode", ["older", "headed"])
async def test_the_subscription_asks_for_the_document_the_node_names(
        hostile: StandIn, mode: str) -> None:
    # An older node names it in the body, read as before; a newer one in the header,
    # and the body (here one that never ends) stays unread.
    async with asyncio.timeout(DEADLINE_S):
        async for _ in projections(f"{hostile.url}/m/{mode}", "s1", limits=LIMITS,
                                   reconnect=False):
            pass
    assert hostile.asked[mode] == [NAMED.removeprefix("automerge:")]


@pytest.mark.parametrize("mode", sorted(MANGLED))
async def test_a_header_naming_no_document_leaves_it_to_the_body(
        hostile: StandIn, mode: str) -> None:
    # The header's id is checked, not only its prefix: asked for, a malformed one would
    # end even a reconnecting subscription on the node's refusal.
    views = projections(f"{hostile.url}/m/{mode}", "s1", limits=LIMITS, reconnect=True)
    task = asyncio.ensure_future(anext(views))
    try:
        await until(lambda: len(hostile.asked.get(mode, [])) >= 2 or task.done())
        assert not task.done()
        assert set(hostile.asked[mode]) == {NAMED.removeprefix("automerge:")}
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, SubscribeError):
            await task
        await views.aclose()
