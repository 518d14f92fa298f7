"""node.client.subscribe after a forget: the subscription moves to the session's new
document and yields nothing of what was forgotten. A node in this event loop."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from crdt.automerge.document import automerge_url
from node.client.subscribe import projections
from node.server.run import RunningNode
from tests.node.client.test_subscribe import until
from tests.support.nodes import post

NodeFactory = Callable[..., Awaitable[RunningNode]]


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
