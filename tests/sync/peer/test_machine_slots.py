"""``PeerSync`` taking batches in: refused messages, slots that hold another event, claims
on our own numbering, gaps, and new origins past the table's free part or a link's quota."""

from __future__ import annotations

import random

import pytest

from crdt import codec
from sync.errors import PeerFault
from sync.peer import messages
from sync.peer.config import SyncConfig
from sync.peer.limits import BATCH_EVENTS_MAX, ORIGINS_MAX, ORIGINS_RESERVED
from sync.peer.machine import PeerSync
from sync.peer.messages import Events, Hello, Item, encode, parse
from tests.sync.peer.support import Ev, OpenStore, filled


def test_a_refused_message_stores_nothing(open_store: OpenStore, ev: Ev,
                                         bad_message: bytes) -> None:
    store = filled(open_store("b"), ev, 3)
    before = (store.head, store.version)
    machine = PeerSync(store, "a", now=0.0, rng=random.Random(0))
    machine.start(0.0)
    with pytest.raises(PeerFault):
        machine.receive(bad_message, 7.0)
    assert (store.head, store.version) == before
    status = machine.status()
    assert status["faults"] == 1 and status["last_contact"] == 7.0


def test_one_bad_event_spoils_the_whole_batch(open_store: OpenStore, ev: Ev) -> None:
    store = open_store("b")
    good = [ev(ms=1_000 + n, content=str(n)).canonical for n in range(3)]
    content = codec.decode(good[1])
    bad = b"\xa6" + b"".join(codec.encode(k) + codec.encode(v)
                             for k, v in reversed(content.items()))  # not canonical
    raw = {"type": "events", "items": [["o", 1, good[0]], ["o", 2, bad], ["o", 3, good[2]]]}
    machine = PeerSync(store, "a", now=0.0, rng=random.Random(0))
    with pytest.raises(PeerFault, match=r"items\[1\]"):
        machine.receive(codec.encode(raw), 0.0)
    assert store.head == 0 and store.version == {}


def test_a_hello_with_our_own_node_id_is_a_fault(open_store: OpenStore) -> None:
    store = open_store("a")
    machine = PeerSync(store, "self", now=0.0, rng=random.Random(0))
    with pytest.raises(PeerFault, match="own node id"):
        machine.receive(encode(Hello(store.node_id, {})), 0.0)


def test_our_own_events_come_back_into_their_slots(open_store: OpenStore, ev: Ev) -> None:
    # A restored from a backup holding its events 1-2; a peer still has 3.
    a = filled(open_store("a"), ev, 2)
    machine = PeerSync(a, "b", now=0.0, rng=random.Random(0))
    machine.receive(encode(Hello("b-node", {a.node_id: 3})), 0.0)
    lost = ev(ms=77, content="lost in the restore")
    out = machine.receive(encode(Events((Item(a.node_id, 3, lost),
                                         Item("other", 1, ev(ms=78, content="theirs"))))), 0.0)
    assert a.id_at(a.node_id, 3) == lost.id and a.head == 4
    assert a.version == {a.node_id: 3, "other": 1}
    assert parse(out[0]) == messages.Ack(a.version)
    assert machine.counters.events_conflicting == 0
    assert a.append(ev(ms=79, content="next")).stored.seq == 4  # numbering carries on after


def test_an_event_sent_for_a_slot_holding_another_is_kept(
        open_store: OpenStore, ev: Ev) -> None:
    a = open_store("a")
    machine = PeerSync(a, "b", now=0.0, rng=random.Random(0))
    forged, real = ev(ms=1, content="forged"), ev(ms=2, content="real")
    machine.receive(encode(Events((Item("c", 1, forged),))), 0.0)
    machine.receive(encode(Events((Item("c", 1, real),))), 0.0)  # the slot is taken
    assert a.holds(forged.id) and a.holds(real.id)
    assert a.id_at("c", 1) == forged.id and a.id_at(a.node_id, 1) == real.id
    assert a.id_at(a.node_id, 2) == forged.id  # so a node holding real at (c, 1) gets it
    assert machine.counters.events_conflicting == 1
    machine.receive(encode(Events((Item("c", 1, forged),))), 0.0)  # the same again: fine
    assert machine.counters.events_conflicting == 1 and a.head == 2


