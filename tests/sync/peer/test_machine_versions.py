"""``PeerSync`` beside nodes of other versions and clocks: what a hello tells them, kinds
this version does not know, and events stamped ahead of our clock."""

from __future__ import annotations

import random

import pytest

import crdt.clock
from crdt import codec
from crdt.clock import Hlc
from crdt.events import Draft
from sync.peer import messages
from sync.peer.machine import PeerSync
from sync.peer.messages import About, Events, Hello, Item, encode, parse
from tests.sync.peer.support import Ev, OpenStore

# -- versions and kinds of newer nodes ------------------------------------------------------

def test_versions_are_told_only_to_a_peer_that_reads_them(open_store: OpenStore) -> None:
    """The dialer says it reads ``about``; the acceptor's hello carries it, which shows
    the dialer that the acceptor reads it too; each then knows the other's version. A
    peer that does not say (a node of 0.1) is never sent it."""
    dialer = PeerSync(open_store("a"), "b", now=0.0, rng=random.Random(0),
                      about=About("0.2.0", 1))
    acceptor = PeerSync(open_store("b"), "a", now=0.0, rng=random.Random(1),
                        about=About("0.3.0", 1))
    first = dialer.start(0.0)  # dialed: it does not know yet what the acceptor reads
    assert "about" not in codec.decode(first[0])
    replies = acceptor.start(0.0, peer_reads_about=True)
    assert codec.decode(replies[0])["about"] == {"software": "0.3.0", "schema": 1}
    back = dialer.receive(replies[0], 0.0)
    assert dialer.peer_about == About("0.3.0", 1)
    assert codec.decode(back[0])["about"] == {"software": "0.2.0", "schema": 1}
    acceptor.receive(first[0], 0.0)
    acceptor.receive(back[0], 0.0)
    assert acceptor.status()["peer_software"] == "0.2.0"
    old = PeerSync(open_store("c"), "old", now=0.0, rng=random.Random(2),
                   about=About("0.2.0", 1))
    hellos = old.start(0.0) + old.receive(messages.encode(Hello("old-node", {})), 0.0) \
        + old.tick(100.0)
    assert all("about" not in codec.decode(h) for h in hellos
               if codec.decode(h)["type"] == "hello")
    assert old.status()["peer_software"] is None


def test_events_of_a_kind_this_version_does_not_know_replicate(open_store: OpenStore,
                                                                ev: Ev, mesh: type) -> None:
    """A newer node's kinds and fields travel through this one unchanged: stored,
    forwarded, counted in no projection."""
    a, b, c = open_store("a"), open_store("b"), open_store("c")
    newer = Draft("s1", "main", "reaction_added", {"emoji": "+1", "to": "m-1"},
                  Hlc(5_000, 0)).seal()
    richer = Draft("s1", "main", "session_ended",
                   {"reason": "done", "source": {"app": "openclaw"}}, Hlc(4_000, 0)).seal()
    net = mesh([a, b, c], links=[(0, 1), (1, 2)])  # a and c meet only through b
    net.start()
    net.append(0, ev(), newer, richer)
    net.converge()
    net.assert_converged()
    for store in (b, c):
        copy = store.get_event(newer.id).event
        assert copy.canonical == newer.canonical and not copy.known
        assert store.get_event(richer.id).event.payload["source"] == {"app": "openclaw"}
    view = b.get_projection("s1").to_json()
    assert view["event_count"] == 2  # the message and the session's end
    assert view["state"] == "ended" and view["last_event_id"] == richer.id.hex()
    assert all(m["faults"] == 0 for m in (x.status() for x in net.machines.values()))


def test_a_far_future_event_is_left_out_and_does_not_win_state(
        open_store: OpenStore, ev: Ev, monkeypatch: pytest.MonkeyPatch) -> None:
    wall_ms = 1_700_000_000_000
    monkeypatch.setattr(crdt.clock, "wall_ms", lambda: wall_ms)
    b = open_store("b")
    b.append(ev("session_started", ms=wall_ms - 1_000))
    machine = PeerSync(b, "a", now=0.0, rng=random.Random(0))
    forever = ev("session_ended", ms=crdt.clock.MS_MAX)  # 9999-12-31: would win for good
    after = ev(ms=wall_ms, content="the rest of the batch")
    later = ev(ms=wall_ms, content="behind it in its origin")
    out = machine.receive(encode(Events((Item("p", 1, forever), Item("p", 2, later),
                                         Item("q", 1, after)))), 0.0)
    # The link lives on, the rest of the batch is stored; the ack says p:1 is missing,
    # and p:2 waits behind that gap (an origin never has a gap here).
    assert parse(out[0]) == messages.Ack(b.version) and b.version.get("p", 0) == 0
    assert b.holds(after.id) and not b.holds(forever.id) and not b.holds(later.id)
    assert b.get_projection("s1").to_json()["state"] == "active"
    status = machine.status()
    assert status["events_ahead"] == 1 and status["faults"] == 0


def test_an_event_from_a_clock_slightly_ahead_arrives_once_ours_caught_up(
        open_store: OpenStore, ev: Ev, mesh: type, monkeypatch: pytest.MonkeyPatch) -> None:
    wall = [1_700_000_000_000]
    monkeypatch.setattr(crdt.clock, "wall_ms", lambda: wall[0])
    a, b = open_store("a"), open_store("b")
    start = wall[0]
    b.append(ev("session_started", ms=start - 1_000))
    a.append(ev(ms=start, content="in time"))
    # a's wall clock runs 5 s beyond the bound: it stamps events that far ahead...
    wall[0] = start + crdt.clock.DRIFT_MAX_MS + 5_000
    a.append_batch([ev("session_ended", ms=wall[0]), ev(ms=wall[0] + 1, content="next")])
    wall[0] = start  # ...b's clock (the same fake wall, read later) is right
    net = mesh([a, b])
    net.start()
    net.settle()
    assert b.head == 2 and b.get_projection("s1").to_json()["state"] == "active"
    assert net.machines[1, 0].counters.events_ahead == 2
    wall[0] = start + 6_000  # b's wall clock catches up: a sends them again, b takes them
    net.converge()
    net.assert_converged()
    assert b.get_projection("s1").to_json()["state"] == "ended"
