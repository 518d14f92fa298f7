"""A peer link's share of the writer (``node.peers.budget``)."""

from __future__ import annotations

import pytest

from node.peers.budget import WriterBudget
from sync.errors import ProtocolMisuse
from sync.peer.config import SyncConfig


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
