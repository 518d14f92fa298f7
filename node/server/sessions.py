"""``GET /v1/sessions``: the session list, a page at a time, optionally filtered by a key
prefix and with each session's summary (state, counts, last activity).

The cluster's own sessions (``crdt.log.forget.UNFORGETTABLE``: device, membership and
token records, retired origins) are left out unless asked for: a person listing sessions
looks for conversations. They stay readable by their key (``GET /v1/sessions/{key}``).

Sessions whose every event is forgotten (``clawsync forget``) are left out too: their
conversation was deleted. One dated after the forget lists the session again.

The list is kept in creation order, not by key, so a prefix is matched by reading the
list, and each listed session's header is read (forgotten or not): one request reads at
most ``SCAN_MAX`` entries and answers what matched, with ``more`` and ``next`` to go on
from where it stopped. A page may so hold fewer than ``limit`` sessions, or none, while
``more`` is true (behind many forgotten sessions, or a prefix few keys match).

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
>>> _ = store.forget("web:bob")    # every event of it: the conversation is gone
>>> keys()
['tg:alice', 'tg:carol']
>>> store.close()
"""

from __future__ import annotations

from typing import Any

from crdt.errors import NotFound
from crdt.log.forget import UNFORGETTABLE
from crdt.log.store import PAGE_MAX, EventStore

#: Session list entries one filtered request reads at most.
SCAN_MAX = 10_000
#: Entries read from the list at a time while filtering.
SCAN_STEP = 500
#: What ``detail`` adds to each session (its header's fields).
DETAIL_FIELDS = ("state", "message_count", "event_count", "last_activity", "channel",
                 "agent_id")


def session_page(store: EventStore, *, after: int, limit: int, prefix: str | None,
                 detail: bool, cluster: bool = False) -> dict[str, Any]:
    """Sessions after index ``after`` whose key starts with ``prefix`` (all when None), at
    most ``limit``; with ``detail``, each with its projection's header fields; with
    ``cluster``, the cluster's own sessions (``UNFORGETTABLE``) among them. Sessions
    whose every event is forgotten (``Session.forgotten``) are left out."""
    hidden = frozenset[str]() if cluster else UNFORGETTABLE
    rows: list[dict[str, Any]] = []
    cursor, more = after, False
    scanned = 0
    # A page larger than the scan bound (a configured page_max) still fills, unfiltered.
    scan_max = SCAN_MAX if prefix is not None else max(SCAN_MAX, limit + 1 + len(hidden))
    while True:
        # Unfiltered, one more than the page plus every hidden session that may lie among
        # them: a full page and whether another follows, in one read (more only when
        # forgotten sessions lie among them, or the page is beyond what the store answers
        # at once: a configured page_max past PAGE_MAX).
        step = min(limit + 1 + len(hidden), PAGE_MAX, scan_max - scanned) \
            if prefix is None else min(SCAN_STEP, scan_max - scanned)
        refs = store.list_sessions(cursor, step)
        scanned += len(refs)
        wanted = [ref for ref in refs if ref.session_key not in hidden
                  and (prefix is None or ref.session_key.startswith(prefix))]
        held = dict(zip((ref.index for ref in wanted),
                        store.log.sessions_or_none([ref.session_key for ref in wanted]),
                        strict=True))
        for ref in refs:
            session = held.get(ref.index)
            if session is not None and not session.forgotten:
                if len(rows) == limit:
                    more = True
                    break
                row: dict[str, Any] = {"index": ref.index, "session_key": ref.session_key}
                if detail:
                    fields = session.header.fields()
                    row.update({name: fields[name] for name in DETAIL_FIELDS})
                rows.append(row)
            cursor = ref.index  # past a hidden session too: the next page starts after it
        if more or len(refs) < step:
            break
        if scanned >= scan_max:
            more = True  # the list goes on past what this request read
            break
    return {"sessions": rows, "next": cursor, "more": more}


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
