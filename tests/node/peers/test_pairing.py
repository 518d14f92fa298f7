"""node.peers.pairing with real nodes in this process: which link to a node is kept, and
which addresses count as reaching it while it is linked."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from node.cli.linkproxy import LinkProxy
from node.peers.ahead import PARSE_THREADS
from node.peers.runner import SecondLink, linked_nodes
from node.peers.transport import DUPLICATE_LINK, PEER_PATH, Proven
from node.server.run import RunningNode
from node.store import Commit
from sync.peer.config import SyncConfig
from tests.node.conftest import EventFactory
from tests.node.peers.support import (
    DEADLINE_S,
    FAST,
    SECRET,
    NodeFactory,
    all_taken,
    listed_as,
    ordered,
    own_events,
    port_of,
    serving,
    stopped_laptop,
    until,
)
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

    async with serving(link, path=PEER_PATH) as url:
        try:
            yield url, dialed, go
        finally:
            go.set()


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
        await until(lambda: x_id in linked_nodes(hub.gossip.runners.values()))
        go.set()
        await until(lambda: redial.state in ("backoff", "standby"))  # closed, its end handled
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
    hub = await make_node(cluster_secret=SECRET)
    x = await make_node(cluster_secret=SECRET, sync=FAST, peers=[hub.url])
    x_id = x.astore.node_id
    await until(lambda: x_id in linked_nodes(hub.gossip.runners.values()))
    url = f"http://127.0.0.1:{free_port()}"
    dial = await hub.gossip._new_runner(f"url:{url}", url, "out", checkpoint_key=None)
    try:
        dial.state, dial.second_link = "down", SecondLink(None, x_id)
        dial.machine.peer_node = hub.gossip.learning.members[url] = x_id
        [first] = [r for r in hub.gossip.runners.values() if r.linked_to == x_id]
        kept = x.gossip.runners[f"url:{hub.url}"]
        kept.drop = "test: the link ends"
        kept.wake.set()
        # x redials: its next link is named
        await until(lambda: any(r.linked_to == x_id and r is not first
                                for r in hub.gossip.runners.values()))
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
    hub = await make_node(cluster_secret=SECRET)
    x = await make_node(cluster_secret=SECRET, sync=FAST)
    y = await make_node(cluster_secret=SECRET)
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
        await until(lambda: x_id in linked_nodes(hub.gossip.runners.values()))
        assert x_dial.url is not None
        assert hub.gossip.learning.reached_as == {x_id: {x_dial.url}}
        hub.gossip.pairing.dial_ended(y_dial)  # its end handled after x's link was named
        assert hub.gossip.learning.reached_as == {x_id: {x_dial.url}}
    finally:
        for dial in dials:
            hub.gossip.runners.pop(dial.key)


@contextlib.asynccontextmanager
async def parsing_held(node: RunningNode) -> AsyncIterator[None]:
    """Every thread that parses ``node``'s peers' messages held busy until the block
    ends: no link of it takes in a message meanwhile, though each sees its link close."""
    entered, go = threading.Semaphore(0), threading.Event()

    def hold() -> None:
        entered.release()
        go.wait(DEADLINE_S)

    for _ in range(PARSE_THREADS):
        node.gossip.driver._parse_pool.submit(hold)
    try:
        for _ in range(PARSE_THREADS):
            assert await asyncio.to_thread(entered.acquire, timeout=DEADLINE_S)
        yield
    finally:
        go.set()


async def dial_dropped_before_named(x: RunningNode, hub: RunningNode, url: str) -> None:
    """The hub dials x at ``url`` and x dials the hub: x (the smaller id) keeps its own
    link and closes the hub's dial, and that close reaches the hub before x's hello on
    the link kept (the hub's parsing held); returns once x's link is named."""
    x_id = x.astore.node_id
    assert await hub.gossip.add_peer(url, learned=False)
    dial = hub.gossip.runners[f"url:{url}"]
    accepted = await until(lambda: [r for r in x.gossip.runners.values()
                                    if r.linked_to == hub.astore.node_id]
                           if dial.linked_to == x_id else [])
    await all_taken(dial.machine, accepted[0].machine)
    async with parsing_held(hub):  # x's hello on its link waits; the close does not
        assert await x.gossip.add_peer(hub.url, learned=False)
        await until(lambda: dial.state != "up" and any(
            r.direction == "in" and r.state == "up" for r in hub.gossip.runners.values()))
    await until(lambda: x_id in linked_nodes(hub.gossip.runners.values()))


@pytest.mark.parametrize("x_smaller", [True, False], ids=["x-smaller", "hub-smaller"])
async def test_the_address_of_a_node_advertising_none_is_linked_whichever_link_is_kept(
        make_node: NodeFactory, x_smaller: bool) -> None:
    """x advertises no address but is reachable at its own: the hub dials it there, and
    x dials the hub. One link is kept, the one dialed by the smaller node id. When it is
    x's (it names no address), the hub's dial that reached x was dropped as a duplicate:
    the address is live still and the hub's list says so (it said "not linked" half the
    time, and a learner that held the address off kept it off up to an hour). Once x
    stops, it says so no more."""
    x, hub = await ordered(make_node, smaller_first=x_smaller)
    url, x_id = x.url, x.astore.node_id
    assert await hub.gossip.add_peer(url, learned=False)
    assert await x.gossip.add_peer(hub.url, learned=False)
    kept = ["in"] if x_smaller else ["out"]
    # Both dials went through; one link is up, named by its hello, not only "up": an
    # accepted link is up once our hello is sent, and x's may come after x's close of our
    # dial.
    await until(lambda: hub.gossip.runners[f"url:{url}"].node == x_id
                and x.gossip.runners[f"url:{hub.url}"].node == hub.astore.node_id
                and [r.direction for r in hub.gossip.runners.values() if r.state == "up"] == kept
                and x_id in linked_nodes(hub.gossip.runners.values()))
    [row] = [row for row in hub.gossip.member_list()["peers"] if row["url"] == url]
    assert (row["node_id"], row["linked"], row["node_linked"]) \
        == (x_id, True, True)
    await x.stop()
    await until(lambda: not any(r.state == "up" for r in hub.gossip.runners.values()))
    [row] = [row for row in hub.gossip.member_list()["peers"] if row["url"] == url]
    assert (row["linked"], row["node_linked"]) == (False, False)
    assert hub.gossip.learning.reached_as == {}


async def test_a_dial_dropped_by_the_peer_before_its_own_link_is_named_is_linked(
        make_node: NodeFactory) -> None:
    """x (the smaller id, advertising no address) dials the hub, which has dialed it; x
    closes the hub's dial before its hello on the link kept reaches the hub. The hub's
    dial reached x all the same: once x's link is named, the hub's list says linked of
    x's address (it said "not linked" until the link ended, and learners held the
    address off)."""
    x, hub = await ordered(make_node, smaller_first=True)
    await dial_dropped_before_named(x, hub, x.url)
    [row] = [row for row in hub.gossip.member_list()["peers"] if row["url"] == x.url]
    assert (row["linked"], row["node_linked"]) == (True, True)
    assert hub.gossip.learning.reached_as == {x.astore.node_id: {x.url}}


async def test_a_dial_dropped_by_the_peer_says_nothing_of_the_next_link(
        make_node: NodeFactory) -> None:
    """As above, through an address that then dies (x moved); x's kept link ends and x
    dials the hub again. The hub's dial, still waiting while x is linked, reached x only
    in the first link's time: its address is not said linked of the next (learners
    would take up a dead address). The hub's dial waits while x is linked, a pull
    interval of a minute at a time, and x dials again before that."""
    x, hub = await ordered(make_node, smaller_first=True,
                           sync=SyncConfig(pull_interval_s=60.0))
    x_id = x.astore.node_id
    with LinkProxy(target_port=port_of(x)) as proxy:
        url = f"http://127.0.0.1:{proxy.port}"
        await dial_dropped_before_named(x, hub, url)
        assert hub.gossip.learning.reached_as == {x_id: {url}}
        dial = hub.gossip.runners[f"url:{url}"]
        await until(lambda: dial.state == "standby")  # its back-off over, waits while x is linked
        proxy.cut()
        kept = x.gossip.runners[f"url:{hub.url}"]
        kept.drop = "test: the link ends"
        kept.wake.set()
        # x is unlinked only until it dials the hub again, maybe a few ms later: looks
        # every 1 ms catch that moment, until's usual 10 ms could miss it
        await until(lambda: x_id not in linked_nodes(hub.gossip.runners.values()),
                    poll_s=0.001)
        await until(lambda: x_id in linked_nodes(hub.gossip.runners.values()))
        [row] = [row for row in hub.gossip.member_list()["peers"] if row["url"] == url]
        assert row["linked"] is False, row
        assert hub.gossip.learning.reached_as == {}


async def test_a_redial_up_before_its_hello_keeps_nothing_of_a_node_gone(
        make_node: NodeFactory) -> None:
    """The laptop's link ends while a dial of the hub's is "up" with the laptop's id
    left from an earlier link, its hello not back: that dial names no one yet, so what
    the laptop advertised goes all the same (it may come back elsewhere)."""
    hub = await make_node(cluster_secret=SECRET)
    port = free_port()
    laptop = await make_node(cluster_secret=SECRET, port=port,
                             advertise_url=f"http://127.0.0.1:{port}", peers=[hub.url])
    await listed_as(hub, laptop, "up")
    assert await hub.gossip.add_peer(f"http://127.0.0.1:{free_port()}", learned=False)
    [redial] = [runner for runner in hub.gossip.runners.values() if runner.direction == "out"]
    # "up" (its start sent), its hello not back, the laptop's id left from a link before
    redial.state, redial.machine.peer_node = "up", laptop.astore.node_id
    assert laptop.astore.node_id in hub.gossip.learning.advertised_by
    await laptop.stop()
    await until(lambda: not any(runner.identified_as == laptop.astore.node_id  # its link ended
                                for runner in hub.gossip.runners.values()))
    assert laptop.astore.node_id not in hub.gossip.learning.advertised_by


async def test_a_redial_up_before_its_hello_is_no_link_to_the_node_it_had_before(
        make_node: NodeFactory) -> None:
    """The laptop is gone, and a dial of the hub's is "up" (its start sent) with the
    laptop's id left from an earlier link, its hello not back: nothing counts it as a
    link to the laptop. Its member list says the laptop linked nowhere, a learned
    address of the laptop is no address of a node linked, another dial of the laptop
    waits on no standby, and the dial's row connects."""
    hub = await make_node(cluster_secret=SECRET)
    laptop = await stopped_laptop(make_node, hub)
    node = laptop.astore.node_id
    redial, other = [await hub.gossip._new_runner(f"url:{url}", url, "out", checkpoint_key=None)
                     for url in (f"http://127.0.0.1:{free_port()}" for _ in range(2))]
    try:
        redial.state = "up"
        redial.machine.peer_node = other.machine.peer_node = node  # from links before
        [listed] = [peer for peer in hub.gossip.member_list()["peers"]
                    if peer["url"] == laptop.config.advertise_url]
        [row] = [row for row in hub.gossip.status() if row["link"] == redial.key]
        assert (node in linked_nodes(hub.gossip.runners.values()), listed["linked"],
                listed["node_linked"], hub.gossip.pairing.linked_elsewhere(other), row["state"]) \
            == (False, False, False, False, "connecting")
    finally:
        hub.gossip.runners.pop(redial.key)
        hub.gossip.runners.pop(other.key)


