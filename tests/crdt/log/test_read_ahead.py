"""What a commit reads before it writes: the records it needs in few reads, and no index
chunk that cannot exist yet (``crdt.log.batch.Batch.read_ahead_of``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from crdt import device
from crdt.events import Draft, parse_event
from crdt.log.records import INDEX_CHUNK, SEP
from crdt.log.store import EventStore
from crdt.signing import Signer
from crdt.storage.disk import DiskStorage


class CountedTransaction:
    """A real transaction that notes every key it is asked to read."""

    def __init__(self, tx: object, read: list[str]) -> None:
        self._tx, self._read = tx, read

    def get(self, key: str) -> bytes | None:
        self._read.append(key)
        return self._tx.get(key)  # type: ignore[attr-defined, no-any-return]

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        self._read.extend(keys)
        return self._tx.get_many(keys)  # type: ignore[attr-defined, no-any-return]

    def __getattr__(self, name: str) -> object:
        return getattr(self._tx, name)


class CountedStorage(DiskStorage):
    """Disk storage whose transactions note the keys they read."""

    read: list[str]

    @contextmanager
    def transaction(self) -> Iterator[CountedTransaction]:  # type: ignore[override]
        with super().transaction() as tx:
            yield CountedTransaction(tx, self.read)


def counted(folder: Path) -> CountedStorage:
    opened = DiskStorage.open(folder)
    opened.__class__ = CountedStorage
    storage: CountedStorage = opened  # type: ignore[assignment]
    storage.read = []
    return storage


def drafts(count: int, sessions: int, start: int = 0) -> list[Draft]:
    return [parse_event({"agent_id": "main", "kind": {
        "type": "message_received", "content": f"message {n}"}},
        session_key=f"s{n % sessions}") for n in range(start, start + count)]


def test_a_batch_reads_no_position_chunk_past_the_head(tmp_path: Path) -> None:
    storage = counted(tmp_path)
    with EventStore(storage) as store:
        store.append_batch(drafts(10, 3))
        storage.read.clear()
        store.append_batch(drafts(3 * INDEX_CHUNK, 3, start=10))
        positions = [key for key in storage.read if key.startswith(f"p{SEP}")]
        assert positions == [f"p{SEP}0"]  # the one that holds the head, not the new ones
        assert store.head == 10 + 3 * INDEX_CHUNK
        assert [s.position for s in store.events_after(0, 1000)] == \
            list(range(1, store.head + 1))


def test_a_reopened_store_reads_each_session_and_index_chunk_once_per_batch(
        tmp_path: Path) -> None:
    with EventStore.open(tmp_path) as store:
        store.append_batch(drafts(200, 40))
    storage = counted(tmp_path)
    with EventStore(storage) as store:
        storage.read.clear()
        store.append_batch(drafts(300, 40, start=200))
        assert len(storage.read) == len(set(storage.read))
        # Headers and open chunks of the 40 sessions, read ahead: each session's new
        # entries follow its stored ones.
        for n in range(40):
            events = store.get_events(f"s{n}")
            assert len(events) == 500 // 40 + (n < 500 % 40)
            assert store.get_projection(f"s{n}").to_json()["message_count"] == len(events)


def test_a_peers_batch_lands_in_its_slots_read_ahead(tmp_path: Path) -> None:
    source = EventStore.open(tmp_path / "a", signer=Signer(device.generate(), "a"))
    source.append_batch(drafts(3 * INDEX_CHUNK, 25))
    page = source.origin_after(source.node_id, 0, 1000)
    with EventStore.open(tmp_path / "b") as store:
        # Out of order and across chunks: a gap first, then the events that close it.
        late = [(s.event, s.origin, s.seq, s.signature) for s in page[INDEX_CHUNK:]]
        store.ingest(late)
        assert store.version.get(source.node_id, 0) == 0
        store.ingest([(s.event, s.origin, s.seq, s.signature) for s in page[:INDEX_CHUNK]])
        assert store.version[source.node_id] == len(page)
        again = store.origin_after(source.node_id, 0, 1000)
        assert [(s.event.id, s.seq, s.signature) for s in again] == \
            [(s.event.id, s.seq, s.signature) for s in page]
    source.close()
