"""sync.peer.forgotten: which forgotten addresses a member list may bring back."""

from __future__ import annotations

import pytest

from sync.errors import ProtocolMisuse
from sync.peer.config import SyncConfig
from sync.peer.forgotten import Forgotten, Said, linked_at, said

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


def test_a_link_ends_the_hold_of_its_address_and_the_advertised_one_not_the_old() -> None:
    """A laptop moved: a link with it came up at a LAN address, and it advertises another.
    Both may be learned again at once; the old address it was forgotten under stays held
    off (it was let go with them: a learner dialed it again, dead, at the next round)."""
    forgotten = Forgotten()
    forgotten.forgot(URL, "n1", 0.0)
    forgotten.forgot("http://10.0.0.2:8765", "n1", 0.0)
    forgotten.forgot("http://old-laptop:8765", "n1", 0.0)
    forgotten.reached("http://10.0.0.2:8765", URL)
    assert forgotten.may_learn(URL, 1.0, linked=False)
    assert forgotten.may_learn("http://10.0.0.2:8765", 1.0, linked=False)
    assert not forgotten.may_learn("http://old-laptop:8765", 1.0, linked=False)
    forgotten.reached(None, None)  # a link with no address, of a node that advertises none
    assert [held.url for held in forgotten.held_off(1.0)] == ["http://old-laptop:8765"]


def test_the_memory_is_bounded_the_oldest_dropped() -> None:
    forgotten = Forgotten(SyncConfig(forgotten_kept_max=3))
    for n in range(5):
        forgotten.forgot(f"http://n{n}.example", None, float(n))
    assert len(forgotten) == 3
    assert forgotten.may_learn("http://n0.example", 5.0, linked=False)  # dropped: learned
    assert not forgotten.may_learn("http://n4.example", 5.0, linked=False)


def test_a_list_says_linked_of_the_addresses_the_node_is_reached_at_not_of_its_old_one() -> None:
    """A laptop moved: the lister remembers its old address, dead now, beside the one it
    advertises itself, and reaches it by a LAN name of its own. ``linked`` is said of the
    link's address and of the advertised one, not of the old; ``node_linked`` of all."""
    up = {"n1": {"http://10.0.0.2:8765"}}
    advertised: dict[str, str | None] = {"n1": "http://laptop:8765"}
    urls = ["http://10.0.0.2:8765", "http://laptop:8765", "http://old-laptop:8765"]
    assert [linked_at(url, "n1", up=up, advertised=advertised) for url in urls] \
        == [True, True, False]
    # It advertises nothing now (behind a NAT, it dials out): only the link's address.
    assert [linked_at(url, "n1", up={"n1": set()}, advertised={"n1": None})
            for url in urls] == [False, False, False]
    # No link up to it: linked nowhere.
    assert not linked_at("http://laptop:8765", "n1", up={}, advertised=advertised)
    assert not linked_at("http://laptop:8765", None, up=up, advertised=advertised)


def test_a_forgotten_old_address_stays_held_off_while_its_node_is_linked_elsewhere() -> None:
    """The learner's side: a new list that says the node is linked, but not at the
    forgotten address, ends no hold-off; an older node's list (no ``node_linked``) ends
    it as before, so mixed versions behave as they did."""
    forgotten = Forgotten()
    forgotten.forgot(URL, "n1", 0.0)
    new = said({"url": URL, "node_id": "n1", "linked": False, "node_linked": True})
    assert new == Said(linked=False, node_linked=True)
    assert not forgotten.may_learn(URL, 1.0, linked=new.linked)
    old = said({"url": URL, "node_id": "n1", "linked": True})
    assert old == Said(linked=True, node_linked=True)
    assert forgotten.may_learn(URL, 2.0, linked=old.linked)
