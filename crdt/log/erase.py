"""Erasing what forget records cover, inside one commit of the log (the record and the
rule of what it covers: ``crdt.log.forget``).

Each session with a forget record has a coverage record,

    f␟<session>   {"whole": [ms, counter, id] or None, "ids": {event id: record id},
                   "latest": [ms, counter, id]}

``whole`` is the sort key of its latest whole-session forget (which covers every event
sorting before it, so the latest one covers all the earlier ones cover); ``ids`` maps
each event an event forget listed to that record; ``latest`` is the sort key of the
latest forget record of either form (``forget.generation``). It is read whenever an event of the
session is stored, so that an event arriving after its forget is stored already
forgotten (no resurrection), and it outlives the events: it lists ids this node may
never have held.

When a forget record is stored, every covered event of its session becomes a skeleton
(``Event.skeleton``): its record keeps id, session, agent, timestamp, kind, origin, seq
and position, and names the record; its payload goes. Its entry in the session's chunks
loses its message. The session's header is folded again from the events that are not
forgotten, so the projection is exactly that of the events left: a forgotten message is
left out, forgotten state values fall back to the earlier ones, counts drop, and
``last_activity`` may move back; ``Session.live`` is counted again, so a session of
which nothing but forget records is left reads as forgotten. Positions, seqs and
version vectors do not change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from crdt import codec
from crdt.events import Event
from crdt.log import forget
from crdt.log.projection import Header
from crdt.log.records import Session, StoredEvent, event_key, key
from crdt.storage.base import Transaction

SortKey = tuple[int, int, bytes]
#: Chunks (of at most 64 events each) read at once while a session is erased.
CHUNKS_PER_READ = 16


class Batch(Protocol):
    """What erasing needs of a commit in progress (``crdt.log.batch.Batch``)."""

    tx: Transaction
    coverage: dict[str, Coverage]
    tails: dict[str, list[bytes]]
    writes: list[tuple[str, bytes]]

    def session(self, session_key: str) -> Session: ...
    def add_event(self, event_id: bytes, record: bytes) -> None: ...


@dataclass(slots=True)
class Coverage:
    """What a session's forget records cover (the ``f`` record)."""

    whole: SortKey | None = None
    ids: dict[bytes, bytes] = field(default_factory=dict)
    latest: SortKey | None = None

    def by(self, event: Event) -> bytes | None:
        """The id of a forget record that covers ``event``; None if none does."""
        if event.kind == forget.KIND:
            return None
        if self.whole is not None and event.sort_key < self.whole:
            return self.whole[2]
        return self.ids.get(event.id)

    def add(self, record: forget.Forget) -> None:
        if self.latest is None or record.sort_key > self.latest:
            self.latest = record.sort_key
        if record.events is None:
            if self.whole is None or record.sort_key > self.whole:
                self.whole = record.sort_key
        else:
            for event_id in record.events:
                self.ids.setdefault(event_id, record.id)

    def to_record(self) -> bytes:
        return codec.encode_fast({"whole": _key_out(self.whole), "ids": self.ids,
                                  "latest": _key_out(self.latest)})

    @classmethod
    def from_record(cls, raw: bytes) -> Coverage:
        data = codec.decode_trusted(raw)
        return cls(_key_in(data["whole"]), dict(data["ids"]), _key_in(data["latest"]))


def _key_out(sort_key: SortKey | None) -> list[Any] | None:
    return None if sort_key is None else list(sort_key)


def _key_in(raw: list[Any] | None) -> SortKey | None:
    return None if raw is None else (raw[0], raw[1], raw[2])


def coverage(batch: Batch, session: Session) -> Coverage | None:
    """The session's coverage as this batch sees it; None if it has no forget record."""
    session_key = session.header.session_key
    found = batch.coverage.get(session_key)
    if found is None and session.forgets:
        raw = batch.tx.get(key("f", session_key))
        found = batch.coverage[session_key] = (
            Coverage.from_record(raw) if raw else Coverage())
    return found


def stored_form(batch: Batch, session: Session, event: Event) -> Event:
    """``event`` as this node stores it: a skeleton if a stored forget covers it."""
    if event.forgotten_by is not None:
        return event
    known = coverage(batch, session)
    by = known.by(event) if known is not None else None
    return event if by is None else event.skeleton(by)


def apply(batch: Batch, records: list[forget.Forget]) -> None:
    """Take in the forget records stored by this batch: erase what they cover, in the
    same transaction. Call after ``batch.flush`` (its reads then see the batch's
    writes), and flush again."""
    by_session: dict[str, list[forget.Forget]] = {}
    for record in records:
        by_session.setdefault(record.session_key, []).append(record)
    for session_key, found in by_session.items():
        session = batch.session(session_key)
        known = coverage(batch, session) or Coverage()
        for record in found:
            known.add(record)
        batch.coverage[session_key] = known
        session.forgets = True
        batch.writes.append((key("f", session_key), known.to_record()))
        _erase_session(batch, session, known)


def _erase_session(batch: Batch, session: Session, known: Coverage) -> None:
    """Make every covered event of the session a skeleton, drop their messages from the
    chunks, and fold the header again from what is left. Chunks are read
    ``CHUNKS_PER_READ`` at a time, with their events, so memory stays bounded however
    long the session."""
    session_key = session.header.session_key
    header = Header(session_key)
    session.live = 0  # counted again below
    for first in range(0, session.chunks, CHUNKS_PER_READ):
        numbers = range(first, min(first + CHUNKS_PER_READ, session.chunks))
        raws = batch.tx.get_many([key("c", session_key, n) for n in numbers])
        for number, raw in zip(numbers, raws, strict=True):
            _erase_chunk(batch, session, number,
                         codec.decode_trusted(raw) if raw else [], known, header)
    session.header = header


def _erase_chunk(batch: Batch, session: Session, number: int, chunk: list[Any],
                 known: Coverage, header: Header) -> None:
    session_key = session.header.session_key
    records = batch.tx.get_many([event_key(entry[3]) for entry in chunk])
    changed = False
    for entry, raw in zip(chunk, records, strict=True):
        event_id = entry[3]
        assert raw is not None, "a session entry names an event that is stored"
        stored = StoredEvent.from_record(raw, event_id)
        by = known.by(stored.event)
        if by is None:
            header.apply(stored.event)
            if stored.event.forgotten_by is None and stored.event.kind != forget.KIND:
                session.live += 1
            continue
        if stored.event.forgotten_by is None:
            batch.add_event(event_id, stored._replace(
                event=stored.event.skeleton(by)).to_record())
        if entry[4] is not None:
            entry[4] = None
            changed = True
    if number == session.chunks - 1:  # the open chunk: the batch writes it
        batch.tails[session_key] = [codec.encode_fast(entry) for entry in chunk]
    elif changed:
        batch.writes.append((key("c", session_key, number), codec.encode_fast(chunk)))
