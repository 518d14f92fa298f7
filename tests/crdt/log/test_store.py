"""crdt.log.store and crdt.log.eventlog against real diskcache folders (no mocks, no sleeps)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from automerge.core import Document, extract
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

import crdt.clock
from crdt import codec
from crdt.automerge.documents import Documents
from crdt.clock import Hlc
from crdt.errors import NotFound, StoreError, TimestampAhead
from crdt.events import Draft, Event, parse_event
from crdt.log import records
from crdt.log.batch import CHUNK_BYTES_MAX, CHUNK_CARRY_ENTRIES_MAX, CHUNK_ENTRIES_MAX
from crdt.log.projection import Projection, rebuild
from crdt.log.records import INDEX_CHUNK, LOG_FORMAT, META, StoredEvent
from crdt.log.store import EventStore
from crdt.storage.disk import DiskStorage

MakeEvent = Callable[..., Event]  # the ``ev`` fixture of conftest.py
SQLITE_FILES = {"cache.db", "cache.db-wal", "cache.db-shm", "clawsync.lock"}


def ids(stored: Iterable[StoredEvent]) -> list[bytes]:
    return [s.event.id for s in stored]


def positions(stored: Iterable[StoredEvent]) -> list[int]:
    return [s.position for s in stored]


def by_sort_key(events: Iterable[Event]) -> list[Event]:
    return sorted({e.id: e for e in events}.values(), key=lambda e: e.sort_key)


def draft(content: str = "hi", session: str = "s1") -> Draft:
    made = parse_event({"agent_id": "main", "kind": {"type": "message_received",
                                                     "content": content}}, session_key=session)
    assert isinstance(made, Draft)
    return made


def all_events(store: EventStore) -> list[StoredEvent]:
    out: list[StoredEvent] = []
    while page := store.events_after(out[-1].position if out else 0, limit=1000):
        out += page
    return out


def without_empty_keys(value: Any) -> Any:
    """Automerge cannot hold a map entry with an empty key; the document drops them."""
    if isinstance(value, dict):
        return {k: without_empty_keys(v) for k, v in value.items() if k}
    if isinstance(value, list):
        return [without_empty_keys(v) for v in value]
    return value


def assert_document_matches(docs: Documents | EventStore, session_key: str) -> None:
    """The session's Automerge document, loaded by automerge itself, shows the projection.
    Given a store, its documents are loaded afresh from its folder."""
    if isinstance(docs, EventStore):
        docs = Documents(docs)
    store = docs.store
    doc = extract(Document.load(docs.saved(session_key)))
    view = store.get_projection(session_key).to_json()
    for name in ("session_key", "agent_id", "channel", "peer_id", "state", "message_count",
                 "event_count", "last_activity", "last_event_id"):
        assert doc[name] == view[name], name
    assert doc["messages"] == {m["key"]: {k: v for k, v in m.items() if k != "key"}
                               for m in view["messages"]}
    assert doc["custom_state"] == without_empty_keys(view["custom_state"])


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


# -- remote events: (origin, seq) ----------------------------------------------------------


def test_ingest_out_of_order_advances_the_version_only_over_contiguous_seqs(
        store: EventStore, ev: MakeEvent) -> None:
    remote = {seq: ev(content=f"r{seq}", ms=seq, agent="peer") for seq in range(1, 7)}

    def ingest(*seqs: int) -> None:
        store.ingest([(remote[seq], "peerA", seq) for seq in seqs])

    ingest(3, 5)
    assert store.version.get("peerA", 0) == 0
    assert store.origin_after("peerA", 0) == []
    ingest(1)
    assert store.version["peerA"] == 1
    assert ids(store.origin_after("peerA", 0)) == [remote[1].id]  # stops at the gap (2)
    ingest(2)
    assert store.version["peerA"] == 3  # 2 closed the gap up to 3
    got = store.origin_after("peerA", 0)
    assert ids(got) == [remote[s].id for s in (1, 2, 3)]
    assert [(s.origin, s.seq) for s in got] == [("peerA", 1), ("peerA", 2), ("peerA", 3)]
    assert ids(store.origin_after("peerA", 3)) == []  # 4 is missing
    ingest(6, 4)
    assert store.version["peerA"] == 6
    assert ids(store.origin_after("peerA", 2, limit=2)) == [remote[3].id, remote[4].id]
    assert positions(all_events(store)) == list(range(1, 7))  # positions by arrival
    assert store.node_id not in store.version  # nothing originated here


def test_version_vector_across_index_chunks(store: EventStore, ev: MakeEvent) -> None:
    count = INDEX_CHUNK + 10
    events = [ev(content=str(i), ms=i) for i in range(count)]
    order = list(range(count, 0, -1))  # every seq arrives before its predecessor
    store.ingest([(events[seq - 1], "peerA", seq) for seq in order[:-1]])
    assert store.version.get("peerA", 0) == 0
    store.ingest([(events[0], "peerA", 1)])
    assert store.version["peerA"] == count
    assert ids(store.origin_after("peerA", 0, limit=count)) == ids(
        store.origin_after("peerA", 0, limit=INDEX_CHUNK)) + ids(
        store.origin_after("peerA", INDEX_CHUNK, limit=count))

    # Gaps below the version (a folder that held events past a gap) and beyond it.
    store.ingest([(ev(content="far", ms=9_000), "peerA", 3 * INDEX_CHUNK + 5)])
    seqs = [1, INDEX_CHUNK - 1, INDEX_CHUNK, count, count + 1, 3 * INDEX_CHUNK + 5, 2]
    assert store.ids_at("peerA", seqs) == [store.id_at("peerA", seq) for seq in seqs]
    assert store.ids_at("peerA", seqs)[4] is None and store.ids_at("nobody", [1]) == [None]
    assert store.ids_at("peerA", []) == []


def test_an_event_under_two_origin_seq_pairs_is_stored_once(store: EventStore,
                                                             ev: MakeEvent) -> None:
    event = ev(content="relayed")
    first, second = store.ingest([(event, "peerA", 1), (event, "peerB", 1)])
    assert (first.created, second.created) == (True, False)
    assert second.stored.position == first.stored.position == 1
    assert store.head == 1
    assert store.version == {"peerA": 1, "peerB": 1}
    via_a, via_b = store.origin_after("peerA", 0), store.origin_after("peerB", 0)
    assert ids(via_a) == ids(via_b) == [event.id]
    assert (via_a[0].origin, via_a[0].seq, via_b[0].origin, via_b[0].seq) == \
        ("peerA", 1, "peerB", 1)
    assert store.get_event(event.id).origin == "peerA"  # where it came from first
    # A local event that comes back from a peer is indexed under the peer's numbering too.
    mine = store.append(ev(content="mine", ms=5)).stored
    back = store.ingest([(mine.event, "peerB", 2)])[0]
    assert back.created is False
    assert store.version["peerB"] == 2
    assert ids(store.origin_after("peerB", 1)) == [mine.event.id]


def test_own_events_coming_back_from_a_peer_do_not_reuse_sequence_numbers(
        store: EventStore, ev: MakeEvent) -> None:
    lost = ev(content="written here before the backup was restored", ms=1_000)
    store.ingest([(lost, store.node_id, 1)])
    new = store.append(ev(content="new", ms=2_000)).stored
    assert new.seq == 2
    assert ids(store.origin_after(store.node_id, 0)) == [lost.id, new.event.id]
    assert store.version[store.node_id] == 2


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


# -- chunks ---------------------------------------------------------------------------------


def check_session_reads(store: EventStore, key: str) -> None:
    """Every read of one session agrees with the events themselves, at every cursor."""
    events = [s for s in all_events(store) if s.event.session_key == key]
    assert ids(store.get_events(key)) == [e.id for e in by_sort_key(s.event for s in events)]
    assert store.get_projection(key).to_json() == \
        rebuild(key, [s.event for s in events]).to_json()
    for cursor in range(0, store.head + 1):
        later = [s for s in events if s.position > cursor]
        assert positions(store.get_events_since(key, cursor, limit=2)) == positions(later[:2])
    assert positions(store.get_events_since(key, 0, limit=10_000)) == positions(events)


def test_reads_across_entry_count_chunks(store: EventStore, ev: MakeEvent) -> None:
    count = CHUNK_ENTRIES_MAX * 3 + 5
    mine = [ev(content=str(i), ms=count - i) for i in range(count)]  # reverse time order
    other = [ev(content=str(i), ms=i, session="other") for i in range(count // 3)]
    store.append_batch(mine[:100] + other[:10])  # one batch crosses a chunk edge
    for i, event in enumerate(mine[100:]):  # then single appends, interleaved
        store.append(event)
        if i % 3 == 0 and other[10 + i // 3:]:
            store.append(other[10 + i // 3])
    # 64 and 36 from the batch; the single appends start a new chunk each time the open
    # one holds half of 64 (CHUNK_CARRY_ENTRIES_MAX): 32, 32, 32 and 1.
    assert store._log.session("s1").chunks == 6
    check_session_reads(store, "s1")
    check_session_reads(store, "other")
    assert_document_matches(store, "s1")


def test_a_commit_leaves_a_half_full_chunk_as_stored(store: EventStore, ev: MakeEvent) -> None:
    """A commit rewrites at most half a chunk of entries it did not add: appending to a
    session whose open chunk holds half of ``CHUNK_ENTRIES_MAX`` starts a new chunk."""
    events = [ev(content=str(i), ms=i) for i in range(CHUNK_CARRY_ENTRIES_MAX * 3)]
    store.append_batch(events[:CHUNK_CARRY_ENTRIES_MAX - 1])
    store.append(events[CHUNK_CARRY_ENTRIES_MAX - 1])  # under half: appended to chunk 0
    first = store._log.storage.get(records.key("c", "s1", 0))
    store.append_batch(events[CHUNK_CARRY_ENTRIES_MAX:])
    assert store._log.storage.get(records.key("c", "s1", 0)) == first  # not written again
    assert [len(store._log.chunk("s1", n)) for n in range(store._log.session("s1").chunks)] \
        == [CHUNK_CARRY_ENTRIES_MAX, CHUNK_CARRY_ENTRIES_MAX * 2]
    check_session_reads(store, "s1")


def test_reads_across_byte_size_chunks(store: EventStore, ev: MakeEvent) -> None:
    size = CHUNK_BYTES_MAX // 3
    events = [ev(content=f"{i}" * size, ms=i) for i in range(14)]
    for event in events[:5]:
        store.append(event)
    store.append_batch(events[5:])
    assert store._log.session("s1").chunks >= 4
    check_session_reads(store, "s1")


def test_document_catches_up_across_chunks_increments_and_reopen(
        store_path: Path, ev: MakeEvent) -> None:
    store = EventStore.open(store_path)
    docs = Documents(store)
    try:
        for i in range(CHUNK_ENTRIES_MAX + 40):  # more catch-ups than INCREMENTS_MAX
            store.append(ev(content=str(i), ms=1_000 - i))
            if i % 2 == 0:
                store.append(ev("state_changed", i, key=f"k{i % 5}", value=i))
            docs.saved("s1")
        assert_document_matches(docs, "s1")
    finally:
        store.close()
    with EventStore.open(store_path) as again:
        assert_document_matches(again, "s1")
        again.append(ev(content="after", ms=5_000))
        assert_document_matches(again, "s1")


def test_every_accepted_state_value_fits_in_the_document(store: EventStore,
                                                         ev: MakeEvent) -> None:
    value: Any = "leaf"
    for _ in range(codec.DEPTH_MAX):
        value = {"k": value}
    store.append(ev("state_changed", 1, key="deep", value=value))
    assert_document_matches(store, "s1")


def test_a_log_of_another_format_is_refused(store_path: Path, ev: MakeEvent) -> None:
    with EventStore.open(store_path) as store:
        store.append(ev())
    storage = DiskStorage.open(store_path)
    meta = codec.decode(storage.get(META) or b"")
    with storage.transaction() as tx:
        tx.put(META, codec.encode({**meta, "format": LOG_FORMAT + 1}))
    with pytest.raises(StoreError, match="log format 2"):
        EventStore(storage)
    storage.close()


# -- property: random batches, every projection equals rebuild(get_events) -----------------

SESSIONS = ["s1", "s2", "tg:alice"]


@st.composite
def random_events(draw: st.DrawFn) -> Event:
    kind = draw(st.sampled_from(["session_started", "message_received", "agent_response",
                                 "tool_result", "session_ended", "state_changed",
                                 "tool_called", "message_sent"]))
    text = st.sampled_from(["a", "b", "ü👋"])
    value = st.one_of(st.integers(0, 3), text, st.none(),
                      st.dictionaries(st.sampled_from(["", "x"]), st.integers(0, 2), max_size=2))
    fields = {
        "session_started": {"channel": text, "peer_id": text},
        "message_received": {"content": text},
        "message_sent": {"content": text, "message_id": text},
        "agent_response": {"content": text, "model": text},
        "tool_called": {"tool_name": text, "params": value},
        "tool_result": {"tool_name": text, "result": value, "success": st.booleans()},
        "session_ended": {"reason": text},
        "state_changed": {"key": st.sampled_from(["k1", "k2"]), "value": value},
    }[kind]
    event = parse_event({
        "agent_id": draw(st.sampled_from(["main", "other"])),
        "hlc": [draw(st.integers(1_000, 1_004)), draw(st.integers(0, 1))],
        "kind": {"type": kind, **draw(st.fixed_dictionaries(fields))}},
        session_key=draw(st.sampled_from(SESSIONS)))
    assert isinstance(event, Event)
    return event


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(random_events(), min_size=1, max_size=8), min_size=1, max_size=5),
       st.data())
def test_every_projection_equals_rebuild_of_its_events(batches: list[list[Event]],
                                                       data: st.DataObject) -> None:
    """On the in-memory backend, so that hypothesis can try many examples."""
    with EventStore.open("memory:") as store:
        held: list[Event] = []
        for batch in batches:
            if held:  # some events arrive again
                batch = batch + data.draw(st.lists(st.sampled_from(held), max_size=2))
            store.append_batch(batch)
            held += batch
        docs = Documents(store)
        for key in {e.session_key for e in held}:
            stored = [s.event for s in store.get_events(key)]
            assert stored == by_sort_key(e for e in held if e.session_key == key)
            assert store.get_projection(key).to_json() == rebuild(key, stored).to_json()
            assert_document_matches(docs, key)


class StoreMachine(RuleBasedStateMachine):
    """Appends, peer ingests (with gaps, reordering, relays) and restarts; after every step
    the store agrees with a model made of plain sets and dicts."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.mkdtemp()
        self.store = EventStore.open(self.folder)
        self.events: dict[bytes, Event] = {}  # everything the store holds
        self.sessions: list[str] = []  # in creation order
        self.remote: dict[tuple[str, int], Event] = {}  # what each peer numbered
        self.received: set[tuple[str, int]] = set()
        self.local = 0

    @initialize()
    def check_empty(self) -> None:
        assert self.store.head == 0

    def _hold(self, event: Event) -> bool:
        """Model the store: True if the event is new."""
        if event.id in self.events:
            return False
        self.events[event.id] = event
        if event.session_key not in self.sessions:
            self.sessions.append(event.session_key)
        return True

    @rule(batch=st.lists(random_events(), min_size=1, max_size=6), data=st.data())
    def append(self, batch: list[Any], data: st.DataObject) -> None:
        batch = [*batch]
        if self.events and data.draw(st.booleans()):
            batch.append(data.draw(st.sampled_from(sorted(self.events.values(),
                                                          key=lambda e: e.id))))
        if data.draw(st.booleans()):
            batch.append(draft(data.draw(st.sampled_from(["x", "y"])),
                               data.draw(st.sampled_from(SESSIONS))))
        head = self.store.head
        results = self.store.append_batch(batch)
        for result in results:
            created = self._hold(result.stored.event)
            assert result.created == created
            if created:
                self.local += 1
                head += 1
                assert (result.stored.position, result.stored.seq) == (head, self.local)

    @rule(origin=st.sampled_from(["peerA", "peerB"]),
          seqs=st.lists(st.integers(1, 8), min_size=1, max_size=5), data=st.data())
    def ingest(self, origin: str, seqs: list[int], data: st.DataObject) -> None:
        batch = []
        for seq in seqs:
            if (origin, seq) not in self.remote:  # a peer numbers each event once
                relay = self.events and data.draw(st.booleans())
                self.remote[origin, seq] = (
                    data.draw(st.sampled_from(sorted(self.events.values(), key=lambda e: e.id)))
                    if relay else data.draw(random_events()))
            batch.append((self.remote[origin, seq], origin, seq))
        results = self.store.ingest(batch)
        for (event, origin_, seq), result in zip(batch, results, strict=True):
            assert result.created == self._hold(event)
            assert result.stored.event == event
            self.received.add((origin_, seq))

    @rule()
    def reopen(self) -> None:
        clock = self.store.clock.last
        self.store.close()
        self.store = EventStore.open(self.folder)
        assert self.store.clock.last == clock

    @precondition(lambda self: self.sessions)
    @rule(data=st.data())
    def document(self, data: st.DataObject) -> None:
        assert_document_matches(self.store, data.draw(st.sampled_from(self.sessions)))

    @invariant()
    def log_matches_the_model(self) -> None:
        stored = all_events(self.store)
        assert positions(stored) == list(range(1, len(self.events) + 1))
        assert set(ids(stored)) == set(self.events)

    @invariant()
    def sessions_match_the_model(self) -> None:
        assert [ref.session_key for ref in self.store.list_sessions()] == self.sessions
        for key in self.sessions:
            events = by_sort_key(e for e in self.events.values() if e.session_key == key)
            assert [s.event for s in self.store.get_events(key)] == events
            view = self.store.get_projection(key)
            assert isinstance(view, Projection)
            assert view.to_json() == rebuild(key, events).to_json()

    @invariant()
    def version_vector_matches_the_model(self) -> None:
        version = self.store.version
        for origin in ("peerA", "peerB"):
            contiguous = 0
            while (origin, contiguous + 1) in self.received:
                contiguous += 1
            assert version.get(origin, 0) == contiguous
            assert [(s.event, s.seq) for s in self.store.origin_after(origin, 0)] == [
                (self.remote[origin, seq], seq) for seq in range(1, contiguous + 1)]
        assert version.get(self.store.node_id, 0) == self.local

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.folder)


StoreMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=15,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_store_machine = StoreMachine.TestCase


def test_own_events_stranded_beyond_a_gap_are_numbered_again_on_open(
        tmp_path: Path, ev: MakeEvent) -> None:
    """A folder whose own numbering ran ahead of what it holds (an older version took
    numbers a peer claimed): on open, its events beyond the gap get the next numbers
    after what it holds, so that they are forwarded."""
    store = EventStore.open(tmp_path)
    store.append_batch([ev(ms=1, content="one"), ev(ms=2, content="two")])
    log = store.log
    meta = log.meta.copy()
    meta.local_seq = 5  # numbers 3-5 taken for a peer's claim, never filled
    with log.storage.transaction() as tx:
        tx.put(META, meta.to_record())
    log.meta = meta
    stranded = store.append_batch([ev(ms=3, content="six"), ev(ms=4, content="seven")])
    assert [a.stored.seq for a in stranded] == [6, 7]
    own = store.node_id
    assert store.version == {own: 2}
    store.close()
    with EventStore.open(tmp_path) as reopened:
        assert reopened.version == {own: 4}
        held = reopened.origin_after(own, 0)
        assert [s.event.id for s in held[2:]] == [a.stored.event.id for a in stranded]
        assert reopened.id_at(own, 6) is None and reopened.id_at(own, 7) is None
        assert reopened.append(ev(ms=5, content="next")).stored.seq == 5
        assert reopened.version == {own: 5}
