"""node.peers.pairing with real nodes in this process: which link to a node is kept, and
which addresses count as reaching it while it is linked."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from node.peers.runner import SecondLink, linked_nodes
from node.peers.transport import DUPLICATE_LINK, PEER_PATH, Proven
from tests.node.peers.test_gossip import DEADLINE_S, FAST, NodeFactory, ordered
from tests.support.processes import free_port


@contextlib.asynccontextmanager
async def closing_as_duplicate() -> AsyncIterator[tuple[str, asyncio.Event, asyncio.Event]]:
    """An address whose peer endpoint answers as a node that keeps another link to the
    dialer: it takes the dialer's hello and closes the link as a second one
    (``DUPLICATE_LINK``), but sends no hello first, which a node always does. It leaves
    the dialer as a real node does when the dialer does not take its hello in: a send of
    the dialer's own (a local append's push) that fails on the link, closing already,
    before the queued hello is handed to the link's loop. That race is not driven here:
    it needs the loop busy from before the hello is parsed until the close is read.
    Each handshake waits until the second event is set; the first is set once a dial
    waits there. Yields the URL and both."""
    dialed, go = asyncio.Event(), asyncio.Event()

    async def link(request: web.Request) -> web.WebSocketResponse:
        dialed.set()
        await go.wait()
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.receive()  # the dialer's hello
        await ws.close(message=DUPLICATE_LINK.encode())
        return ws

    app = web.Application()
    app.router.add_get(PEER_PATH, link)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", dialed, go
    finally:
        go.set()
        await runner.cleanup()


async def test_a_redial_closed_as_a_second_link_after_the_kept_one_was_named_is_linked(
        make_node: NodeFactory) -> None:
    """The hub redials an address where it reached x before; meanwhile x dials the hub
    and that link, kept, is named. x then closes the hub's redial as a second link, no
    hello of its taken in there (``closing_as_duplicate`` stands in for x: how a real x
    gets there). The redial reached x: while x's link lasts, the hub's list says linked
    of the address (it said not linked, and the redial, waiting on standby while x is
    linked, never named x there to count it)."""
    x, hub = await ordered(make_node, smaller_first=True)
    x_id = x.astore.node_id
    async with closing_as_duplicate() as (url, dialed, go):
        assert await hub.gossip.add_peer(url, learned=False)
        redial = hub.gossip.runners[f"url:{url}"]
        # Where x was reached before (its task has not run yet: no standby, x unlinked).
        redial.machine.peer_node = hub.gossip.learning.members[url] = x_id
        async with asyncio.timeout(DEADLINE_S):
            await dialed.wait()
        assert await x.gossip.add_peer(hub.url, learned=False)
        async with asyncio.timeout(DEADLINE_S):
            while x_id not in linked_nodes(hub.gossip.runners.values()):
                await asyncio.sleep(0.01)
        go.set()
        async with asyncio.timeout(DEADLINE_S):  # closed, and its end handled
            while redial.state not in ("backoff", "standby"):
                await asyncio.sleep(0.01)
        assert hub.gossip.learning.reached_as == {x_id: {url}}
        [row] = [row for row in hub.gossip.member_list()["peers"] if row["url"] == url]
        assert (row["node_id"], row["linked"], row["node_linked"]) == (x_id, True, True)


async def test_a_dial_closed_as_a_second_link_says_nothing_once_the_last_link_ends(
        make_node: NodeFactory) -> None:
    """x's link to the hub is up and named; a dial of the hub's that reached x was
    closed by x as a second link, not counted yet (its end still being handled when x's
    link ends). Once x's last link ends, that close is of its time only: x's next link
    does not count the dial's address as reaching x (it may have died meanwhile; a
    learner would take it up again)."""
    hub = await make_node(cluster_secret="s" * 32)
    x = await make_node(cluster_secret="s" * 32, sync=FAST, peers=[hub.url])
    x_id = x.astore.node_id
    async with asyncio.timeout(DEADLINE_S):
        while x_id not in linked_nodes(hub.gossip.runners.values()):
            await asyncio.sleep(0.01)
    url = f"http://127.0.0.1:{free_port()}"
    dial = await hub.gossip._new_runner(f"url:{url}", url, "out", checkpoint_key=None)
    try:
        dial.state, dial.second_link = "down", SecondLink(None, x_id)
        dial.machine.peer_node = hub.gossip.learning.members[url] = x_id
        [first] = [r for r in hub.gossip.runners.values() if r.linked_to == x_id]
        kept = x.gossip.runners[f"url:{hub.url}"]
        kept.drop = "test: the link ends"
        kept.wake.set()
        async with asyncio.timeout(DEADLINE_S):  # x redials: its next link is named
            while not any(r.linked_to == x_id and r is not first
                          for r in hub.gossip.runners.values()):
                await asyncio.sleep(0.01)
        assert hub.gossip.learning.reached_as == {}
        [row] = [row for row in hub.gossip.member_list()["peers"] if row["url"] == url]
        assert (row["linked"], row["node_linked"]) == (False, True)
    finally:
        hub.gossip.runners.pop(dial.key)


async def test_a_dial_another_device_closed_as_a_second_link_is_not_counted(
        make_node: NodeFactory) -> None:
    """Two dials of the hub's were closed as second links, their hellos not taken in,
    where x was reached before: one proved x's device, the other y's (y answers at that
    address now, and kept another link to the hub). Once x's link is named, the first
    counts as reaching x; the second reached y, not x, whether x's link is named after
    its close or before its end: it was counted for x too."""
    hub = await make_node(cluster_secret="s" * 32)
    x = await make_node(cluster_secret="s" * 32, sync=FAST)
    y = await make_node(cluster_secret="s" * 32)
    x_id = x.astore.node_id
    dials = []
    for device in (x.gossip.device, y.gossip.device):
        url = f"http://127.0.0.1:{free_port()}"
        dial = await hub.gossip._new_runner(f"url:{url}", url, "out", checkpoint_key=None)
        dial.state, dial.second_link = "down", SecondLink(device.device_id, x_id)
        dial.device = Proven(device.device_id, device.public_key)
        dial.machine.peer_node = hub.gossip.learning.members[url] = x_id
        dials.append(dial)
    x_dial, y_dial = dials
    try:
        assert await x.gossip.add_peer(hub.url, learned=False)
        async with asyncio.timeout(DEADLINE_S):
            while x_id not in linked_nodes(hub.gossip.runners.values()):
                await asyncio.sleep(0.01)
        assert x_dial.url is not None
        assert hub.gossip.learning.reached_as == {x_id: {x_dial.url}}
        hub.gossip.pairing.dial_ended(y_dial)  # its end handled after x's link was named
        assert hub.gossip.learning.reached_as == {x_id: {x_dial.url}}
    finally:
        for dial in dials:
            hub.gossip.runners.pop(dial.key)
