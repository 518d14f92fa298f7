"""The event log on diskcache: events, their indexes and projections, one commit per batch.

diskcache is a cache by default. Configured as below it is a log: nothing is evicted or
culled, every commit is fsynced (``sqlite_synchronous=2``, FULL, with the WAL journal),
and every value stays inside SQLite (values at or above ``disk_min_file_size`` would be
separate files whose bodies a power cut can lose). diskcache persists settings in the
folder, so they are passed again on every open.

Records (text keys; the unit separator ``\x1f`` cannot occur in a session key):

    m                    meta: node id, next position, local sequence, clock, version vector
    e␟<id hex>           [canonical event bytes, origin, seq, position]  -- the log itself
    p␟<n>                ids of positions n*128 .. n*128+127             -- local order
    o␟<origin>␟<n>       positions of that origin's seqs n*128 .. +127   -- per-origin order
    h␟<session>          projection header + session bookkeeping
    c␟<session>␟<n>      chunk n of the session's entries, in arrival (position) order
    l␟<index>            session key, in creation order                  -- paged session list
    k␟<peer key>         a peer link's last known version vector         -- sync checkpoint

An event costs one ``add`` (which is also the duplicate check); the indexes are chunked
so that a batch rewrites each chunk it touches once. A session's entries are
``[position, ms, counter, id, message or None]``; its chunks close at
``CHUNK_ENTRIES_MAX`` entries or ``CHUNK_BYTES_MAX`` bytes, so an append rewrites one
small chunk and reading a projection reads a few chunks instead of every event.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import diskcache

from crdt import codec
from crdt.clock import HLC_ZERO, Clock, Hlc
from crdt.errors import NotFound, StoreError
from crdt.events import Event
from crdt.log.projection import Header, Message

SEP = "\x1f"
LOG_FORMAT = 1
#: A chunk closes at this many entries...
CHUNK_ENTRIES_MAX = 64
#: ...or once it holds this many bytes. Small chunks keep append cost flat; large ones
#: make reading a long session's projection touch fewer records.
CHUNK_BYTES_MAX = 16 * 1024
#: Positions (and per-origin sequence numbers) per index chunk.
INDEX_CHUNK = 128

#: diskcache configured as a durable log (see the module docstring).
SETTINGS: dict[str, Any] = {
    "eviction_policy": "none",
    "cull_limit": 0,
    "size_limit": 2**62,
    "sqlite_synchronous": 2,
    "sqlite_journal_mode": "wal",
    "disk_min_file_size": 2**40,
    "statistics": 0,
    "tag_index": 0,
}
#: Seconds a second process waits for the SQLite lock before giving up.
LOCK_TIMEOUT_S = 60.0


class StoredEvent(NamedTuple):
    """An event with where this node keeps it and where it first came from."""

    event: Event
    position: int
    origin: str
    seq: int

    def to_json(self) -> dict[str, Any]:
        return {**self.event.to_json(), "position": self.position, "origin": self.origin,
                "seq": self.seq}


class Appended(NamedTuple):
    stored: StoredEvent
    created: bool  # False when the event was already in the log


class Entry(NamedTuple):
    """One event in a session's chunk list."""

    position: int
    sort_key: tuple[int, int, bytes]
    message: Message | None


def key(*parts: object) -> str:
    return SEP.join(map(str, parts))


def open_cache(path: str | os.PathLike[str]) -> diskcache.Cache:
    """Open diskcache at ``path`` with the log settings (set on every open: they persist)."""
    return diskcache.Cache(os.fspath(path), timeout=LOCK_TIMEOUT_S, **SETTINGS)


@dataclass
class Meta:
    node_id: str
    next_position: int = 1
    local_seq: int = 0
    clock: Hlc = HLC_ZERO
    sessions: int = 0
    version: dict[str, int] = field(default_factory=dict)  # origin -> contiguous seq

    def to_cbor(self) -> dict[str, Any]:
        return {"format": LOG_FORMAT, "node_id": self.node_id, "next": self.next_position,
                "seq": self.local_seq, "clock": list(self.clock), "sessions": self.sessions,
                "version": self.version}

    def copy(self) -> Meta:
        """A copy to change during a commit, kept only if the commit succeeds."""
        return replace(self, version=dict(self.version))

    @classmethod
    def from_cbor(cls, raw: dict[str, Any]) -> Meta:
        if raw.get("format") != LOG_FORMAT:
            raise StoreError(f"log format {raw.get('format')} is not {LOG_FORMAT}")
        return cls(raw["node_id"], raw["next"], raw["seq"], Hlc(*raw["clock"]),
                   raw["sessions"], dict(raw["version"]))


