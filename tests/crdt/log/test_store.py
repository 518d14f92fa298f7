"""crdt.log.store against real diskcache folders (no mocks, no sleeps): appending, timestamps,
reading, reopening."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from automerge.core import Document, extract

import crdt.clock
from crdt.automerge.documents import Documents
from crdt.clock import Hlc
from crdt.errors import NotFound, StoreError, TimestampAhead
from crdt.events import Draft, Event, parse_event
from crdt.log import records
from crdt.log.projection import rebuild
from crdt.log.records import INDEX_CHUNK
from crdt.log.store import EventStore
from tests.crdt.log.support import (
    MakeEvent,
    all_events,
    assert_document_matches,
    by_sort_key,
    draft,
    ids,
    positions,
)

# -- appending ------------------------------------------------------------------------------


def test_a_new_store_is_empty(store: EventStore) -> None:
    assert store.head == 0
    assert store.version == {}
    assert store.list_sessions() == []
    assert store.events_after(0) == []
    assert len(store.node_id) == 16


def test_append_is_idempotent(store: EventStore, ev: MakeEvent) -> None:
    event = ev(content="hello")
    first = store.append(event)
    again = store.append(event)
    assert (first.created, again.created) == (True, False)
    assert again.stored == first.stored
    assert first.stored.position == 1
    assert store.head == 1
    assert store.version == {store.node_id: 1}  # the duplicate took no sequence number
    assert store.get_projection("s1").to_json()["event_count"] == 1
    # The same content posted again with its timestamp (a client retry) is the same event.
    retry = parse_event({"agent_id": "main", "hlc": list(event.timestamp),
                         "kind": {"type": "message_received", "content": "hello"}},
                        session_key="s1")
    assert store.append(retry).created is False


def test_a_batch_with_an_internal_duplicate(store: EventStore, ev: MakeEvent) -> None:
    a, b = ev(content="a", ms=1), ev(content="b", ms=2)
    results = store.append_batch([a, a, b, a])
    assert [r.created for r in results] == [True, False, True, False]
    assert [r.stored.position for r in results] == [1, 1, 2, 1]
    assert [r.stored.seq for r in results] == [1, 1, 2, 1]
    assert store.head == 2
    assert [m["content"] for m in store.get_projection("s1").to_json()["messages"]] == ["a", "b"]


def test_stored_listeners_hear_of_every_commit_and_cannot_fail_it(
        store: EventStore, ev: MakeEvent) -> None:
    """Each listener is told what a commit's call appended, duplicates included; one
    that raises is counted, and neither the commit nor the next listener suffers."""
    told: list[list[tuple[bool, int]]] = []

    def broken(_results: list[records.Appended]) -> None:
        raise RuntimeError("a listener's bug")

    store.stored_listeners[:] = [broken, lambda results: told.append(
        [(appended.created, appended.stored.position) for appended in results])]
    event = ev(content="a")
    store.append_batch([event, ev(content="b", ms=2)])
    store.append(event)
    assert told == [[(True, 1), (True, 2)], [(False, 1)]]
    assert store.head == 2 and store.after_commit_failures == 2


def test_a_commit_that_fails_half_way_leaves_no_trace(store_path: Path) -> None:
    """The writer keeps recently written sessions between commits; a batch that fails
    after it changed one (here: a malformed event breaks the projection fold) must not
    leave that change behind for the next commit to write."""
    with EventStore.open(store_path) as store:
        first = store.append(draft("one")).stored.event
        broken = Draft("s1", "main", "message_received", {}).seal(Hlc(1, 0))
        with pytest.raises(KeyError):
            store.append_batch([draft("lost"), broken])
        last = store.append(draft("two")).stored.event
        assert store.head == 2
        view = store.get_projection("s1").to_json()
        assert view == rebuild("s1", [first, last]).to_json()
    with EventStore.open(store_path) as store:
        assert store.get_projection("s1").to_json() == view
        assert [s.event for s in store.get_events("s1")] == [first, last]


def test_positions_are_gap_free_from_one_and_local_events_get_sequence_numbers(
        store: EventStore, ev: MakeEvent) -> None:
    store.append_batch([ev(content=str(i), ms=i, session=f"s{i % 3}") for i in range(5)])
    store.append(ev(content="0", ms=0, session="s0"))  # duplicate: no position, no seq
    store.append(draft("stamped"))
    store.append_batch([ev(content="x", ms=100), draft("y", "s9")])
    stored = all_events(store)
    assert positions(stored) == list(range(1, 9))
    assert [s.origin for s in stored] == [store.node_id] * 8
    assert [s.seq for s in stored] == list(range(1, 9))
    assert store.version == {store.node_id: 8}
    assert ids(store.origin_after(store.node_id, 0)) == ids(stored)
    assert ids(store.origin_after(store.node_id, 5, limit=2)) == ids(stored[5:7])
    assert store.stats()["events"] == 8
    assert store.stats()["sessions"] == 4  # s0, s1, s2, s9


def test_drafts_are_stamped_after_everything_seen(
        store: EventStore, ev: MakeEvent, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crdt.clock, "wall_ms", lambda: 1_000_000)
    future = ev(ms=1_030_000)  # ahead of our wall clock, within the drift bound
    store.append(future)
    stamped = store.append(draft("after")).stored.event
    assert stamped.timestamp > future.timestamp


def test_a_remote_clock_far_ahead_does_not_drag_later_events(
        store: EventStore, ev: MakeEvent, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crdt.clock, "wall_ms", lambda: 1_000_000)
    # Beyond the bound, an event is refused outright (see the tests below); just within,
    # it is stored and the clock follows it at most the bound ahead of the wall clock.
    near = ev(ms=1_000_000 + crdt.clock.DRIFT_MAX_MS, content="from a fast clock")
    store.ingest([(near, "peer", 1)])
    local = store.append(draft("local")).stored.event
    assert local.timestamp == Hlc(1_000_000 + crdt.clock.DRIFT_MAX_MS, 1)
    assert ids(store.get_events("s1")) == [near.id, local.id]


# -- timestamps too far ahead, and a clock put right ------------------------------------------


def state_of(store: EventStore, key: str = "s1") -> Any:
    return store.get_projection(key).to_json()["state"]


def test_a_timestamp_beyond_the_bound_is_refused_and_nothing_is_stored(
        store: EventStore, ev: MakeEvent, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crdt.clock, "wall_ms", lambda: 1_000_000)
    store.append(ev("session_started", ms=999_000))
    far = ev("session_ended", ms=crdt.clock.MS_MAX)  # 9999-12-31
    just_beyond = ev("session_ended", ms=1_000_000 + crdt.clock.DRIFT_MAX_MS + 1)
    for bad in (far, just_beyond):
        with pytest.raises(TimestampAhead) as caught:
            store.append_batch([draft("fine"), bad])
        assert caught.value.field == "events[1].timestamp"
        assert caught.value.code == "timestamp_ahead"
        with pytest.raises(TimestampAhead):
            store.ingest([(bad, "peer", 1)])
    assert store.head == 1 and not store.holds(far.id)
    assert store.version.get("peer", 0) == 0
    assert state_of(store) == "active"
    assert store.clock.last < Hlc(1_000_000 + crdt.clock.DRIFT_MAX_MS, 0)


def test_an_event_refused_for_now_is_taken_once_the_wall_clock_caught_up(
        store: EventStore, ev: MakeEvent, monkeypatch: pytest.MonkeyPatch) -> None:
    wall = [1_000_000]
    monkeypatch.setattr(crdt.clock, "wall_ms", lambda: wall[0])
    soon = ev("session_ended", ms=1_000_000 + crdt.clock.DRIFT_MAX_MS + 5_000)
    assert store.ahead(soon)
    wall[0] += 5_000  # the same event, sent again later: the same id, now in bounds
    assert not store.ahead(soon)
    assert store.ingest([(soon, "peer", 1)])[0].created
    assert state_of(store) == "ended"


def test_a_clock_put_right_never_takes_a_new_event_for_an_old_one(
        store: EventStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # The wall clock ran 2 h fast, then was put right: the clock starts again from it and
    # walks through timestamps it already issued. The same content at the same time would
    # be the same id; the store stamps again rather than drop the new event as a repeat.
    hour_ms = 3_600_000
    wall = [12 * hour_ms]
    monkeypatch.setattr(crdt.clock, "wall_ms", lambda: wall[0])
    old = store.append(draft("ok")).stored.event
    wall[0] = 10 * hour_ms  # NTP stepped the clock back
    assert store.append(draft("elsewhere")).stored.event.timestamp == Hlc(10 * hour_ms, 0)
    wall[0] = 12 * hour_ms  # two hours later the wall clock reads what it read then
    again = store.append(draft("ok"))
    assert again.created
    assert again.stored.event.id != old.id
    assert again.stored.event.timestamp > old.timestamp
    assert [m["content"] for m in store.get_projection("s1").to_json()["messages"]] == [
        "elsewhere", "ok", "ok"]


def test_a_draft_stamped_here_is_never_taken_for_a_stored_event(
        store: EventStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # The store does not read the ids of the events it stamps (none can be stored): an
    # event of the same content stored at the time the clock stands at, from a peer
    # and from a client, still leaves each draft a new event of its own.
    monkeypatch.setattr(crdt.clock, "wall_ms", lambda: 5_000_000)
    same = parse_event({"agent_id": "main", "hlc": [5_000_000, 0], "kind": {
        "type": "message_received", "content": "same"}}, session_key="s1")
    assert isinstance(same, Event)
    assert store.ingest([(same, "peer", 1)])[0].created
    later = same.timestamp.ms + 1
    client = parse_event({"agent_id": "main", "hlc": [later, 0], "kind": {
        "type": "message_received", "content": "same"}}, session_key="s1")
    appended = store.append_batch([client, draft("same"), draft("same"), client])
    assert [a.created for a in appended] == [True, True, True, False]
    assert len({a.stored.event.id for a in appended[:3]} | {same.id}) == 4
    assert store.get_projection("s1").to_json()["message_count"] == 4


def test_a_store_reopened_on_a_corrected_clock_stamps_the_time_of_day(
        store_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hour_ms = 3_600_000
    monkeypatch.setattr(crdt.clock, "wall_ms", lambda: 12 * hour_ms)  # 2 h fast
    with EventStore.open(store_path) as store:
        fast = store.append(draft("from the fast clock")).stored.event
    # 90 minutes after the clock was put right, the node restarts (or keeps running).
    monkeypatch.setattr(crdt.clock, "wall_ms", lambda: 10 * hour_ms + 90 * 60_000)
    with EventStore.open(store_path) as store:
        stamped = store.append(draft("ninety minutes later")).stored.event
        assert stamped.timestamp == Hlc(10 * hour_ms + 90 * 60_000, 0)
        assert store.clock.high >= fast.timestamp
    with EventStore.open(store_path) as store:  # and after one more restart
        assert store.clock.high >= fast.timestamp
        again = store.append(draft("from the fast clock")).stored
        assert again.event.id != fast.id and again.position == 3


# -- reading ---------------------------------------------------------------------------------


def test_get_events_in_timestamp_id_order(store: EventStore, ev: MakeEvent) -> None:
    events = [ev(content=c, ms=ms) for c, ms in (("c", 30), ("a", 10), ("b", 20), ("b2", 20))]
    events.append(ev("state_changed", 10))
    store.append_batch(events[:2])
    store.append_batch(events[2:])
    assert ids(store.get_events("s1")) == [e.id for e in by_sort_key(events)]


def test_get_events_since_position_delivers_a_late_old_event(store: EventStore,
                                                             ev: MakeEvent) -> None:
    """Seed defect: ``get_events_since(timestamp)`` missed an event that arrived after the
    reader's cursor but carried an older timestamp. A position cursor does not."""
    store.append(ev(content="one", ms=2_000))
    cursor = store.append(ev(content="two", ms=3_000)).stored.position
    late = ev(content="late", ms=1_000, agent="offline-phone")
    store.ingest([(late, "phone", 1)])
    assert ids(store.get_events_since("s1", cursor)) == [late.id]
    assert [e.timestamp.ms for e in (s.event for s in store.get_events("s1"))] == \
        [1_000, 2_000, 3_000]


