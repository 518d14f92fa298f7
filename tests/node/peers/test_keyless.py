"""A dialed peer that proves no device key, on a node that links by device keys alone
(no cluster secret), or by a CA certificate at a plain http:// address (where no
certificate is asked for): nothing shows which device answers at the address, so the
link is closed with ``device_key_required`` before anything is sent. Nor is anything
sent once a membership record was stored while such a link was starting. The acceptor
here is the transport's own ``accept``, as a node of 0.2 (or an impostor at the
address) runs it: without asking for the dialer's proof, so that the dialer's
subprotocol goes unpicked."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from crdt import membership
from crdt.log.store import EventStore
from node.peers.admission import KEYLESS_KEPT_MAX
from node.peers.link_errors import LinkClosed
from node.peers.transport import KEY_REQUIRED, PEER_PATH, Link, accept, dial
from node.server.run import RunningNode
from sync.peer.config import SyncConfig
from tests.node.conftest import EventFactory
from tests.node.peers.support import DEADLINE_S, FAST, NodeFactory, serving, until
from tests.support.certs import make_ca, make_cert
from tests.support.processes import free_port

SECRET = "a cluster secret of enough length"
NODE_ID = "0123456789abcdef"
HOUR_S = 3600.0


class KeylessAcceptor:
    """A websocket endpoint at ``PEER_PATH`` that takes any dialer and proves no key;
    keeps what each link sent it and why each ended. ``tls``: it serves HTTPS so."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.received: list[bytes] = []
        self.ended: list[str] = []
        self.links: list[Link] = []
        self.port = free_port()
        self.tls = tls
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        link = await accept(request, SyncConfig())
        self.links.append(link)
        try:
            while True:
                self.received.append(await link.receive())
        except LinkClosed as exc:
            self.ended.append(str(exc))
        return web.Response()

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[KeylessAcceptor]:
        async with serving(self.handle, path=PEER_PATH, port=self.port, tls=self.tls):
            try:
                yield self
            finally:
                for link in self.links:  # each handler records why its link ended
                    await link.close()  # (ended), not cancelled by the server's shutdown

    async def wait_ended(self) -> str:
        """Why the first link ended."""
        await until(lambda: bool(self.ended))
        return self.ended[0]


@pytest.fixture
async def keyless() -> AsyncIterator[KeylessAcceptor]:
    """Asked for before ``make_node``: torn down after it, once the nodes dialing it
    stopped."""
    async with KeylessAcceptor().serving() as acceptor:
        yield acceptor


async def test_a_dialed_peer_proving_no_key_gets_nothing_without_a_secret(
        keyless: KeylessAcceptor, make_node: NodeFactory, event_body: EventFactory) -> None:
    node = await make_node(sync=FAST)
    async with aiohttp.ClientSession(base_url=node.url) as http, \
            http.post("/v1/sessions/s/events", json=event_body(1)) as answer:
        assert answer.status == 201
    assert await node.gossip.add_peer(keyless.url, learned=False)
    assert await keyless.wait_ended() == f"link ended (close: {KEY_REQUIRED})"
    assert keyless.received == []  # no hello, no events


def ca_node_settings(folder: Path) -> dict[str, Any]:
    """A node's TLS settings: a certificate of a new CA, which it trusts for its peers
    (no cluster secret); and the acceptor's context, with a certificate of that CA."""
    ca = make_ca(folder, "ca")
    own, theirs = make_cert(folder, "node", ca), make_cert(folder, "keyless", ca)
    acceptor = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    acceptor.load_cert_chain(theirs[0], theirs[1])
    return {"tls_cert": own[0], "tls_key": own[1], "tls_ca": ca[0], "acceptor": acceptor}


async def test_a_certificate_is_not_asked_for_at_a_plain_address(
        keyless: KeylessAcceptor, make_node: NodeFactory, tmp_path: Path) -> None:
    """A node that links by a CA certificate dials a keyless peer at an http://
    address: no certificate was verified there, so the link rests on nothing and is
    closed before any hello, as on a node with no CA."""
    settings = ca_node_settings(tmp_path)
    del settings["acceptor"]
    node = await make_node(sync=FAST, **settings)
    assert await node.gossip.add_peer(keyless.url, learned=False)
    assert await keyless.wait_ended() == f"link ended (close: {KEY_REQUIRED})"
    assert keyless.received == []


