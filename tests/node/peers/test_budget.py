"""A peer link's share of the writer (``node.peers.budget``)."""

from __future__ import annotations

from typing import Any

import pytest

from node.peers.budget import WriterBudget
from sync.errors import ProtocolMisuse
from sync.peer.config import SyncConfig
from tests.node.conftest import EventFactory, NodeFactory
from tests.support.nodes import post
from tests.support.waits import until

SECRET = "s" * 32
#: Seconds to wait for B to catch up on ``EVENTS``: twice
#: ``tests.support.waits.PROCESS_DEADLINE_S``, as it is several waits in one: B starts its
#: signature worker (a process), then checks and stores three long batches, on a machine
#: it shares with A.
CATCH_UP_DEADLINE_S = 60.0
#: Three of a peer's batches (512 events each).
EVENTS = 1300


def test_a_link_within_its_share_never_waits() -> None:
    budget = WriterBudget(share=0.5, burst_s=1.0, now=0.0)
    # 40 ms of writer time every 100 ms is under half the writer.
    assert all(budget.charge(0.04, now=n / 10) == 0 for n in range(100))
    assert budget.throttled_s == 0


def test_a_flooding_link_waits_in_proportion_to_what_it_used() -> None:
    budget = WriterBudget(share=0.5, burst_s=1.0, now=0.0)
    assert budget.charge(1.0, now=0.0) == 0  # the burst
    assert budget.charge(0.5, now=0.0) == pytest.approx(1.0)  # 0.5 s owed at 0.5/s
    # Having waited, it has nothing in hand: the next message waits again.
    assert budget.charge(0.1, now=1.0) == pytest.approx(0.2)
    assert budget.throttled_s == pytest.approx(1.2)


def test_writer_time_no_client_waited_for_is_free() -> None:
    budget = WriterBudget(share=0.5, burst_s=1.0, now=0.0)
    # A catch-up into a node nobody writes to: seconds of writer time, never a wait.
    assert all(budget.charge(2.0, now=n, contended=False) == 0 for n in range(10))
    assert budget.throttled_s == 0
    # Clients append again: the link pays from a full bucket, then waits.
    assert budget.charge(1.0, now=10.0) == 0
    assert budget.charge(0.5, now=10.0) == pytest.approx(1.0)


def test_the_share_is_checked() -> None:
    with pytest.raises(ProtocolMisuse):
        SyncConfig(peer_writer_share=1.5)
    with pytest.raises(ProtocolMisuse):
        SyncConfig(peer_writer_burst_s=0)


async def test_a_catch_up_into_a_node_no_client_writes_to_is_not_throttled(
        make_node: NodeFactory, event_body: EventFactory) -> None:
    """B's own commits of A's batches are no client appends: counted as such, they made
    B throttle its own catch-up to its links' share of the writer (here a tiny one)."""
    a = await make_node(cluster_secret=SECRET)
    for start in range(0, EVENTS, 500):
        await post(a, "s1", *(event_body(n, content=f"message {n}")
                              for n in range(start, min(start + 500, EVENTS))))
    stingy = SyncConfig(peer_writer_share=0.05, peer_writer_burst_s=0.001)
    b = await make_node(cluster_secret=SECRET, sync=stingy, peers=(a.url,))

    def links_once_b_stored_every_batch() -> list[dict[str, Any]]:
        links = b.gossip.status()
        return links if links and links[0]["events_received"] >= EVENTS else []

    links = await until(links_once_b_stored_every_batch, within_s=CATCH_UP_DEADLINE_S)
    assert [link["throttled_s"] for link in links] == [0]
