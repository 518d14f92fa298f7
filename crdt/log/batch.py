"""One commit of the event log (``crdt.log.eventlog``): ``Batch`` reads each record it
needs once, changes it in memory and writes all of it in one ``put_many`` at the end;
``OpenSessions`` keeps the most recently written sessions between commits.

A session's entries are stored in chunks. A chunk closes at ``CHUNK_ENTRIES_MAX``
entries or ``CHUNK_BYTES_MAX`` bytes (and one at least half full closes when a later
commit appends to it), so an append rewrites at most half a small chunk and reading a
projection reads a few chunks instead of every event.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

from crdt import codec
from crdt.clock import Clock
from crdt.log import bound, erase, forget
from crdt.log.projection import Header, MessageFields, message_record
from crdt.log.records import (
    INDEX_CHUNK,
    META,
    Meta,
    Session,
    entry_record,
    event_key,
    key,
    origin_chunk_key,
    position_chunk_key,
)
from crdt.storage.base import Transaction

#: A chunk closes at this many entries...
CHUNK_ENTRIES_MAX = 64
#: ...or once it holds this many bytes. Small chunks keep append cost flat; large ones
#: make reading a long session's projection touch fewer records.
CHUNK_BYTES_MAX = 16 * 1024
#: A commit that appends to a session whose open chunk already holds at least half of
#: either bound starts a new chunk instead, leaving that one as stored: a commit
#: rewrites at most half a chunk of entries it did not add (every rewritten byte is
#: written twice, to the WAL and to the database, and its old page zeroed).
CHUNK_CARRY_ENTRIES_MAX = CHUNK_ENTRIES_MAX // 2
CHUNK_CARRY_BYTES_MAX = CHUNK_BYTES_MAX // 2
#: Sessions whose header and open chunk the writer keeps between commits, the most
#: recently written ones, so that appending to a busy session neither reads nor decodes
#: them again nor encodes again the entries its open chunk already held. An open chunk
#: holds at most ``CHUNK_BYTES_MAX`` plus one event: a few MiB at most in all.
SESSIONS_KEPT_MAX = 64


def put_at(chunk: list[Any], offset: int, value: Any) -> None:
    """Set slot ``offset`` of an index chunk, the slots before it filled with None."""
    if offset == len(chunk):  # the common case: a batch fills slots in turn
        chunk.append(value)
    else:
        chunk.extend([None] * (offset + 1 - len(chunk)))
        chunk[offset] = value


class OpenSessions:
    """The writer's copy of recently written sessions: each one's ``Session`` and the
    entries of its open chunk, each encoded on its own (a chunk is their CBOR array).

    It holds only what committed: a batch changes these objects in place, and a failed
    commit forgets them all (``clear``), so that the next batch reads storage again."""

    def __init__(self) -> None:
        self._kept: OrderedDict[str, tuple[Session, list[bytes]]] = OrderedDict()

    def get(self, session_key: str) -> tuple[Session, list[bytes]] | None:
        found = self._kept.get(session_key)
        if found is not None:
            self._kept.move_to_end(session_key)
        return found

    def __contains__(self, session_key: str) -> bool:
        return session_key in self._kept

    def keep(self, session_key: str, session: Session, tail: list[bytes]) -> None:
        self._kept[session_key] = (session, tail)
        self._kept.move_to_end(session_key)
        while len(self._kept) > SESSIONS_KEPT_MAX:
            self._kept.popitem(last=False)

    def clear(self) -> None:
        self._kept.clear()


class Batch:
    """The state one commit reads and writes; written to the transaction at the end."""

    def __init__(self, tx: Transaction, meta: Meta,
                 kept: OpenSessions | None = None) -> None:
        self.tx = tx
        self.meta = meta
        self.kept = kept if kept is not None else OpenSessions()
        self.sessions: dict[str, Session] = {}
        self.tails: dict[str, list[bytes]] = {}  # open chunks, entries encoded one by one
        #: Sessions this batch added an entry to (the first one may start a new chunk).
        self.appended: set[str] = set()
        self.indexes: dict[str, list[Any]] = {}  # chunked index records, by record key
        #: The index chunk each ``put_slot`` caller filled last, and its number.
        self.last_chunks: dict[str, tuple[int, list[Any]]] = {}
        #: Event records by id: as stored before the batch (None: absent), or added by it.
        self.events: dict[bytes, bytes | None] = {}
        self.writes: list[tuple[str, bytes]] = []  # written at ``flush``, in this order
        #: What each session's forget records cover, read once per batch (``erase``).
        self.coverage: dict[str, erase.Coverage] = {}
        #: Forget records stored by this batch: erased with at its end.
        self.forgets: list[forget.Forget] = []
        #: Origins this batch bound (``crdt.log.bound``); the clock of local events.
        self.bindings: dict[str, bound.Binding] = {}
        self.clock: Clock | None = None
        #: Position chunks above this number hold no stored position: positions are
        #: given out gap-free from 1, each written with the meta record that counts it,
        #: so a chunk past the head at the batch's start cannot exist yet.
        self.position_chunks_stored = (meta.next_position - 1) // INDEX_CHUNK
        #: Session headers and open chunks read ahead (``read_sessions``): raw or None.
        self.read_ahead: dict[str, bytes | None] = {}
        #: Whether each session of ``sessions`` read as forgotten when the batch took it
        #: (or last flushed it): ``flush`` counts the changes in ``meta``.
        self.was_forgotten: dict[str, bool] = {}

    def read_events(self, event_ids: Sequence[bytes]) -> None:
        """Read the stored records of these events in one go (the duplicate check)."""
        wanted = [event_id for event_id in dict.fromkeys(event_ids)
                  if event_id not in self.events]
        raws = self.tx.get_many([event_key(event_id) for event_id in wanted])
        self.events.update(zip(wanted, raws, strict=True))

    def event(self, event_id: bytes) -> bytes | None:
        """The record of this event, stored or added by this batch; None if absent."""
        if event_id not in self.events:
            self.read_events([event_id])
        return self.events[event_id]

    def add_event(self, event_id: bytes, record: bytes) -> None:
        self.events[event_id] = record
        self.writes.append((event_key(event_id), record))

    def index(self, record_key: str) -> list[Any]:
        """A chunk of the position or origin index, read once per batch."""
        found = self.indexes.get(record_key)
        if found is None:
            raw = self._get(record_key)
            found = self.indexes[record_key] = codec.decode_trusted(raw) if raw else []
        return found

    def read_ahead_of(self, items: Sequence[tuple[Any, ...]]) -> None:
        """Read in one go what appending ``items`` (``EventLog.append``'s) reads
        record by record otherwise: the sessions (``read_sessions``) and the index
        chunks their slots fall in. Only position chunks that may exist are read: a
        batch of 500 fills four new ones."""
        self.read_sessions({item[0].session_key for item in items})
        meta = self.meta
        wanted: list[str] = []
        if meta.next_position // INDEX_CHUNK <= self.position_chunks_stored:
            wanted.append(position_chunk_key(meta.next_position))
        local = [item[2] for item in items].count(None)  # an origin comes with a seq
        # One more own seq than local items: a bound origin's first event comes after
        # its ``device_key`` record.
        first_chunk = (meta.local_seq + 1) // INDEX_CHUNK
        wanted += [origin_chunk_key(meta.node_id, number * INDEX_CHUNK) for number
                   in range(first_chunk, (meta.local_seq + local + 1) // INDEX_CHUNK + 1)
                   ] if local else []
        chunks: set[tuple[str, int]] = set()
        for item in items if local < len(items) else ():  # a peer's items
            origin, seq = item[1], item[2]
            if origin is not None and seq is not None:
                # The slot, and the next one: storing it may close a gap up to there.
                chunks.add((origin, seq // INDEX_CHUNK))
                chunks.add((origin, (seq + 1) // INDEX_CHUNK))
        wanted += [origin_chunk_key(origin, number * INDEX_CHUNK)
                   for origin, number in sorted(chunks)]
        wanted = [k for k in dict.fromkeys(wanted)
                  if k not in self.indexes and k not in self.read_ahead]
        self.read_ahead.update(zip(wanted, self.tx.get_many(wanted), strict=True))

    def read_sessions(self, session_keys: Iterable[str]) -> None:
        """Read the headers of these sessions, then the open chunks of those stored, in
        one go each, those the writer does not keep (``OpenSessions``)."""
        wanted = [k for k in dict.fromkeys(session_keys)
                  if k not in self.sessions and k not in self.kept]
        headers = [key("h", session_key) for session_key in wanted]
        self.read_ahead.update(zip(headers, self.tx.get_many(headers), strict=True))
        tails = [key("c", session_key, Session.from_record(raw).chunks - 1)
                 for header, session_key in zip(headers, wanted, strict=True)
                 if (raw := self.read_ahead[header]) is not None]
        self.read_ahead.update(zip(tails, self.tx.get_many(tails), strict=True))

    def _get(self, record_key: str) -> bytes | None:
        """A record read ahead, once; else read now."""
        if record_key in self.read_ahead:
            return self.read_ahead.pop(record_key)
        return self.tx.get(record_key)

    def put_index(self, record_key: str, offset: int, value: Any) -> None:
        put_at(self.index(record_key), offset, value)

    def put_slot(self, origin: str | None, number: int, value: Any) -> None:
        """``put_index`` for ``number`` of ``origin``'s index, or (None) for position
        ``number`` (``slot_chunk``, inlined: every event fills two slots)."""
        chunk_number, offset = divmod(number, INDEX_CHUNK)
        last = self.last_chunks.get("" if origin is None else origin)
        chunk = last[1] if last is not None and last[0] == chunk_number \
            else self.slot_chunk(origin, number)
        if offset == len(chunk):  # the common case: a batch fills slots in turn
            chunk.append(value)
        else:
            put_at(chunk, offset, value)

    def slot_chunk(self, origin: str | None, number: int) -> list[Any]:
        """The index chunk that holds ``number`` of ``origin``'s index, or (None) of
        the position index: a batch fills the slots of each in turn, so the chunk it
        used last is kept at hand rather than looked up by its key each time."""
        chunk_number = number // INDEX_CHUNK
        name = "" if origin is None else origin  # an origin is never empty
        last = self.last_chunks.get(name)
        if last is None or last[0] != chunk_number:
            if origin is None:
                record_key = position_chunk_key(number)
                if chunk_number > self.position_chunks_stored:
                    self.indexes.setdefault(record_key, [])  # new: nothing to read
            else:
                record_key = origin_chunk_key(origin, number)
            last = self.last_chunks[name] = (chunk_number, self.index(record_key))
        return last[1]

    def session(self, session_key: str) -> Session:
        found = self.sessions.get(session_key)
        if found is None:
            kept = self.kept.get(session_key)
            if kept is not None:
                found, self.tails[session_key] = kept
                self.sessions[session_key] = found
                self.was_forgotten[session_key] = found.forgotten
                return found
            raw = self._get(key("h", session_key))
            if raw is None:
                self.meta.sessions += 1
                found = Session(Header(session_key), self.meta.sessions)
                self.writes.append((key("l", found.index), session_key.encode()))
                self.tails[session_key] = []
            else:
                found = Session.from_record(raw)
            self.sessions[session_key] = found
            self.was_forgotten[session_key] = found.forgotten
        return found

    def add_entry(self, session: Session, position: int, sort_key: tuple[int, int, bytes],
                  message: MessageFields | None) -> None:
        session_key = session.header.session_key
        tail = self.tails.get(session_key)
        if tail is None:
            raw = self._get(key("c", session_key, session.chunks - 1))
            tail = self.tails[session_key] = [
                codec.encode_fast(item) for item in (codec.decode_trusted(raw) if raw else [])]
        if session_key not in self.appended:
            self.appended.add(session_key)
            if tail and (len(tail) >= CHUNK_CARRY_ENTRIES_MAX
                         or session.tail_bytes >= CHUNK_CARRY_BYTES_MAX):
                # Its entries are all stored already: it closes as it is, unwritten.
                session.chunks += 1
                session.tail_bytes = 0
                tail = self.tails[session_key] = []
        if len(tail) >= CHUNK_ENTRIES_MAX or session.tail_bytes >= CHUNK_BYTES_MAX:
            self.writes.append((key("c", session_key, session.chunks - 1),
                                codec.array_of(tail)))
            session.chunks += 1
            session.tail_bytes = 0
            tail = self.tails[session_key] = []
        session.entries += 1
        tail.append(entry_record(position, sort_key,
                                 None if message is None else message_record(*message)))
        # An estimate keeps chunks small enough: fixed fields plus the message text.
        session.tail_bytes += 64 if message is None else 64 + len(message[1])

    def flush(self) -> None:
        """Write everything the batch changed, in one ``put_many``."""
        writes = self.writes
        was, meta = self.was_forgotten, self.meta
        for session_key, session in self.sessions.items():
            if session.forgotten != was[session_key]:  # forgotten whole, or written again
                was[session_key] = session.forgotten
                if meta.forgotten_sessions is not None:  # else the count on open sees it
                    meta.forgotten_sessions += 1 if session.forgotten else -1
            writes.append((key("h", session_key), session.to_record()))
            tail = self.tails.get(session_key)
            if tail is not None:
                writes.append((key("c", session_key, session.chunks - 1),
                               codec.array_of(tail)))
        for record_key, chunk in self.indexes.items():
            writes.append((record_key, codec.encode_fast(chunk)))
        writes.append((META, self.meta.to_record()))
        self.tx.put_many(writes)
        self.writes = []

    def keep_sessions(self) -> None:
        """After the commit: keep this batch's sessions for the next one."""
        for session_key, session in self.sessions.items():
            self.kept.keep(session_key, session, self.tails[session_key])
