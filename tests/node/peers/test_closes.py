"""node.peers.transport with real nodes in this process: how long a link's close waits
for the peer's answer to its close frame. A link a running node closes (here an accepted
link of a device removed) waits up to ``close_timeout_s``, as a refusal or a protocol
fault does: the answer lets the peer read all that was sent before the close. A stopping
node waits at most ``STOP_CLOSE_WAIT_S``, as does a handshake that failed (a dialed
one, waiting for the peer's proof or having read one that failed, not at all): a peer
that sent no proof in time will not answer a close either. The bound each close was
given is read off the time-outs the link's closes enter, not off the clock."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import WSCloseCode, web

from crdt import device as crdt_device
from crdt import linkproof
from node.device import DeviceKey
from node.peers import transport
from node.peers.link_errors import LinkClosed
from node.peers.transport import LINK_PROTOCOL, PEER_PATH, STOP_CLOSE_WAIT_S, dial
from node.server.run import RunningNode
from tests.node.peers.removing import accepted
from tests.node.peers.support import (
    FAST,
    SECRET,
    NodeFactory,
    headers,
    new_member,
    serving,
    until,
)
from tests.support.waits import DEADLINE_S

#: The accepting node's ``close_timeout_s``, and the dialer's: set apart from each other,
#: from ``STOP_CLOSE_WAIT_S`` and from the other time-outs a link enters, so that each
#: close's bound names whose close it was.
ACCEPTER_CLOSE_S, DIALER_CLOSE_S = 4.5, 5.5


class TimeoutsEntered:
    """``asyncio`` as ``node.peers.transport`` sees it, recording the delay of each
    ``asyncio.timeout`` entered there, and the time-out itself, which runs as ever."""

    def __init__(self) -> None:
        self.delays: list[float | None] = []
        self.timeouts: list[tuple[float | None, asyncio.Timeout]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    def timeout(self, delay: float | None) -> asyncio.Timeout:
        self.delays.append(delay)
        entered = asyncio.timeout(delay)
        self.timeouts.append((delay, entered))
        return entered

    def expired(self, delay: float) -> bool:
        """Whether a time-out of ``delay`` entered so far ran out: a wait that lasted
        its whole bound."""
        return any(entered.expired() for bound, entered in self.timeouts if bound == delay)

    def closes(self) -> set[float | None]:
        """The close bounds entered so far that name the accepting node's close."""
        return {ACCEPTER_CLOSE_S, STOP_CLOSE_WAIT_S} & set(self.delays)


async def linked_phone(make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch
                       ) -> tuple[RunningNode, str, TimeoutsEntered]:
    """A node whose one accepted link is up with a member device that dialed it, that
    device, and the time-outs entered in ``node.peers.transport`` from then on."""
    a = await make_node(cluster_secret=SECRET, sync=dataclasses.replace(
        FAST, close_timeout_s=ACCEPTER_CLOSE_S))
    b = await make_node(cluster_secret=SECRET, sync=dataclasses.replace(
        FAST, close_timeout_s=DIALER_CLOSE_S))
    assert a.gossip.membership is not None
    await a.gossip.membership.add(b.gossip.device.device_id, "phone")
    assert await b.gossip.add_peer(a.url, learned=False)
    await accepted(a)
    entered = TimeoutsEntered()
    monkeypatch.setattr(transport, "asyncio", entered)
    return a, b.gossip.device.device_id, entered


async def test_a_link_closed_while_running_waits_close_timeout_s_for_the_answer(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The device on the accepted link is removed: the node closes the link, running,
    waiting for the device's answer up to its ``close_timeout_s``, not the stop's bound
    (a removed device is to read the last push the close follows)."""
    a, phone, entered = await linked_phone(make_node, monkeypatch)
    assert a.gossip.membership is not None
    stored, _ = await a.gossip.membership.remove(phone, "lost")
    assert stored is not None
    await until(entered.closes)
    assert entered.closes() == {ACCEPTER_CLOSE_S}


async def test_a_stopping_node_waits_at_most_stop_close_wait_s_for_the_answer(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same link, closed as the node stops: its wait is ``STOP_CLOSE_WAIT_S``."""
    a, _, entered = await linked_phone(make_node, monkeypatch)
    await a.stop()
    assert entered.closes() == {STOP_CLOSE_WAIT_S}


async def test_a_dialed_link_whose_read_was_cancelled_waits_for_the_peers_answer(
        make_node: NodeFactory) -> None:
    """A dialed link's end cancels its read under way (its read-ahead): its close still
    waits for the peer's answer to the close frame, as an accepted link's does, so the
    peer has read the close, and all sent before it, by the time it returns: its close
    code is the peer's, not the abnormal one of a connection dropped."""
    a = await make_node(cluster_secret=SECRET)
    b = await make_node(cluster_secret=SECRET)
    assert a.gossip.membership is not None
    await a.gossip.membership.add(b.gossip.device.device_id, "phone")
    got: list[bytes] = []

    async def read(link: transport.Link) -> None:
        while True:
            got.append(await link.receive())

    async with aiohttp.ClientSession() as http:
        link = await dial(http, a.url, node_id=b.astore.node_id, secret=SECRET,
                          advertise=None, tls=None, config=FAST, device=b.gossip.device)
        reading = asyncio.ensure_future(read(link))
        await until(lambda: bool(got))  # a's hello: the next read waits on a
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError, LinkClosed):
            await reading
        await link.close("done")
        assert link._ws.close_code == WSCloseCode.OK


