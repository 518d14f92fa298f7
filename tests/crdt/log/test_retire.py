"""Retiring origins in the log (crdt.log.retire, EventLog): the rules every node applies."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from crdt import codec
from crdt.clock import Hlc
from crdt.errors import InvalidInput, NotFound
from crdt.events import Draft, Event
from crdt.log import retire
from crdt.log.records import META, Meta
from crdt.log.store import EventStore

MakeEvent = Callable[..., Event]
OLD = "0123456789abcdef"


def fill(store: EventStore, ev: MakeEvent, origin: str, seqs: range) -> list[Event]:
    events = [ev(content=f"{origin} {seq}", ms=1_000 + seq, session=f"s-{origin}")
              for seq in seqs]
    store.ingest([(event, origin, seq) for event, seq in zip(events, seqs, strict=True)])
    return events


def _sealed(origin: str, final_seq: int, ms: int) -> Event:
    return retire.retirement(origin, final_seq).seal(Hlc(ms, 0))


def test_a_held_origin_is_dropped_and_its_events_stay_readable(
        store: EventStore, ev: MakeEvent) -> None:
    events = fill(store, ev, OLD, range(1, 4))
    head = store.head
    appended = store.retire(OLD)
    assert appended is not None and appended.stored.event.kind == retire.KIND
    assert OLD not in store.version and store.retired == {OLD: 3}
    assert store.stats()["origins"] == 1 and store.stats()["origins_retired"] == 1
    # Positions, sessions and projections are untouched.
    assert [s.event.id for s in store.get_events(f"s-{OLD}")] == [e.id for e in events]
    assert store.get_projection(f"s-{OLD}").header.event_count == 3
    assert store.head == head + 1
    # Retiring again at the same seq writes nothing; neither does a late duplicate.
    assert store.retire(OLD) is None
    assert not any(a.created for a in store.ingest([(events[0], OLD, 1)]))
    assert OLD not in store.version and store.head == head + 1


def test_an_origin_the_node_lacks_events_of_stays_active_until_it_holds_them(
        store: EventStore, ev: MakeEvent) -> None:
    events = [ev(content=f"e{seq}", ms=1_000 + seq) for seq in range(1, 5)]
    store.ingest([(events[0], OLD, 1), (events[1], OLD, 2)])
    store.append(_sealed(OLD, 4, 9_000))
    assert store.version[OLD] == 2 and store.retiring == {OLD: 4} and not store.retired
    store.ingest([(events[2], OLD, 3), (events[3], OLD, 4)])
    assert OLD not in store.version and store.retired == {OLD: 4} and not store.retiring


def test_a_retirement_of_an_unknown_origin_asks_for_all_of_it(store: EventStore) -> None:
    store.append(_sealed(OLD, 2, 9_000))
    assert store.version[OLD] == 0 and store.retiring == {OLD: 2}


def test_an_unknown_origin_is_not_asked_for_past_the_room(store: EventStore) -> None:
    store.origins_room = 1
    store.append(_sealed("someone", 1, 8_000))
    store.append(_sealed(OLD, 2, 9_000))
    assert OLD not in store.version and store.retiring[OLD] == 2


@pytest.mark.parametrize("order", ["low first", "high first"])
def test_concurrent_retirements_resolve_to_the_highest_final_seq(
        store: EventStore, ev: MakeEvent, order: str) -> None:
    events = fill(store, ev, OLD, range(1, 4))
    low, high = _sealed(OLD, 3, 9_000), _sealed(OLD, 5, 9_001)
    store.append_batch([low, high] if order == "low first" else [high, low])
    # Whatever the order: active until seqs 4 and 5 arrive, then retired at 5.
    assert store.version[OLD] == 3 and store.retiring == {OLD: 5}
    more = [ev(content=f"more {seq}", ms=2_000 + seq) for seq in (4, 5)]
    store.ingest([(more[0], OLD, 4), (more[1], OLD, 5)])
    assert store.retired == {OLD: 5} and OLD not in store.version
    assert len(events) == 3


def test_a_higher_retirement_after_the_drop_makes_the_origin_active_again(
        store: EventStore, ev: MakeEvent) -> None:
    fill(store, ev, OLD, range(1, 4))
    store.append(_sealed(OLD, 3, 9_000))
    assert store.retired == {OLD: 3}
    store.append(_sealed(OLD, 6, 9_001))
    assert store.version[OLD] == 3 and store.retiring == {OLD: 6} and not store.retired


def test_a_node_whose_own_origin_is_retired_takes_a_new_one(
        store: EventStore, ev: MakeEvent) -> None:
    own = store.node_id
    written = [store.append(ev(content=f"mine {n}", ms=1_000 + n)).stored for n in range(4)]
    # A peer retired our origin at 2 (it held only our first two events).
    store.ingest([(_sealed(own, 2, 9_000), "peer000000000000", 1)])
    new = store.node_id
    assert new != own and store.retired == {own: 2} and own not in store.version
    # Our events 3 and 4, which every node refuses under the old origin, travel under
    # the new one; positions do not change.
    moved = store.origin_after(new, 0)
    assert [s.event.id for s in moved] == [w.event.id for w in written[2:]]
    assert [s.position for s in moved] == [w.position for w in written[2:]]
    assert store.id_at(own, 3) is None and store.version[new] == 2
    after = store.append(ev(content="after", ms=2_000)).stored
    assert (after.origin, after.seq) == (new, 3)


def test_a_new_origin_survives_a_reopen(store_path: Path, ev: MakeEvent) -> None:
    with EventStore.open(store_path) as store:
        own = store.node_id
        store.append(ev(content="mine", ms=1_000))
        store.ingest([(_sealed(own, 1, 9_000), "peer000000000000", 1)])
        new = store.node_id
    with EventStore.open(store_path) as store:
        assert store.node_id == new != own and store.retired == {own: 1}


def test_retire_refuses_the_own_origin_and_unknown_ones(store: EventStore) -> None:
    with pytest.raises(InvalidInput):
        store.retire(store.node_id)
    with pytest.raises(NotFound):
        store.retire(OLD)


@pytest.mark.parametrize("payload", [
    {"origin": OLD}, {"origin": OLD, "final_seq": 0}, {"origin": OLD, "final_seq": True},
    {"origin": "", "final_seq": 1}, {"origin": 7, "final_seq": 1},
])
def test_a_malformed_retirement_is_kept_but_retires_nothing(payload: dict[str, object]) -> None:
    draft = Draft(retire.ORIGINS_SESSION, retire.AGENT_ID, retire.KIND, payload)
    assert retire.read(draft.seal(Hlc(1, 0))) is None


def test_a_retirement_outside_its_session_retires_nothing() -> None:
    draft = Draft("s1", retire.AGENT_ID, retire.KIND, {"origin": OLD, "final_seq": 1})
    assert retire.read(draft.seal(Hlc(1, 0))) is None


def test_meta_without_retirements_reads_as_none_retired() -> None:
    old = codec.encode_fast({"format": 1, "node_id": "n", "next": 1, "seq": 0,
                             "clock": [0, 0], "sessions": 0, "version": {}})
    meta = Meta.from_record(old)
    assert meta.retired == {} and meta.retiring == {}


def test_retirements_past_the_limit_retire_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retire, "RETIRED_MAX", 2)
    meta = Meta("n", version={"a": 1, "b": 1, "c": 1})
    for origin in "abc":
        retire.learn(meta, origin, 1, room=10)
    assert retire.settle(meta) == ["a", "b"] and meta.version == {"c": 1}
    retire.learn(meta, "a", 1, room=10)  # one already kept is still taken in
    assert meta.retired == {"a": 1, "b": 1}


def test_a_node_holding_more_than_the_final_seq_retires_the_origin_again(
        store: EventStore, ev: MakeEvent) -> None:
    fill(store, ev, OLD, range(1, 8))
    store.ingest([(_sealed(OLD, 5, 9_000), "peer000000000000", 1)])
    assert store.retired == {OLD: 7} and OLD not in store.version
    again = [s for s in store.events_after(0, 100) if retire.read(s.event) == (OLD, 7)]
    assert len(again) == 1 and again[0].origin == store.node_id


def test_a_folder_of_an_earlier_version_takes_in_the_retirements_it_holds(
        store_path: Path, ev: MakeEvent) -> None:
    """An earlier version kept a retirement as an event of a kind it did not know."""
    with EventStore.open(store_path) as store:
        fill(store, ev, OLD, range(1, 3))
        store.ingest([(_sealed(OLD, 2, 9_000), "peer000000000000", 1)])
        assert store.retired == {OLD: 2}
        raw = codec.decode(store.log.storage.get(META))
        del raw["retired"], raw["retiring"]
        raw["version"][OLD] = 2
        with store.log.storage.transaction() as tx:
            tx.put(META, codec.encode_fast(raw))
    with EventStore.open(store_path) as store:
        assert store.retired == {OLD: 2} and OLD not in store.version
    with EventStore.open(store_path) as store:  # once: the meta now says so
        assert store.retired == {OLD: 2}


def test_may_retire_is_asked_only_before_a_retirement_is_appended(
        store: EventStore, ev: MakeEvent) -> None:
    """The caller's check runs after the 404 and "already retired" answers, and a
    refusal from it writes nothing."""
    asked: list[str] = []

    def refuse() -> None:
        asked.append("refuse")
        raise LookupError("still writes")

    with pytest.raises(NotFound):
        store.retire(OLD, refuse)
    fill(store, ev, OLD, range(1, 3))
    head = store.head
    with pytest.raises(LookupError):
        store.retire(OLD, refuse)
    assert store.head == head and OLD in store.version and asked == ["refuse"]
    assert store.retire(OLD, lambda: asked.append("allow")) is not None
    assert store.retire(OLD, refuse) is None and asked == ["refuse", "allow"]