def test_events_after_pages_cover_every_event_once(store: EventStore, ev: MakeEvent) -> None:
    count = INDEX_CHUNK * 2 + 7
    store.append_batch([ev(content=str(i), ms=i, session=f"s{i % 4}") for i in range(count)])
    seen: list[int] = []
    cursor = 0
    while page := store.events_after(cursor, limit=9):
        seen += positions(page)
        cursor = page[-1].position
    assert seen == list(range(1, count + 1))
    assert positions(store.events_after(count - 1, limit=9)) == [count]
    assert store.events_after(count) == []
    assert positions(store.events_after(-5, limit=2)) == [1, 2]
    with pytest.raises(ValueError):
        store.events_after(0, limit=0)


def test_list_sessions_pages_in_creation_order(store: EventStore, ev: MakeEvent) -> None:
    keys = [f"session-{n}" for n in (5, 3, 9, 1, 7, 2, 8)]
    for key in keys:
        store.append(ev(session=key))
    store.append(ev(session=keys[0], content="again"))  # no new entry
    pages = [store.list_sessions(after, limit=3) for after in (0, 3, 6, 7)]
    assert [[ref.session_key for ref in page] for page in pages] == [
        keys[:3], keys[3:6], keys[6:], []]
    assert [ref.index for ref in store.list_sessions(limit=100)] == list(range(1, 8))


