"""The hold-off of learned addresses forgotten after their failures
(``node.peers.learning``), with real nodes in this process: a dead address a peer lists is
left alone round after round, and dialed again at once when a list says its node is
linked."""

from __future__ import annotations

import asyncio

import structlog

from node.cli.linkproxy import LinkProxy
from node.peers.holds import awake_s
from node.peers.runner import Runner
from node.server.run import RunningNode
from tests.node.peers.support import (
    FAST,
    PATIENT,
    SECRET,
    NodeFactory,
    hub_and_laptop_gone,
    laptop_back,
    listed_as,
    until,
)
from tests.support.processes import free_port


async def learns_and_holds_off(make_node: NodeFactory, hub: RunningNode, gone: str) -> RunningNode:
    """A new node linked to ``hub``: it learns the dead address ``gone`` from the hub's
    list, forgets it after its failures, and leaves it alone at three members rounds
    that follow (learned once, forgotten once)."""
    with structlog.testing.capture_logs() as said:
        node = await make_node(cluster_secret=SECRET, sync=FAST, peers=[hub.url])

        def forgettings() -> int:
            return len([entry for entry in said if entry["event"] == "forgetting learned peer"
                        and entry["peer"] == gone])

        async def not_dialed() -> None:
            await until(lambda: forgettings() > 0 and f"url:{gone}" not in node.gossip.runners)

        await not_dialed()  # learned when the link to the hub came up, and forgotten
        for _ in range(3):  # members rounds
            await node.gossip.learn_once()
            await not_dialed()
    learned = [entry for entry in said if entry["event"] == "learned peer"
               and entry["url"] == gone]
    assert len(learned) == 1, learned
    assert forgettings() == 1
    return node


async def test_a_dead_address_a_peer_lists_is_not_learned_again_round_after_round(
        make_node: NodeFactory) -> None:
    """A hub lists the address of a laptop that stopped for good. A node that learned it
    there dials it until it gives up, and then leaves it alone at the members rounds
    that follow (it was learned again and dialed at each), until the hub says it is
    linked to the laptop again: then it is dialed at once."""
    hub, laptop, gone = await hub_and_laptop_gone(make_node)
    node = await learns_and_holds_off(make_node, hub, gone)
    again = await laptop_back(make_node, hub, laptop)
    await node.gossip.learn_once()
    runner = node.gossip.runners[f"url:{gone}"]
    await until(lambda: runner.state == "up" and runner.node == again.astore.node_id)


async def test_the_old_address_of_a_node_that_moved_stays_held_off(
        make_node: NodeFactory) -> None:
    """A laptop stops and comes back on its data behind a NAT (it advertises no address
    now, and dials the hub): the hub lists its old, dead address still, and is linked to
    the laptop, but not there. A node that forgot the old address after its failures
    leaves it alone at the rounds that follow (it took it up again at each when lists
    said "linked" of every address of a node linked), and ``/v1/peers`` names the node
    the address stood for."""
    hub, laptop, gone = await hub_and_laptop_gone(make_node)
    moved = await make_node(cluster_secret=SECRET, data_dir=laptop.config.data_dir,
                            advertise_url=None, peers=[hub.url])
    await listed_as(hub, moved, "up")
    [row] = [row for row in hub.gossip.member_list()["peers"] if row["url"] == gone]
    assert (row["node_id"], row["linked"], row["node_linked"]) \
        == (moved.astore.node_id, False, True)
    node = await learns_and_holds_off(make_node, hub, gone)
    [held] = node.gossip.held_off()[0]
    assert (held["url"], held["node_id"]) == (gone, moved.astore.node_id)


