"""clawsync events -> OpenClaw records: the inverse of ``mapping``.

Each record is its base event's ``openclaw.record`` with every moved field put back at
its path, from the base and from the events naming it (``part_of``). The records of one
OpenClaw session id form a ``Transcript``, in the order OpenClaw wrote them: the header
first, then each record after its parent (``parentId``), ties in event order. What the
size rule summarised comes back as its summary (``sizes``); a session id begun on several
devices comes back with one header, the earliest in event order (``_one_header``);
everything else comes back equal, as JSON, to what was imported. Events that did not come
from OpenClaw are not records and are left out.

>>> from node.openclaw.mapping import SessionRef, events_for
>>> record = {"type": "label", "id": "0000000a", "parentId": None,
...           "timestamp": "2026-12-01T10:00:00.000Z", "targetId": "1", "label": "x"}
>>> events = events_for(record, SessionRef("main", "k", "s")).events
>>> [(t.session_id, t.records == [record]) for t in transcripts_for(events)]
[('s', True)]
"""

from __future__ import annotations

import copy
import heapq
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from crdt.events import Event
from node.openclaw.mapping import EXTRA


@dataclass(frozen=True, slots=True)
class Transcript:
    """The records of one OpenClaw session, as its ``<sessionId>.jsonl`` holds them."""

    agent_id: str
    session_key: str  # OpenClaw's own
    session_id: str
    records: list[dict[str, Any]]
    #: Events of its records held here whose record is not: its main event (the one
    #: holding ``openclaw.record``) was forgotten, which takes the record with it.
    left_out: int = 0
    #: Records whose parent is not among them (forgotten), given another (``_reattach``):
    #: OpenClaw reads a conversation from its last record back through the parents, and
    #: would stop at the gap.
    reattached: int = 0
    #: Headers left out after the first (``_one_header``): the session id was begun on
    #: several devices separately.
    headers_left_out: int = 0


def transcripts_for(events: Iterable[Event], *, reattach: bool = False) -> list[Transcript]:
    """The OpenClaw transcripts held by a set of events (duplicates ignored), in the
    order of their first record. ``reattach``: some were forgotten, so a parent that is
    not there was forgotten; its children follow the record before them instead."""
    bases: dict[str, Event] = {}
    parts: dict[str, list[Event]] = defaultdict(list)
    group_of: dict[str, tuple[str, str, str]] = {}  # event id -> (agent, key, session id)
    for event in events:
        extra = event.payload.get(EXTRA)
        if not isinstance(extra, dict) or (group := _group(event.agent_id, extra)) is None:
            continue
        group_of[event.id.hex()] = group
        if isinstance(extra.get("record"), dict):
            bases[event.id.hex()] = event
        elif isinstance(extra.get("part_of"), str):
            parts[extra["part_of"]].append(event)
    groups: dict[tuple[str, str, str], list[tuple[Event, dict[str, Any]]]] = defaultdict(list)
    for event_id, base in bases.items():
        extra = base.payload[EXTRA]
        record = copy.deepcopy(extra["record"])
        for event in sorted([base, *parts.get(event_id, [])], key=lambda e: e.sort_key):
            _put_back(record, event)
        groups[group_of[event_id]].append((base, record))
    by_first = sorted(groups.items(), key=lambda item: min(e.sort_key for e, _ in item[1]))
    orphans: dict[tuple[str, str, str], int] = defaultdict(int)
    for base_id, events_of in parts.items():
        if base_id not in bases:
            for event in events_of:
                orphans[group_of[event.id.hex()]] += 1
    transcripts = []
    for group, members in by_first:
        kept = _one_header(members)
        # Before the order, which follows the parents.
        reattached = _reattach(kept) if reattach else 0
        transcripts.append(Transcript(*group, _ordered(kept), orphans.get(group, 0),
                                      reattached, len(members) - len(kept)))
    return transcripts


def _group(agent_id: str, extra: dict[str, Any]) -> tuple[str, str, str] | None:
    """The agent id, session key and session id of an event from OpenClaw (``extra``:
    its ``openclaw`` field); None if its ids are not texts (``openclaw_ids``)."""
    ids = openclaw_ids(extra)
    return None if ids is None else (agent_id, *ids)


