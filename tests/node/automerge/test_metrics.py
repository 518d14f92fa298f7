"""Automerge metrics of a real node in this process, with the Python automerge-repo
client (tests/support/automerge.py) on real websockets."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from prometheus_client.metrics_core import Metric

from node.automerge.metrics import REASON_NAMES
from node.server.run import RunningNode
from sync.repo.config import RepoConfig, RepoLimits
from tests.support.metrics import label_values, scrape, scraped_until, value
from tests.support.nodes import S1, WsApp, connect, has_messages, post

NodeFactory = Callable[..., Awaitable[RunningNode]]
EventFactory = Callable[..., dict[str, Any]]
TOKEN = "s3cret-token"
FAMILIES = {
    "clawsync_automerge_clients": "gauge",
    "clawsync_automerge_documents": "gauge",
    "clawsync_automerge_frames_received": "counter",
    "clawsync_automerge_frames_sent": "counter",
    "clawsync_automerge_clients_refused": "counter",
}


def refused(families: dict[str, Metric], reason: str) -> float | None:
    return value(families, "clawsync_automerge_clients_refused", "_total", reason=reason)


async def test_clients_documents_frames_and_refusals(make_node: NodeFactory,
                                                     event_body: EventFactory) -> None:
    node = await make_node(token=TOKEN,
                           automerge=RepoConfig(limits=RepoLimits(frame_bytes_max=4_096)))
    await post(node, "s1", event_body(1), token=TOKEN)
    families = await scrape(node.url, TOKEN)
    for name, kind in FAMILIES.items():
        assert families[name].type == kind, name
    assert label_values(families, "clawsync_automerge_clients_refused", "reason") \
        == set(REASON_NAMES)  # every reason from the start: a fixed, bounded set
    assert value(families, "clawsync_automerge_clients") == 0

    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await session.ws_connect(node.url + "/automerge?token=wrong")
    sessions: list[aiohttp.ClientSession] = []
    try:
        clients: list[WsApp] = []
        for _ in range(3):
            session, client = await connect(node, token=TOKEN)
            sessions.append(session)
            clients.append(client)
        honest, texting, flooding = clients
        await honest.open()
        assert has_messages(honest.app, S1)
        for hostile in (texting, flooding):
            await hostile.send(hostile.app.join())
            await hostile.pump(lambda h=hostile: h.app.server is not None)
        await texting.ws.send_str("text frame")
        await flooding.ws.send_bytes(b"\x00" * 5_000)  # beyond frame_bytes_max
        assert await texting.closed() is not None and await flooding.closed() is not None

        families = await scraped_until(node.url, lambda f: value(
            f, "clawsync_automerge_clients") == 1, "the honest client alone connected", TOKEN)
        assert refused(families, "unauthorized") == 1
        assert refused(families, "unsupported") == 1
        assert refused(families, "too_big") == 1
        assert refused(families, "policy") == 0
        assert value(families, "clawsync_automerge_documents") == 1
        # Three joins, a request, a text frame, an oversize one (counted by its type
        # before its size refuses it, or not: aiohttp refuses it as an error frame).
        received = value(families, "clawsync_automerge_frames_received", "_total")
        assert received is not None and received >= 5
        sent = value(families, "clawsync_automerge_frames_sent", "_total")
        assert sent is not None and sent >= 4  # three peer answers and the document
    finally:
        for session in sessions:
            await session.close()
    await scraped_until(node.url, lambda f: value(f, "clawsync_automerge_clients") == 0,
                        "no client connected", TOKEN)
