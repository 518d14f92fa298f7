"""node.client.subscribe against a node that names another session's document: a
stand-in answers ``GET /v1/sessions/s1`` as a node would, but naming the document of
``s2`` (a real session of the real node behind it), in the ``X-Clawsync-Automerge-Url``
header or, as an older node, in its body; its ``/automerge`` sends the websocket on to
the real node. The subscription refuses it with a ``SubscribeError`` naming ``s2``, even
while it reconnects; it never yields ``s2``'s projection as ``s1``'s. A stand-in that
plays the node's websocket too, recording what the client sends, shows that the refusal
comes before the client answers the sync that brought ``s2``'s document."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from crdt.automerge.document import EMPTY_FIELDS, SessionDoc, automerge_url, node_actor
from crdt.automerge.syncing import new_sync_state
from node.client.subscribe import SubscribeError, projections
from node.headers import AUTOMERGE_URL_HEADER
from node.server.run import RunningNode
from sync.repo.messages import Join, Sync, encode_peer, encode_sync, parse_frame
from tests.support.nodes import post
from tests.support.ports import free_port
from tests.support.stand_in import Quiet, serving
from tests.support.waits import DEADLINE_S, until

NodeFactory = Callable[..., Awaitable[RunningNode]]

ASKED, OTHER = "s1", "s2"
#: What the stand-in answers for ``ASKED``, by mode: the header (None: none, as an older
#: node) and the body.
ANSWERS: dict[str, tuple[str | None, dict[str, Any]]] = {
    "honest": (automerge_url(ASKED), {"session_key": ASKED,
                                      "automerge_url": automerge_url(ASKED)}),
    "header": (automerge_url(OTHER), {"session_key": ASKED,
                                      "automerge_url": automerge_url(ASKED)}),
    "older-url": (None, {"session_key": ASKED, "automerge_url": automerge_url(OTHER)}),
    "older-key": (None, {"session_key": OTHER, "automerge_url": automerge_url(OTHER)}),
}


def _said(content: str) -> dict[str, Any]:
    return {"agent_id": "main", "kind": {"type": "message_received", "content": content}}


@contextmanager
def _lying(node: RunningNode, mode: str) -> Iterator[str]:
    """A stand-in answering for ``ASKED`` in ``mode``; its websocket is the real node's."""
    header, body = ANSWERS[mode]

    class Handler(Quiet):
        def do_GET(self) -> None:
            if self.path.startswith("/automerge"):  # the handshake, sent on to the node
                self.send_response(307)
                self.send_header("Location", f"{node.url}{self.path}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            assert self.path == f"/v1/sessions/{ASKED}"
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if header is not None:
                self.send_header(AUTOMERGE_URL_HEADER, header)
            self.end_headers()
            self.wfile.write(data)

    with serving(Handler) as url:
        yield url


async def _node_with_two_sessions(make_node: NodeFactory) -> RunningNode:
    node = await make_node()
    await post(node, ASKED, _said("asked"))
    await post(node, OTHER, _said("other"))
    return node


async def test_the_stand_in_passes_on_the_node_it_stands_for(
        make_node: NodeFactory) -> None:
    # The route the refusals below take: honest, it follows the session asked for.
    node = await _node_with_two_sessions(make_node)
    with _lying(node, "honest") as url:
        views = projections(url, ASKED)
        try:
            view = await until(views, lambda v: len(v["messages"]) == 1)
        finally:
            await views.aclose()
    assert view["session_key"] == ASKED
    assert [m["content"] for m in view["messages"]] == ["asked"]


@pytest.mark.parametrize(("mode", "refused"), [
    # The header is taken without the body: the document itself says whose it is.
    ("header", "the node's document"),
    ("older-url", "the node's document"),
    # A body read whole says it before any websocket.
    ("older-key", "the node's session answer"),
])
@pytest.mark.parametrize("reconnect", [True, False])
async def test_a_document_of_another_session_is_refused(
        make_node: NodeFactory, mode: str, refused: str, reconnect: bool) -> None:
    node = await _node_with_two_sessions(make_node)
    with _lying(node, mode) as url:
        views = projections(url, ASKED, reconnect=reconnect)
        try:
            with pytest.raises(SubscribeError, match=f"^{refused} is for session "
                                                     f"'{OTHER}', not '{ASKED}'$"):
                async with asyncio.timeout(DEADLINE_S):
                    async for view in views:
                        raise AssertionError(f"followed {view['session_key']!r}: "
                                             f"{view['messages']}")
        finally:
            await views.aclose()


async def test_the_sync_that_brings_another_session_gets_no_answer() -> None:
    """The node names ``s1``'s document and syncs ``s2``'s under its id: the client
    applies that sync, refuses the document and closes, without the answer that would
    tell the node it holds it (an honest document gets one: ``Replica``'s doctest)."""
    other = SessionDoc.new(OTHER, node_actor("n1"))
    other.update(dict(EMPTY_FIELDS, session_key=OTHER, state="active"), [], {})
    doc_text = automerge_url(ASKED).removeprefix("automerge:")
    sent: list[str] = []  # the kinds of the frames the client sent, in order
    closed = asyncio.Event()  # the client closed the websocket: all it sent is read

    async def socket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        state = new_sync_state()
        async for message in ws:
            if message.type != aiohttp.WSMsgType.BINARY:
                break
            frame = parse_frame(message.data)
            sent.append(type(frame).__name__)
            if isinstance(frame, Join):
                await ws.send_bytes(encode_peer("stand-in", frame.sender, {}))
            elif isinstance(frame, Sync):
                other.receive_sync_message(state, frame.data)
                answer = other.generate_sync_message(state)
                if answer is not None:
                    await ws.send_bytes(encode_sync("stand-in", frame.sender, doc_text,
                                                    answer))
        closed.set()
        return ws

    app = web.Application()
    app.router.add_get("/automerge", socket)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        with pytest.raises(SubscribeError, match=f"^the node's document is for session "
                                                 f"'{OTHER}', not '{ASKED}'$"):
            async with asyncio.timeout(DEADLINE_S):
                async for view in projections(f"http://127.0.0.1:{port}", ASKED):
                    raise AssertionError(f"followed {view['session_key']!r}")
        async with asyncio.timeout(DEADLINE_S):
            await closed.wait()
    finally:
        await runner.cleanup()
    assert sent == ["Join", "Sync"]  # the join and the request for the document
