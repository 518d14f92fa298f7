"""What the peer tests share: real nodes' settings for quick tests, waits on what a node
shows, a server that records what a dial sends, one that stalls, one that answers the
same to every ask, the member lists a node logs as refused, and the set-ups several
tests start from (a laptop that stopped, a phone linked through a proxy, a learner
linked to peers, its members rounds run by hand), a link a member's device key proves,
one dial's proof made by hand (honest or forged), and a store's writer held busy after a
failed dial."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from crdt import device as crdt_device
from crdt import linkproof
from crdt.events import Event
from node.cli.linkproxy import LinkProxy
from node.peers.member_lists import member_urls
from node.peers.runner import Runner, linked_nodes
from node.peers.transport import (
    ADVERTISE_HEADER,
    DEVICE_HEADER,
    LINK_PROTOCOL,
    NODE_HEADER,
    NONCE_HEADER,
    PEER_PATH,
)
from node.server.run import RunningNode
from sync.peer.config import SyncConfig
from sync.peer.machine import PeerSync
from tests.node.conftest import NodeFactory
from tests.support.processes import free_port
from tests.support.waits import DEADLINE_S as DEADLINE_S  # the peer tests take these here
from tests.support.waits import POLL_S
from tests.support.waits import until as until

#: Back-off short enough that a test sees many redials.
FAST = SyncConfig(backoff_base_s=0.01, backoff_max_s=0.02)
#: Back-off long enough that a dial that failed is not made again within a test.
PATIENT = SyncConfig(backoff_base_s=600.0, backoff_max_s=600.0)
#: The cluster secret of the tests' clusters.
SECRET = "s" * 32
#: Members rounds asked in a row: enough to see a line logged at each, were it so.
ROUNDS = 3


def new_device_id() -> str:
    """The id of a device key made now, held by no node."""
    return crdt_device.device_id(crdt_device.public_bytes(crdt_device.generate()))


async def own_events(node: RunningNode) -> list[tuple[Event, str, int, bytes | None]]:
    """The events ``node`` wrote itself (up to 100), as another store ingests them."""
    return await node.astore.read(lambda s: [
        (x.event, x.origin, x.seq, x.signature) for x in s.origin_after(s.node_id, 0, 100)])


def port_of(node: RunningNode) -> int:
    return int(node.url.rsplit(":", 1)[1])


async def learned_down(make_node: NodeFactory) -> tuple[RunningNode, str, Runner]:
    """A node (``PATIENT``) with a learned peer address nothing listens on, its first
    dial failed and its next ten minutes away: the node, the address and its runner."""
    node = await make_node(cluster_secret=SECRET, sync=PATIENT)
    learned = f"http://127.0.0.1:{free_port()}"
    assert await node.gossip.add_peer(learned, learned=True)
    runner = node.gossip.runners[f"url:{learned}"]
    await until(lambda: runner.failure is not None and runner.state == "backoff")
    return node, learned, runner


async def busy(_request: web.Request) -> web.Response:
    """A peer that asks every dial to wait ten minutes (``Retry-After``), for ``serving``."""
    return web.Response(status=429, headers={"Retry-After": "600"})


#: Seconds ``serving``'s shutdown lets a handler still running finish before it cancels it.
#: A node the test made stops after the server (its fixture ends after the test): the
#: handler of a dial of that node's, waiting on the node meanwhile, would otherwise hold
#: the shutdown up to aiohttp's 60 s. Only a running handler holds it.
SERVING_SHUTDOWN_S = 0.5


@contextlib.asynccontextmanager
async def serving(handler: Callable[[web.Request], Any], *, path: str = "/{tail:.*}",
                  port: int | None = None, tls: ssl.SSLContext | None = None
                  ) -> AsyncIterator[str]:
    """A plain HTTP server on loopback (at ``port``, or a free one; HTTPS with ``tls``)
    answering every request at ``path`` (any, by default) with ``handler``; its URL."""
    app = web.Application()
    app.router.add_route("*", path, handler)
    runner = web.AppRunner(app, shutdown_timeout=SERVING_SHUTDOWN_S)
    await runner.setup()
    port = port or free_port()
    try:  # the runner is cleaned up though the port cannot be bound
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=tls).start()
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def stalling(answer: bytes) -> AsyncIterator[str]:
    """A server on a free loopback port that reads a request's head, writes ``answer``
    (a status line, headers and less of a body than they promise) and stops there,
    the connection held open; its URL."""
    taken: list[asyncio.StreamWriter] = []

    async def answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        taken.append(writer)
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)

    server = await asyncio.start_server(answering, "127.0.0.1", free_port())
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        for writer in taken:
            writer.close()
        await server.wait_closed()


#: A refusal whose body stops after 12 of the 1000 bytes it promises (``stalling``).
STALLED_REFUSAL = (b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n"
                   b"Content-Length: 1000\r\n\r\nBlocked here")


@dataclass
class ProxiedPhone:
    """``a`` linked, through ``proxy``, with the node whose device it added as "phone"."""

    a: RunningNode
    phone: str
    proxy: LinkProxy
    dial: Runner


@contextlib.asynccontextmanager
async def phone_behind_proxy(make_node: NodeFactory, a_sync: SyncConfig
                             ) -> AsyncIterator[ProxiedPhone]:
    """A node ``a`` (with ``a_sync``) that took a second node's device as a member,
    "phone", and dialed it through a proxy the test may cut: yields once linked."""
    a = await make_node(cluster_secret=SECRET, sync=a_sync)
    b = await make_node(cluster_secret=SECRET, sync=FAST)
    phone = b.gossip.device.device_id
    assert a.gossip.membership is not None
    await a.gossip.membership.add(phone, "phone")
    with LinkProxy(target_port=port_of(b)) as proxy:
        url = f"http://127.0.0.1:{proxy.port}"
        assert await a.gossip.add_peer(url, learned=False)
        dial = a.gossip.runners[f"url:{url}"]
        await until(lambda: phone in a.gossip.linked_devices())
        yield ProxiedPhone(a, phone, proxy, dial)


async def forgotten(node: RunningNode, url: str) -> bool:
    """Wait until ``node`` no longer dials ``url``; whether ``url`` left its members list too."""
    await until(lambda: f"url:{url}" not in node.gossip.runners)
    return url not in node.gossip.learning.members


async def add_member(node: RunningNode, name: str, address: str | None = None, *,
                     device_id: str | None = None) -> str:
    """Add a device (``device_id``, or a new one), advertising ``address`` if given, to
    ``node``'s cluster by ``POST /v1/devices``; its id."""
    member = device_id or new_device_id()
    body = {"device_id": member, "name": name}
    if address is not None:
        body["address"] = address
    async with aiohttp.ClientSession() as http, \
            http.post(node.url + "/v1/devices", json=body) as reply:
        assert reply.status == 201
    return member