def openclaw_ids(extra: object) -> tuple[str, str] | None:
    """OpenClaw's session key and session id named by an event's ``openclaw`` field
    (``extra``); None if it names them not both as texts: ``mapping`` always sets both,
    and a missing one read as text would make a session named ``None`` (a number 5, one
    named ``5``, mixed with a real one).

    >>> openclaw_ids({"session_key": "k", "session_id": "s1"})
    ('k', 's1')
    >>> openclaw_ids({"session_key": "k", "session_id": 5}) is None
    True
    """
    if not isinstance(extra, dict):
        return None
    key, session_id = extra.get("session_key"), extra.get("session_id")
    if isinstance(key, str) and isinstance(session_id, str):
        return key, session_id
    return None


def records_for(events: Iterable[Event], session_id: str | None = None) -> list[dict[str, Any]]:
    """The records of one OpenClaw session: ``session_id``'s, or the only one there is.
    ``ValueError`` if there is none, or several and no ``session_id``."""
    found = [t for t in transcripts_for(events)
             if session_id is None or t.session_id == session_id]
    if len(found) != 1:
        raise ValueError(f"{len(found)} OpenClaw sessions match, not one")
    return found[0].records


def _put_back(record: dict[str, Any], event: Event) -> None:
    moved = event.payload[EXTRA].get("moved")
    for name, path in (moved.items() if isinstance(moved, dict) else ()):
        if name in event.payload and isinstance(path, list) and path:
            _set_at(record, path, copy.deepcopy(event.payload[name]))


def _set_at(value: Any, path: list[Any], item: Any) -> None:
    """Put ``item`` at ``path``; a path that does not fit the record is skipped."""
    try:
        for step in path[:-1]:
            value = value[step]
        if isinstance(value, dict) or (isinstance(value, list)
                                       and isinstance(path[-1], int)):
            value[path[-1]] = item
    except (KeyError, IndexError, TypeError):
        pass


def _one_header(members: list[tuple[Event, dict[str, Any]]]
                ) -> list[tuple[Event, dict[str, Any]]]:
    """The members but for every header after the first, in event order. Two devices
    that each began the same session id (``openclaw agent --session-id s1`` on both)
    wrote a header each; OpenClaw's import keeps the first header of a file, leaves the
    others out of its store and then finds one record fewer than the file holds, so it
    refuses to finish. The records after them are kept: each device's first record has
    no parent, so each beginning stays a branch of its own, and OpenClaw goes on from
    the latest record."""
    headers = sorted((event.sort_key, n) for n, (event, record) in enumerate(members)
                     if record.get("type") == "session")
    dropped = {n for _, n in headers[1:]}
    return [member for n, member in enumerate(members) if n not in dropped]


def _reattach(members: list[tuple[Event, dict[str, Any]]]) -> int:
    """Give the children of each missing parent one parent instead: the record before
    the first of them, in event order (None for the first record), so that children
    that were siblings stay siblings (branches stay apart); how many were given one.
    Run before ``_ordered``."""
    ids = {record.get("id") for _, record in members}
    instead: dict[str, Any] = {}  # missing parent -> the parent its children get
    reattached = 0
    before = None
    for _, record in sorted(members, key=lambda member: member[0].sort_key):
        if record.get("type") == "session":
            continue
        parent = record.get("parentId")
        if isinstance(parent, str) and parent not in ids:
            record["parentId"] = instead.setdefault(parent, before)
            reattached += 1
        before = record.get("id")
    return reattached


def _ordered(members: list[tuple[Event, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Parents before children, the header first, ties in event order."""
    by_id = {record.get("id"): record for _, record in members}
    children: dict[Any, list[tuple[Any, int]]] = defaultdict(list)
    ready: list[tuple[Any, int]] = []
    records = [record for _, record in members]
    for n, (event, record) in enumerate(members):
        key = (record.get("type") != "session", event.sort_key)
        parent = record.get("parentId")
        if record.get("type") != "session" and parent in by_id and parent != record.get("id"):
            children[parent].append((key, n))
        else:
            ready.append((key, n))
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        _, n = heapq.heappop(ready)
        order.append(n)
        for child in children.pop(records[n].get("id"), []):
            heapq.heappush(ready, child)
    # Records in a parent cycle (possible only in a damaged transcript), in event order.
    order += [n for _, n in sorted(item for items in children.values() for item in items)]
    return [records[n] for n in order]