async def test_a_keyless_peer_whose_certificate_verified_links(
        make_node: NodeFactory, tmp_path: Path) -> None:
    """At an https:// address, the peer's certificate verified against the CA: the
    link rests on it, and a keyless peer links while no membership record counts."""
    settings = ca_node_settings(tmp_path)
    async with KeylessAcceptor(settings.pop("acceptor")).serving() as keyless:
        node = await make_node(sync=FAST, **settings)
        try:
            assert await node.gossip.add_peer(keyless.url, learned=False)
            await until(lambda: bool(keyless.received))  # its hello
            assert keyless.ended == []
        finally:
            await node.stop()  # before the acceptor, which it would dial again


class RecordHeld:
    """Holds the node's writer (``held``), having stored a membership record the node
    has not read yet: what links start meanwhile waits, and ``read`` makes the node
    take the record in (a sweep of its links) at a chosen point."""

    def __init__(self, node: RunningNode) -> None:
        assert node.gossip.membership is not None
        self.node, self.devices = node, node.gossip.membership
        self._stored, self._go = threading.Event(), threading.Event()

    def _hold(self, store: EventStore) -> None:
        store.append(membership.added(self.devices.device_id, "this node", membership.UNSAID))
        self._stored.set()
        # Until told (``held`` tells it however it ends): a bound here would let the
        # writer go on its own on a slow machine, and the link start before the record
        # is read, which is not what the tests ask.
        self._go.wait()

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        holding = asyncio.ensure_future(self.node.astore.write(self._hold))
        try:
            assert await asyncio.to_thread(self._stored.wait, DEADLINE_S)
            yield
        finally:
            self._go.set()
            await holding

    async def read(self) -> None:
        assert not self.devices.recorded()  # not read before: the link was let in
        assert await self.devices.refresh()
        assert self.devices.recorded()


async def test_a_record_stored_while_a_dialed_keyless_link_starts_ends_it_before_its_hello(
        make_node: NodeFactory, event_body: EventFactory) -> None:
    """A keyless peer dialed is let in on the cluster secret, and the first membership
    record is read while its link starts (its start waits for the store's writer): the
    link is closed then, before its hello, not at the next sweep a members interval
    later."""
    slow = SyncConfig(backoff_base_s=HOUR_S, backoff_max_s=HOUR_S)  # redials when told
    node = await make_node(sync=slow, cluster_secret=SECRET)
    async with aiohttp.ClientSession(base_url=node.url) as http, \
            http.post("/v1/sessions/s/events", json=event_body(1)) as answer:
        assert answer.status == 201
    acceptor = KeylessAcceptor()
    assert await node.gossip.add_peer(acceptor.url, learned=False)  # nobody listens yet
    runner = node.gossip.runners[f"url:{acceptor.url}"]
    await until(lambda: runner.state == "backoff")
    record = RecordHeld(node)
    async with acceptor.serving():
        async with record.held():
            runner.redial.set()
            # Dialed and let in: its start waits for the writer.
            await until(lambda: runner.failure is None)
            await record.read()
        assert await acceptor.wait_ended() == f"link ended (close: {KEY_REQUIRED})"
        assert acceptor.received == []


async def test_a_record_stored_while_a_keyless_link_is_accepted_ends_it_before_its_hello(
        make_node: NodeFactory) -> None:
    """A keyless peer dials on the cluster secret and is let in; the first membership
    record is read while its link is being set up (that waits for the store's writer),
    before any link of it is there to close: the link is closed once set up, before
    its hello."""
    node = await make_node(sync=FAST, cluster_secret=SECRET)
    record = RecordHeld(node)
    advertised = f"http://127.0.0.1:{free_port()}"
    async with aiohttp.ClientSession() as http:
        async with record.held():
            link = await dial(http, node.url, node_id=NODE_ID, secret=SECRET,
                              advertise=advertised, tls=None, config=SyncConfig())
            # Taken (the address it advertises is listed): its set-up waits for the
            # writer.
            await until(lambda: advertised in node.gossip.learning.members)
            await record.read()
        async with asyncio.timeout(DEADLINE_S):
            with pytest.raises(LinkClosed, match=f"close: {KEY_REQUIRED}"):
                await link.receive()  # not its hello


async def test_the_keyless_peers_logged_are_bounded(make_node: NodeFactory) -> None:
    """Each keyless peer refused is logged once; those remembered for it are at most
    ``KEYLESS_KEPT_MAX`` (a peer naming itself anew at each dial cannot grow the set)."""
    admission = (await make_node()).gossip.admission
    for n in range(KEYLESS_KEPT_MAX + 5):
        assert admission.keyless_refusal(shared=False, peer=f"10.0.0.{n}") is not None
    assert 0 < len(admission._keyless) <= KEYLESS_KEPT_MAX
