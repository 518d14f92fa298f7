"""A dialed peer that proves no device key, on a node that links by device keys alone
(no cluster secret): nothing shows which device answers at the address, so the link is
closed with ``device_key_required`` before anything is sent. The acceptor here is the
transport's own ``accept``, as a node of 0.2 (or an impostor at the address) runs it:
without asking for the dialer's proof, so that the dialer's subprotocol goes unpicked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from node.peers.admission import KEYLESS_KEPT_MAX
from node.peers.transport import KEY_REQUIRED, PEER_PATH, LinkClosed, accept
from sync.peer.config import SyncConfig
from tests.node.conftest import EventFactory
from tests.node.peers.test_gossip import DEADLINE_S, FAST, NodeFactory
from tests.support.processes import free_port


class KeylessAcceptor:
    """A websocket endpoint at ``PEER_PATH`` that takes any dialer and proves no key;
    keeps what each link sent it and why each ended."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.ended: list[str] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        link = await accept(request, SyncConfig())
        try:
            while True:
                self.received.append(await link.receive())
        except LinkClosed as exc:
            self.ended.append(str(exc))
        return web.Response()


@pytest.fixture
async def keyless() -> AsyncIterator[KeylessAcceptor]:
    acceptor = KeylessAcceptor()
    app = web.Application()
    app.router.add_get(PEER_PATH, acceptor.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", acceptor.port).start()
    yield acceptor
    await runner.cleanup()


async def test_a_dialed_peer_proving_no_key_gets_nothing_without_a_secret(
        make_node: NodeFactory, event_body: EventFactory, keyless: KeylessAcceptor) -> None:
    node = await make_node(sync=FAST)
    async with aiohttp.ClientSession(base_url=node.url) as http, \
            http.post("/v1/sessions/s/events", json=event_body(1)) as answer:
        assert answer.status == 201
    assert await node.gossip.add_peer(keyless.url, learned=False)
    async with asyncio.timeout(DEADLINE_S):
        while not keyless.ended:
            await asyncio.sleep(0.01)
    assert keyless.ended[0] == f"link ended (close: {KEY_REQUIRED})"
    assert keyless.received == []  # no hello, no events


async def test_the_keyless_peers_logged_are_bounded(make_node: NodeFactory) -> None:
    """Each keyless peer refused is logged once; those remembered for it are at most
    ``KEYLESS_KEPT_MAX`` (a peer naming itself anew at each dial cannot grow the set)."""
    admission = (await make_node()).gossip.admission
    for n in range(KEYLESS_KEPT_MAX + 5):
        assert admission.keyless_refusal(shared=False, peer=f"10.0.0.{n}") is not None
    assert 0 < len(admission._keyless) <= KEYLESS_KEPT_MAX
