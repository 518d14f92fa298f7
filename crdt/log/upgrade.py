"""Folders written by earlier versions, brought up to date once, when the log opens
(``EventLog.open`` calls these; each writes what marks it done, so it runs once).

* Our own numbering ran ahead of what the folder holds (earlier versions took numbers a
  peer claimed): ``close_own_gap`` numbers our stranded events again.
* Retirements and ``device_key`` records stored before this version knew them were kept
  as events of an unknown kind: ``learn_stored_retirements`` and
  ``learn_stored_bindings`` take them in.
* Sessions of which nothing but forget records is left were not counted (or an older
  node wrote the meta record since): ``count_forgotten_sessions`` counts them.

Apart from ``crdt.log.eventlog`` so that it reads as appends and reads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from typing import Protocol

from crdt import codec
from crdt.errors import NotFound
from crdt.log import bound, retire
from crdt.log.batch import Batch
from crdt.log.origins import OwnOrigin
from crdt.log.records import (
    INDEX_CHUNK,
    META,
    Entry,
    Meta,
    Session,
    StoredEvent,
    origin_chunk_key,
)
from crdt.membership import DEVICES_SESSION
from crdt.storage.base import Storage

#: Sessions with forget records read at a time while a log written before forgotten
#: sessions were counted is counted (``count_forgotten_sessions``).
FORGOTTEN_COUNT_STEP = 500

logger = logging.getLogger(__name__)


class Log(Protocol):
    """What the upgrades need of the log (``crdt.log.eventlog.EventLog``)."""

    storage: Storage
    meta: Meta
    origins_room: int
    own: OwnOrigin

    def session(self, session_key: str) -> Session: ...
    def entries(self, session: Session,
                start_chunk: int = 0) -> Iterator[tuple[int, Entry]]: ...
    def stored_many(self, event_ids: Sequence[bytes]) -> list[StoredEvent]: ...
    def sessions_many(self, session_keys: Sequence[str]) -> list[Session]: ...
    def record_keys(self, kind: str, after: str, limit: int) -> list[str]: ...


def learn_stored_bindings(log: Log) -> None:
    """A folder written before origins were bound may hold ``device_key`` records,
    kept as events of a kind it did not know: bind their origins, once."""
    try:
        session = log.session(DEVICES_SESSION)
    except NotFound:
        session = None
    ids = [entry.sort_key[2] for _, entry in log.entries(session)] if session else []
    with log.storage.transaction() as tx:
        batch = Batch(tx, log.meta.copy())
        for stored in log.stored_many(ids):
            binding = bound.read(stored.event)
            if binding is not None and log.own.binding(batch, binding.origin) is None:
                log.own.bind(batch, binding)
        batch.flush()  # the meta record too: with ``origin_n``, this runs once
    log.meta = batch.meta
    log.own.bindings.update(batch.bindings)


def learn_stored_retirements(log: Log) -> None:
    """A folder written before origins could retire may hold retirements, kept as
    events of a kind it did not know: take them in, once."""
    meta = log.meta.copy()
    try:
        session = log.session(retire.ORIGINS_SESSION)
    except NotFound:
        session = None
    ids = [entry.sort_key[2] for _, entry in log.entries(session)] if session else []
    with log.storage.transaction() as tx:
        batch = Batch(tx, meta)
        for stored in log.stored_many(ids):
            retired = retire.read(stored.event)
            if retired is not None:
                retire.learn(meta, *retired, room=log.origins_room)
        log.own.settle_retired(batch, None)
        batch.flush()
    log.meta = meta


def _position_at(log: Log, origin: str, seq: int) -> int | None:
    raw = log.storage.get(origin_chunk_key(origin, seq))
    chunk = codec.decode_trusted(raw) if raw else []
    offset = seq % INDEX_CHUNK
    return None if offset >= len(chunk) else chunk[offset]


def close_own_gap(log: Log) -> None:
    """Repair a folder whose own numbering ran ahead of what it holds (earlier
    versions took numbers a peer claimed): our events written since lie beyond a
    gap that nothing fills, and were never forwarded. Number them again right after
    what we hold (the newest unbroken run below our last number; the slots they
    leave above are cleared), so that they travel."""
    meta = log.meta.copy()
    own, held = meta.node_id, meta.version.get(meta.node_id, 0)
    run: list[int] = []  # positions, newest first
    seq = meta.local_seq
    while seq > held and (position := _position_at(log, own, seq)) is not None:
        run.append(position)
        seq -= 1
    run.reverse()
    with log.storage.transaction() as tx:
        batch = Batch(tx, meta)
        for old_seq in range(seq + 1, meta.local_seq + 1):
            batch.put_index(origin_chunk_key(own, old_seq), old_seq % INDEX_CHUNK, None)
        for number, position in enumerate(run, start=held + 1):
            batch.put_index(origin_chunk_key(own, number), number % INDEX_CHUNK, position)
            log.own.sign_slot(batch, own, number, position)
        meta.local_seq = held + len(run)
        if run:
            meta.version[own] = meta.local_seq
        batch.flush()
    log.meta = meta


def count_forgotten_sessions(log: Log) -> None:
    """Count the sessions of which nothing but forget records is left, once, in a
    log written before the count was kept (or whose meta record an older node wrote
    since): only the sessions that hold a forget record (an ``f`` record) are read.
    A forget record whose session has no header is passed over, with a warning."""
    began = time.monotonic()
    logger.info("counting the sessions forgotten whole, once: the count is not in this "
                "folder yet (%d sessions held)", log.meta.sessions)
    after, read, found = "", 0, 0
    while names := log.record_keys("f", after, FORGOTTEN_COUNT_STEP):
        after = names[-1]
        sessions = _sessions_held(log, names)
        read += len(sessions)
        found += sum(session.forgotten for session in sessions)
    meta = log.meta.copy()
    meta.forgotten_sessions = found
    with log.storage.transaction() as tx:
        tx.put(META, meta.to_record())
    log.meta = meta
    logger.info("counted %d sessions forgotten whole among the %d with forget records "
                "in %.1f s", found, read, time.monotonic() - began)


def _sessions_held(log: Log, session_keys: Sequence[str]) -> list[Session]:
    """The sessions of these keys, those with no header left out with a warning (one
    read of storage unless one is missing)."""
    try:
        return log.sessions_many(session_keys)
    except NotFound:
        pass
    held = []
    for session_key in session_keys:
        try:
            held.append(log.session(session_key))
        except NotFound:
            logger.warning("session %r has forget records but no header: not counted",
                           session_key)
    return held
