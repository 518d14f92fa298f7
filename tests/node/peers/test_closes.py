"""node.peers.transport with real nodes in this process: how long a link's close waits
for the peer's answer to its close frame. A link a running node closes (here an accepted
link of a device removed) waits up to ``close_timeout_s``, as a refusal or a protocol
fault does: the answer lets the peer read all that was sent before the close. A stopping
node waits at most ``STOP_CLOSE_WAIT_S``. The bound each close was given is read off the
time-outs the link's closes enter, not off the clock."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import Any

import aiohttp
import pytest
from aiohttp import WSCloseCode

from node.peers import transport
from node.peers.transport import STOP_CLOSE_WAIT_S, LinkClosed, dial
from node.server.run import RunningNode
from tests.node.peers.removing import accepted
from tests.node.peers.support import FAST, SECRET, NodeFactory, until

#: The accepting node's ``close_timeout_s``, and the dialer's: set apart from each other,
#: from ``STOP_CLOSE_WAIT_S`` and from the other time-outs a link enters, so that each
#: close's bound names whose close it was.
ACCEPTER_CLOSE_S, DIALER_CLOSE_S = 4.5, 5.5


class TimeoutsEntered:
    """``asyncio`` as ``node.peers.transport`` sees it, recording the delay of each
    ``asyncio.timeout`` entered there; the time-outs themselves run as ever."""

    def __init__(self) -> None:
        self.delays: list[float | None] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    def timeout(self, delay: float | None) -> asyncio.Timeout:
        self.delays.append(delay)
        return asyncio.timeout(delay)

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