@contextlib.asynccontextmanager
async def recording_server() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """A server that answers 404 to everything: its URL and the headers it was sent."""
    seen: list[dict[str, str]] = []

    async def grab(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.Response(status=404)

    async with serving(grab) as url:
        yield url, seen


async def all_taken(one: PeerSync, other: PeerSync) -> None:
    """Wait until the two ends of a link have taken every message the other sent (a
    dialer's hello may be said again once it learns what the other reads), twice in a
    row: a message that comes later would be handled, and answered, on the writer."""
    def counts() -> tuple[int, int, int, int]:
        return (one.counters.messages_in, one.counters.messages_out,
                other.counters.messages_in, other.counters.messages_out)

    before: tuple[int, int, int, int] | None = None

    def all_taken_twice() -> bool:  # this look and the one POLL_S before it
        nonlocal before
        now, last = counts(), before
        before = now
        return now == last and now[0] == now[3] and now[1] == now[2]

    await until(all_taken_twice, poll_s=POLL_S)


def rows_of(node: RunningNode, peer: RunningNode) -> list[dict[str, Any]]:
    """``node``'s ``/v1/peers`` rows for the node ``peer``."""
    return [row for row in node.gossip.peers() if row["node_id"] == peer.astore.node_id]


async def listed_as(node: RunningNode, peer: RunningNode, state: str) -> None:
    """Wait until ``node`` lists ``peer`` once, in ``state``."""
    await until(lambda: [row["state"] for row in rows_of(node, peer)] == [state])


async def hub_and_laptop_gone(make_node: NodeFactory
                              ) -> tuple[RunningNode, RunningNode, str]:
    """A hub and a laptop that advertised its address to it, then stopped (``stopped_laptop``):
    both, and the laptop's dead address."""
    hub = await make_node(cluster_secret=SECRET)
    laptop = await stopped_laptop(make_node, hub)
    assert laptop.config.advertise_url is not None
    return hub, laptop, laptop.config.advertise_url


async def stopped_laptop(make_node: NodeFactory, hub: RunningNode) -> RunningNode:
    """A laptop that advertised its address to ``hub``, then stopped: the hub lists the
    address still (its link is down)."""
    port = free_port()
    laptop = await make_node(cluster_secret=hub.config.cluster_secret, port=port,
                             advertise_url=f"http://127.0.0.1:{port}", peers=[hub.url])
    await listed_as(hub, laptop, "up")
    await laptop.stop()
    await listed_as(hub, laptop, "down")
    assert laptop.config.advertise_url in [p["url"] for p in hub.gossip.member_list()["peers"]]
    return laptop


async def laptop_back(make_node: NodeFactory, hub: RunningNode,
                      laptop: RunningNode) -> RunningNode:
    """``laptop`` started again, at its address and on its data, linked with ``hub``."""
    again = await make_node(cluster_secret=hub.config.cluster_secret,
                            port=laptop.config.port, data_dir=laptop.config.data_dir,
                            advertise_url=laptop.config.advertise_url, peers=[hub.url])
    await listed_as(hub, again, "up")
    return again


async def ordered(make_node: NodeFactory, *, smaller_first: bool, **config: Any
                  ) -> tuple[RunningNode, RunningNode]:
    """Two nodes of the cluster ``"s" * 32``, neither dialing nor advertising: the one
    with the smaller node id first, or last."""
    one, two = [await make_node(cluster_secret=SECRET, **config) for _ in range(2)]
    low, high = sorted([one, two], key=lambda node: node.astore.node_id)
    return (low, high) if smaller_first else (high, low)


def answer(status: int, body: str | bytes, *, asks: list[str] | None = None,
           content_type: str = "text/plain") -> Callable[[web.Request],
                                                         Awaitable[web.Response]]:
    """A server's handler (``serving``) that answers every ask ``status`` with ``body``,
    each ask's path put in ``asks`` if given."""
    async def answering(request: web.Request) -> web.Response:
        if asks is not None:
            asks.append(request.path)
        return web.Response(status=status, content_type=content_type,
                            body=body.encode() if isinstance(body, str) else body)

    return answering


def refusals(said: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The ``members not listed`` lines logged: level and reason."""
    return [(entry["log_level"], entry["reason"]) for entry in said
            if entry["event"] == "members not listed"]


async def rounds_by_hand(node: RunningNode) -> None:
    """End ``node``'s members rounds: the test runs them (``learn_once``), and no round
    of its own asks at a moment the test does not choose."""
    [rounds] = [task for task in node.gossip._tasks if task.get_name() == "members"]
    rounds.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await rounds


async def link_up_asks(node: RunningNode) -> None:
    """Wait for ``node``'s asks for member lists made as its links came up."""
    await asyncio.gather(*[task for task in node.gossip._tasks
                           if task.get_name() == "learn-members"])


async def linked_to(make_node: NodeFactory, count: int, sync: SyncConfig = FAST
                    ) -> tuple[RunningNode, list[RunningNode]]:
    """A learner (with ``sync``) that dialed ``count`` peers on the cluster secret, its
    members rounds run by the test, the asks made as its links came up answered."""
    learner = await make_node(cluster_secret=SECRET, sync=sync)
    peers = [await make_node(cluster_secret=SECRET, sync=FAST) for _ in range(count)]
    await rounds_by_hand(learner)
    for peer in peers:
        assert await learner.gossip.add_peer(peer.url, learned=False)
    await until(lambda: linked_nodes(learner.gossip.runners.values())
                == {peer.astore.node_id for peer in peers})
    await link_up_asks(learner)
    return learner, peers


def headers(device_id: str, nonce: bytes) -> dict[str, str]:
    """The headers a dial opens with: the device it claims to be and its nonce."""
    return {DEVICE_HEADER: device_id, NONCE_HEADER: linkproof.b64(nonce)}


async def new_member(node: RunningNode) -> tuple[str, Ed25519PrivateKey]:
    """A device key made now, added to ``node``'s cluster: its id and key."""
    key = crdt_device.generate()
    member = crdt_device.device_id(crdt_device.public_bytes(key))
    await add_member(node, "member-" + member.partition("-")[0], device_id=member)
    return member, key


@contextlib.asynccontextmanager
async def member_link(node: RunningNode, advertise: str | None = None,
                      node_id: str | None = None
                      ) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A link to ``node`` proven with the key of a device added to its cluster now, open
    past the proofs: the node's hello is read, ours not sent. ``advertise``: the address
    the link says it is reached at; ``node_id``: the node it names itself."""
    member, key = await new_member(node)
    nonce = linkproof.new_nonce()
    sent = headers(member, nonce)
    if advertise is not None:
        sent[ADVERTISE_HEADER] = advertise
    if node_id is not None:
        sent[NODE_HEADER] = node_id
    async with aiohttp.ClientSession() as http, http.ws_connect(
            node.url + PEER_PATH, headers=sent, protocols=(LINK_PROTOCOL,)) as ws:
        first = await ws.receive_bytes(timeout=DEADLINE_S)
        _, _, theirs = linkproof.parse_frame(first, with_nonce=True)
        assert theirs is not None
        await ws.send_bytes(linkproof.encode_frame(
            crdt_device.public_bytes(key),
            linkproof.sign(key, "dial", nonce, theirs, member, node.device.device_id)))
        assert (await ws.receive(timeout=DEADLINE_S)).type == aiohttp.WSMsgType.BINARY
        yield ws


def failing_taking_up(monkeypatch: pytest.MonkeyPatch) -> list[Exception]:
    """Have a peer's member list taken up (``node.peers.learning.member_urls``) raise the
    fault the returned list holds, put there by the test; the real one while it is
    empty."""
    faults: list[Exception] = []

    def failing(listed: Any, own: Any, refusals: Any, url: str | None) -> Any:
        if faults:
            raise faults[0]
        return member_urls(listed, own, refusals, url)

    monkeypatch.setattr("node.peers.learning.member_urls", failing)
    return faults


async def prove(node: RunningNode, claimed: str, key: Ed25519PrivateKey,
                nonce: bytes | None = None,
                replay: bytes | None = None) -> tuple[str, bytes, bytes]:
    """Dial ``node`` as ``claimed``, signing with ``key`` (or sending the proof frame
    ``replay`` as it is); the node's answer after our proof (a close message, or "open"
    if it started the peer protocol), our proof frame and our nonce."""
    nonce = nonce or linkproof.new_nonce()
    async with aiohttp.ClientSession() as http, http.ws_connect(
            node.url + PEER_PATH, headers=headers(claimed, nonce),
            protocols=(LINK_PROTOCOL,)) as ws:
        assert ws.protocol == LINK_PROTOCOL
        first = await ws.receive_bytes(timeout=DEADLINE_S)
        their_key, signature, theirs = linkproof.parse_frame(first, with_nonce=True)
        acceptor = crdt_device.device_id(their_key)
        assert acceptor == node.device.device_id and theirs is not None
        assert linkproof.proven(their_key, signature, acceptor, "accept", nonce, theirs,
                                claimed, acceptor)
        ours = replay or linkproof.encode_frame(
            crdt_device.public_bytes(key),
            linkproof.sign(key, "dial", nonce, theirs, claimed, acceptor))
        await ws.send_bytes(ours)
        answer = await ws.receive(timeout=DEADLINE_S)
        if answer.type == aiohttp.WSMsgType.BINARY:
            return "open", ours, nonce  # the node's hello: the link is up
        return str(ws.close_code and answer.extra), ours, nonce


class WriterHeld:
    """The node's store writer held busy (as a group commit or other links' calls hold
    it) from the save of the first dial that failed or was refused until
    ``release_once_waited``: when that dial had ended, and when the writer was let go."""

    def __init__(self, node: RunningNode) -> None:
        loop = asyncio.get_running_loop()
        self.held, self.release = threading.Event(), threading.Event()
        self.failed_at: list[float] = []
        self.released_at: list[float] = []
        self.tasks: list[asyncio.Future[None]] = []
        save = node.gossip.driver.save_checkpoint

        def busy_writer(_store: object) -> None:
            self.held.set()
            self.release.wait(DEADLINE_S)
            self.released_at.append(loop.time())

        async def save_then_busy(runner: Runner, force: bool = False) -> None:
            ended = runner.failure is not None or runner.refused is not None
            if ended and not self.failed_at:
                self.failed_at.append(loop.time())  # the dial ended before this
            await save(runner, force)
            if ended and not self.held.is_set():  # busy from here
                self.tasks.append(asyncio.ensure_future(node.astore.write(busy_writer)))
                await until(self.held.is_set, poll_s=0.001)

        node.gossip.driver.save_checkpoint = save_then_busy  # type: ignore[method-assign]

    async def release_once_waited(self) -> None:
        """Lets the writer go once it is held and the dial has gone on to wait for it."""
        await until(self.held.is_set)
        await asyncio.sleep(0.05)  # the dial goes on to wait for the writer
        self.release.set()

    async def finished(self) -> None:
        await asyncio.gather(*self.tasks)
