"""node.peers.learning with real nodes in this process: the addresses learned from
peers' member lists and from the membership records, which are forgotten, which get the
cluster secret, and what each node is said to advertise. What a member list gives, and
its refusals: ``test_members_lists``."""

from __future__ import annotations

import asyncio
import dataclasses

import aiohttp
import pytest
import structlog

from node.peers.transport import DEVICE_HEADER, NODE_HEADER
from sync.peer.config import SyncConfig
from tests.node.conftest import EventFactory
from tests.node.peers.support import (
    DEADLINE_S,
    FAST,
    SECRET,
    NodeFactory,
    add_member,
    forgotten,
    listed_as,
    member_link,
    ordered,
    recording_server,
    stopped_laptop,
    until,
)
from tests.support.processes import free_port
from tests.support.waits import POLL_S


async def test_a_learned_address_of_this_very_node_is_forgotten(
        make_node: NodeFactory) -> None:
    node = await make_node(cluster_secret=SECRET, sync=FAST)
    itself = node.url.replace("127.0.0.1", "localhost")  # every dial connects
    assert await node.gossip.add_peer(itself, learned=True)
    assert await forgotten(node, itself)


async def test_a_dead_learned_address_is_forgotten(make_node: NodeFactory) -> None:
    node = await make_node(cluster_secret=SECRET, sync=FAST)
    dead = f"http://127.0.0.1:{free_port()}"
    assert await node.gossip.add_peer(dead, learned=True)
    assert await forgotten(node, dead)


async def test_a_learned_address_that_refuses_is_warned_of_once(
        make_node: NodeFactory) -> None:
    """A peer's member list names an address where a node now refuses this one (one of
    another cluster took the port of a node that stopped). The address is forgotten
    after its failures and learned again at every members round: its refusal is
    warned of once, not at every round."""
    stranger = await make_node(cluster_secret="w" * 32)
    node = await make_node(cluster_secret=SECRET, sync=FAST)
    with structlog.testing.capture_logs() as said:
        for _ in range(3):
            assert await node.gossip.add_peer(stranger.url, learned=True)
            assert await forgotten(node, stranger.url)
    warned = [entry for entry in said if entry["event"] == "peer refused this device"]
    assert len(warned) == 1, warned
    assert "the cluster secret this node gave does not match" in warned[0]["reason"]


async def test_a_learned_address_is_not_held_off_while_this_node_reaches_no_peer(
        make_node: NodeFactory) -> None:
    """Its own network down, a node finds every learned address failing: none is held
    off for that, so a peer's list brings them back at the next round once it is up."""
    node = await make_node(cluster_secret=SECRET, sync=FAST)
    dead = f"http://127.0.0.1:{free_port()}"
    assert await node.gossip.add_peer(dead, learned=True)
    assert await forgotten(node, dead)
    assert len(node.gossip.learning.forgotten) == 0


async def test_a_learned_address_gets_the_secret_only_if_a_secret_holder_gave_it(
        make_node: NodeFactory) -> None:
    """x lists the address a device's link advertised and an address it was given
    (``--peer``); y, which learns both from x, gives the cluster secret to the second
    only: the first could be a server of whoever holds a device key."""
    x = await make_node(cluster_secret=SECRET, sync=FAST)
    y = await make_node(cluster_secret=SECRET, sync=FAST)
    async with recording_server() as (advertised, to_advertised), \
            recording_server() as (configured, to_configured), \
            member_link(x, advertise=advertised):
        assert await x.gossip.add_peer(configured, learned=False)
        listed = {peer["url"]: peer["cluster_secret"]
                  for peer in x.gossip.member_list()["peers"]}
        assert listed[advertised] is False and listed[configured] is True
        assert await y.gossip.add_peer(x.url, learned=False)
        y_node = y.gossip.astore.node_id

        def from_y(seen: list[dict[str, str]]) -> list[dict[str, str]]:
            return [headers for headers in seen if headers.get(NODE_HEADER) == y_node]

        async def y_asked_both() -> bool:  # each look starts a members round, which dials
            await y.gossip.learn_once()
            return bool(from_y(to_advertised) and from_y(to_configured))

        await until(y_asked_both, poll_s=POLL_S)
    assert all("Authorization" not in headers for headers in from_y(to_advertised))
    assert all(headers.get("Authorization") == f"Bearer {SECRET}"
               for headers in from_y(to_configured))


async def test_a_peer_dialed_without_the_secret_is_asked_for_members_without_it(
        make_node: NodeFactory) -> None:
    """x links with z on device keys alone (z's address came from a member, not from a
    holder of the secret): asking z which nodes it knows, x does not give the secret.
    z holds it too, so with it z would list the address it was given, and x dial it."""
    x = await make_node(cluster_secret=SECRET, sync=FAST)
    z = await make_node(cluster_secret=SECRET, sync=FAST)
    for node, other in ((x, z), (z, x)):
        await add_member(node, "other", device_id=other.device.device_id)
    async with recording_server() as (listed, _seen):
        assert await z.gossip.add_peer(listed, learned=False)
        assert await x.gossip.add_peer(z.url, learned=True, secret=False)
        runner = x.gossip.runners[f"url:{z.url}"]
        await until(lambda: runner.state == "up")
        for _ in range(5):
            await x.gossip.learn_once()
        assert f"url:{listed}" not in x.gossip.runners
        # With the secret z lists it (so the assertion above is about the secret).
        runner.secret = True
        await x.gossip.learn_once()
        assert f"url:{listed}" in x.gossip.runners


