"""A session's projection: its current state as a pure function of its set of events.

The seed's ``SessionProjection`` with its defects fixed:

* every field is decided by event order ``(timestamp, id)``, never by arrival order, so
  applying events one by one in any order gives exactly what a full rebuild gives;
* messages are keyed by their event's sort key, so each appears once, in event order;
* ``last_activity`` is the newest event's time and never moves backwards;
* ``state``, ``channel``/``peer_id`` and each ``custom_state`` key are last-writer-wins by
  event order; ``agent_id`` is the newest event's agent;
* there is no "the longer history wins" merge: two projections never merge, their event
  sets do;
* kinds this version does not know, and fields it does not read, are skipped
  (``crdt.kinds``): they are in the log, not in the projection.

The projection is split in two for storage: a small ``Header`` (rewritten on every append
to the session) and the ``Message`` entries, which are immutable and stored once each.

>>> from crdt.events import parse_event
>>> hello = parse_event({"agent_id": "main", "hlc": [2000, 0], "kind": {
...     "type": "message_received", "content": "hello"}}, session_key="s")
>>> start = parse_event({"agent_id": "main", "hlc": [1000, 0], "kind": {
...     "type": "session_started", "channel": "telegram", "peer_id": "u1"}},
...     session_key="s")
>>> view = rebuild("s", [hello, start])
>>> view.header.channel, view.header.message_count, [m.content for m in view.messages]
('telegram', 1, ['hello'])
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from crdt import codec
from crdt.clock import Hlc
from crdt.events import Event

SortKey = tuple[int, int, bytes]


def message_key(sort_key: SortKey) -> str:
    """Fixed-width text form of a sort key; string order equals event order."""
    ms, counter, event_id = sort_key
    return f"{ms:015d}.{counter:010d}.{event_id.hex()}"


@dataclass(frozen=True, slots=True)
class Message:
    """One entry of the message history (the seed's ``SessionMessage``)."""

    sort_key: SortKey
    role: str  # "inbound" (from the peer), "outbound" (to the peer) or "tool"
    content: str  # for a tool: its result as compact JSON, like the seed
    tool_name: str | None = None
    success: bool | None = None

    def to_json(self) -> dict[str, Any]:
        ms, counter, event_id = self.sort_key
        out: dict[str, Any] = {
            "key": message_key(self.sort_key), "id": event_id.hex(),
            "timestamp": Hlc(ms, counter).rfc3339(), "role": self.role,
            "content": self.content}
        if self.role == "tool":
            out["tool_name"] = self.tool_name
            out["success"] = self.success
        return out

    def to_cbor(self) -> list[Any]:
        return [self.role, self.content, self.tool_name, self.success]

    def to_record(self) -> bytes:
        """``codec.encode_fast(self.to_cbor())`` (``message_record``)."""
        return message_record(self.role, self.content, self.tool_name, self.success)

    @classmethod
    def from_cbor(cls, sort_key: SortKey, raw: list[Any]) -> Message:
        role, content, tool_name, success = raw
        return cls(sort_key, role, content, tool_name, success)


MessageFields = tuple[str, str, str | None, bool | None]  # role, content, tool, success


def message_fields(event: Event) -> MessageFields | None:
    """The fields of the history entry an event adds, if any (tool calls add none, as
    in the seed)."""
    kind, payload = event.kind, event.payload
    if kind == "message_received":
        return "inbound", payload["content"], None, None
    if kind in ("message_sent", "agent_response"):
        return "outbound", payload["content"], None, None
    if kind == "tool_result":
        result = json.dumps(payload["result"], separators=(",", ":"), sort_keys=True,
                            ensure_ascii=False)
        return "tool", result, payload["tool_name"], payload["success"]
    return None


def message_of(event: Event) -> Message | None:
    """The history entry an event adds, if any."""
    fields = message_fields(event)
    return None if fields is None else Message(event.sort_key, *fields)


def message_record(role: str, content: str, tool_name: str | None,
                   success: bool | None) -> bytes:
    """A message as stored in its session entry: what ``codec.encode_fast`` gives
    ``[role, content, tool_name, success]``, put together directly (every message takes
    one; cbor2 takes several times as long)."""
    text = codec.encode_text
    return b"".join((_ARRAY_4, _ROLES.get(role) or text(role), text(content),
                     _SIMPLE[None] if tool_name is None else text(tool_name),
                     _SIMPLE[success]))


_ARRAY_4 = codec.head(4, 4)
_SIMPLE = {value: codec.encode_fast(value) for value in (None, False, True)}
_ROLES = {role: codec.encode_text(role) for role in ("inbound", "outbound", "tool")}


@dataclass(slots=True)
class Header:
    """Everything in a projection but the messages. Each LWW field keeps the sort key of
    the event that set it, so a late-arriving older event cannot overwrite a newer one."""

    session_key: str
    agent_id: str = ""
    channel: str = "unknown"
    peer_id: str = "unknown"
    state: str = "active"
    message_count: int = 0  # messages received from the peer, as in the seed
    event_count: int = 0
    last: SortKey | None = None  # newest event: last_activity, last_event_id, agent_id
    started: SortKey | None = None  # the session_started that set channel and peer_id
    state_set: SortKey | None = None
    custom_state: dict[str, tuple[SortKey, Any]] = field(default_factory=dict)

    def apply(self, event: Event) -> Message | None:
        """Fold one new event in; the history entry it adds, if any. The caller
        guarantees each event is applied once."""
        return message_of(event) if self.fold(event) else None

    def fold(self, event: Event) -> bool:
        """``apply`` without building its history entry; False for an event that
        changes nothing. An event of a kind this version does not know changes nothing,
        not even the counts: nodes that know it and nodes that do not show the same of
        everything else. Neither does a forgotten one (a skeleton)."""
        if not event.known or event.forgotten_by is not None:
            return False
        key = event.sort_key
        self.event_count += 1
        if self.last is None or key > self.last:
            self.last = key
            self.agent_id = event.agent_id
        payload = event.payload
        if event.kind == "session_started":
            if self.started is None or key > self.started:
                self.started = key
                self.channel, self.peer_id = payload["channel"], payload["peer_id"]
            self._set_state(key, "active")
        elif event.kind == "session_ended":
            self._set_state(key, "ended")
        elif event.kind == "message_received":
            self.message_count += 1
        elif event.kind == "state_changed":
            current = self.custom_state.get(payload["key"])
            if current is None or key > current[0]:
                self.custom_state[payload["key"]] = (key, payload["value"])
        return True

    def _set_state(self, key: SortKey, state: str) -> None:
        if self.state_set is None or key > self.state_set:
            self.state_set, self.state = key, state

    def fields(self) -> dict[str, Any]:
        """The scalar fields, as JSON values."""
        last = self.last
        return {
            "session_key": self.session_key, "agent_id": self.agent_id,
            "channel": self.channel, "peer_id": self.peer_id, "state": self.state,
            "message_count": self.message_count, "event_count": self.event_count,
            "last_activity": Hlc(last[0], last[1]).rfc3339() if last else None,
            "last_event_id": last[2].hex() if last else None,
        }

    def state_values(self) -> dict[str, Any]:
        return {name: value for name, (_, value) in sorted(self.custom_state.items())}

    def to_cbor(self) -> dict[str, Any]:
        return {
            "session_key": self.session_key, "agent_id": self.agent_id,
            "channel": self.channel, "peer_id": self.peer_id, "state": self.state,
            "message_count": self.message_count, "event_count": self.event_count,
            "last": _key_out(self.last), "started": _key_out(self.started),
            "state_set": _key_out(self.state_set),
            "custom_state": {k: [list(sk), v] for k, (sk, v) in self.custom_state.items()},
        }

    @classmethod
    def from_cbor(cls, raw: dict[str, Any]) -> Header:
        custom = {k: (_key_in(sk), v) for k, (sk, v) in raw["custom_state"].items()}
        return cls(
            raw["session_key"], raw["agent_id"], raw["channel"], raw["peer_id"],
            raw["state"], raw["message_count"], raw["event_count"], _key_in(raw["last"]),
            _key_in(raw["started"]), _key_in(raw["state_set"]), custom)


def _key_out(key: SortKey | None) -> list[Any] | None:
    return None if key is None else list(key)


def _key_in(raw: list[Any] | None) -> Any:
    return None if raw is None else (raw[0], raw[1], raw[2])


@dataclass(frozen=True, slots=True)
class Projection:
    """A full projection: header plus messages in event order."""

    header: Header
    messages: list[Message]

    def to_json(self) -> dict[str, Any]:
        return {**self.header.fields(),
                "messages": [message.to_json() for message in self.messages],
                "custom_state": self.header.state_values()}


def rebuild(session_key: str, events: Iterable[Event]) -> Projection:
    """Fold a set of events from scratch (duplicates by id are ignored)."""
    header = Header(session_key)
    messages = []
    seen: set[bytes] = set()
    for event in events:
        if event.id in seen:
            continue
        seen.add(event.id)
        message = header.apply(event)
        if message is not None:
            messages.append(message)
    return Projection(header, sorted(messages, key=lambda m: m.sort_key))
