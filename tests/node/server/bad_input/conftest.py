"""The bad-input tests' node, holding one event, and the client whose every test ends by
checking that nothing was written and that the node still serves."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from node.server.run import RunningNode
from tests.node.server.bad_input.refusals import BATCH_EVENTS_MAX, BODY_BYTES_MAX, URL

EventFactory = Callable[..., dict[str, Any]]
NodeFactory = Callable[..., Awaitable[RunningNode]]


@pytest.fixture
async def node(make_node: NodeFactory, event_body: EventFactory) -> RunningNode:
    """A node holding one event, so that a stray write would show."""
    node = await make_node(body_bytes_max=BODY_BYTES_MAX, batch_events_max=BATCH_EVENTS_MAX)
    async with aiohttp.ClientSession(base_url=node.url) as client, client.post(
            URL, json=event_body(0)) as resp:
        assert resp.status == 201
    return node


@pytest.fixture
async def client(node: RunningNode, event_body: EventFactory
                 ) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=node.url) as session:
        head = node.astore.head
        async with session.get(URL) as resp:
            positions = [e["position"] for e in (await resp.json())["events"]]
        assert len(positions) == 1
        yield session
        # After every bad request: nothing was written, and the node still works.
        assert node.astore.head == head
        async with session.get(URL) as resp:
            assert [e["position"] for e in (await resp.json())["events"]] == positions
        async with session.post(URL, json=event_body(1)) as resp:
            assert resp.status == 201
        assert node.astore.head == head + 1
