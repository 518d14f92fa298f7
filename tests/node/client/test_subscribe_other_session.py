"""node.client.subscribe against a node that names another session's document: a
stand-in answers ``GET /v1/sessions/s1`` as a node would, but naming the document of
``s2`` (a real session of the real node behind it), in the ``X-Clawsync-Automerge-Url``
header or, as an older node, in its body; its ``/automerge`` sends the websocket on to
the real node. The subscription refuses it with a ``SubscribeError`` naming ``s2``, even
while it reconnects; it never yields ``s2``'s projection as ``s1``'s."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from crdt.automerge.document import automerge_url
from node.client.subscribe import SubscribeError, projections
from node.headers import AUTOMERGE_URL_HEADER
from node.server.run import RunningNode
from tests.node.client.support import DEADLINE_S, until
from tests.support.nodes import post
from tests.support.stand_in import Quiet, serving

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