async def test_a_new_id_on_a_link_lets_go_of_what_the_old_one_said(
        make_node: NodeFactory) -> None:
    """A hello names the peer anew on the same link (its origin retired): what the old
    id advertised, and where our dials reached it, go; the new id's is kept."""
    hub = await make_node(cluster_secret=SECRET)
    laptop = await make_node(cluster_secret=SECRET, peers=[hub.url])
    await listed_as(hub, laptop, "up")
    old = laptop.astore.node_id
    await until(lambda: old in hub.gossip.learning.advertised_by)  # its hello handled
    [link] = [runner for runner in hub.gossip.runners.values() if runner.identified_as == old]
    hub.gossip.learning.reached_as_duplicate(old, "http://127.0.0.1:1")
    link.machine.peer_node = "n-new"  # as the machine has it after the second hello
    hub.gossip.pairing.identified(link)
    learning = hub.gossip.learning
    assert (old in learning.advertised_by, old in learning.reached_as) == (False, False)
    assert "n-new" in learning.advertised_by


async def test_a_link_dropped_while_it_waits_ends_without_pushing(
        make_node: NodeFactory, event_body: EventFactory) -> None:
    """A link dropped (as ``Pairing.identified`` drops a duplicate: ``drop`` set, then
    woken) while a commit's wake is pending ends at once: what the commit stored, which
    the peer lacks, is not pushed on it first."""
    quiet = dataclasses.replace(FAST, pull_interval_s=600.0)
    a = await make_node(cluster_secret=SECRET, sync=quiet)
    b = await make_node(cluster_secret=SECRET, sync=quiet)
    third = await make_node()  # linked to no one: its events reach a by hand
    async with aiohttp.ClientSession(base_url=third.url) as http, \
            http.post("/v1/sessions/s/events", json=event_body(1)) as answer:
        assert answer.status == 201
    assert await b.gossip.add_peer(a.url, learned=False)
    [link] = await until(lambda: [runner for runner in a.gossip.runners.values()
                                  if runner.direction == "in" and runner.state == "up"
                                  and runner.machine.checkpoint is not None])
    assert link.task is not None
    await all_taken(link.machine, b.gossip.runners[f"url:{a.url}"].machine)
    sent = link.machine.counters.events_sent
    items = await own_events(third)
    woken: list[bool] = []

    def drop(commit: Commit) -> None:
        # In the commit's notice, after the gossip's that wakes the link: dropped before
        # the link's task runs again (the caller of the write resumes after it may have).
        woken.append(link.wake.is_set())
        link.drop = "duplicate link"

    a.astore.add_commit_listener(drop)
    await a.astore.write(lambda store: store.ingest(items))  # wakes the link: b lacks them
    a.astore.remove_commit_listener(drop)
    assert woken == [True]
    async with asyncio.timeout(DEADLINE_S):
        await asyncio.wait({link.task})
    assert link.machine.counters.events_sent == sent
