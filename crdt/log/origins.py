"""``OwnOrigin``: the origin this node writes under, apart from appending and reading.

A node writes its events under one origin at a time. With a device key (a ``Signer``) the
origin is bound to the key (``crdt.log.bound``): its seq 1 is the ``device_key`` record,
and every event numbered under it is signed. When a retirement drops our origin
(``crdt.log.retire``), the node continues under a new one in the same commit. This
module keeps those rules, and the bindings the log has learned, in one place, so that
``crdt.log.eventlog`` reads as appends and reads.

It is given the storage and the log's ``append_one`` (the records it writes, a
``device_key`` or a retirement, are appended like any event of the batch).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from crdt import codec
from crdt.clock import Clock
from crdt.errors import StoreError
from crdt.events import Event
from crdt.log import bound, retire
from crdt.log.batch import Batch
from crdt.log.records import (
    INDEX_CHUNK,
    Appended,
    Meta,
    key,
    origin_chunk_key,
    position_chunk_key,
)
from crdt.signing import Signer
from crdt.storage.base import Storage

#: ``EventLog._append_one``: store one event in a batch (origin and seq None: ours).
AppendOne = Callable[[Batch, Event, str | None, int | None], Appended]


class OwnOrigin:
    """Our origin's signer and bindings; taking a new origin when ours retires."""

    def __init__(self, storage: Storage, append_one: AppendOne) -> None:
        self.storage = storage
        self._append_one = append_one
        #: Signs the events this node originates under its bound origin (None: no key;
        #: events are unsigned, under a random origin, as before events were signed).
        self.signer: Signer | None = None
        self.bindings: dict[str, bound.Binding] = {}  # read from storage, or committed

    def own_signer(self, meta: Meta, strict: bool = True) -> Signer | None:
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

    def announce_key(self, batch: Batch, signer: Signer,
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

    def binding(self, batch: Batch | None, origin: str) -> bound.Binding | None:
        if batch is not None and origin in batch.bindings:
            return batch.bindings[origin]
        if origin in self.bindings:
            return self.bindings[origin]
        raw = self.storage.get(bound.binding_key(origin))
        binding = None if raw is None else bound.Binding.from_record(origin, raw)
        # A binding never changes, so any thread may remember one. "Unbound" may change,
        # so no thread remembers it: a reader's answer could be stored after the
        # writer's commit had bound the origin, and then stick; and the writer's, made
        # in the batch that binds the origin, would answer readers "unbound" between
        # its commit and ``bindings.update``, while they read the origin's records.
        if binding is not None:
            self.bindings[origin] = binding
        return binding

    def bind(self, batch: Batch, binding: bound.Binding) -> None:
        """Record that ``binding.origin`` is bound, and list it under its device."""
        batch.bindings[binding.origin] = binding
        batch.writes.append((bound.binding_key(binding.origin), binding.to_record()))
        record_key = bound.device_record_key(binding.device_id)
        raw = batch.tx.get(record_key)
        origins = list(codec.decode_trusted(raw)) if raw else []
        origins += [o for o in batch.bindings if o not in origins
                    and batch.bindings[o].device_id == binding.device_id]
        batch.writes.append((record_key, codec.encode_fast(origins)))

    def sign_slot(self, batch: Batch, origin: str, seq: int, position: int) -> None:
        """Sign an event numbered again under our own origin (its record keeps its first
        slot's signature), if that origin is bound."""
        signer = self.own_signer(batch.meta, strict=False)
        if signer is None or origin != batch.meta.node_id:
            return
        event_id = batch.index(position_chunk_key(position))[position % INDEX_CHUNK]
        batch.writes.append((key("g", origin, seq), signer.sign(event_id, origin, seq)))

    def settle_retired(self, batch: Batch, clock: Clock | None) -> None:
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
            n = self.free_origin_n(meta, meta.origin_n + 1 if meta.origin_n is not None
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
            self.announce_key(batch, self.signer)
        for seq, position in enumerate(run, start=meta.local_seq + 1):
            batch.put_index(origin_chunk_key(new, seq), seq % INDEX_CHUNK, position)
            self.sign_slot(batch, new, seq, position)
            meta.version[new] = meta.local_seq = seq

    def free_origin_n(self, meta: Meta, n: int) -> int:
        """The first ``n``, from ``n`` on, whose bound origin this log does not know
        (held, retired or retiring)."""
        assert self.signer is not None
        known = meta.version.keys() | meta.retired.keys() | meta.retiring.keys()
        while self.signer.origin(n) in known:
            n += 1
        return n

