"""``EventLog``: append events with their indexes and projections, one transaction per
batch, and read them back. The records are laid out in ``crdt.log.records``; they live
in any ``crdt.storage`` backend.

A batch (``crdt.log.batch``) reads the records of its events in one ``get_many`` (the
duplicate check) and writes everything it changed in one ``put_many``; the indexes are
chunked so that a batch rewrites each chunk it touches once, and reading a projection
reads a few chunks instead of every event.

The origin the log writes under (its signer, the bindings learned, a new origin when
ours retires) is ``crdt.log.origins``; bringing a folder of an earlier version up to
date when it opens is ``crdt.log.upgrade``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from crdt import codec
from crdt.clock import Clock
from crdt.errors import NotFound, StoreError
from crdt.events import Event
from crdt.log import bound, erase, forget, retire, upgrade
from crdt.log.batch import Batch, OpenSessions, put_at
from crdt.log.origins import OwnOrigin
from crdt.log.projection import message_fields
from crdt.log.records import (
    INDEX_CHUNK,
    META,
    Appended,
    Entry,
    Meta,
    Outgoing,
    Session,
    StoredEvent,
    event_key,
    key,
    new_tuple,
    origin_chunk_key,
)
from crdt.signing import Signer
from crdt.storage.base import Storage

#: An event as ``origin_after`` reads it, or as ``origin_outgoing`` does.
Read = TypeVar("Read", StoredEvent, Outgoing)

#: Session chunks read from storage in one ``get_many``: enough for a projection page of
#: a long session in one call, few enough that a reader stopping early wastes little.
CHUNKS_PER_READ = 16
#: Kinds of the records the log acts on when it stores them (``_take_record``).
_RECORD_KINDS = frozenset({forget.KIND, retire.KIND, bound.KIND})


class EventLog:
    """Append and read events in one storage. One thread writes; any reads."""

    def __init__(self, storage: Storage, meta: Meta) -> None:
        self.storage = storage
        self.meta = meta
        self._open_sessions = OpenSessions()
        #: The forget records the last commit stored (``crdt.log.erase``).
        self.erased: list[forget.Forget] = []
        #: Active origins beyond which one known only from a retirement is not asked
        #: for (``crdt.log.retire``); the node sets the peer protocol's.
        self.origins_room = retire.ROOM_DEFAULT
        #: Our origin's signer and the bindings learned (``crdt.log.origins``).
        self.own = OwnOrigin(storage, self._append_one)

    @classmethod
    def open(cls, storage: Storage, new_node_id: str,
             signer: Signer | None = None, written_by: str | None = None) -> EventLog:
        """Open the log in ``storage``; ``new_node_id`` names the node if the log is new
        and there is no ``signer`` (with one, its first bound origin does).
        ``written_by`` names the software writing (its version): the meta record says it
        from the next commit on (``Meta.written_by``)."""
        raw = storage.get(META)
        if raw is None:
            meta = Meta(new_node_id) if signer is None else Meta(signer.origin(0), origin_n=0)
            meta.written_by = written_by
            with storage.transaction() as tx:
                tx.put(META, meta.to_record())
            # Nothing to learn.
            fields: dict[str, Any] = {"retired": {}, "origin_n": None}
        else:
            fields = Meta.fields(raw)
            meta = Meta.from_fields(fields)
            meta.written_by = written_by
        log = cls(storage, meta)
        log.own.signer = signer
        if meta.local_seq > meta.version.get(meta.node_id, 0):
            upgrade.close_own_gap(log)
        if "retired" not in fields:  # written before origins could retire
            upgrade.learn_stored_retirements(log)
        if "origin_n" not in fields:  # written before origins were bound
            upgrade.learn_stored_bindings(log)
        # Last, and until then left out of every meta record the steps above commit: a
        # process ended before it counts again on the next open.
        if log.meta.forgotten_sessions is None:
            upgrade.count_forgotten_sessions(log)
        return log

    @property
    def head(self) -> int:
        """Position of the newest stored event (0 for an empty log)."""
        return self.meta.next_position - 1

    def append(self, events: Sequence[tuple[Event, str | None, int | None]
                                      | tuple[Event, str, int, bytes | None]],
               clock: Clock, unheld: Sequence[bytes] = ()) -> list[Appended]:
        """Store ``(event, origin, seq)`` items, or ``(event, origin, seq, signature)``,
        in one transaction; ``origin=None`` means this node originates the event, numbers
        it, and signs it if it has a signer. Returns once durable. A peer's signatures
        are stored as given: ``sync.peer.signatures`` checks them first. ``unheld``:
        ids of events the caller knows are not stored (it has just stamped them,
        ``EventStore._stamp``); the duplicate check does not read them."""
        meta = self.meta.copy()
        results = []
        try:
            with self.storage.transaction() as tx:
                batch = Batch(tx, meta, self._open_sessions)
                batch.clock = clock
                batch.events.update(dict.fromkeys(unheld))  # absent: a batch adds them
                batch.read_events([item[0].id for item in events])
                batch.read_ahead_of(events)
                append_one = self._append_one
                for item in events:
                    results.append(append_one(batch, item[0], item[1], item[2],
                                              item[3] if len(item) > 3 else None))
                self.own.settle_retired(batch, clock)
                if batch.forgets:
                    batch.flush()  # so that the erasure reads what the batch wrote
                    erase.apply(batch, batch.forgets)
                # The high mark, not ``last``: after a restart the clock must still know
                # which timestamps of a fast wall clock it may issue again (crdt.clock).
                meta.clock = clock.high_water
                batch.flush()
        except BaseException:
            self._open_sessions.clear()  # the batch changed them, and nothing committed
            raise
        batch.keep_sessions()
        self.meta = meta
        self.erased = batch.forgets
        self.own.bindings.update(batch.bindings)
        return results

    def _append_one(self, batch: Batch, event: Event, origin: str | None,
                    seq: int | None, signature: bytes | None = None) -> Appended:
        meta = batch.meta
        local = origin is None or seq is None
        if local:
            signer = self.own.own_signer(meta)
            if signer is not None and meta.local_seq == 0 and event.kind != bound.KIND:
                self.own.announce_key(batch, signer, event)  # seq 1 of a bound origin
            origin, seq = meta.node_id, meta.local_seq + 1
        assert origin is not None and seq is not None
        position = meta.next_position
        held = batch.event(event.id)
        if held is not None:
            existing = self._stored(held, event.id)
            # The peer's (origin, seq) is held now, whoever sent it first.
            if not local and self._note_origin(batch, origin, seq, existing.position) \
                    and signature is not None:
                batch.writes.append((key("g", origin, seq), signature))
            return Appended(existing, False)
        if local and signer is not None:
            signature = signer.sign(event.id, origin, seq)
        session = batch.session(event.session_key)
        # An event a stored forget covers is stored forgotten: it never comes back.
        if session.forgets or event.session_key in batch.coverage:  # else none covers it
            event = erase.stored_form(batch, session, event)
        stored = new_tuple(StoredEvent, (event, position, origin, seq, signature))
        batch.add_event(event.id, stored.to_record())
        if origin == meta.node_id and seq > meta.local_seq:
            # Our own events can come back from a peer (a restored backup, a copied data
            # folder): numbering must continue after them, never reuse their seqs.
            meta.local_seq = seq
        meta.next_position += 1
        batch.put_slot(None, position, event.id)
        if local and meta.version.get(origin, 0) == seq - 1:
            # Our next seq right after what we hold: nothing can lie beyond it yet. (A
            # folder written before peers' events beyond a gap were skipped may hold a
            # gap below it: the general path.)
            batch.put_slot(origin, seq, position)
            meta.version[origin] = seq
        else:
            self._note_origin(batch, origin, seq, position)
        if event.forgotten_by is None and event.kind != forget.KIND:
            session.live += 1
        # The entry's message is encoded from the event's fields (no ``Message`` built).
        batch.add_entry(session, position, event.sort_key,
                        message_fields(event) if session.header.fold(event) else None)
        if event.kind in _RECORD_KINDS:
            self._take_record(batch, event)
        return new_tuple(Appended, (stored, True))

    def _take_record(self, batch: Batch, event: Event) -> None:
        """Act on a record the log reads (a forget, a retirement, a device key)."""
        record = forget.read(event)
        if record is not None:
            batch.forgets.append(record)
        retired = retire.read(event)
        if retired is not None:
            retire.learn(batch.meta, *retired, room=self.origins_room)
        binding = bound.read(event)
        if binding is not None and self.own.binding(batch, binding.origin) is None:
            self.own.bind(batch, binding)

    @staticmethod
    def _note_origin(batch: Batch, origin: str, seq: int, position: int) -> bool:
        """Index (origin, seq) and advance the origin's contiguous sequence number. A slot
        that holds another event keeps it: the first one in stays findable. True if
        the slot was free (it holds this event now)."""
        final_seq = batch.meta.retired.get(origin)
        if final_seq is not None and seq > final_seq:
            return False  # not a number of a retired origin (``sync.peer`` refuses it)
        chunk = batch.slot_chunk(origin, seq)
        offset = seq % INDEX_CHUNK
        if offset < len(chunk) and chunk[offset] is not None:
            return False
        put_at(chunk, offset, position)
        version = batch.meta.version
        if final_seq is not None:
            return True  # dropped: held up to its final seq, and no longer counted
        have = version.get(origin, 0)
        if seq != have + 1:
            return True  # already counted, or a gap before it remains
        while True:  # this seq may close a gap: count the ones that arrived early
            have += 1
            chunk = batch.slot_chunk(origin, have + 1)
            offset = (have + 1) % INDEX_CHUNK
            if offset >= len(chunk) or chunk[offset] is None:
                break
        version[origin] = have
        return True

    def take_bound_origin(self) -> None:
        """Write under the signer's next free bound origin from now on (a folder that
        never wrote under its random one: nothing to retire)."""
        assert self.own.signer is not None
        meta = self.meta.copy()
        meta.origin_n, meta.local_seq = self.own.free_origin_n(meta, 0), 0
        meta.node_id = self.own.signer.origin(meta.origin_n)
        with self.storage.transaction() as tx:
            tx.put(META, meta.to_record())
        self.meta = meta

    def renumber(self, event_ids: Sequence[bytes]) -> None:
        """Give events already stored here a new number of this node's own, so that they
        travel again (under our origin) to peers whose slot for them holds another one."""
        meta = self.meta.copy()
        with self.storage.transaction() as tx:
            batch = Batch(tx, meta)
            for event_id in event_ids:
                position = self.stored(event_id).position
                meta.local_seq += 1
                self._note_origin(batch, meta.node_id, meta.local_seq, position)
                self.own.sign_slot(batch, meta.node_id, meta.local_seq, position)
            batch.flush()
        self.meta = meta

    # -- reads: safe from any thread ------------------------------------------------

    def stored(self, event_id: bytes) -> StoredEvent:
        """The stored event with this id; ``NotFound`` if there is none."""
        return self._stored(self.storage.get(event_key(event_id)), event_id)

    @staticmethod
    def _stored(raw: bytes | None, event_id: bytes) -> StoredEvent:
        return StoredEvent.from_record(_held(raw, event_id), event_id)

    def stored_many(self, event_ids: Sequence[bytes]) -> list[StoredEvent]:
        """The stored events with these ids, in their order (all must exist)."""
        return self._read_many(event_ids, StoredEvent.from_record)

    def _read_many(self, event_ids: Sequence[bytes],
                   read: Callable[[bytes, bytes], Read]) -> list[Read]:
        """The records of these events in one ``get_many``, in their order, each made by
        ``read``; ``NotFound`` if one is not stored."""
        raws = self.storage.get_many([event_key(event_id) for event_id in event_ids])
        return [read(_held(raw, event_id), event_id)
                for raw, event_id in zip(raws, event_ids, strict=True)]

    def holds(self, event_id: bytes) -> bool:
        return self.storage.has(event_key(event_id))

    def stored_or_none(self, event_ids: Sequence[bytes]) -> list[StoredEvent | None]:
        """The stored events with these ids, None where one is not stored."""
        raws = self.storage.get_many([event_key(event_id) for event_id in event_ids])
        return [None if raw is None else StoredEvent.from_record(raw, event_id)
                for raw, event_id in zip(raws, event_ids, strict=True)]

    def coverage(self, session_key: str) -> erase.Coverage | None:
        """What the session's forget records cover; None if it has none. ``NotFound``
        for an unknown session."""
        if not self.session(session_key).forgets:
            return None
        raw = self.storage.get(key("f", session_key))
        return None if raw is None else erase.Coverage.from_record(raw)

    def id_at(self, origin: str, seq: int) -> bytes | None:
        raw = self.storage.get(origin_chunk_key(origin, seq))
        chunk = codec.decode_trusted(raw) if raw else []
        offset = seq % INDEX_CHUNK
        if offset >= len(chunk) or chunk[offset] is None:
            return None
        return self.ids_between(chunk[offset], chunk[offset])[0]

    def ids_between(self, first: int, last: int) -> list[bytes]:
        """Ids of positions ``first`` to ``last`` inclusive (all must exist)."""
        numbers = range(first // INDEX_CHUNK, last // INDEX_CHUNK + 1)
        ids: list[bytes] = []
        raws = self.storage.get_many([key("p", number) for number in numbers])
        for number, raw in zip(numbers, raws, strict=True):
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
        return self.stored_many(self.ids_between(first, last))

    def origin_after(self, origin: str, seq: int, limit: int) -> list[StoredEvent]:
        """Events of ``origin`` with a sequence number above ``seq``, in sequence order,
        stopping at the first gap (the rest is not held yet).

        Each index chunk the page spans is read and decoded once, and the events in one
        ``get_many``, rather than three reads per event (``origin_outgoing``, what a
        peer's catch-up is sent, reads the same way)."""
        return self._origin_read(origin, seq, limit, StoredEvent.from_record)

    def origin_outgoing(self, origin: str, seq: int, limit: int) -> list[Outgoing]:
        """``origin_after`` as a peer is sent the events: their content not decoded."""
        return self._origin_read(origin, seq, limit, Outgoing.from_record)

    def _origin_read(self, origin: str, seq: int, limit: int,
                     read: Callable[[bytes, bytes], Read]) -> list[Read]:
        positions: list[int] = []
        for position in self._slots(origin, range(seq + 1, seq + 1 + max(limit, 0))):
            if position is None:
                break
            positions.append(position)
        found = self._read_many(self._ids_at(positions), read)
        for index, stored in enumerate(found):
            number = seq + 1 + index
            if (stored.origin, stored.seq) != (origin, number):  # numbered again: its own
                found[index] = stored._replace(
                    origin=origin, seq=number,
                    signature=self.storage.get(key("g", origin, number)))
        return found

    def ids_at(self, origin: str, seqs: Sequence[int]) -> list[bytes | None]:
        """``id_at`` for many numbers of one origin (the slots a peer's batch fills),
        each index chunk read once."""
        slots = self._slots(origin, seqs)
        ids = iter(self._ids_at([position for position in slots if position is not None]))
        return [None if position is None else next(ids) for position in slots]

    def _slots(self, origin: str, seqs: Sequence[int]) -> list[int | None]:
        """Positions of ``origin``'s numbers ``seqs``, None where one is not held."""
        numbers = sorted({seq // INDEX_CHUNK for seq in seqs})
        raws = self.storage.get_many([origin_chunk_key(origin, n * INDEX_CHUNK)
                                      for n in numbers])
        chunks = {number: codec.decode_trusted(raw) if raw else []
                  for number, raw in zip(numbers, raws, strict=True)}
        slots: list[int | None] = []
        for seq in seqs:
            chunk, offset = chunks[seq // INDEX_CHUNK], seq % INDEX_CHUNK
            slots.append(chunk[offset] if offset < len(chunk) else None)
        return slots

    def _ids_at(self, positions: Sequence[int]) -> list[bytes]:
        """Ids of these positions (all must exist), each position chunk read once."""
        numbers = sorted({position // INDEX_CHUNK for position in positions})
        raws = self.storage.get_many([key("p", number) for number in numbers])
        chunks: dict[int, list[bytes]] = {}
        for number, raw in zip(numbers, raws, strict=True):
            if raw is None:
                raise StoreError(f"position index chunk {number} is missing")
            chunks[number] = codec.decode_trusted(raw)
        return [chunks[p // INDEX_CHUNK][p % INDEX_CHUNK] for p in positions]

    def binding(self, origin: str) -> bound.Binding | None:
        """The device ``origin`` is bound to, if a ``device_key`` record bound it."""
        return self.own.binding(None, origin)

    def device_origins(self, device: str) -> list[str]:
        """The origins bound to ``device`` that this node knows, in the order learned."""
        raw = self.storage.get(bound.device_record_key(device))
        return list(codec.decode_trusted(raw)) if raw else []

    def session(self, session_key: str) -> Session:
        raw = self.storage.get(key("h", session_key))
        if raw is None:
            raise NotFound(f"no session {session_key!r} on this node")
        return Session.from_record(raw)

    def sessions_many(self, session_keys: Sequence[str]) -> list[Session]:
        """The sessions of these keys, in their order, in one read of storage (a page of
        the session list with its summaries); ``NotFound`` if one is not held."""
        raws = self.storage.get_many([key("h", session_key) for session_key in session_keys])
        found = []
        for session_key, raw in zip(session_keys, raws, strict=True):
            if raw is None:
                raise NotFound(f"no session {session_key!r} on this node")
            found.append(Session.from_record(raw))
        return found

    def record_keys(self, kind: str, after: str, limit: int) -> list[str]:
        """The keys of records of one ``kind`` (``crdt.log.records``; or a view's, such
        as ``d``) after ``after``, in key order, without the kind: for a session's
        records, its key. Reads no value."""
        prefix = key(kind, "")
        return [found[len(prefix):] for found in self.storage.keys_after(
            prefix, prefix + after if after else "", limit)]

    def chunk(self, session_key: str, number: int) -> list[Entry]:
        raw = self.storage.get(key("c", session_key, number))
        return [Entry.from_record(item) for item in codec.decode_trusted(raw)] if raw else []

    def entries(self, session: Session, start_chunk: int = 0) -> Iterator[tuple[int, Entry]]:
        """``(chunk number, entry)`` for a session's entries in arrival order, read
        ``CHUNKS_PER_READ`` chunks at a time (a reader that stops early reads no more)."""
        session_key = session.header.session_key
        for first in range(start_chunk, session.chunks, CHUNKS_PER_READ):
            numbers = range(first, min(first + CHUNKS_PER_READ, session.chunks))
            raws = self.storage.get_many([key("c", session_key, n) for n in numbers])
            for number, raw in zip(numbers, raws, strict=True):
                for item in codec.decode_trusted(raw) if raw else []:
                    yield number, Entry.from_record(item)

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
        ids: list[bytes] = []
        for _, entry in self.entries(session, low):
            if entry.position > position:
                ids.append(entry.sort_key[2])
                if len(ids) >= limit:
                    break
        return self.stored_many(ids)

    def session_keys(self, after: int, limit: int) -> list[tuple[int, str]]:
        indexes = range(max(after, 0) + 1, min(self.meta.sessions, max(after, 0) + limit) + 1)
        raws = self.storage.get_many([key("l", index) for index in indexes])
        found = []
        for index, raw in zip(indexes, raws, strict=True):
            if raw is None:
                raise StoreError(f"session list entry {index} is missing")
            found.append((index, raw.decode()))
        return found

    def save_checkpoint(self, peer_key: str, version: dict[str, int],
                        check: Callable[[dict[str, int] | None], None] | None = None) -> None:
        with self.storage.transaction() as tx:
            if check is not None:  # in the same transaction: nothing saved between
                raw = tx.get(key("k", peer_key))
                check(None if raw is None else dict(codec.decode_trusted(raw)))
            tx.put(key("k", peer_key), codec.encode_fast(version))

    def checkpoint(self, peer_key: str) -> dict[str, int] | None:
        raw = self.storage.get(key("k", peer_key))
        return None if raw is None else dict(codec.decode_trusted(raw))

    def close(self) -> None:
        self.storage.close()


def _held(raw: bytes | None, event_id: bytes) -> bytes:
    """An event's record as read from storage; ``NotFound`` if it is not stored."""
    if raw is None:
        raise NotFound(f"no event {event_id.hex()} on this node")
    return raw
