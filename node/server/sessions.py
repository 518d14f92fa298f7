"""``GET /v1/sessions``: the session list, a page at a time, optionally filtered by a key
prefix and with each session's summary (state, counts, last activity).

The cluster's own sessions (``crdt.log.forget.UNFORGETTABLE``: device, membership and
token records, retired origins) are left out unless asked for: a person listing sessions
looks for conversations. They stay readable by their key (``GET /v1/sessions/{key}``).

A session whose every event was forgotten (``clawsync forget``) is listed as any other:
leaving it out would cost a header read per session the list passes over (retention
forgets the oldest, which lead the list). Where headers are read anyway, with
``detail`` (the page's in one read of storage), its row says ``"forgotten": true``
(``Session.forgotten``), for clients to hide or mark it.

The list is kept in creation order, not by key, so a prefix is matched by reading the
list: one request reads at most ``SCAN_MAX`` entries and answers what matched, with
``more`` and ``next`` to go on from where it stopped. A page may so hold fewer than
``limit`` sessions, or none, while ``more`` is true. Without a prefix a page is full
whenever ``more`` is true: it reads as many more entries as there are hidden sessions.

>>> import tempfile
>>> from crdt.events import parse_event
>>> from crdt.log.store import EventStore
>>> from crdt.membership import DEVICES_SESSION
>>> store = EventStore.open(tempfile.mkdtemp())
>>> for key in ("tg:alice", "web:bob", "tg:carol"):
...     _ = store.append(parse_event({"agent_id": "main", "kind": {"type":
...         "message_received", "content": "hi"}}, session_key=key))
>>> page = session_page(store, after=0, limit=10, prefix="tg:", detail=True)
>>> [(row["session_key"], row["message_count"]) for row in page["sessions"]]
[('tg:alice', 1), ('tg:carol', 1)]
>>> page["next"], page["more"]
(3, False)
>>> _ = store.append(parse_event({"agent_id": "main", "kind": {"type":
...     "message_received", "content": "hi"}}, session_key=DEVICES_SESSION))
>>> def keys(**asked):
...     page = session_page(store, after=0, limit=10, prefix=None, detail=False, **asked)
...     return [row["session_key"] for row in page["sessions"]]
>>> keys()
['tg:alice', 'web:bob', 'tg:carol']
>>> keys(cluster=True)
['tg:alice', 'web:bob', 'tg:carol', 'clawsync:devices']
>>> store.stats()["sessions"], cluster_sessions(store)
(4, 1)
>>> _ = store.forget("web:bob")    # every event of it: listed still, and said so
>>> page = session_page(store, after=0, limit=10, prefix="web:", detail=True)
>>> [(row["session_key"], row["forgotten"]) for row in page["sessions"]]
[('web:bob', True)]
>>> store.close()
"""

from __future__ import annotations

from typing import Any

import structlog

from crdt.errors import NotFound
from crdt.log.forget import UNFORGETTABLE
from crdt.log.records import Session
from crdt.log.store import PAGE_MAX, EventStore

log = structlog.get_logger(__name__)

#: Session list entries one filtered request reads at most.
SCAN_MAX = 10_000
#: Entries read from the list at a time while filtering.
SCAN_STEP = 500
#: The fields a ``detail`` row adds to ``index`` and ``session_key``, in this order.
DETAIL_FIELDS = ("state", "message_count", "event_count", "last_activity", "channel",
                 "agent_id", "forgotten")


def session_page(store: EventStore, *, after: int, limit: int, prefix: str | None,
                 detail: bool, cluster: bool = False) -> dict[str, Any]:
    """Sessions after index ``after`` whose key starts with ``prefix`` (all when None), at
    most ``limit``; with ``detail``, each with its projection's header fields and
    ``forgotten`` (every event of it forgotten); with
    ``cluster``, the cluster's own sessions (``UNFORGETTABLE``) among them."""
    hidden = frozenset[str]() if cluster else UNFORGETTABLE
    rows: list[dict[str, Any]] = []
    cursor, more = after, False
    scanned = 0
    while True:
        # Unfiltered, one more than the page plus every hidden session that may lie among
        # them: a full page and whether another follows, in one read (two when the page
        # is beyond what the store answers at once: a configured page_max past PAGE_MAX).
        step = min(limit + 1 + len(hidden), PAGE_MAX) if prefix is None \
            else min(SCAN_STEP, SCAN_MAX - scanned)
        refs = store.list_sessions(cursor, step)
        scanned += len(refs)
        for ref in refs:
            key = ref.session_key
            if key not in hidden and (prefix is None or key.startswith(prefix)):
                if len(rows) == limit:
                    more = True
                    break
                rows.append({"index": ref.index, "session_key": key})
            cursor = ref.index  # past a hidden session too: the next page starts after it
        if more or len(refs) < step:
            break
        if prefix is not None and scanned >= SCAN_MAX:
            more = True  # the list goes on past what this request read
            break
    if detail:  # every row's header in one read of storage, not one read per row
        found = store.log.sessions_many([row["session_key"] for row in rows])
        for row, session in zip(rows, found, strict=True):
            row.update(summary(session))
    return {"sessions": rows, "next": cursor, "more": more}


def summary(session: Session) -> dict[str, Any]:
    """A session's ``DETAIL_FIELDS``, what a ``detail`` row adds to its index and key
    (``forgotten`` as ``GET /v1/sessions/{key}`` says it beside the projection)."""
    header = session.header.fields()
    return {**{name: header[name] for name in DETAIL_FIELDS[:-1]},
            "forgotten": session.forgotten}


def cluster_sessions(store: EventStore) -> int:
    """How many of the cluster's own sessions (``UNFORGETTABLE``) this node holds: what
    the list leaves out unless asked, so the node's session count can agree with it
    (``GET /v1/node``). One header read per such session, never a walk of the list."""
    found = 0
    for key in UNFORGETTABLE:
        try:
            store.log.session(key)
        except NotFound:
            continue
        found += 1
    return found


class LiveCount:
    """``GET /v1/node``'s ``sessions_live``: the sessions listed less those forgotten
    whole. The forgotten count is kept by every commit; should it ever disagree with
    the list (a damaged folder), the figure stays within 0 and the sessions listed, and
    the first such answer logs a warning.

    >>> live = LiveCount()
    >>> live(5, 2), live(5, 5), live.warned
    (3, 0, False)
    """

    def __init__(self) -> None:
        self.warned = False

    def __call__(self, listed: int, forgotten: int) -> int:
        live = listed - forgotten
        if 0 <= live <= listed:
            return live
        if not self.warned:
            self.warned = True
            log.warning("the count of sessions forgotten whole disagrees with the "
                        "sessions listed: the live count is kept within them",
                        listed=listed, forgotten=forgotten)
        return min(max(live, 0), listed)
