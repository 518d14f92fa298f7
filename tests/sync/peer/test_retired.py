"""Retired origins between peers (sync.peer.retired, PeerSync): every node drops them,
late copies are acknowledged and not stored again, events past the final seq are
refused, and nothing is lost."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from crdt.events import Event
from crdt.log.store import EventStore
from sync.peer.config import SyncConfig
from sync.peer.limits import ORIGINS_MAX, ORIGINS_RESERVED
from sync.peer.machine import PeerSync
from sync.peer.messages import Events, Hello, Item, encode
from tests.support.mesh import all_ids
from tests.sync.peer.support import OPS, RETIRED, hold, old_events, run

OpenStore = Callable[[str], EventStore]
Ev = Callable[..., Event]


def converged(mesh: type, stores: list[EventStore]) -> Any:
    """Link ``stores`` in a mesh and run it until they hold the same; the mesh."""
    net = mesh(stores)
    net.start()
    net.converge()
    net.assert_converged()
    return net


def test_every_node_drops_a_retired_origin_and_a_new_node_still_gets_its_events(
        open_store: OpenStore, ev: Ev, mesh: type) -> None:
    a, b, fresh = open_store("a"), open_store("b"), open_store("fresh")
    events = old_events(ev, 5)
    hold(a, events)
    hold(b, events[:3])  # b lacks 4 and 5: it keeps the origin active until it has them
    a.retire(RETIRED)
    net = converged(mesh, [a, b, fresh])
    for store in (a, b, fresh):
        assert RETIRED not in store.version and store.retired == {RETIRED: 5}
        assert [s.event.id for s in store.origin_after(RETIRED, 0)] == [e.id for e in events]
    assert all(m.counters.faults == 0 for m in net.machines.values())


def test_a_late_copy_is_acknowledged_and_not_stored_again(open_store: OpenStore,
                                                          ev: Ev) -> None:
    node = open_store("node")
    events = old_events(ev, 3)
    hold(node, events)
    node.retire(RETIRED)
    head, ids = node.head, all_ids(node)
    link = PeerSync(node, "restored", now=0.0, rng=random.Random(0))
    link.receive(encode(Hello("restored-node", {RETIRED: 4})), 0.0)
    beyond = ev(ms=5_000, session="old", content="written after the retirement")
    items = [Item(RETIRED, seq, e) for seq, e in enumerate(events, start=1)]
    out = link.receive(encode(Events((*items, Item(RETIRED, 4, beyond)))), 0.0)
    assert node.head == head and all_ids(node) == ids and not node.holds(beyond.id)
    assert link.counters.events_late == 3 and link.counters.events_refused == 1
    assert link.counters.faults == 0 and len(out) == 1  # the ack, without the origin
    assert RETIRED not in node.version


def test_concurrent_retirements_converge_on_the_highest_final_seq(
        open_store: OpenStore, ev: Ev, mesh: type) -> None:
    a, b, c = open_store("a"), open_store("b"), open_store("c")
    events = old_events(ev, 5)
    hold(a, events[:3])
    hold(b, events)
    a.retire(RETIRED)  # at 3
    b.retire(RETIRED)  # at 5
    converged(mesh, [a, b, c])
    for store in (a, b, c):
        assert store.retired == {RETIRED: 5} and not store.retiring
        assert store.id_at(RETIRED, 5) == events[4].id


def test_a_node_whose_origin_is_retired_writes_on_under_a_new_one(
        open_store: OpenStore, ev: Ev, mesh: type) -> None:
    """A device retired by mistake (a peer held only part of it) loses nothing: its
    events past the final seq travel under its new origin."""
    device, hub = open_store("device"), open_store("hub")
    old = device.node_id
    mine = [device.append(ev(ms=1_000 + n, content=f"mine {n}")).stored.event
            for n in range(4)]
    hub.ingest([(e, old, seq) for seq, e in enumerate(mine[:2], start=1)])
    hub.retire(old)  # at 2
    net = converged(mesh, [device, hub])
    assert device.node_id != old and hub.retired == device.retired == {old: 2}
    assert {e.id for e in mine} <= set(all_ids(hub))
    after = device.append(ev(ms=9_000, content="after")).stored
    assert after.origin == device.node_id
    net.appended(0)
    net.converge()
    net.assert_converged()


def test_the_table_counts_active_origins_only(open_store: OpenStore, ev: Ev) -> None:
    """Once the table's free part is full, new origins are refused; retiring some of
    the old ones makes room for as many."""
    v = open_store("v")
    free = ORIGINS_MAX - ORIGINS_RESERVED
    config = SyncConfig(origins_new_max=ORIGINS_MAX)

    def flood(tag: str, count: int) -> PeerSync:
        link = PeerSync(v, tag, now=0.0, rng=random.Random(0), config=config)
        items = [Item(f"{tag}-{n}", 1, ev(ms=1 + n, content=f"{tag} {n}")) for n in range(count)]
        for start in range(0, count, 512):
            link.receive(encode(Events(tuple(items[start:start + 512]))), 0.0)
        return link

    v.append(ev(ms=1, content="v's own"))
    flood("first", free - 1)
    assert len(v.version) == free
    assert flood("refused", 10).counters.origins_refused == 10
    for n in range(10):
        v.retire(f"first-{n}")
    assert len(v.version) == free - 10 and len(v.retired) == 10
    again = flood("second", 10)
    assert again.counters.origins_refused == 0 and len(v.version) == free


def test_the_log_and_the_protocol_agree_on_origins() -> None:
    from crdt.log import retire
    from sync.peer import limits
    assert retire.ROOM_DEFAULT == ORIGINS_MAX - ORIGINS_RESERVED
    assert retire.ORIGIN_BYTES_MAX == limits.ORIGIN_BYTES_MAX
    assert retire.SEQ_MAX == limits.SEQ_MAX
    assert retire.RETIRED_MAX == ORIGINS_MAX


def test_events_past_a_final_seq_held_by_one_node_reach_every_node(
        open_store: OpenStore, ev: Ev, mesh: type) -> None:
    """The retiring node held less than another: that one retires the origin again at
    what it holds, and the rest reaches every node."""
    a, b, c = open_store("a"), open_store("b"), open_store("c")
    events = old_events(ev, 6)
    hold(a, events[:2])
    hold(b, events)
    a.retire(RETIRED)  # at 2
    converged(mesh, [a, b, c])
    for store in (a, b, c):
        assert store.retired == {RETIRED: 6}
        assert [s.event.id for s in store.origin_after(RETIRED, 0)] == [e.id for e in events]


def test_a_peer_of_an_earlier_version_is_told_the_retired_origins(
        open_store: OpenStore, ev: Ev) -> None:
    """A peer that does not drop retired origins keeps them active: without their final
    seqs in our vector, it would offer their events again on every hello we send."""
    from crdt import codec
    from sync.peer.messages import About
    node = open_store("node")
    hold(node, old_events(ev, 3))
    node.retire(RETIRED)
    for about, told in ((None, True), (About("0.2.0", 1), True),
                        (About("0.3.0", 1, retires=True), False)):
        link = PeerSync(node, "peer", now=0.0, rng=random.Random(0),
                        about=About("0.3.0", 1, retires=True))
        out = link.receive(encode(Hello("peer-node", {}, about=about)), 0.0)
        hello = next(codec.decode(m) for m in out if codec.decode(m)["type"] == "hello")
        assert (hello["version"].get(RETIRED) == 3) is told
        assert RETIRED not in node.version


def test_a_node_catching_up_a_retired_origin_sends_none_of_it_back(
        open_store: OpenStore, ev: Ev, mesh: type) -> None:
    """b fetches an origin a retired (as an upgraded folder's origin written before
    signing): a's hellos, which leave the origin out, do not make b send back what it
    has fetched so far; c, which lacks it and names it, still gets all of it from b."""
    from sync.peer.messages import About
    a, b, c = open_store("a"), open_store("b"), open_store("c")
    events = old_events(ev, 40)
    hold(a, events)
    a.retire(RETIRED)
    net = mesh([a, b, c], links=[(0, 1), (1, 2)], about=About("0.3.0", 1, retires=True),
               config=SyncConfig(batch_events_max=4, inflight_batches_max=1))
    net.start()
    while net.queue:
        to, sender, _ = net.queue[0]
        net.deliver(0)
        if (to, sender) == (1, 0) and RETIRED in b.retiring:
            # a pulls (a hello without the origin) while b is fetching it
            net.now += net.config.pull_interval_s
            net.post(0, 1, net.machines[0, 1].tick(net.now))
    net.converge()
    net.assert_converged()
    assert a.retired == b.retired == c.retired == {RETIRED: 40}
    assert [s.event.id for s in c.origin_after(RETIRED, 0)] == [e.id for e in events]
    assert net.machines[0, 1].counters.events_late == 0
    assert net.machines[1, 0].counters.events_sent == 0
    assert all(m.counters.faults == 0 for m in net.machines.values())


def test_a_batch_that_completes_a_retired_origin_is_acknowledged(
        open_store: OpenStore, ev: Ev, mesh: type) -> None:
    """b retires the origin as it stores a's last batch of it: its ack still covers
    that batch, which a does not send again after the ack timeout."""
    from sync.peer.messages import About
    a, b = open_store("a"), open_store("b")
    events = old_events(ev, 40)
    hold(a, events)
    a.retire(RETIRED)
    net = mesh(
        [a, b], about=About("0.3.0", 1, retires=True),
        config=SyncConfig(batch_events_max=16))
    net.start()
    net.converge()
    net.assert_converged()
    assert b.retired == {RETIRED: 40}
    assert net.machines[0, 1].counters.resends == 0
    assert net.machines[1, 0].counters.events_late == 0


@settings(max_examples=100)
@given(held=st.lists(st.integers(0, 6), min_size=3, max_size=3),
       retirers=st.lists(st.booleans(), min_size=3, max_size=3),
       seed=st.integers(0, 2**16),
       ops=st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 2**16)),
                    min_size=10, max_size=60),
       retires=st.booleans())
def test_retirements_converge_under_chaos(mesh: type, ev: Ev, held: list[int],
                                          retirers: list[bool], seed: int,
                                          ops: list[tuple[str, int]],
                                          retires: bool) -> None:
    """Each node holds a prefix of a gone origin and some retire it, while the nodes
    append, and messages are lost, duplicated and reordered: every node ends with every
    event of it, and retires it at the most any node held. ``retires``: the nodes say
    that they drop retired origins (then an origin a peer does not name is not sent)."""
    from sync.peer.messages import About
    held[0], retirers[0] = max(held[0], 1), True
    events = old_events(ev, 6)
    stores = [EventStore.open("memory:") for _ in held]
    try:
        for store, count, retires in zip(stores, held, retirers, strict=True):
            hold(store, events[:count])
            if retires and count:
                store.retire(RETIRED)
        net = mesh(stores, config=SyncConfig(batch_events_max=3), seed=seed,
                   about=About("0.3.0", 1, retires=True) if retires else None)
        net.start()
        appended = run(net, ev, ops)
        net.converge()
        net.assert_converged()
        for store in stores:
            assert store.retired == {RETIRED: max(held)} and not store.retiring
            assert set(all_ids(store)) >= appended | {e.id for e in events[:max(held)]}
    finally:
        for store in stores:
            store.close()
