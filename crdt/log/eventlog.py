"""``EventLog``: append events with their indexes and projections, one transaction per
batch, and read them back. The records are laid out in ``crdt.log.records``; they live
in any ``crdt.storage`` backend.

A batch (``crdt.log.batch``) reads the records of its events in one ``get_many`` (the
duplicate check) and writes everything it changed in one ``put_many``; the indexes are
chunked so that a batch rewrites each chunk it touches once, and reading a projection
reads a few chunks instead of every event.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from typing import Any

from crdt import codec
from crdt.clock import Clock
from crdt.errors import NotFound, StoreError
from crdt.events import Event
from crdt.log import bound, erase, forget, retire
from crdt.log.batch import Batch, OpenSessions, put_at
from crdt.log.projection import message_fields
from crdt.log.records import (
    INDEX_CHUNK,
    META,
    Appended,
    Entry,
    Meta,
    Session,
    StoredEvent,
    event_key,
    key,
    new_tuple,
    origin_chunk_key,
    position_chunk_key,
)
from crdt.membership import DEVICES_SESSION
from crdt.signing import Signer
from crdt.storage.base import Storage

#: Session chunks read from storage in one ``get_many``: enough for a projection page of
#: a long session in one call, few enough that a reader stopping early wastes little.
CHUNKS_PER_READ = 16
#: Sessions with forget records read at a time while a log written before forgotten
#: sessions were counted is counted (``EventLog._count_forgotten_sessions``).
FORGOTTEN_COUNT_STEP = 500
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
        #: Signs the events this node originates under its bound origin (None: no key;
        #: events are unsigned, under a random origin, as before events were signed).
        self.signer: Signer | None = None
        self._bindings: dict[str, bound.Binding | None] = {}  # read from storage

    @classmethod
    def open(cls, storage: Storage, new_node_id: str,
             signer: Signer | None = None) -> EventLog:
        """Open the log in ``storage``; ``new_node_id`` names the node if the log is new
        and there is no ``signer`` (with one, its first bound origin does)."""
        raw = storage.get(META)
        if raw is None:
            meta = Meta(new_node_id) if signer is None else Meta(signer.origin(0), origin_n=0)
            with storage.transaction() as tx:
                tx.put(META, meta.to_record())
            # Nothing to learn.
            fields: dict[str, Any] = {"retired": {}, "origin_n": None, "forgotten": 0}
        else:
            fields = Meta.fields(raw)
            meta = Meta.from_fields(fields)
        log = cls(storage, meta)
        log.signer = signer
        if meta.local_seq > meta.version.get(meta.node_id, 0):
            log._close_own_gap()
        if "retired" not in fields:  # written before origins could retire
            log._learn_stored_retirements()
        if "origin_n" not in fields:  # written before origins were bound
            log._learn_stored_bindings()
        if "forgotten" not in fields:  # written before forgotten sessions were counted
            log._count_forgotten_sessions()
        return log

    def _count_forgotten_sessions(self) -> None:
        """Count the sessions of which nothing but forget records is left, once, in a
        log written before the count was kept (or whose meta record an older node wrote
        since): only the sessions that hold a forget record (an ``f`` record) are read."""
        prefix, after, found = key("f", ""), "", 0
        while names := self.storage.keys_after(prefix, after, FORGOTTEN_COUNT_STEP):
            after = names[-1]
            found += sum(session.forgotten for session in
                         self.sessions_many([name[len(prefix):] for name in names]))
        meta = self.meta.copy()
        meta.forgotten_sessions = found
        with self.storage.transaction() as tx:
            tx.put(META, meta.to_record())
        self.meta = meta

    def _learn_stored_bindings(self) -> None:
        """A folder written before origins were bound may hold ``device_key`` records,
        kept as events of a kind it did not know: bind their origins, once."""
        try:
            session = self.session(DEVICES_SESSION)
        except NotFound:
            session = None
        ids = [entry.sort_key[2] for _, entry in self.entries(session)] if session else []
        with self.storage.transaction() as tx:
            batch = Batch(tx, self.meta.copy())
            for stored in self.stored_many(ids):
                binding = bound.read(stored.event)
                if binding is not None and self._binding(batch, binding.origin) is None:
                    self._bind(batch, binding)
            batch.flush()  # the meta record too: with ``origin_n``, this runs once
        self.meta = batch.meta
        self._bindings.update(batch.bindings)

    def _learn_stored_retirements(self) -> None:
        """A folder written before origins could retire may hold retirements, kept as
        events of a kind it did not know: take them in, once."""
        meta = self.meta.copy()
        try:
            session = self.session(retire.ORIGINS_SESSION)
        except NotFound:
            session = None
        ids = [entry.sort_key[2] for _, entry in self.entries(session)] if session else []
        with self.storage.transaction() as tx:
            batch = Batch(tx, meta)
            for stored in self.stored_many(ids):
                retired = retire.read(stored.event)
                if retired is not None:
                    retire.learn(meta, *retired, room=self.origins_room)
            self._settle_retired(batch, None)
            batch.flush()
        self.meta = meta

    def _position_at(self, origin: str, seq: int) -> int | None:
        raw = self.storage.get(origin_chunk_key(origin, seq))
        chunk = codec.decode_trusted(raw) if raw else []
        offset = seq % INDEX_CHUNK
        return None if offset >= len(chunk) else chunk[offset]

    def _close_own_gap(self) -> None:
        """Repair a folder whose own numbering ran ahead of what it holds (earlier
        versions took numbers a peer claimed): our events written since lie beyond a
        gap that nothing fills, and were never forwarded. Number them again right after
        what we hold (the newest unbroken run below our last number; the slots they
        leave above are cleared), so that they travel."""
        meta = self.meta.copy()
        own, held = meta.node_id, meta.version.get(meta.node_id, 0)
        run: list[int] = []  # positions, newest first
        seq = meta.local_seq
        while seq > held and (position := self._position_at(own, seq)) is not None:
            run.append(position)
            seq -= 1
        run.reverse()
        with self.storage.transaction() as tx:
            batch = Batch(tx, meta)
            for old_seq in range(seq + 1, meta.local_seq + 1):
                batch.put_index(origin_chunk_key(own, old_seq), old_seq % INDEX_CHUNK, None)
            for number, position in enumerate(run, start=held + 1):
                batch.put_index(origin_chunk_key(own, number), number % INDEX_CHUNK, position)
                self._sign_slot(batch, own, number, position)
            meta.local_seq = held + len(run)
            if run:
                meta.version[own] = meta.local_seq
            batch.flush()
        self.meta = meta

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
                self._settle_retired(batch, clock)
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
        self._bindings.update(batch.bindings)
        return results

    def _append_one(self, batch: Batch, event: Event, origin: str | None,
                    seq: int | None, signature: bytes | None = None) -> Appended:
        meta = batch.meta
        local = origin is None or seq is None
        if local:
            signer = self._own_signer(meta)
            if signer is not None and meta.local_seq == 0 and event.kind != bound.KIND:
                self._announce_key(batch, signer, event)  # seq 1 of a bound origin
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
        if binding is not None and self._binding(batch, binding.origin) is None:
            self._bind(batch, binding)

    def _own_signer(self, meta: Meta, strict: bool = True) -> Signer | None:
        """The signer of our origin if it is bound to its key; ``StoreError`` (if
        ``strict``) for a bound origin without its signer: the events it would write
        unsigned would be refused everywhere."""
        if meta.origin_n is None:
            return None
        if self.signer is None:
            if not strict:
                return None
            raise StoreError(f"this data folder writes as origin {meta.node_id}, bound to "
                             "a device key: open it with its key (the node's signer)")
        return self.signer if self.signer.origin(meta.origin_n) == meta.node_id else None

    def _announce_key(self, batch: Batch, signer: Signer,
                      before: Event | None = None) -> None:
        """Append our origin's ``device_key`` record, as its seq 1, stamped no later than
        ``before``, the event it comes before. A peer checks every later event of the
        origin against it, and holds back an event stamped too far ahead of its own
        clock: stamped by a clock that runs ahead, the record would hold back with it an
        event that is not ahead (a retention forget, a client's timestamp)."""
        assert batch.meta.origin_n is not None
        clock = batch.clock or Clock(last=batch.meta.clock)
        stamp = clock.now() if before is None else min(clock.now(), before.timestamp)
        self._append_one(batch, bound.device_key(signer, batch.meta.origin_n)
                         .seal(stamp), None, None)

    def _binding(self, batch: Batch | None, origin: str) -> bound.Binding | None:
        if batch is not None and origin in batch.bindings:
            return batch.bindings[origin]
        if origin in self._bindings:
            return self._bindings[origin]
        raw = self.storage.get(bound.binding_key(origin))
        binding = None if raw is None else bound.Binding.from_record(origin, raw)
        # A binding never changes, so any thread may remember one. "Unbound" may change,
        # and only the writer (in a batch) may remember it: a reader's answer could be
        # stored after the writer's commit had bound the origin, and then stick.
        if binding is not None or batch is not None:
            self._bindings[origin] = binding
        return binding

    def _bind(self, batch: Batch, binding: bound.Binding) -> None:
        """Record that ``binding.origin`` is bound, and list it under its device."""
        batch.bindings[binding.origin] = binding
        batch.writes.append((bound.binding_key(binding.origin), binding.to_record()))
        record_key = bound.device_record_key(binding.device_id)
        raw = batch.tx.get(record_key)
        origins = list(codec.decode_trusted(raw)) if raw else []
        origins += [o for o in batch.bindings if o not in origins
                    and batch.bindings[o].device_id == binding.device_id]
        batch.writes.append((record_key, codec.encode_fast(origins)))

    def _sign_slot(self, batch: Batch, origin: str, seq: int, position: int) -> None:
        """Sign an event numbered again under our own origin (its record keeps its first
        slot's signature), if that origin is bound."""
        signer = self._own_signer(batch.meta, strict=False)
        if signer is None or origin != batch.meta.node_id:
            return
        event_id = batch.index(position_chunk_key(position))[position % INDEX_CHUNK]
        batch.writes.append((key("g", origin, seq), signer.sign(event_id, origin, seq)))

    def _settle_retired(self, batch: Batch, clock: Clock | None) -> None:
        """Drop the retired origins now held up to their final seq; if ours is one of
        them, take a new origin in the same commit, so we never write under it again.
        An origin held past its final seq is retired again at what we hold, so that
        its events past the old final seq reach every node (the highest wins)."""
        meta = batch.meta
        if clock is not None:  # None when a folder is opened: its next commit does it
            for origin, seq in retire.held_past(meta):
                self._append_one(batch, retire.retirement(origin, seq).seal(clock.now()),
                                 None, None)
        if meta.retiring and meta.node_id in retire.settle(meta):
            self._take_new_origin(batch, meta.retired[meta.node_id])

    def _take_new_origin(self, batch: Batch, final_seq: int) -> None:
        """Our origin was retired at ``final_seq``: continue under a new one, as a wiped
        folder would, and number again under it our events above ``final_seq`` (written
        before the retirement reached us; every node refuses them under the old origin),
        so that they travel. Their old slots are cleared; positions do not change.
        With a signer the new origin is the key's next bound origin, its seq 1 the
        ``device_key`` record, and the events numbered again are signed."""
        meta = batch.meta
        old, new, n = meta.node_id, secrets.token_hex(8), None
        if self.signer is not None:
            n = self._free_origin_n(meta, meta.origin_n + 1 if meta.origin_n is not None
                                    and self.signer.origin(meta.origin_n) == old else 0)
            new = self.signer.origin(n)
        run = []
        for seq in range(final_seq + 1, meta.local_seq + 1):
            record_key, offset = origin_chunk_key(old, seq), seq % INDEX_CHUNK
            chunk = batch.index(record_key)
            if offset < len(chunk) and chunk[offset] is not None:
                run.append(chunk[offset])
                batch.put_index(record_key, offset, None)
        meta.node_id, meta.local_seq, meta.origin_n = new, 0, n
        if self.signer is not None:
            self._announce_key(batch, self.signer)
        for seq, position in enumerate(run, start=meta.local_seq + 1):
            batch.put_index(origin_chunk_key(new, seq), seq % INDEX_CHUNK, position)
            self._sign_slot(batch, new, seq, position)
            meta.version[new] = meta.local_seq = seq

    def _free_origin_n(self, meta: Meta, n: int) -> int:
        """The first ``n``, from ``n`` on, whose bound origin this log does not know
        (held, retired or retiring)."""
        assert self.signer is not None
        known = meta.version.keys() | meta.retired.keys() | meta.retiring.keys()
        while self.signer.origin(n) in known:
            n += 1
        return n

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
        assert self.signer is not None
        meta = self.meta.copy()
        meta.origin_n, meta.local_seq = self._free_origin_n(meta, 0), 0
        meta.node_id = self.signer.origin(meta.origin_n)
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
                self._sign_slot(batch, meta.node_id, meta.local_seq, position)
            batch.flush()
        self.meta = meta

    # -- reads: safe from any thread ------------------------------------------------

    def stored(self, event_id: bytes) -> StoredEvent:
        """The stored event with this id; ``NotFound`` if there is none."""
        return self._stored(self.storage.get(event_key(event_id)), event_id)

    @staticmethod
    def _stored(raw: bytes | None, event_id: bytes) -> StoredEvent:
        if raw is None:
            raise NotFound(f"no event {event_id.hex()} on this node")
        return StoredEvent.from_record(raw, event_id)

    def stored_many(self, event_ids: Sequence[bytes]) -> list[StoredEvent]:
        """The stored events with these ids, in their order (all must exist)."""
        raws = self.storage.get_many([event_key(event_id) for event_id in event_ids])
        return [self._stored(raw, event_id) for raw, event_id in zip(raws, event_ids,
                                                                     strict=True)]

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

        A peer's catch-up reads this page after page: each index chunk it spans is read
        and decoded once, and the events in one ``get_many``, rather than three reads
        per event."""
        positions: list[int] = []
        for position in self._slots(origin, range(seq + 1, seq + 1 + max(limit, 0))):
            if position is None:
                break
            positions.append(position)
        found: list[StoredEvent] = []
        for number, stored in enumerate(self.stored_many(self._ids_at(positions)),
                                        start=seq + 1):
            if (stored.origin, stored.seq) != (origin, number):  # numbered again: its own
                stored = stored._replace(origin=origin, seq=number,
                                         signature=self.storage.get(key("g", origin, number)))
            found.append(stored)
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
        return self._binding(None, origin)

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

    def save_checkpoint(self, peer_key: str, version: dict[str, int]) -> None:
        with self.storage.transaction() as tx:
            tx.put(key("k", peer_key), codec.encode_fast(version))

    def checkpoint(self, peer_key: str) -> dict[str, int] | None:
        raw = self.storage.get(key("k", peer_key))
        return None if raw is None else dict(codec.decode_trusted(raw))

    def close(self) -> None:
        self.storage.close()
