"""node.client.subscribe after a forget: the subscription moves to the session's new
document and yields nothing of what was forgotten, also for a session whose projection
is longer than the client reads (the node names the document in a header). A node in
this event loop."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from crdt import codec
from crdt.automerge.document import automerge_url
from crdt.events import parse_event
from node.client.subscribe import projections
from node.headers import AUTOMERGE_URL_HEADER
from node.limits import ClientLimits
from node.server.run import RunningNode
from tests.support.nodes import post
from tests.support.waits import until

NodeFactory = Callable[..., Awaitable[RunningNode]]

#: The answer cap the tests give the client: small, so a session past it is quick to write.
ANSWER_BYTES_MAX = 16 * 1024
#: JSON sends each control character as six bytes (\u0001): a message of this many is
#: past the cap as JSON, while its Automerge document is far within it.
LONG = "\x01" * ANSWER_BYTES_MAX


async def test_a_subscription_follows_the_document_a_forget_made(
        make_node: NodeFactory) -> None:
    node = await make_node()
    said = {"agent_id": "main", "kind": {"type": "message_received", "content": "secret"}}
    await post(node, "s1", said)
    views = projections(node.url, "s1")
    try:
        first = await until(views, lambda v: len(v["messages"]) == 1)
        assert first["automerge_url"] == automerge_url("s1")
        await node.astore.write(lambda store: store.forget("s1", by="test"))
        later: dict[str, Any] = {**said, "kind": {**said["kind"], "content": "after"}}
        await post(node, "s1", later)
        view = await until(views, lambda v: [m["content"] for m in v["messages"]] == ["after"])
    finally:
        await views.aclose()
    assert view["automerge_url"] != automerge_url("s1")
    assert view["automerge_url"] == (await node.astore.read(
        lambda store: automerge_url("s1", store.forget_generation("s1"))))


def _said(content: str) -> dict[str, Any]:
    return {"agent_id": "main", "kind": {"type": "message_received", "content": content}}


async def _url_now(node: RunningNode, key: str) -> str:
    return await node.astore.read(lambda store: automerge_url(key, store.forget_generation(key)))


async def _answer(node: RunningNode, key: str, accept: str = "application/json"
                  ) -> tuple[str | None, bytes]:
    async with aiohttp.ClientSession() as session, session.get(
            f"{node.url}/v1/sessions/{key}", headers={"Accept": accept}) as response:
        assert response.status == 200
        return response.headers.get(AUTOMERGE_URL_HEADER), await response.read()


async def test_a_session_past_the_answer_cap_follows_the_document_a_forget_made(
        make_node: NodeFactory) -> None:
    node = await make_node()
    await post(node, "s1", _said(LONG))
    views = projections(node.url, "s1", limits=ClientLimits(answer_bytes_max=ANSWER_BYTES_MAX))
    try:
        first = await until(views, lambda v: len(v["messages"]) == 1)
        assert first["automerge_url"] == automerge_url("s1")
        # Forgotten and written again in one write: when the subscription asks for the
        # new document, the session is already past the cap again.
        await node.astore.write(lambda store: (
            store.forget("s1", by="test"),
            store.append(parse_event(_said(LONG + "after"), session_key="s1"))))
        view = await until(views, lambda v: [m["content"] for m in v["messages"]]
                           == [LONG + "after"])
    finally:
        await views.aclose()
    assert len((await _answer(node, "s1"))[1]) > ANSWER_BYTES_MAX
    assert view["automerge_url"] == await _url_now(node, "s1") != automerge_url("s1")


async def test_a_subscription_begun_after_the_forget_follows_the_new_document(
        make_node: NodeFactory) -> None:
    node = await make_node()
    await post(node, "s1", _said(LONG))
    await node.astore.write(lambda store: store.forget("s1", by="test"))
    await post(node, "s1", _said(LONG + "after"))
    views = projections(node.url, "s1", limits=ClientLimits(answer_bytes_max=ANSWER_BYTES_MAX))
    try:
        view = await until(views, lambda v: len(v["messages"]) == 1)
    finally:
        await views.aclose()
    assert [m["content"] for m in view["messages"]] == [LONG + "after"]
    assert view["automerge_url"] == await _url_now(node, "s1") != automerge_url("s1")


async def test_the_session_answer_names_its_document_in_a_header(
        make_node: NodeFactory) -> None:
    node = await make_node()
    await post(node, "s1", _said("before"))
    named, body = await _answer(node, "s1")
    assert named == json.loads(body)["automerge_url"] == automerge_url("s1")
    await node.astore.write(lambda store: store.forget("s1", by="test"))
    await post(node, "s1", _said("after"))
    named, body = await _answer(node, "s1")
    assert named == json.loads(body)["automerge_url"] == await _url_now(node, "s1")
    assert named != automerge_url("s1")
    named, body = await _answer(node, "s1", accept="application/cbor")
    assert named == codec.decode(body)["automerge_url"]