def test_a_peer_is_sent_its_own_events_only_if_it_lacks_them(
        open_store: OpenStore, ev: Ev) -> None:
    a = open_store("a")
    a.ingest([(ev(ms=n, content=str(n)), "b-node", n) for n in (1, 2, 3)])
    a.append(ev(ms=9, content="from a"))
    machine = PeerSync(a, "b", now=0.0, rng=random.Random(0))
    machine.start(0.0)
    out = machine.receive(encode(Hello("b-node", {"b-node": 3})), 0.0)
    batch = parse(out[0])
    assert isinstance(batch, Events) and {i.origin for i in batch.items} == {a.node_id}
    restored = PeerSync(a, "b", now=0.0, rng=random.Random(0))  # b lost its 2 and 3
    restored.start(0.0)
    batch = parse(restored.receive(encode(Hello("b-node", {"b-node": 1})), 0.0)[0])
    assert isinstance(batch, Events)
    assert [(i.origin, i.seq) for i in batch.items if i.origin == "b-node"] == [
        ("b-node", 2), ("b-node", 3)]


def test_a_claim_on_our_numbers_does_not_stop_our_events(open_store: OpenStore, ev: Ev,
                                                        mesh: type) -> None:
    """A peer says it holds a number of ours we never wrote: our numbering goes on
    unmoved, and our next events reach our other peers."""
    a, c = filled(open_store("a"), ev, 2), open_store("c")
    liar = PeerSync(a, "m", now=0.0, rng=random.Random(0))
    liar.receive(encode(Hello("m-node", {a.node_id: 3})), 0.0)
    assert a.append(ev(ms=80, content="new")).stored.seq == 3
    assert a.version == {a.node_id: 3}
    net = mesh([a, c])
    net.start()
    net.settle()
    assert c.version == {a.node_id: 3} and c.head == 3
    assert net.machines[0, 1].status()["events_peer_lacks"] == 0


def test_an_event_of_ours_ahead_of_us_is_not_taken(open_store: OpenStore, ev: Ev,
                                                  mesh: type) -> None:
    """A valid event sent in our own origin a few numbers ahead is skipped, so it takes
    no number of ours and our next events still flow."""
    a, c = filled(open_store("a"), ev, 2), open_store("c")
    liar = PeerSync(a, "m", now=0.0, rng=random.Random(0))
    ahead = ev(ms=77, content="ahead")
    out = liar.receive(encode(Events((Item(a.node_id, 5, ahead),))), 0.0)
    assert parse(out[0]) == messages.Ack({a.node_id: 2})
    assert not a.holds(ahead.id) and liar.counters.events_skipped == 1
    assert a.append(ev(ms=80, content="new")).stored.seq == 3
    net = mesh([a, c])
    net.start()
    net.settle()
    assert c.version == {a.node_id: 3} and c.head == 3


def test_an_event_beyond_a_gap_waits_for_the_gap(open_store: OpenStore, ev: Ev) -> None:
    """Events are stored only without a gap in their origin, so every event a node holds
    lies within its version and is forwarded to its peers."""
    b = open_store("b")
    machine = PeerSync(b, "a", now=0.0, rng=random.Random(0))
    x, y, z = ev(ms=1, content="x"), ev(ms=2, content="y"), ev(ms=3, content="z")
    machine.receive(encode(Events((Item("c", 1, x), Item("c", 3, z)))), 0.0)  # 2 missing
    assert b.holds(x.id) and not b.holds(z.id) and b.version == {"c": 1}
    machine.receive(encode(Events((Item("c", 2, y), Item("c", 3, z)))), 0.0)
    assert b.version == {"c": 3}
    relayed = {stored.event.id for origin in b.version for stored in b.origin_after(origin, 0)}
    assert relayed == {x.id, y.id, z.id}


