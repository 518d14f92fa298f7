"""sync.peer.forgotten: which forgotten addresses a member list may bring back."""

from __future__ import annotations

import pytest

from sync.errors import ProtocolMisuse
from sync.peer.config import SyncConfig
from sync.peer.forgotten import Forgotten

URL = "http://laptop.example:8765"


def test_each_forgetting_holds_an_address_off_twice_as_long_up_to_the_cap() -> None:
    forgotten, now, holds = Forgotten(), 0.0, []
    for _ in range(12):
        hold_s = forgotten.forgot(URL, "n1", now)
        assert not forgotten.may_learn(URL, now + hold_s - 1, linked=False)
        now += hold_s
        assert forgotten.may_learn(URL, now, linked=False)  # learned again, and it fails
        holds.append(hold_s)
    assert holds[:3] == [300.0, 600.0, 1200.0]
    assert holds[-1] == 3600.0


def test_the_hold_and_its_cap_are_configured() -> None:
    forgotten = Forgotten(SyncConfig(forgotten_hold_s=10.0, forgotten_hold_max_s=25.0))
    assert [forgotten.forgot(URL, "n1", 0.0) for _ in range(3)] == [10.0, 20.0, 25.0]
    with pytest.raises(ProtocolMisuse, match="forgotten_hold_s must not exceed"):
        SyncConfig(forgotten_hold_s=30.0, forgotten_hold_max_s=25.0)
    with pytest.raises(ProtocolMisuse, match="forgotten_kept_max must be at least 1"):
        SyncConfig(forgotten_kept_max=0)


def test_a_lister_linked_to_the_node_ends_the_hold_and_its_memory() -> None:
    forgotten = Forgotten()
    forgotten.forgot(URL, "n1", 0.0)
    forgotten.forgot(URL, "n1", 1000.0)
    assert forgotten.may_learn(URL, 1001.0, linked=True)
    assert forgotten.forgot(URL, "n1", 2000.0) == 300.0  # counts from one again


def test_a_link_with_the_node_ends_the_hold_of_each_of_its_addresses() -> None:
    forgotten = Forgotten()
    forgotten.forgot(URL, "n1", 0.0)
    forgotten.forgot("http://10.0.0.2:8765", "n1", 0.0)
    forgotten.forgot("http://other.example:8765", None, 0.0)
    forgotten.reached("n1", None)
    assert forgotten.may_learn(URL, 1.0, linked=False)
    assert forgotten.may_learn("http://10.0.0.2:8765", 1.0, linked=False)
    assert not forgotten.may_learn("http://other.example:8765", 1.0, linked=False)
    forgotten.reached("n9", "http://other.example:8765")  # a link that came by its address
    assert len(forgotten) == 0


def test_the_memory_is_bounded_the_oldest_dropped() -> None:
    forgotten = Forgotten(SyncConfig(forgotten_kept_max=3))
    for n in range(5):
        forgotten.forgot(f"http://n{n}.example", None, float(n))
    assert len(forgotten) == 3
    assert forgotten.may_learn("http://n0.example", 5.0, linked=False)  # dropped: learned
    assert not forgotten.may_learn("http://n4.example", 5.0, linked=False)