async def test_the_address_a_node_advertises_is_listed_linked_when_dialed_by_another(
        make_node: NodeFactory) -> None:
    """A laptop that advertises 127.0.0.1 is back, and the hub's link up to it is the one
    the hub dialed at another name (a proxy, as a LAN name only the hub reaches would
    be): the address the laptop advertises is live, and the hub's list says so, so a node
    that held it off dials it again at once (it waited up to an hour when only the link's
    own address was said linked, and the other name does not reach the laptop from it)."""
    hub, laptop, advertised = await hub_and_laptop_gone(make_node)
    node = await make_node(cluster_secret=SECRET, sync=FAST, peers=[hub.url])
    await until(lambda: [one.url for one in node.gossip.learning.held_off()] == [advertised])
    again = await make_node(cluster_secret=SECRET, port=laptop.config.port,
                            data_dir=laptop.config.data_dir, advertise_url=advertised)
    with LinkProxy(target_port=laptop.config.port) as proxy:
        other_name = f"http://127.0.0.1:{proxy.port}"
        assert await hub.gossip.add_peer(other_name, learned=False)
        # linked, and its own list read
        await until(lambda: hub.gossip.runners[f"url:{other_name}"].node == again.astore.node_id
                    and hub.gossip.learning.advertised_by.get(again.astore.node_id) == advertised)
        proxy.shut()  # the hub's link goes on; the other name reaches nothing from here
        rows = {row["url"]: row for row in hub.gossip.member_list()["peers"]}
        assert (rows[advertised]["linked"], rows[advertised]["node_linked"]) == (True, True)
        assert rows[other_name]["linked"] is True
        assert not node.gossip.learning.forgotten.may_learn(advertised, awake_s(),
                                                            linked=False)
        with structlog.testing.capture_logs() as said:
            await node.gossip.learn_once()
        assert advertised in [entry["url"] for entry in said
                              if entry["event"] == "learned peer"]
        await until(lambda: (runner := node.gossip.runners.get(f"url:{advertised}")) is not None
                    and (runner.state, runner.node) == ("up", again.astore.node_id))
        assert advertised not in [one.url for one in node.gossip.learning.held_off()]


async def test_a_link_with_a_node_that_moved_leaves_its_old_address_held_off(
        make_node: NodeFactory) -> None:
    """A node that forgot a laptop's address after its failures holds it off; the laptop
    comes back at a new address and dials that node itself. The link ends the hold-off of
    its own address, not of the old, dead one (dialed again at the next round when a
    link with the node let every address it was forgotten under go)."""
    hub, laptop, gone = await hub_and_laptop_gone(make_node)
    node = await make_node(cluster_secret=SECRET, sync=FAST, peers=[hub.url])
    await until(lambda: [(one.url, one.node) for one in node.gossip.learning.held_off()]
                == [(gone, laptop.astore.node_id)])
    port = free_port()
    moved = await make_node(cluster_secret=SECRET, data_dir=laptop.config.data_dir,
                            port=port, advertise_url=f"http://127.0.0.1:{port}",
                            peers=[node.url])
    await listed_as(node, moved, "up")
    assert gone in [one.url for one in node.gossip.learning.held_off()]
    assert not node.gossip.learning.forgotten.may_learn(gone, awake_s(), linked=False)


async def test_a_dial_backing_off_is_made_at_once_when_a_peer_lists_its_node_linked(
        make_node: NodeFactory) -> None:
    """A partition heals: a node's dial of a laptop backs off for minutes, the hub links
    with the laptop again, and its list says so: the node dials the laptop then, not at
    the end of its back-off (a relearned address did that before: now a forgotten one
    is held off)."""
    hub, laptop, gone = await hub_and_laptop_gone(make_node)
    node = await make_node(cluster_secret=SECRET, sync=PATIENT, peers=[hub.url])

    def dial_backing_off() -> Runner | None:
        dial = node.gossip.runners.get(f"url:{gone}")
        return dial if dial is not None and dial.state == "backoff" else None

    runner = await until(dial_backing_off)
    waiting_s = runner.machine.wakeup_at - asyncio.get_running_loop().time()
    assert waiting_s > 60  # half the back-off at least: the test cannot pass by waiting
    again = await laptop_back(make_node, hub, laptop)
    await node.gossip.learn_once()
    await until(lambda: runner.state == "up" and runner.node == again.astore.node_id)