@dataclass
class Session:
    """A session's header and the bookkeeping of its chunk list."""

    header: Header
    index: int  # place in the session list
    chunks: int = 1  # chunk count; the last one is open
    tail_bytes: int = 0  # estimated size of the open chunk (fixed part + message text)

    def to_cbor(self) -> dict[str, Any]:
        return {"header": self.header.to_cbor(), "index": self.index, "chunks": self.chunks,
                "tail_bytes": self.tail_bytes}

    @classmethod
    def from_cbor(cls, raw: dict[str, Any]) -> Session:
        return cls(Header.from_cbor(raw["header"]), raw["index"], raw["chunks"],
                   raw["tail_bytes"])


def entry_in(raw: list[Any]) -> Entry:
    position, ms, counter, event_id, message = raw
    sort_key = (ms, counter, event_id)
    return Entry(position, sort_key, Message.from_cbor(sort_key, message) if message else None)


class Batch:
    """The state one commit reads and writes; flushed to the cache at the end."""

    def __init__(self, cache: diskcache.Cache, meta: Meta) -> None:
        self.cache = cache
        self.meta = meta
        self.sessions: dict[str, Session] = {}
        self.tails: dict[str, list[list[Any]]] = {}
        self.indexes: dict[str, list[Any]] = {}  # chunked index records, by cache key

    def index(self, record_key: str) -> list[Any]:
        """A chunk of the position or origin index, read once per batch."""
        found = self.indexes.get(record_key)
        if found is None:
            raw = self.cache.get(record_key)
            found = self.indexes[record_key] = codec.decode_trusted(raw) if raw else []
        return found

    def put_index(self, record_key: str, offset: int, value: Any) -> None:
        chunk = self.index(record_key)
        chunk.extend([None] * (offset + 1 - len(chunk)))
        chunk[offset] = value

    def session(self, session_key: str) -> Session:
        found = self.sessions.get(session_key)
        if found is None:
            raw = self.cache.get(key("h", session_key))
            if raw is None:
                self.meta.sessions += 1
                found = Session(Header(session_key), self.meta.sessions)
                self.cache.set(key("l", found.index), session_key)
                self.tails[session_key] = []
            else:
                found = Session.from_cbor(codec.decode_trusted(raw))
            self.sessions[session_key] = found
        return found

    def add_entry(self, session: Session, position: int, sort_key: tuple[int, int, bytes],
                  message: Message | None) -> None:
        session_key = session.header.session_key
        tail = self.tails.get(session_key)
        if tail is None:
            raw = self.cache.get(key("c", session_key, session.chunks - 1))
            tail = self.tails[session_key] = codec.decode_trusted(raw) if raw else []
        if len(tail) >= CHUNK_ENTRIES_MAX or session.tail_bytes >= CHUNK_BYTES_MAX:
            self.cache.set(key("c", session_key, session.chunks - 1), codec.encode_fast(tail))
            session.chunks += 1
            session.tail_bytes = 0
            tail = self.tails[session_key] = []
        ms, counter, event_id = sort_key
        if message is None:
            tail.append([position, ms, counter, event_id, None])
            session.tail_bytes += 64
        else:
            tail.append([position, ms, counter, event_id, message.to_cbor()])
            # An estimate keeps chunks small enough: fixed fields plus the message text.
            session.tail_bytes += 64 + len(message.content)

    def flush(self) -> None:
        for session_key, session in self.sessions.items():
            self.cache.set(key("h", session_key), codec.encode_fast(session.to_cbor()))
            tail = self.tails.get(session_key)
            if tail is not None:
                self.cache.set(key("c", session_key, session.chunks - 1), codec.encode_fast(tail))
        for record_key, chunk in self.indexes.items():
            self.cache.set(record_key, codec.encode_fast(chunk))
        self.cache.set("m", codec.encode_fast(self.meta.to_cbor()))