async def test_a_member_address_is_dialed_without_the_cluster_secret(
        make_node: NodeFactory) -> None:
    """Any member may write the address in its membership record: dialing it, a node
    proves its key and does not hand the cluster secret to whoever answers there."""
    async with recording_server() as (address, seen):
        node = await make_node(cluster_secret=SECRET)
        await add_member(node, "phone", address)

        async def dialed() -> list[dict[str, str]]:  # each look dials the members first
            await node.gossip.dial_members()
            return seen

        first = (await until(dialed, poll_s=POLL_S))[0]
        assert "Authorization" not in first and DEVICE_HEADER in first


async def test_a_member_address_is_dialed_on_however_often_it_fails(
        make_node: NodeFactory) -> None:
    """A member device's advertised address (a laptop shut for the night) is not
    forgotten after ``learned_failures_max`` failed dials like an address a peer listed:
    it was, and taken up again at every members round with a fresh back-off."""
    node = await make_node(sync=FAST)
    dead = f"http://127.0.0.1:{free_port()}"
    await add_member(node, "laptop", dead)
    await node.gossip.dial_members()
    runner = node.gossip.runners[f"url:{dead}"]
    await until(lambda: runner.machine.failures >= 2 * FAST.learned_failures_max)
    assert node.gossip.runners.get(f"url:{dead}") is runner


async def test_a_peer_that_takes_a_new_origin_mid_link_is_listed_under_it(
        make_node: NodeFactory, event_body: EventFactory) -> None:
    """A node whose origin is retired takes a new one and names it in its next hello, on
    the same link: the node that dialed it lists its address under the new id (and
    checks it against its other links), not the retired one."""
    hellos = dataclasses.replace(FAST, pull_interval_s=0.1)
    x = await make_node(cluster_secret=SECRET, sync=hellos)
    y = await make_node(cluster_secret=SECRET, sync=hellos)
    old = y.astore.node_id
    async with aiohttp.ClientSession(base_url=y.url) as http, \
            http.post("/v1/sessions/s/events", json=event_body(1)) as answer:
        assert answer.status == 201
    assert await x.gossip.add_peer(y.url, learned=False)

    def listed() -> str | None:
        return {peer["url"]: peer["node_id"]
                for peer in x.gossip.member_list()["peers"]}.get(y.url)

    async def old_listed_and_held() -> bool:
        return listed() == old and old in await x.astore.read(lambda s: s.version)

    await until(old_listed_and_held)
    await x.astore.write(lambda store: store.retire(old))
    await until(lambda: y.astore.node_id != old and listed() == y.astore.node_id)
    assert [runner.node for runner in x.gossip.runners.values()] == [y.astore.node_id]


async def test_what_a_node_advertises_is_let_go_when_its_last_link_ends(
        make_node: NodeFactory) -> None:
    """A laptop advertised an address to the hub, then stopped: what it said goes with
    its link (it may come back advertising another; the hub's list said linked of the
    old one, dead, until it next read the laptop's own list)."""
    hub = await make_node(cluster_secret=SECRET)
    laptop = await stopped_laptop(make_node, hub)
    assert laptop.astore.node_id not in hub.gossip.learning.advertised_by


async def test_what_nodes_advertise_is_kept_first_for_those_linked(
        make_node: NodeFactory) -> None:
    """Past ``peers_max`` nodes, what a node with no link up advertised goes first (an
    id a node left, say), not the oldest entry, a node linked now."""
    hub = await make_node(cluster_secret=SECRET, sync=SyncConfig(peers_max=2))
    laptop = await make_node(cluster_secret=SECRET, peers=[hub.url])
    await listed_as(hub, laptop, "up")
    learning = hub.gossip.learning
    assert list(learning.advertised_by) == [laptop.astore.node_id]
    learning.advertises("n-gone", None)
    learning.advertises("n-gone-too", "http://gone.example:8765")
    assert list(learning.advertised_by) == [laptop.astore.node_id, "n-gone-too"]
    learning.reached_as_duplicate(laptop.astore.node_id, laptop.url)  # where dials reach
    learning.reached_as_duplicate("n-gone", "http://gone.example:1")
    learning.reached_as_duplicate("n-gone-too", "http://gone.example:2")
    assert list(learning.reached_as) == [laptop.astore.node_id, "n-gone-too"]


async def test_a_learned_address_dropped_as_a_second_link_names_no_node_from_a_list(
        make_node: NodeFactory) -> None:
    """x dials the node; a list named x's own address too, and the node dialed it: that
    link is dropped (x's is kept, x's node id being the smaller) and the address is not
    dialed again; the node the list named there goes with it (it stayed)."""
    x, node = await ordered(make_node, smaller_first=True)
    assert await x.gossip.add_peer(node.url, learned=False)
    await listed_as(node, x, "up")
    node.gossip.learning.listed_nodes[x.url] = x.astore.node_id  # as learn_from keeps it
    with structlog.testing.capture_logs() as said:
        assert await node.gossip.add_peer(x.url, learned=True)
        assert not await forgotten(node, x.url)  # listed still: the list names it
    assert "peer address not dialed again" in [entry["event"] for entry in said]
    assert x.url not in node.gossip.learning.listed_nodes


async def test_the_members_rounds_end_when_cancelled_as_the_membership_changes(
        make_node: NodeFactory) -> None:
    """The node's stop cancels its members rounds, waiting for the next change or
    round; a change told at that moment (a record arriving) starts no round after the
    cancel: ``asyncio.wait_for`` returned the change and the rounds ran on."""
    node = await make_node(sync=FAST)
    [rounds] = [task for task in node.gossip._tasks if task.get_name() == "members"]
    await asyncio.sleep(0)  # waiting for the next round, no peer to ask
    node.gossip.learning.changed.set()
    rounds.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(DEADLINE_S):
            await rounds
