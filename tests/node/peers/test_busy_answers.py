"""What a dialer is told by a node that takes no new link now: one at its ``peers_max``
(asked to wait, for a place to free) or one stopping. Both in the node's JSON error
shape, their words shown by the dial as any refusal's are."""

from __future__ import annotations

import aiohttp
import pytest

from node.peers.api import PEERS_FULL_RETRY_AFTER_S
from node.peers.link_errors import LinkClosed, PeerBusy
from node.peers.refusals import refusals_read
from node.peers.transport import dial
from node.server.run import RunningNode
from sync.peer.config import SyncConfig
from tests.node.conftest import NodeFactory
from tests.node.peers.support import SECRET
from tests.support.processes import free_port


async def dial_refused(node: RunningNode) -> LinkClosed:
    """The error of a dial of ``node``, with its cluster secret, that it refuses."""
    async with aiohttp.ClientSession(trace_configs=[refusals_read()]) as http:
        with pytest.raises(LinkClosed) as raised:
            await dial(http, node.url, node_id="n" * 32, secret=SECRET, advertise=None,
                       tls=None, config=SyncConfig())
    return raised.value


async def test_a_node_at_peers_max_asks_the_dialer_to_wait(make_node: NodeFactory) -> None:
    """Its one place taken by a peer it dials (down): the dialer is told the limit's name
    and asked to wait ``PEERS_FULL_RETRY_AFTER_S``, which it keeps for its next dial."""
    node = await make_node(cluster_secret=SECRET, peers=[f"http://127.0.0.1:{free_port()}"],
                           sync=SyncConfig(peers_max=1))
    refused = await dial_refused(node)
    assert isinstance(refused, PeerBusy)
    assert refused.asked_s == PEERS_FULL_RETRY_AFTER_S
    assert str(refused) == (f"cannot link with {node.url}: it answered HTTP 503: this node "
                            "has as many peers as it keeps ([sync] peers_max = 1); try "
                            "again later")


async def test_a_stopping_node_says_so_to_a_dialer(make_node: NodeFactory) -> None:
    """Between the links' stop and the listener's close, a dial is told the node stops,
    and not asked to come back (it may not)."""
    node = await make_node(cluster_secret=SECRET)
    await node.gossip.stop()  # as a stop does before it closes the listener
    refused = await dial_refused(node)
    assert not isinstance(refused, PeerBusy)
    assert str(refused) == (f"cannot link with {node.url}: it answered HTTP 503: this node "
                            "is stopping: it takes no new links")