class EventLog:
    """Append and read events in one diskcache folder. One thread writes; any reads."""

    def __init__(self, cache: diskcache.Cache, meta: Meta) -> None:
        self.cache = cache
        self.meta = meta

    @classmethod
    def open(cls, path: str | os.PathLike[str], new_node_id: str) -> EventLog:
        """Open or create a log; ``new_node_id`` names the node if the log is new."""
        cache = open_cache(path)
        raw = cache.get("m")
        if raw is None:
            meta = Meta(new_node_id)
            with cache.transact():
                cache.set("m", codec.encode_fast(meta.to_cbor()))
        else:
            meta = Meta.from_cbor(codec.decode(raw))
        return cls(cache, meta)

    @property
    def head(self) -> int:
        """Position of the newest stored event (0 for an empty log)."""
        return self.meta.next_position - 1

    def append(self, events: Sequence[tuple[Event, str | None, int | None]],
               clock: Clock) -> list[Appended]:
        """Store ``(event, origin, seq)`` items in one transaction; ``origin=None`` means
        this node originates the event and numbers it. Returns once durable."""
        meta = self.meta.copy()
        results = []
        with self.cache.transact():
            batch = Batch(self.cache, meta)
            for event, origin, seq in events:
                results.append(self._append_one(batch, event, origin, seq))
            meta.clock = clock.last
            batch.flush()
        self.meta = meta
        return results

    def _append_one(self, batch: Batch, event: Event, origin: str | None,
                    seq: int | None) -> Appended:
        meta = batch.meta
        local = origin is None or seq is None
        if local:
            origin, seq = meta.node_id, meta.local_seq + 1
        assert origin is not None and seq is not None
        position = meta.next_position
        record = codec.encode_fast([event.canonical, origin, seq, position])
        # ``add`` writes only if the id is new: the store and the duplicate check in one.
        if not batch.cache.add(f"e{SEP}{event.id.hex()}", record):
            existing = self.stored(event.id)
            if not local:  # the peer's (origin, seq) is held now, whoever sent it first
                self._note_origin(batch, origin, seq, existing.position)
            return Appended(existing, False)
        if origin == meta.node_id:
            # Our own events can come back from a peer (a restored backup, a copied data
            # folder): numbering must continue after them, never reuse their seqs.
            meta.local_seq = max(meta.local_seq, seq)
        meta.next_position += 1
        batch.put_index(f"p{SEP}{position // INDEX_CHUNK}", position % INDEX_CHUNK, event.id)
        if local and meta.version.get(origin, 0) == seq - 1:
            # Our next seq right after what we hold: nothing can lie beyond it yet. (After
            # ``reserve_seq`` a gap of lost events lies below it: the general path.)
            batch.put_index(f"o{SEP}{origin}{SEP}{seq // INDEX_CHUNK}", seq % INDEX_CHUNK,
                            position)
            meta.version[origin] = seq
        else:
            self._note_origin(batch, origin, seq, position)
        session = batch.session(event.session_key)
        batch.add_entry(session, position, event.sort_key, session.header.apply(event))
        return Appended(StoredEvent(event, position, origin, seq), True)

    @staticmethod
    def _note_origin(batch: Batch, origin: str, seq: int, position: int) -> None:
        """Index (origin, seq) and advance the origin's contiguous sequence number. A slot
        that holds another event keeps it: the first one in stays findable."""
        record_key = f"o{SEP}{origin}{SEP}{seq // INDEX_CHUNK}"
        chunk = batch.index(record_key)
        offset = seq % INDEX_CHUNK
        if offset < len(chunk) and chunk[offset] is not None:
            return
        batch.put_index(record_key, offset, position)
        version = batch.meta.version
        have = version.get(origin, 0)
        if seq != have + 1:
            return  # already counted, or a gap before it remains
        while True:  # this seq may close a gap: count the ones that arrived early
            have += 1
            chunk = batch.index(f"o{SEP}{origin}{SEP}{(have + 1) // INDEX_CHUNK}")
            offset = (have + 1) % INDEX_CHUNK
            if offset >= len(chunk) or chunk[offset] is None:
                break
        version[origin] = have

    def renumber(self, event_ids: Sequence[bytes]) -> None:
        """Give events already stored here a new number of this node's own, so that they
        travel again (under our origin) to peers whose slot for them holds another one."""
        meta = self.meta.copy()
        with self.cache.transact():
            batch = Batch(self.cache, meta)
            for event_id in event_ids:
                position = self.stored(event_id).position
                meta.local_seq += 1
                self._note_origin(batch, meta.node_id, meta.local_seq, position)
            batch.flush()
        self.meta = meta

    def reserve_seq(self, seq: int) -> None:
        """Never number a local event ``seq`` or below (they exist elsewhere)."""
        if seq <= self.meta.local_seq:
            return
        meta = self.meta.copy()
        meta.local_seq = seq
        with self.cache.transact():
            self.cache.set("m", codec.encode_fast(meta.to_cbor()))
        self.meta = meta

    # -- reads: safe from any thread (diskcache opens one connection per thread) -------

    def stored(self, event_id: bytes) -> StoredEvent:
        """The stored event with this id; ``NotFound`` if there is none."""
        raw = self.cache.get(key("e", event_id.hex()))
        if raw is None:
            raise NotFound(f"no event {event_id.hex()} on this node")
        canonical, origin, seq, position = codec.decode_trusted(raw)
        return StoredEvent(Event.from_trusted(canonical, event_id), position, origin, seq)

    def holds(self, event_id: bytes) -> bool:
        return f"e{SEP}{event_id.hex()}" in self.cache

    def id_at(self, origin: str, seq: int) -> bytes | None:
        raw = self.cache.get(key("o", origin, seq // INDEX_CHUNK))
        chunk = codec.decode_trusted(raw) if raw else []
        offset = seq % INDEX_CHUNK
        if offset >= len(chunk) or chunk[offset] is None:
            return None
        return self.ids_between(chunk[offset], chunk[offset])[0]

    def ids_between(self, first: int, last: int) -> list[bytes]:
        """Ids of positions ``first`` to ``last`` inclusive (all must exist)."""
        ids: list[bytes] = []
        for number in range(first // INDEX_CHUNK, last // INDEX_CHUNK + 1):
            raw = self.cache.get(key("p", number))
            if raw is None:
                raise StoreError(f"position index chunk {number} is missing")
            chunk = codec.decode_trusted(raw)
            low = max(first - number * INDEX_CHUNK, 0)
            high = min(last - number * INDEX_CHUNK, INDEX_CHUNK - 1)
            ids.extend(chunk[low:high + 1])
        return ids

    def after(self, position: int, limit: int) -> list[StoredEvent]:
        """Events of the whole node with a position above ``position``, in order."""
        first, last = max(position, 0) + 1, min(self.head, max(position, 0) + limit)
        if first > last:
            return []
        return [self.stored(event_id) for event_id in self.ids_between(first, last)]

    def origin_after(self, origin: str, seq: int, limit: int) -> list[StoredEvent]:
        """Events of ``origin`` with a sequence number above ``seq``, in sequence order,
        stopping at the first gap (the rest is not held yet)."""
        found: list[StoredEvent] = []
        seq += 1
        while len(found) < limit:
            event_id = self.id_at(origin, seq)
            if event_id is None:
                break
            found.append(self.stored(event_id)._replace(origin=origin, seq=seq))
            seq += 1
        return found

    def session(self, session_key: str) -> Session:
        raw = self.cache.get(key("h", session_key))
        if raw is None:
            raise NotFound(f"no session {session_key!r} on this node")
        return Session.from_cbor(codec.decode_trusted(raw))

    def chunk(self, session_key: str, number: int) -> list[Entry]:
        raw = self.cache.get(key("c", session_key, number))
        return [entry_in(item) for item in codec.decode_trusted(raw)] if raw else []

    def entries(self, session: Session, start_chunk: int = 0) -> Iterator[tuple[int, Entry]]:
        """``(chunk number, entry)`` for a session's entries in arrival order."""
        for number in range(start_chunk, session.chunks):
            for entry in self.chunk(session.header.session_key, number):
                yield number, entry

    def session_after(self, session_key: str, position: int, limit: int) -> list[StoredEvent]:
        """A session's events with a position above ``position``, in position order."""
        session = self.session(session_key)
        low, high = 0, session.chunks - 1
        while low < high:  # first chunk whose last entry lies beyond ``position``
            middle = (low + high) // 2
            chunk = self.chunk(session_key, middle)
            if chunk and chunk[-1].position > position:
                high = middle
            else:
                low = middle + 1
        found: list[StoredEvent] = []
        for _, entry in self.entries(session, low):
            if entry.position > position:
                found.append(self.stored(entry.sort_key[2]))
                if len(found) >= limit:
                    break
        return found

    def session_keys(self, after: int, limit: int) -> list[tuple[int, str]]:
        last = min(self.meta.sessions, max(after, 0) + limit)
        return [(i, self.cache.get(key("l", i))) for i in range(max(after, 0) + 1, last + 1)]

    def close(self) -> None:
        self.cache.close()
