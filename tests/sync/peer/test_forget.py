"""Forgetting across peers (``sync.peer``): a forget replicates, a node holding the
originals does not bring them back, skeletons travel only with their proof, and older
peers are never sent what they cannot take."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crdt import codec
from crdt.clock import Hlc
from crdt.events import Event
from crdt.log import forget
from crdt.log.store import EventStore
from sync.errors import PeerFault
from sync.peer.config import SyncConfig
from sync.peer.messages import About, Events, Item, encode, parse
from tests.support.events import event
from tests.support.mesh import Mesh, all_ids
from tests.sync.peer.support import OPS, run, topology

OpenStore = Callable[[str], EventStore]
Ev = Callable[..., Event]
ABOUT = About("test", 1, retires=True, forgets=True)
SECRET = "secret-marker"


def _written(store: EventStore, ev: Ev, count: int = 6) -> list[Event]:
    events = [ev(content=f"{SECRET} {n}" if n % 2 else f"fine {n}", ms=1_000 + n,
                 session="s1" if n < 4 else "s2") for n in range(count)]
    store.append_batch(events)
    return events


def _content_left(store: EventStore) -> list[str]:
    """Every payload on the node that still holds the secret."""
    return [repr(stored.event.payload) for position in range(store.head)
            for stored in store.events_after(position, 1)
            if SECRET in repr(stored.event.payload)]


def test_a_node_that_was_away_does_not_bring_the_content_back(
        open_store: OpenStore, ev: Ev) -> None:
    a, b, c = open_store("a"), open_store("b"), open_store("c")
    events = _written(a, ev)
    everyone = Mesh([a, b, c], about=ABOUT)
    everyone.start()
    everyone.converge()  # c holds the originals too
    a.forget("s1", by="test")
    a.forget("s2", [events[5].id.hex()], by="test")
    live = Mesh([a, b], about=ABOUT)  # c is away
    live.start()
    live.converge()
    assert _content_left(a) == _content_left(b) == []
    assert len(_content_left(c)) == 3
    back = Mesh([a, b, c], about=ABOUT, now=1_000.0)
    back.start()
    back.converge()
    back.assert_converged()
    assert _content_left(c) == []
    assert [m["content"] for m in c.get_projection("s2").to_json()["messages"]] == ["fine 4"]


def test_a_node_holding_only_skeletons_passes_them_on_with_their_proof(
        open_store: OpenStore, ev: Ev) -> None:
    a, b, c = open_store("a"), open_store("b"), open_store("c")
    _written(a, ev)
    a.forget("s1")
    a.forget("s2")
    first = Mesh([a, b], about=ABOUT)
    first.start()
    first.converge()
    first.assert_converged()
    # c reaches a only through b, which never held the content.
    chain = Mesh([a, b, c], about=ABOUT, links=[(1, 2)])
    chain.start()
    chain.converge()
    assert set(all_ids(c)) == set(all_ids(a))
    assert c.get_projection("s1").to_json() == a.get_projection("s1").to_json()
    assert _content_left(c) == []


def test_an_older_peer_gets_an_origin_up_to_its_first_forgotten_event(
        open_store: OpenStore, ev: Ev) -> None:
    a, old = open_store("a"), open_store("old")
    events = _written(a, ev)
    a.forget("s1", [events[1].id.hex()])  # a's second event
    net = Mesh([a, old])  # nobody says it takes skeletons: as with a 0.1 node
    net.start()
    net.converge()  # no fault: nothing it would refuse is sent
    assert old.version[a.node_id] == 1
    assert all(m.counters.faults == 0 for m in net.machines.values())


def _skeleton_batch(proofs: tuple[Event, ...], skeleton: Event) -> bytes:
    return encode(Events((Item("o1", 1, skeleton),), proofs))


def _forged(**change: Any) -> bytes:
    said = event(content=SECRET)
    record = forget.forget("s1").seal(Hlc(5_000, 0))
    skeleton = said.skeleton(record.id)
    raw = codec.decode(_skeleton_batch((record,), skeleton))
    raw.update(change)
    return codec.encode(raw)


def test_a_skeleton_with_its_proof_is_taken() -> None:
    said = event(content=SECRET)
    record = forget.forget("s1", [said.id.hex()]).seal(Hlc(500, 0))
    parsed = parse(_skeleton_batch((record,), said.skeleton(record.id)))
    assert isinstance(parsed, Events) and parsed.proofs == (record,)
    assert parsed.items[0].event.forgotten_by == record.id


def _bad() -> dict[str, bytes]:
    said = event(content=SECRET)
    record = forget.forget("s1").seal(Hlc(5_000, 0))
    later = forget.forget("s1").seal(Hlc(500, 0))  # sorts before the event: no cover
    elsewhere = forget.forget("s2").seal(Hlc(5_000, 0))
    not_a_forget = event(content="x", ms=7)
    return {
        "no_proof": _skeleton_batch((), said.skeleton(record.id)),
        "proof_that_does_not_cover": _skeleton_batch((later,), said.skeleton(later.id)),
        "proof_of_another_session": _skeleton_batch((elsewhere,),
                                                    said.skeleton(elsewhere.id)),
        "proof_not_a_forget": _skeleton_batch((not_a_forget,),
                                              said.skeleton(not_a_forget.id)),
        "proof_not_bytes": _forged(proofs=["x"]),
        "proof_truncated": _forged(proofs=[record.canonical[:-1]]),
        "skeleton_extra_field": codec.encode({"type": "events", "items": [
            ["o1", 1, {**said.skeleton(record.id).skeleton_fields(), "content": "x"}]],
            "proofs": [record.canonical]}),
        "skeleton_short_id": codec.encode({"type": "events", "items": [
            ["o1", 1, {**said.skeleton(record.id).skeleton_fields(), "id": b"x"}]],
            "proofs": [record.canonical]}),
    }


@pytest.mark.parametrize("case", list(_bad()))
def test_a_skeleton_without_valid_proof_is_the_peers_fault(
        case: str, open_store: OpenStore) -> None:
    with pytest.raises(PeerFault):
        parse(_bad()[case])


CHAOS = st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 2**16)), max_size=40)


@settings(max_examples=150)
@given(nodes=st.integers(3, 4), shape=st.sampled_from(["mesh", "line"]),
       seed=st.integers(0, 2**16), before=CHAOS, after=CHAOS,
       forgets=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2), st.booleans(),
                                  st.integers(0, 2**16)), min_size=1, max_size=3))
def test_forgets_converge_under_chaos(ev: Ev, nodes: int, shape: str, seed: int,
                                      before: list[tuple[str, int]],
                                      after: list[tuple[str, int]],
                                      forgets: list[tuple[int, int, bool, int]]) -> None:
    """Forgets on any node, whole or of events, amid lost, duplicated and reordered
    messages: every node ends with the same events and projections, and no node keeps
    the content of an event any forget covers."""
    stores = [EventStore.open("memory:") for _ in range(nodes)]
    try:
        net = Mesh(stores, config=SyncConfig(batch_events_max=3), seed=seed,
                   links=topology(nodes, shape), about=ABOUT)
        net.start()
        run(net, ev, before)
        records = []
        for node, session, whole, pick in forgets:
            store = stores[node % nodes]
            held = [s.event for s in store.get_events(f"s{session}")] \
                if any(r.session_key == f"s{session}" for r in store.list_sessions()) else []
            held = [e for e in held if e.forgotten_by is None and e.kind != forget.KIND]
            if whole or not held:
                draft = forget.forget(f"s{session}")
            else:
                draft = forget.forget(f"s{session}", [held[pick % len(held)].id.hex()])
            store.append(draft)  # the session may be new here: forgetting nothing yet
            net.appended(node % nodes)
            records.append(stores[node % nodes].get_events(f"s{session}")[-1].event)
        run(net, ev, after)
        net.converge()
        net.assert_converged()
        read = [r for r in (forget.read(e) for e in records) if r is not None]
        for store in stores:
            for stored in (s for position in range(0, store.head, 1000)
                           for s in store.events_after(position, 1000)):
                if forget.covering(read, stored.event) is not None:
                    assert stored.event.payload == {}, "forgotten content kept"
    finally:
        for store in stores:
            store.close()
