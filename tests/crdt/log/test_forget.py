"""Forgetting in the log (crdt.log.erase, EventStore.forget): covered events become
skeletons, late copies come in forgotten, and the bytes leave the data folder."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crdt import codec
from crdt.clock import Hlc
from crdt.errors import InvalidInput, NotFound
from crdt.events import Draft, Event, parse_event
from crdt.log import forget, retire
from crdt.log.projection import Header, rebuild
from crdt.log.records import META, Session, key
from crdt.log.store import EventStore
from crdt.storage.disk import DiskStorage
from tests.support.rawfiles import files_holding

MakeEvent = Callable[..., Event]
MARKER = "zebra-marker-7f3a"


def _said(ev: MakeEvent, n: int, session: str = "s1", secret: bool = False) -> Event:
    return ev(content=f"{MARKER} {n}" if secret else f"fine {n}", ms=1_000 + n,
              session=session)


def _now(content: str, session: str = "s1") -> Draft | Event:
    """A message the store stamps now: later than any forget of the tests."""
    return parse_event({"agent_id": "main", "kind": {"type": "message_received",
                                                     "content": content}},
                       session_key=session)


def _whole(session: str, ms: int) -> Event:
    return forget.forget(session, by="test").seal(Hlc(ms, 0))


def test_forgetting_a_session_keeps_the_skeletons_replication_needs(
        store: EventStore, ev: MakeEvent) -> None:
    events = [_said(ev, n, secret=True) for n in range(3)]
    events.append(ev("state_changed", 1_010, key="pin", value=MARKER))
    store.ingest([(event, "other", seq) for seq, event in enumerate(events, start=1)])
    before = {s.event.id: s for s in store.get_events("s1")}
    version, head = store.version, store.head
    record = store.forget("s1", by="test")
    assert record.created and store.head == head + 1
    assert {o: s for o, s in store.version.items() if o != store.node_id} == version
    projection = store.get_projection("s1").to_json()
    assert projection["messages"] == [] and projection["custom_state"] == {}
    assert projection["event_count"] == 0 and projection["last_activity"] is None
    for event in events:
        stored = store.get_event(event.id)
        old = before[event.id]
        assert (stored.position, stored.origin, stored.seq) == (old.position, "other",
                                                                 old.seq)
        assert stored.event.payload == {} and stored.event.forgotten_by == \
            record.stored.event.id
        assert stored.event.sort_key == event.sort_key and stored.event.kind == event.kind
        assert stored.event.to_json()["kind"] == {"type": event.kind}
    assert store.id_at("other", 2) == events[1].id  # cursors and slots unchanged
    assert [s.event.id for s in store.get_events_since("s1", 0)] == \
        [e.id for e in events] + [record.stored.event.id]


def test_forgetting_one_message_leaves_the_rest(store: EventStore, ev: MakeEvent) -> None:
    keep, drop = _said(ev, 1), _said(ev, 2, secret=True)
    early = ev("state_changed", 900, key="mood", value="calm")
    late = ev("state_changed", 1_002, key="mood", value=MARKER)
    store.append_batch([early, keep, drop, late])
    store.forget("s1", [drop.id.hex(), late.id.hex()])
    projection = store.get_projection("s1").to_json()
    assert [m["content"] for m in projection["messages"]] == ["fine 1"]
    assert projection["custom_state"] == {"mood": "calm"}  # falls back to the earlier one
    assert projection["message_count"] == 1 and projection["event_count"] == 2
    assert store.get_event(keep.id).event.payload["content"] == "fine 1"
    assert store.get_projection("s1").to_json() == rebuild("s1", [early, keep]).to_json()


def test_events_written_after_a_whole_forget_live_on(store: EventStore,
                                                     ev: MakeEvent) -> None:
    store.append(_said(ev, 1, secret=True))
    store.forget("s1")
    after = store.append(_now("new start"))  # later than the record
    assert after.stored.event.forgotten_by is None
    assert [m.content for m in store.get_projection("s1").messages] == ["new start"]


def test_an_event_arriving_after_its_forget_is_stored_forgotten(
        open_store: Callable[[str], EventStore], ev: MakeEvent) -> None:
    """A device offline during the forget brings the original back: it stays forgotten,
    in every order of arrival, and the projection is the same in each."""
    secret, fine = _said(ev, 1, secret=True), _said(ev, 2)
    one = forget.forget("s1", [secret.id.hex()]).seal(Hlc(5_000, 0))
    whole = _whole("s2", 9_000)
    other = _said(ev, 3, session="s2", secret=True)
    items = [secret, fine, one, whole, other]
    seen = set()
    for order in itertools.permutations(range(len(items))):
        store = open_store("b")
        for index in order:
            store.ingest([(items[index], "a", index + 1)])
        assert store.get_event(secret.id).event.forgotten_by == one.id
        assert store.get_event(other.id).event.forgotten_by == whole.id
        assert store.get_event(fine.id).event.forgotten_by is None
        seen.add(repr([store.get_projection(s).to_json() for s in ("s1", "s2")]))
    assert len(seen) == 1


def test_a_skeleton_is_stored_as_it_comes(store: EventStore, ev: MakeEvent) -> None:
    secret = _said(ev, 1, secret=True)
    record = _whole("s1", 5_000)
    [appended] = store.ingest([(secret.skeleton(record.id), "a", 1)])
    assert appended.created and appended.stored.event.forgotten_by == record.id
    assert store.get_projection("s1").to_json()["event_count"] == 0
    # The original arriving later (from a node that never heard of the forget) is a
    # duplicate of the skeleton: it does not come back.
    assert not store.ingest([(secret, "b", 1)])[0].created
    assert store.get_event(secret.id).event.payload == {}


def test_appending_to_a_kept_session_after_a_forget_sees_no_content(
        store: EventStore, ev: MakeEvent) -> None:
    """The writer keeps recently written sessions' open chunks between commits: the
    forget must change that copy too, or the next append writes the text back."""
    store.append(_said(ev, 1, secret=True))
    store.forget("s1")
    store.append(_now("later"))
    entries = [e for _, e in store.log.entries(store.log.session("s1"))]
    assert [e.message.content for e in entries if e.message] == ["later"]


def test_forget_refuses_what_it_cannot_find(store: EventStore, ev: MakeEvent) -> None:
    elsewhere = store.append(_said(ev, 1, session="s2")).stored.event
    store.append(_said(ev, 2))
    head = store.head
    with pytest.raises(NotFound):
        store.forget("nosuch")
    with pytest.raises(InvalidInput, match="not an event of the session"):
        store.forget("s1", [elsewhere.id.hex()])
    with pytest.raises(InvalidInput, match="not an event of the session"):
        store.forget("s1", ["ab" * 32])
    with pytest.raises(InvalidInput, match="64 hex digits"):
        store.forget("s1", ["xyz"])
    # An empty list (built by mistake) is not the whole session: that is events=None.
    with pytest.raises(InvalidInput, match="must list at least one event id") as empty:
        store.forget("s1", [])
    assert empty.value.field == "events"
    assert store.get_projection("s1").to_json()["messages"]
    assert store.head == head


def test_forgetting_forgotten_events_again_writes_nothing(store: EventStore,
                                                          ev: MakeEvent) -> None:
    """Their records replicate already: a second one would change nothing. A forget
    record is never covered, so listing one is a mistake, not a no-op."""
    one, two, three = (_said(ev, n) for n in (1, 2, 3))
    store.append_batch([one, two, three])
    first = store.forget("s1", [one.id.hex(), two.id.hex()])
    second = store.forget("s1", [two.id.hex()])
    head = store.head
    again = store.forget("s1", [one.id.hex(), two.id.hex().upper()])
    assert not again.created and store.head == head
    assert again.stored.event.id in (first.stored.event.id, second.stored.event.id)
    assert again.stored.position == max(first.stored.position, second.stored.position)
    # Writing nothing is no reason to take a bad reason.
    for reason, says in ((5, "must be a string"), ("x" * 257, "the limit is 256")):
        with pytest.raises(InvalidInput, match=says):
            store.forget("s1", [one.id.hex()], reason=reason)  # type: ignore[arg-type]
    assert store.head == head
    # Some new, some not: the record lists the new ones only.
    mixed = store.forget("s1", [one.id.hex(), three.id.hex()])
    assert mixed.created and mixed.stored.event.payload["events"] == [three.id.hex()]
    head = store.head
    with pytest.raises(InvalidInput, match="is a forget record, which no forget covers"):
        store.forget("s1", [mixed.stored.event.id.hex()])
    # A whole-session forget is written again: it covers what other devices hold too.
    assert store.forget("s1").created and store.forget("s1").created
    assert store.head == head + 2


def test_generation_names_the_latest_forget(store: EventStore, ev: MakeEvent) -> None:
    said = store.append(_said(ev, 1)).stored.event
    assert store.forget_generation("s1") is None
    first = store.forget("s1", [said.id.hex()]).stored.event
    assert store.forget_generation("s1") == first.id.hex()
    second = store.forget("s1").stored.event
    assert store.forget_generation("s1") == second.id.hex()
    assert forget.generation(s.event for s in store.get_events("s1")) == second.id.hex()


def test_forgotten_bytes_leave_every_file_of_the_folder(store_path: Path,
                                                        ev: MakeEvent) -> None:
    store = EventStore(DiskStorage.open(store_path))
    try:
        # Enough events that the session has closed chunks, and a message of its own.
        store.append_batch([_said(ev, n, secret=n % 7 == 0) for n in range(300)])
        store.append(_said(ev, 1, session="s2", secret=True))
        assert files_holding(store_path, MARKER)  # the search finds it while it is there
        store.forget("s1")
        store.forget("s2", [_said(ev, 1, session="s2", secret=True).id.hex()])
        assert files_holding(store_path, MARKER) == []
        assert len(store.get_events("s1")) == 301
    finally:
        store.close()
    assert files_holding(store_path, MARKER) == []


def test_a_client_or_an_import_bringing_a_forgotten_event_stores_it_forgotten(
        store: EventStore, ev: MakeEvent) -> None:
    secret = _said(ev, 1, secret=True)
    store.forget("s1", [store.append(secret).stored.event.id.hex()])
    other = _said(ev, 2, session="s3", secret=True)
    store.append(forget.forget("s3", [other.id.hex()]).seal(Hlc(9_000, 0)))
    # s3's event never was here: the import of a seed file brings it now.
    [imported] = store.append_batch([other])
    assert imported.created and imported.stored.event.forgotten_by is not None
    assert store.get_event(other.id).event.payload == {}
    assert store.get_projection("s3").to_json()["messages"] == []


def test_the_clusters_own_records_cannot_be_forgotten(store: EventStore,
                                                      ev: MakeEvent) -> None:
    store.ingest([(ev(ms=1), "0123456789abcdef", 1)])
    store.retire("0123456789abcdef")
    with pytest.raises(InvalidInput, match="cluster's own records"):
        store.forget(retire.ORIGINS_SESSION)
    # A record that claims to forget them (from a peer) forgets nothing.
    sneaky = Draft(retire.ORIGINS_SESSION, "x", forget.KIND, {"events": []},
                   Hlc(10**12, 0)).seal()
    assert forget.read(sneaky) is None
    store.append(sneaky)
    assert all(s.event.forgotten_by is None
               for s in store.get_events(retire.ORIGINS_SESSION))


def test_what_a_listener_deletes_after_a_forget_is_purged_too(store_path: Path,
                                                              ev: MakeEvent) -> None:
    """Derived state (an Automerge document) kept beside the log is dropped by a
    listener; the purge after the forget takes its bytes too."""
    store = EventStore(DiskStorage.open(store_path))
    heard: list[list[forget.Forget]] = []

    def drop_derived(records: list[forget.Forget]) -> None:
        heard.append(records)
        with store.log.storage.transaction() as tx:
            tx.delete("derived")

    try:
        store.append(_said(ev, 1))
        with store.log.storage.transaction() as tx:
            tx.put("derived", f"{MARKER} kept beside the log".encode())
        store.erased_listeners.append(drop_derived)
        record = store.forget("s1").stored.event
        assert [[r.id for r in records] for records in heard] == [[record.id]]
        assert files_holding(store_path, MARKER) == []
    finally:
        store.close()


@settings(max_examples=150)
@given(data=st.data())
def test_any_arrival_order_gives_the_projection_of_the_events_left(
        ev: MakeEvent, data: st.DataObject) -> None:
    """Events and forget records in any order and batching: each session's projection
    is the rebuild of its events that no forget covers (the pure rule)."""
    count = data.draw(st.integers(1, 12))
    events = [ev(*(("state_changed", 1_000 + n * 10) if n % 3 == 0
                   else ("message_received", 1_000 + n * 10)),
                 session=f"s{n % 2}", **({"key": f"k{n % 2}", "value": n} if n % 3 == 0
                                          else {"content": f"m{n}"}))
              for n in range(count)]
    records = []
    for ms, session, whole, picks in data.draw(st.lists(st.tuples(
            st.integers(900, 1_200), st.integers(0, 1), st.booleans(),
            st.lists(st.integers(0, count - 1), min_size=1, max_size=3)), max_size=3)):
        ids = None if whole else [events[i].id.hex() for i in picks]
        records.append(forget.forget(f"s{session}", ids).seal(Hlc(ms, 0)))
    items = data.draw(st.permutations(events + records))
    cuts = sorted(data.draw(st.sets(st.integers(1, len(items)), max_size=3)))
    store = EventStore.open("memory:")
    try:
        start = 0
        for end in [*cuts, len(items)]:
            if items[start:end]:
                store.ingest([(item, "a", 1 + start + i)
                              for i, item in enumerate(items[start:end])])
            start = end
        read = [r for r in map(forget.read, records) if r is not None]
        for session in ("s0", "s1"):
            left = [e for e in events + records if e.session_key == session
                    and forget.covering(read, e) is None]
            if left or any(r.session_key == session for r in read):
                assert store.get_projection(session).to_json() == \
                    rebuild(session, left).to_json()
                assert store.log.session(session).forgotten == (
                    any(r.session_key == session for r in read)
                    and all(e.kind == forget.KIND for e in left))
        # The count every commit keeps is that of the sessions that read as forgotten.
        assert store.stats()["sessions_forgotten"] == sum(
            store.log.session(key).forgotten for key in store.sessions_by_key())
    finally:
        store.close()


def test_a_session_is_forgotten_while_nothing_but_forget_records_is_left(
        store_path: Path, ev: MakeEvent) -> None:
    """``Session.forgotten``: an event of a kind this version does not know counts as
    left (nodes of every version agree); a late copy of a forgotten event does not; an
    event dated after the forget brings the session back; it survives a reopen."""
    with EventStore.open(str(store_path)) as store:
        newer = Draft("s2", "main", "mood_swung", {"level": 3}).seal(Hlc(1_002, 0))
        store.ingest([(_said(ev, 1, secret=True), "a", 1), (newer, "a", 2)])
        assert not store.log.session("s1").forgotten  # no forget yet
        store.ingest([(_whole("s1", 5_000), "a", 3), (_whole("s2", 900), "a", 4)])
        assert store.log.session("s1").forgotten
        s2 = store.log.session("s2")  # the unknown kind, dated after its forget, is left
        assert s2.header.event_count == 0 and not s2.forgotten
        store.ingest([(_said(ev, 2), "a", 5)])  # a late copy: stored forgotten
        assert store.log.session("s1").forgotten
    with EventStore.open(str(store_path)) as store:
        assert store.log.session("s1").forgotten
        # The count is stored: the unknown kind's session, whose header counts no event,
        # is still not forgotten once read back.
        assert not store.log.session("s2").forgotten
        store.append(_now("back again"))
        assert not store.log.session("s1").forgotten


def test_a_record_from_before_the_live_count_stands_in_the_known_events_left() -> None:
    """A session record with forgets but no ``live`` (written before it was counted, or
    rewritten by an older node) reads the events its header counts as those left."""
    header = Header("s1")
    record = codec.decode_trusted(Session(header, 1, forgets=True, live=2).to_record())
    assert record["live"] == 2
    del record["live"]
    assert Session.from_record(codec.encode_fast(record)).forgotten  # header counts none
    record.pop("forgets")
    assert not Session.from_record(codec.encode_fast(record)).forgotten


def _forgotten_counted(store: EventStore) -> tuple[int, int]:
    """The count the log keeps, and the count of the sessions that read as forgotten."""
    return store.stats()["sessions_forgotten"], sum(
        store.log.session(key).forgotten for key in store.sessions_by_key())


def test_the_forgotten_sessions_are_counted_as_commits_go(store_path: Path,
                                                          ev: MakeEvent) -> None:
    """``stats()["sessions_forgotten"]`` follows whole forgets, a forget of some events,
    a forget of what was already forgotten and an event that brings a session back, and
    is read back after a reopen."""
    with EventStore.open(str(store_path)) as store:
        store.append_batch([_said(ev, n, session=f"s{n}") for n in range(4)])
        assert _forgotten_counted(store) == (0, 0)
        store.forget("s0")
        store.forget("s1")
        said = store.get_events("s2")[0].event.id.hex()
        store.forget("s2", [said])  # its only event: nothing but the record is left
        assert _forgotten_counted(store) == (3, 3)
        store.forget("s0")  # again: no change
        assert _forgotten_counted(store) == (3, 3)
        store.append(_now("back", session="s1"))
        assert _forgotten_counted(store) == (2, 2)
    with EventStore.open(str(store_path)) as store:
        assert _forgotten_counted(store) == (2, 2)
        store.forget("s3")
        assert _forgotten_counted(store) == (3, 3)


def test_a_log_from_before_the_count_counts_its_forgotten_sessions_once_on_open(
        store_path: Path, ev: MakeEvent) -> None:
    """A meta record without the count (written before it was kept, or by an older node
    since) is counted on open, with the stand-in of a session record without ``live``;
    the count is stored, and kept from then on."""
    with EventStore.open(str(store_path)) as store:
        store.append_batch([_said(ev, n, session=f"s{n}") for n in range(3)])
        store.forget("s0")
        store.forget("s1")
        store.append(_now("back", session="s1"))
    storage = DiskStorage.open(store_path)
    with storage.transaction() as tx:
        meta = codec.decode_trusted(tx.get(META))
        del meta["forgotten"]
        tx.put(META, codec.encode_fast(meta))
        raw = codec.decode_trusted(tx.get(key("h", "s0")))
        del raw["live"]  # stands in: its header counts no known event left
        tx.put(key("h", "s0"), codec.encode_fast(raw))
    storage.close()
    with EventStore.open(str(store_path)) as store:
        assert _forgotten_counted(store) == (1, 1)
        assert "forgotten" in codec.decode_trusted(store.log.storage.get(META))
        store.forget("s2")
        assert _forgotten_counted(store) == (2, 2)


def test_a_listener_that_keeps_failing_is_told_again_after_waits_that_double(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One that cannot succeed costs the next commit, then one commit per wait (1 s,
    2 s, 4 s, ...), not every commit; a new forget tells it at once; taken off the
    list, it is told nothing more."""
    clock = [100.0]
    monkeypatch.setattr("crdt.log.store.time", SimpleNamespace(monotonic=lambda: clock[0]))
    store = EventStore.open(str(tmp_path))
    told: list[float] = []

    def damaged(records: list[forget.Forget]) -> None:
        told.append(clock[0])
        raise ValueError("a record it cannot read")

    def message(session: str) -> None:
        store.append(parse_event({"agent_id": "main", "kind": {
            "type": "message_received", "content": "x"}}, session_key=session))

    try:
        store.erased_listeners.append(damaged)
        message("s1")
        store.forget("s1", by="t")  # told: fails
        message("s2")  # told again at the next commit: fails, waits 1 s
        for _ in range(5):
            message("s2")
        assert told == [100.0, 100.0]
        clock[0] = 101.0
        message("s2")  # waits 2 s
        clock[0] = 102.0
        message("s2")
        assert told == [100.0, 100.0, 101.0]
        clock[0] = 103.0
        message("s2")  # waits 4 s
        store.forget("s2", by="t")  # new records: told at once
        assert told == [100.0, 100.0, 101.0, 103.0, 103.0]
        store.erased_listeners.remove(damaged)
        clock[0] = 1000.0
        message("s3")
        assert len(told) == store.after_commit_failures == 5
    finally:
        store.close()
