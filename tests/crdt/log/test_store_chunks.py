"""crdt.log.store and crdt.log.eventlog: sessions stored across chunks, and the log's format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crdt import codec
from crdt.automerge.documents import Documents
from crdt.errors import LogFormatError, StoreError
from crdt.log import records
from crdt.log.batch import CHUNK_BYTES_MAX, CHUNK_CARRY_ENTRIES_MAX, CHUNK_ENTRIES_MAX
from crdt.log.projection import rebuild
from crdt.log.records import LOG_FORMAT, META
from crdt.log.store import EventStore
from crdt.storage.disk import DiskStorage
from tests.crdt.log.support import (
    MakeEvent,
    all_events,
    assert_document_matches,
    by_sort_key,
    ids,
    positions,
)

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


@pytest.mark.parametrize("found", [True, 1.0])
def test_a_format_equal_to_one_but_not_an_int_is_refused(store_path: Path, ev: MakeEvent,
                                                         found: object) -> None:
    """No version writes True or 1.0: the record is damaged, though both equal 1."""
    with EventStore.open(store_path) as store:
        store.append(ev())
    storage = DiskStorage.open(store_path)
    meta = codec.decode(storage.get(META) or b"")
    with storage.transaction() as tx:
        tx.put(META, codec.encode({**meta, "format": found}))
    with pytest.raises(LogFormatError) as refused:
        EventStore(storage)
    assert type(refused.value.found) is type(found) and not refused.value.newer
    assert storage.get(META) == codec.encode({**meta, "format": found})
    storage.close()
