"""Forgetting: the forget record and the rule of what it covers, as pure functions.

A forget is an ordinary event, in the session it forgets, so it replicates as every
event does, and older nodes store and forward it as a kind they do not know
(``crdt.kinds``; like ``crdt.log.retire``, the kind is not in ``KINDS``, so projections
skip it on every version alike and it counts as no activity):

    {"type": "forget", "events": [<event id hex>, ...], "reason": "user", "by": "client"}

``events`` absent or empty forgets the whole session; ``reason`` says why ("user",
"retention"); ``by`` says who asked (never a secret).

The coverage rule, the same on every node:

* a whole-session forget covers every event of its session that sorts before it by
  ``(timestamp, id)``: events written after it (a later timestamp) live on;
* an event forget covers the listed ids, and only those of its own session;
* a forget record is never covered: it holds no content, and it is the proof that lets
  a node accept the skeletons it covers;
* the sessions of the cluster's own records (``UNFORGETTABLE``: retirements, devices) are
  never forgotten.

A record that only looks like a forget (a wrong field type, a malformed id) is kept as
any event, and forgets nothing.

>>> from crdt.clock import Hlc
>>> said = Draft("s1", "main", "message_received", {"content": "hi", "attachments": []},
...              Hlc(1_000, 0)).seal()
>>> whole = read(forget("s1").seal(Hlc(2_000, 0)))
>>> covers(whole, said), whole.events
(True, None)
>>> one = read(forget("s1", [said.id.hex()], by="cli").seal(Hlc(500, 0)))
>>> covers(one, said), generation([whole, one]) == whole.id.hex()
(True, True)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from crdt.errors import InvalidInput, LimitExceeded
from crdt.events import ID_BYTES, Draft, Event
from crdt.keys import check_name, check_session_key
from crdt.kinds import NODES_AGENT_ID
from crdt.log.retire import ORIGINS_SESSION
from crdt.membership import DEVICES_SESSION

KIND = "forget"
AGENT_ID = NODES_AGENT_ID
#: Event ids one forget record may list: 1024 ids keep the record (about 68 KiB of hex)
#: under the event size limit (``crdt.events.EVENT_BYTES_MAX``).
EVENTS_MAX = 1024
#: Longest ``reason`` and ``by``.
TEXT_BYTES_MAX = 256

SortKey = tuple[int, int, bytes]
#: Sessions of the cluster's own records, which keep it working: they cannot be
#: forgotten, and a forget record in one forgets nothing.
UNFORGETTABLE = frozenset({ORIGINS_SESSION, DEVICES_SESSION})


class Coverable(Protocol):
    """What coverage needs to know of an event (an ``Event``, or a skeleton of one)."""

    @property
    def session_key(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def sort_key(self) -> SortKey: ...


@dataclass(frozen=True, slots=True)
class Forget:
    """A well-formed forget record, read from its event."""

    id: bytes
    session_key: str
    sort_key: SortKey
    #: The ids it forgets; None: the whole session (before ``sort_key``).
    events: frozenset[bytes] | None
    reason: str
    by: str


def parse_ids(raw: Any, field: str = "events") -> list[bytes]:
    """Event ids given as hex text (a client's or a record's), checked; duplicates
    dropped, order kept. ``InvalidInput`` names the first bad one."""
    if not isinstance(raw, list):
        raise InvalidInput("must be an array of event ids", field=field)
    if len(raw) > EVENTS_MAX:
        raise LimitExceeded(f"{len(raw)} ids; one forget lists at most {EVENTS_MAX}",
                            field=field)
    ids: list[bytes] = []
    for i, item in enumerate(raw):
        try:
            value = bytes.fromhex(item) if isinstance(item, str) else b""
        except ValueError:
            value = b""
        if len(value) != ID_BYTES:
            raise InvalidInput("must be 64 hex digits", field=f"{field}[{i}]")
        ids.append(value)
    return list(dict.fromkeys(ids))


def forget(session_key: str, events: Sequence[str] | None = None, *, reason: str = "user",
           by: str = "") -> Draft:
    """The record that forgets ``events`` (hex ids) of ``session_key``, or the whole
    session if none are given; stamped when appended, like any draft."""
    check_session_key(session_key)
    if session_key in UNFORGETTABLE:
        raise InvalidInput("holds the cluster's own records, which cannot be forgotten",
                           field="session_key")
    ids = parse_ids(list(events or []))
    payload: dict[str, Any] = {"events": [event_id.hex() for event_id in ids],
                               "reason": check_name(reason, "reason",
                                                    bytes_max=TEXT_BYTES_MAX)}
    if by:
        payload["by"] = check_name(by, "by", bytes_max=TEXT_BYTES_MAX)
    return Draft(session_key, AGENT_ID, KIND, payload)


def read(event: Event) -> Forget | None:
    """The forget record ``event`` is, if it is a well-formed one; else None."""
    if event.kind != KIND or event.session_key in UNFORGETTABLE:
        return None
    payload = event.payload
    try:
        ids = parse_ids(payload.get("events", []))
    except InvalidInput:
        return None
    reason, by = payload.get("reason", ""), payload.get("by", "")
    if not isinstance(reason, str) or not isinstance(by, str):
        return None
    return Forget(event.id, event.session_key, event.sort_key,
                  frozenset(ids) if ids else None, reason, by)


def covers(record: Forget, event: Coverable) -> bool:
    """True if ``record`` forgets ``event`` (the rule in this module's docstring)."""
    if event.session_key != record.session_key or event.kind == KIND:
        return False
    if record.events is None:
        return event.sort_key < record.sort_key
    return event.sort_key[2] in record.events


def covering(records: Iterable[Forget], event: Coverable) -> Forget | None:
    """The first of ``records`` (earliest by event order) that covers ``event``."""
    for record in sorted(records, key=lambda r: r.sort_key):
        if covers(record, event):
            return record
    return None


def generation(records: Iterable[Forget | Event]) -> str | None:
    """The hex id of the latest forget record (whole or per event, by ``(timestamp,
    id)``) among ``records`` (events that are not forget records are skipped), or None.
    It changes exactly when a session gains a forget that sorts last: what a session's
    derived state (its Automerge document) is named after."""
    latest: Forget | None = None
    for item in records:
        record = item if isinstance(item, Forget) else read(item)
        if record is not None and (latest is None or record.sort_key > latest.sort_key):
            latest = record
    return None if latest is None else latest.id.hex()