async def test_a_dialed_handshake_without_the_peers_proof_closes_without_waiting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A peer that upgrades and sends no proof within ``connect_timeout_s`` will not
    answer a close either: the failed dial closes without waiting for that answer, not
    ``close_timeout_s`` and not ``STOP_CLOSE_WAIT_S`` either (its read under way is
    cancelled, so the close drops the connection at once: that bound never runs out)."""
    released = asyncio.Event()

    async def silent(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=(LINK_PROTOCOL,))
        await ws.prepare(request)
        await released.wait()  # reads nothing, so answers no close
        return ws

    config = dataclasses.replace(FAST, connect_timeout_s=0.3, close_timeout_s=DIALER_CLOSE_S)
    device = DeviceKey(crdt_device.generate(), tmp_path / "dialer.key")
    entered = TimeoutsEntered()
    async with serving(silent) as url, aiohttp.ClientSession() as http:
        monkeypatch.setattr(transport, "asyncio", entered)
        with pytest.raises(LinkClosed, match="no link proof in time"):
            await dial(http, url, node_id="n" * 32, secret=None, advertise=None, tls=None,
                       config=config, device=device)
        released.set()
    assert DIALER_CLOSE_S not in entered.delays
    assert STOP_CLOSE_WAIT_S in entered.delays and not entered.expired(STOP_CLOSE_WAIT_S)


async def test_an_accepted_handshake_without_the_dialers_proof_closes_without_waiting(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dialer that took the node's proof and stays silent: the node closes the
    handshake waiting ``STOP_CLOSE_WAIT_S`` at most for its answer, not
    ``close_timeout_s`` as for a link that was up."""
    node = await make_node(sync=dataclasses.replace(
        FAST, connect_timeout_s=0.3, close_timeout_s=ACCEPTER_CLOSE_S))
    member, _ = await new_member(node)
    entered = TimeoutsEntered()
    monkeypatch.setattr(transport, "asyncio", entered)
    async with aiohttp.ClientSession() as http, http.ws_connect(
            node.url + PEER_PATH, headers=headers(member, linkproof.new_nonce()),
            protocols=(LINK_PROTOCOL,), autoclose=False) as ws:
        await ws.receive_bytes(timeout=DEADLINE_S)  # the node's proof; ours never comes
        assert (await ws.receive(timeout=DEADLINE_S)).type == aiohttp.WSMsgType.CLOSE
        await until(lambda: not node.gossip.accepted.handlers)
    assert entered.closes() == {STOP_CLOSE_WAIT_S}


async def test_a_dialed_handshake_whose_peer_proof_fails_closes_without_waiting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A peer whose proof does not verify, and that reads nothing after it (so answers
    no close): the failed dial closes without waiting for that answer, though no read
    of its was under way once the proof was read (one is started to be cancelled): the
    bound ``STOP_CLOSE_WAIT_S`` is entered and never runs out."""
    released = asyncio.Event()

    async def forger(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=(LINK_PROTOCOL,))
        await ws.prepare(request)
        key = crdt_device.generate()
        await ws.send_bytes(linkproof.encode_frame(  # signed over nothing the dialer sent
            crdt_device.public_bytes(key), bytes(linkproof.SIGNATURE_BYTES),
            linkproof.new_nonce()))
        await released.wait()  # reads nothing, so answers no close
        return ws

    config = dataclasses.replace(FAST, close_timeout_s=DIALER_CLOSE_S)
    device = DeviceKey(crdt_device.generate(), tmp_path / "dialer.key")
    entered = TimeoutsEntered()
    async with serving(forger) as url, aiohttp.ClientSession() as http:
        monkeypatch.setattr(transport, "asyncio", entered)
        with pytest.raises(LinkClosed, match="the peer's link proof does not verify"):
            await dial(http, url, node_id="n" * 32, secret=None, advertise=None, tls=None,
                       config=config, device=device)
        released.set()
    assert DIALER_CLOSE_S not in entered.delays
    assert STOP_CLOSE_WAIT_S in entered.delays and not entered.expired(STOP_CLOSE_WAIT_S)


async def test_a_drop_cancelled_as_it_starts_its_read_still_closes_the_link() -> None:
    """A node stopping cancels a dial's task at any await, also right after ``drop``
    started the read it cancels: that read is cancelled and the connection closed all
    the same, not left to wait on the peer until the session closes."""
    released = asyncio.Event()

    async def silent(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=(LINK_PROTOCOL,))
        await ws.prepare(request)
        await released.wait()  # sends and reads nothing
        return ws

    async with serving(silent) as url, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(url + PEER_PATH, protocols=(LINK_PROTOCOL,))
        link = transport.Link(ws, None, url, FAST)
        dropping = asyncio.create_task(link.drop("link proof refused"))
        await asyncio.sleep(0)  # it starts its read, and yields for it to start
        reading = link._reading
        assert reading is not None and not dropping.done()
        dropping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await dropping
        released.set()
        assert reading.cancelled()
        assert ws.closed
