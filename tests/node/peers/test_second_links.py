"""node.peers.pairing with real nodes in this process: a dial the peer closed as a second
link belongs to the device that closed it, not to the node its address stood for."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from node.peers.runner import Runner, SecondLink, linked_nodes
from node.peers.transport import Proven
from tests.node.conftest import NodeFactory, RunningNode
from tests.node.peers.support import FAST, until
from tests.support.processes import free_port


async def test_a_second_link_closed_by_another_device_outlives_the_old_nodes_link(
        make_node: NodeFactory) -> None:
    """The hub's dial of an address where x was reached before was closed as a second
    link by y, which answers there now and whose link to the hub is up. x's link to the
    hub ending says nothing of that close: y's link lasts, and the address counts as
    reaching y (it was cleared, as if x had made the close, and then never counted)."""
    hub = await make_node(cluster_secret="s" * 32)
    x = await make_node(cluster_secret="s" * 32, sync=FAST, peers=[hub.url])
    y = await make_node(cluster_secret="s" * 32, peers=[hub.url])
    x_id, y_id = x.astore.node_id, y.astore.node_id
    await until(lambda: {x_id, y_id} <= linked_nodes(hub.gossip.runners.values()))
    async with closed_by(hub, y, x_id) as (url, dial):
        [x_link] = [r for r in hub.gossip.runners.values() if r.linked_to == x_id]
        x_link.drop = "test: the link ends"
        x_link.wake.set()
        await until(lambda: x_link.state == "down")
        assert dial.second_link is not None
        hub.gossip.pairing.dial_ended(dial)  # its end handled now
        assert hub.gossip.learning.reached_as == {y_id: {url}}


async def test_a_second_link_closed_by_a_device_is_not_held_by_a_keyless_node(
        make_node: NodeFactory) -> None:
    """The hub's dial of an address where x was reached before was closed as a second
    link by y's device, which answers there now; x, which proved no key on its link to
    the hub (a node of 0.2: its link here is made one, as it would be), is linked. x's
    link is not the one y kept: the address does not count as reaching x, and y's close
    goes, no link of y's being here (it was matched to x by the node of the dial's last
    hello, x's, and stood while x's link lasted)."""
    hub = await make_node(cluster_secret="s" * 32)
    x = await make_node(cluster_secret="s" * 32, sync=FAST, peers=[hub.url])
    y = await make_node(cluster_secret="s" * 32)
    x_id = x.astore.node_id
    await until(lambda: x_id in linked_nodes(hub.gossip.runners.values()))
    [x_link] = [r for r in hub.gossip.runners.values() if r.linked_to == x_id]
    x_link.device = None
    async with closed_by(hub, y, x_id) as (_url, dial):
        hub.gossip.pairing.dial_ended(dial)
        assert hub.gossip.learning.reached_as == {}
        assert dial.second_link is None


@contextlib.asynccontextmanager
async def closed_by(hub: RunningNode, y: RunningNode,
                    x_id: str) -> AsyncIterator[tuple[str, Runner]]:
    """A dial of the hub's, down, at a fresh address where x (``x_id``) was reached before,
    whose last link y's device closed as a second link; its address and runner, dropped
    from the hub's runners after."""
    url = f"http://127.0.0.1:{free_port()}"
    dial = await hub.gossip._new_runner(f"url:{url}", url, "out", checkpoint_key=None)
    try:
        device = y.gossip.device
        dial.state, dial.second_link = "down", SecondLink(device.device_id, x_id)
        dial.device = Proven(device.device_id, device.public_key)
        dial.machine.peer_node = hub.gossip.learning.members[url] = x_id
        yield url, dial
    finally:
        hub.gossip.runners.pop(dial.key)