def test_a_restored_node_that_writes_first_still_converges(open_store: OpenStore, ev: Ev,
                                                          mesh: type) -> None:
    """A node restored from a backup writes before its peer gave back the events of its
    own it lost: both reach every node (conflicting slots are numbered again)."""
    a, b = filled(open_store("a"), ev, 2), open_store("b")
    lost = [ev(ms=50 + n, content=f"lost {n}") for n in range(3)]
    b.ingest([(event, a.node_id, 3 + n) for n, event in enumerate(lost)])
    b.ingest([(stored.event, a.node_id, stored.seq) for stored in a.origin_after(a.node_id, 0)])
    a.append(ev(ms=90, content="after the restore"))  # takes number 3, held as lost 0 on b
    net = mesh([a, b])
    net.start()
    net.converge()
    net.assert_converged()
    assert a.head == b.head == 6


def flood(machine: PeerSync, ev: Ev, origins: int) -> None:
    """Events of ``origins`` made-up origins, one each, in full batches."""
    items = [Item(f"made-up-{n}", 1, ev(ms=1 + n, content=f"junk {n}")) for n in range(origins)]
    for start in range(0, origins, BATCH_EVENTS_MAX):
        machine.receive(encode(Events(tuple(items[start:start + BATCH_EVENTS_MAX]))), 0.0)


def test_made_up_origins_cannot_shut_out_a_later_node(open_store: OpenStore, ev: Ev,
                                                      mesh: type) -> None:
    """A peer floods a node with events of made-up origins: the table stops taking them
    short of full, and a node joining afterwards still syncs both ways."""
    v = filled(open_store("v"), ev, 2, tag="v")
    config = SyncConfig(origins_new_max=ORIGINS_MAX)  # the table alone, not the quota
    attacker = PeerSync(v, "m", now=0.0, rng=random.Random(0), config=config)
    attacker.receive(encode(Hello("m-node", {})), 0.0)
    free = ORIGINS_MAX - ORIGINS_RESERVED
    flood(attacker, ev, ORIGINS_MAX - 1)  # enough to fill the whole table
    assert len(v.version) == free  # v's own origin and free - 1 made-up ones
    assert attacker.counters.origins_refused == ORIGINS_RESERVED
    late = filled(open_store("late"), ev, 3, tag="late")
    net = mesh([v, late], config=config)
    net.start()
    net.converge()
    assert v.version[late.node_id] == 3 and late.version[v.node_id] == 2
    assert all(m.counters.faults == 0 for m in net.machines.values())
    # The later node took what its table's free part holds; v, knowing that, stops
    # sending it the rest (after at most one batch sent in vain).
    assert len(late.version) == free and net.machines[0, 1].counters.resends <= 1


def test_one_link_brings_at_most_its_quota_of_new_origins(open_store: OpenStore, ev: Ev,
                                                         mesh: type) -> None:
    config = SyncConfig(origins_new_max=10, origins_new_interval_s=60.0)
    v = open_store("v")
    attacker = PeerSync(v, "m", now=0.0, rng=random.Random(0), config=config)
    flood(attacker, ev, 30)
    assert len(v.version) == 10 and attacker.counters.origins_refused == 20
    flood(attacker, ev, 30)  # the same again, in the same window: nothing more
    assert len(v.version) == 10
    # An honest node joining a cluster of more origins than the quota gets them all,
    # a quota per window, without batches sent in vain (the sender keeps the quota too).
    hub = open_store("hub")
    hub.ingest([(ev(ms=n + 1, content=f"o{n}"), f"origin-{n}", 1) for n in range(25)])
    late = filled(open_store("late"), ev, 2, tag="late")
    net = mesh([hub, late], config=config)
    net.start()
    net.settle()
    assert len(late.version) == 1 + 10 and hub.version[late.node_id] == 2
    net.tick(60.0)
    net.settle()
    assert len(late.version) == 1 + 20
    net.tick(60.0)
    net.converge()
    net.assert_converged()
    assert all(m.counters.resends == 0 and m.counters.origins_refused == 0
               for m in net.machines.values())
