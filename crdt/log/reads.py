"""``Reads``: the reads of ``EventStore`` (``crdt.log.store``), safe from any thread.

Every read goes to the log underneath (``EventLog``) and is paged by ``PAGE_MAX``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from crdt.log.eventlog import EventLog
from crdt.log.projection import Projection
from crdt.log.records import Outgoing, Session, StoredEvent

#: Largest page a read returns, whatever ``limit`` asks for.
PAGE_MAX = 10_000


@dataclass(frozen=True, slots=True)
class SessionRef:
    index: int  # place in creation order; pass it as ``after`` to page on
    session_key: str


class Reads:
    """The reads of ``EventStore``: events, sessions, origins, projections."""

    _log: EventLog

    @property
    def head(self) -> int:
        """Position of the newest event (0 when empty)."""
        return self._log.head

    def get_events(self, session_key: str) -> list[StoredEvent]:
        """All of a session's events in ``(timestamp, id)`` order."""
        session = self._log.session(session_key)
        entries = sorted((entry for _, entry in self._log.entries(session)),
                         key=lambda entry: entry.sort_key)
        return self._log.stored_many([entry.sort_key[2] for entry in entries])

    def get_events_since(self, session_key: str, position: int = 0,
                         limit: int = 100) -> list[StoredEvent]:
        """A session's events stored after ``position`` (a cursor, not a time), in
        position order. A late event with an old timestamp is still delivered."""
        return self._log.session_after(session_key, position, _page(limit))

    def events_after(self, position: int = 0, limit: int = 100) -> list[StoredEvent]:
        """Every event stored on this node after ``position``, in position order."""
        return self._log.after(position, _page(limit))

    def holds(self, event_id: bytes) -> bool:
        """True if the event with this id is stored here."""
        return self._log.holds(event_id)

    def id_at(self, origin: str, seq: int) -> bytes | None:
        """Id of the event this node holds as ``origin``'s number ``seq``, if any."""
        return self._log.id_at(origin, seq)

    def ids_at(self, origin: str, seqs: Sequence[int]) -> list[bytes | None]:
        """``id_at`` of each of ``seqs`` (numbers of ``origin``), read in one go."""
        return self._log.ids_at(origin, seqs)

    def get_event(self, event_id: bytes) -> StoredEvent:
        """The event with this id; raises ``NotFound``."""
        return self._log.stored(event_id)

    def origin_after(self, origin: str, seq: int, limit: int = 100) -> list[StoredEvent]:
        """Events numbered by ``origin`` after ``seq``, in order, up to the first gap
        (what a peer whose version vector says ``seq`` for that origin lacks)."""
        return self._log.origin_after(origin, seq, _page(limit))

    def origin_outgoing(self, origin: str, seq: int, limit: int = 100) -> list[Outgoing]:
        """``origin_after`` as a peer is sent the events (``Outgoing``): their content
        is not decoded, which sending does not look at."""
        return self._log.origin_outgoing(origin, seq, _page(limit))

    def origin_key(self, origin: str) -> bytes | None:
        """The public key ``origin`` is bound to (``crdt.log.bound``); None: unbound."""
        binding = self._log.binding(origin)
        return None if binding is None else binding.public_key

    def origin_device(self, origin: str) -> str | None:
        """The device id ``origin`` is bound to; None for an unbound origin."""
        binding = self._log.binding(origin)
        return None if binding is None else binding.device_id

    def device_origins(self, device_id: str) -> dict[str, int]:
        """The origins bound to ``device_id`` known here, each with the highest seq held
        without a gap (a retired one: its final seq, if held that far)."""
        meta = self._log.meta
        return {origin: meta.version.get(origin, meta.retired.get(origin, 0))
                for origin in self._log.device_origins(device_id)}

    def origins(self) -> list[dict[str, Any]]:
        """Every origin known here, in name order: ``seq`` (the highest held without a
        gap; so its events here are numbered 1 to ``seq``), ``last_activity`` (the time
        of that event: it moves back when the origin numbers an event dated in the
        past, such as a retention forget, dated just after the session it forgets),
        ``state`` (``active``; ``retiring``: retired, but events up to
        ``final_seq`` are still missing here; ``retired``: dropped from the version
        vector) and ``own`` (the origin this node writes under)."""
        meta = self._log.meta
        finals = {**meta.retiring, **meta.retired}
        rows = []
        for origin in sorted(meta.version.keys() | finals.keys()):
            seq = meta.version.get(origin, meta.retired.get(origin, 0))
            held = self._log.id_at(origin, seq) if seq else None
            stamp = self._log.stored(held).event.timestamp if held else None
            state = ("retired" if origin in meta.retired
                     else "retiring" if origin in meta.retiring else "active")
            rows.append({"origin": origin, "seq": seq, "events": seq,
                         "last_activity": stamp.rfc3339() if stamp else None,
                         "state": state, "final_seq": finals.get(origin),
                         "own": origin == meta.node_id})
        return rows

    def get_projection(self, session_key: str) -> Projection:
        """The session's projection; raises ``NotFound`` for an unknown session."""
        return self.read_session(session_key)[1]

    def read_session(self, session_key: str) -> tuple[Session, Projection]:
        """The session's record and its projection, from one read of its header (so its
        ``forgotten`` agrees with the projection); ``NotFound`` for an unknown session.

        The header and the message chunks are separate reads, and a commit may land
        between them. Entries are append-only, one per event in arrival order, so the
        first ``entries`` of them are exactly the events the header has seen.
        """
        session = self._log.session(session_key)
        entries = [entry for _, entry in self._log.entries(session)]
        messages = [e.message for e in entries[:session.entries]
                    if e.message is not None]
        messages.sort(key=lambda message: message.sort_key)
        return session, Projection(session.header, messages)

    def list_sessions(self, after: int = 0, limit: int = 100) -> list[SessionRef]:
        """Sessions in creation order, ``limit`` at a time after index ``after``."""
        return [SessionRef(i, k) for i, k in self._log.session_keys(after, _page(limit))]

    def sessions_by_key(self, after: str = "", limit: int = 1000) -> list[str]:
        """Up to ``limit`` session keys in key order after ``after`` (``""``: from the
        first), read from the keys of their header records alone: a walk over every
        session that reads no value (``list_sessions`` pages in creation order)."""
        return self.record_keys("h", after, limit)

    def sessions_with_forgets(self, after: str = "", limit: int = 1000) -> list[str]:
        """Like ``sessions_by_key``, but only the sessions that hold forget records:
        ``forget_generation`` is None for every other session."""
        return self.record_keys("f", after, limit)

    def record_keys(self, kind: str, after: str, limit: int) -> list[str]:
        """The keys of records of one ``kind`` after ``after``, in key order
        (``EventLog.record_keys``)."""
        return self._log.record_keys(kind, after, limit)

    def stats(self) -> dict[str, int]:
        """Counts: ``sessions`` every session held (the cluster's own too), of which
        ``sessions_forgotten`` hold nothing but forget records (``Session.forgotten``)."""
        meta = self._log.meta
        # None only while the log opens, which counts it before it returns.
        forgotten = meta.forgotten_sessions or 0
        return {"events": self.head, "sessions": meta.sessions,
                "sessions_forgotten": forgotten, "origins": len(meta.version),
                "origins_retired": len(meta.retired)}


def _page(limit: int) -> int:
    if limit < 1:
        raise ValueError("limit must be at least 1")
    return min(limit, PAGE_MAX)
