"""node.client.subscribe: a Python client following a session's projection over /automerge."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from crdt.automerge.document import automerge_url
from node.client.api import Client, ClientError
from node.client.subscribe import SubscribeError, projections, socket_url
from node.limits import ClientLimits
from node.server.run import RunningNode, start
from sync.repo.config import Access, RepoConfig, RepoLimits
from tests.node.client.support import NO_NODE_URLS
from tests.support.addresses import HIDDEN_PASSWORDS
from tests.support.nodes import post
from tests.support.ports import free_port
from tests.support.waits import DEADLINE_S, until

NodeFactory = Callable[..., Awaitable[RunningNode]]
EventFactory = Callable[..., dict[str, Any]]


async def test_projections_follow_appends(make_node: NodeFactory,
                                          event_body: EventFactory) -> None:
    node = await make_node()
    await post(node, "s1", event_body(1))
    views = projections(node.url, "s1")
    try:
        first = await until(views, lambda v: len(v["messages"]) == 1)
        await post(node, "s1", event_body(2), event_body(3))
        later = await until(views, lambda v: len(v["messages"]) == 3)
    finally:
        await views.aclose()
    async with aiohttp.ClientSession() as session, session.get(
            f"{node.url}/v1/sessions/s1") as response:
        expected = await response.json()
    assert first["messages"][0]["content"] == "message 1"
    # ``forgotten`` is the node's count of what is left, not the document's: not in it.
    assert expected.pop("forgotten") is False
    assert later == expected


async def test_a_session_that_appears_later(make_node: NodeFactory,
                                            event_body: EventFactory) -> None:
    node = await make_node()
    views = projections(node.url, "later")
    try:
        # Whether the subscription starts before or after the append, it ends up synced.
        waiting = asyncio.ensure_future(until(views, lambda v: bool(v["messages"])))
        await post(node, "later", event_body(1))
        view = await waiting
    finally:
        await views.aclose()
    assert view["session_key"] == "later"


async def test_a_refused_token_raises(make_node: NodeFactory) -> None:
    node = await make_node(token="node-token",
                           automerge=RepoConfig(tokens={"app-token-1": Access()}))
    with pytest.raises(SubscribeError, match="token"):
        async with asyncio.timeout(DEADLINE_S):
            async for _ in projections(node.url, "s1", token="wrong-token"):
                pass


async def test_a_session_too_large_to_serve_raises(make_node: NodeFactory,
                                                   event_body: EventFactory) -> None:
    node = await make_node(automerge=RepoConfig(limits=RepoLimits(served_bytes_max=500)))
    await post(node, "s1", *(event_body(i) for i in range(1, 20)))
    with pytest.raises(SubscribeError, match="too large to serve"):
        async with asyncio.timeout(DEADLINE_S):
            async for _ in projections(node.url, "s1"):
                pass


async def test_it_reconnects_to_a_restarted_node(make_node: NodeFactory,
                                                 event_body: EventFactory) -> None:
    node = await make_node()
    await post(node, "s1", event_body(1))
    port = int(node.url.rsplit(":", 1)[1])
    views = projections(node.url, "s1")
    try:
        await until(views, lambda v: len(v["messages"]) == 1)
        await node.stop()
        again = await start(dataclasses.replace(node.config, port=port))
        try:
            await post(again, "s1", event_body(2))
            view = await until(views, lambda v: len(v["messages"]) == 2)
        finally:
            await again.stop()
    finally:
        await views.aclose()
    assert [m["content"] for m in view["messages"]] == ["message 1", "message 2"]


@pytest.mark.parametrize(("url", "why"), [*NO_NODE_URLS, *(
    (url, "holds a user name or password") for url in HIDDEN_PASSWORDS)])
async def test_a_node_url_no_node_is_at_is_refused_as_the_client_refuses_it(
        url: str, why: str) -> None:
    """At once, before any connection, with ``Client``'s error, which never shows the
    URL (it may hold a password, "hunter2"). The host is a real listener on loopback,
    which no connection reaches: a request would carry the password to it."""
    arrived: list[bytes] = []

    async def reached(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        arrived.append(await reader.read(4096))
        writer.close()

    port = free_port()
    listener = await asyncio.start_server(reached, "127.0.0.1", port)
    # "hub" and "hub:7878" are the listener; "hub:0", "hub:99999" keep their port.
    url = re.sub(r"\bhub(:7878)?\b(?!:)", f"127.0.0.1:{port}", url)
    try:
        await _refused_as_the_client_refuses_it(url, why)
    finally:
        listener.close()
        await listener.wait_closed()
    assert arrived == []


async def _refused_as_the_client_refuses_it(url: str, why: str) -> None:
    with pytest.raises(ClientError) as by_client:
        Client(url)
    with pytest.raises(ClientError) as by_socket_url:
        socket_url(url, "token")
    with pytest.raises(ClientError) as by_projections:
        async for _ in projections(url, "s1", reconnect=False):
            pass
    said = {str(by_client.value), str(by_socket_url.value), str(by_projections.value)}
    assert len(said) == 1 and why in str(by_client.value) and url not in str(said)
    assert "hunter2" not in str(said)


def test_an_upper_case_scheme_is_taken() -> None:
    assert socket_url("HTTPS://hub:7878", None) == "wss://hub:7878/automerge"


async def test_a_session_whose_json_passes_the_answer_cap_is_followed(
        make_node: NodeFactory) -> None:
    # JSON sends a control character as six bytes (\u0001): the projection's answer
    # passes the cap while its text, and its Automerge document, are far within it.
    limits = ClientLimits(answer_bytes_max=256 * 1024)
    content = "\x01" * 20_000
    node = await make_node()
    await post(node, "s1", *[{"agent_id": "main", "kind": {"type": "message_received",
                                                           "content": content}}] * 5)
    async with aiohttp.ClientSession() as session, session.get(
            f"{node.url}/v1/sessions/s1") as response:
        assert len(await response.read()) > limits.answer_bytes_max > 5 * len(content)
    views = projections(node.url, "s1", limits=limits)
    try:
        view = await until(views, lambda v: len(v["messages"]) == 5)
    finally:
        await views.aclose()
    assert [m["content"] for m in view["messages"]] == [content] * 5
    assert view["automerge_url"] == automerge_url("s1")
