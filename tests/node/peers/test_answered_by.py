"""node.peers.learning with real nodes in this process: an address from a peer's list
where another device answers, one this node refuses (no member), is not dialed again at
each members round, whatever the list says of it, but once more after
``ANSWERED_BY_HOLD_ROUNDS`` rounds (``Learning.answered_by``)."""

from __future__ import annotations

import asyncio

from node.peers.learning import ANSWERED_BY_HOLD_ROUNDS
from sync.peer.config import SyncConfig
from tests.node.conftest import NodeFactory
from tests.node.peers.support import DEADLINE_S

SECRET = "s" * 32


async def test_a_listed_address_where_a_device_refused_answers_is_held_off_for_rounds(
        make_node: NodeFactory) -> None:
    """The lister lists x's address, given it without the secret (as a device or a
    certificate holder gives one), and says it is linked there; x is no member on the
    hub, which dials it without the secret: x lets the hub in (a member on x), the hub
    refuses x. The hub does not dial it at the rounds that follow (it did at each, and
    refused x each time), until ``ANSWERED_BY_HOLD_ROUNDS`` went by: then once more."""
    lister = await make_node(cluster_secret=SECRET)
    hub = await make_node(cluster_secret=SECRET, peers=[lister.url],
                          sync=SyncConfig(members_interval_s=0.1))
    x = await make_node(cluster_secret=SECRET)
    assert x.gossip.membership is not None
    await x.gossip.membership.add(hub.gossip.device.device_id, "hub", None)
    lister.gossip.learning.members[x.url] = x.astore.node_id
    learning = hub.gossip.learning
    async with asyncio.timeout(DEADLINE_S):
        while x.gossip._accepted < 1 or f"url:{x.url}" in hub.gossip.runners \
                or x.url not in learning.answered:
            await asyncio.sleep(0.01)  # dialed, refused and given up
    first = learning.rounds
    async with asyncio.timeout(DEADLINE_S):
        while learning.rounds < first + ANSWERED_BY_HOLD_ROUNDS // 2:
            await asyncio.sleep(0.01)
    assert x.gossip._accepted == 1
    async with asyncio.timeout(DEADLINE_S):
        while x.gossip._accepted < 2:
            await asyncio.sleep(0.01)
    assert learning.rounds >= first + ANSWERED_BY_HOLD_ROUNDS - 1