def test_unknown_sessions_and_events_are_not_found(store: EventStore, ev: MakeEvent) -> None:
    store.append(ev(session="known"))
    for read in (store.get_events, store.get_projection, store.get_events_since,
                 Documents(store).saved):
        with pytest.raises(NotFound):
            read("unknown")
    with pytest.raises(NotFound):
        store.get_event(bytes(32))


def test_a_closed_store_refuses_writes(store_path: Path, ev: MakeEvent) -> None:
    store = EventStore.open(store_path)
    store.close()
    store.close()  # twice is fine
    with pytest.raises(StoreError):
        store.append(ev())
    with pytest.raises(StoreError):
        store.ingest([(ev(), "p", 1)])


# -- reopening -------------------------------------------------------------------------------


def test_reopen_keeps_everything(store_path: Path, ev: MakeEvent,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    future_wall = 4_000_000_000_000  # the wall clock of the first run was far ahead...
    monkeypatch.setattr(crdt.clock, "wall_ms", lambda: future_wall)
    store = EventStore.open(store_path)
    store.append_batch([draft("a"), draft("b", "s2"), ev("session_started", 5)])
    store.ingest([(ev(content="remote", ms=7), "peerA", 1)])
    node_id, clock = store.node_id, store.clock.last
    before = {key: store.get_projection(key).to_json() for key in ("s1", "s2")}
    events_before, version_before = all_events(store), store.version
    document_before = extract(Document.load(Documents(store).saved("s1")))
    store.close()

    monkeypatch.setattr(crdt.clock, "wall_ms", lambda: 1_000)  # ...and now it is far behind
    with EventStore.open(store_path) as again:
        assert again.node_id == node_id
        assert again.clock.high_water == clock
        assert all_events(again) == events_before
        assert again.version == version_before
        assert {key: again.get_projection(key).to_json() for key in ("s1", "s2")} == before
        assert [ref.session_key for ref in again.list_sessions()] == ["s1", "s2"]
        assert extract(Document.load(Documents(again).saved("s1"))) == document_before

        after = again.append(draft("after reopen")).stored
        # The clock of the first run leads the wall clock by far more than the bound: it
        # starts again from the wall clock, and remembers how far it had gone.
        assert after.event.timestamp == Hlc(1_000, 0)
        assert again.clock.high == clock
        assert after.position == len(events_before) + 1
        assert after.seq == version_before[node_id] + 1
        assert after.event.id in ids(again.get_events("s1"))
        assert_document_matches(again, "s1")
