"""Session events: the seed's eight kinds, validated, canonically encoded, content-addressed.

An event's id is ``BLAKE2b-256(canonical CBOR of its content)``, where the content is

    {"v": 1, "session_key": str, "agent_id": str, "timestamp": [ms, counter],
     "kind": str, "payload": {field: value}}

so the same event has the same id on every node and in every language. Input comes as a
``dict`` in the seed's JSON form (``kind`` tagged by ``type``), from JSON or CBOR:

    {"session_key": "s1", "agent_id": "main", "timestamp": "2026-01-01T00:00:00Z",
     "kind": {"type": "message_received", "content": "hi", "attachments": []}}

``parse_event`` turns such a dict into an ``Event``, or into a ``Draft`` when it has no
timestamp yet: the store's clock stamps a draft when it is appended (``Draft.seal``).

>>> event = parse_event({"agent_id": "main", "hlc": [1700000000000, 0],
...     "kind": {"type": "session_ended", "reason": "done"}}, session_key="s1")
>>> event.id.hex()[:16]
'e3b72f56f17c9854'
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from crdt import codec
from crdt.clock import COUNTER_MAX, MS_MAX, Hlc
from crdt.errors import IdMismatch, InvalidInput, LimitExceeded
from crdt.keys import _type_name, check_name, check_session_key, utf8_len

#: Version of the hashed content layout; part of every id.
SCHEMA_VERSION = 1
#: Largest canonical encoding of one event, in bytes. Bounds memory per event, the size of
#: a session's Automerge document and of a replication batch. Big tool outputs belong in
#: attachments stored elsewhere.
EVENT_BYTES_MAX = 128 * 1024
ID_BYTES = 32

Validator = Callable[[Any, str], Any]


def _string(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"must be a string, not {_type_name(value)}", field=field)
    utf8_len(value, field)
    return value


def _boolean(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"must be a boolean, not {_type_name(value)}", field=field)
    return value


def _json(value: Any, field: str, depth: int = 0) -> Any:
    """Normalise a JSON value so it hashes the same in every language: integral floats
    become integers (JavaScript cannot tell 1.0 from 1), NaN and infinities are refused,
    integers must fit in 64 bits."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -(2**63) <= value < 2**64:
            raise InvalidInput("integer does not fit in 64 bits", field=field)
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput("NaN and infinity are not JSON numbers", field=field)
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if isinstance(value, str):
        return _string(value, field)
    if depth >= codec.DEPTH_MAX:
        raise LimitExceeded(f"nesting deeper than {codec.DEPTH_MAX}", field=field)
    if isinstance(value, list):
        return [_json(item, f"{field}[{i}]", depth + 1) for i, item in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInput("object keys must be strings", field=field)
            out[_string(key, field)] = _json(item, f"{field}.{key}", depth + 1)
        return out
    raise InvalidInput(f"{_type_name(value)} is not a JSON value", field=field)


def _optional_string(value: Any, field: str) -> str | None:
    return None if value is None else _string(value, field)


def _optional_size(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**64:
        raise InvalidInput("must be a non-negative integer or null", field=field)
    return value


def _attachments(value: Any, field: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise InvalidInput(f"must be an array, not {_type_name(value)}", field=field)
    out = []
    for i, item in enumerate(value):
        where = f"{field}[{i}]"
        out.append(_fields(item, where, _ATTACHMENT_FIELDS, _ATTACHMENT_DEFAULTS))
    return out


def _tokens(value: Any, field: str) -> dict[str, int]:
    """The seed's ``TokenUsage``: counts by name (``input``, ``output``, ...)."""
    if not isinstance(value, dict):
        raise InvalidInput(f"must be an object, not {_type_name(value)}", field=field)
    for key, count in value.items():
        check_name(key, f"{field} key")
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count < 2**64:
            raise InvalidInput("must be a non-negative integer", field=f"{field}.{key}")
    return dict(value)


def _state_key(value: Any, field: str) -> str:
    return check_name(value, field)


_ATTACHMENT_FIELDS: dict[str, Validator] = {
    "kind": _string, "mime_type": _optional_string, "size": _optional_size}
_ATTACHMENT_DEFAULTS: dict[str, Any] = {"mime_type": None, "size": None}

#: The seed's ``SessionEventKind`` variants and their fields, in serde's snake_case.
KINDS: dict[str, dict[str, Validator]] = {
    "session_started": {"channel": _string, "peer_id": _string},
    "message_received": {"content": _string, "attachments": _attachments},
    "message_sent": {"content": _string, "message_id": _string},
    "tool_called": {"tool_name": _string, "params": _json},
    "tool_result": {"tool_name": _string, "result": _json, "success": _boolean},
    "agent_response": {"content": _string, "model": _string, "tokens": _tokens},
    "session_ended": {"reason": _string},
    "state_changed": {"key": _state_key, "value": _json},
}
#: Fields that may be left out, and the value they then take.
DEFAULTS: dict[str, dict[str, Any]] = {
    "message_received": {"attachments": []},
    "agent_response": {"tokens": {}},
}


def _fields(obj: Any, where: str, spec: dict[str, Validator],
            defaults: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise InvalidInput(f"must be an object, not {_type_name(obj)}", field=where)
    unknown = sorted(set(obj) - set(spec) - {"type"})
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r}", field=where)
    out = {}
    for name, check in spec.items():
        field = f"{where}.{name}"
        if name in obj:
            out[name] = check(obj[name], field)
        elif name in defaults:
            out[name] = defaults[name]
        else:
            raise InvalidInput("is required", field=field)
    return out


def parse_kind(obj: Any, where: str = "kind") -> tuple[str, dict[str, Any]]:
    """Validate a ``{"type": ..., fields...}`` object; return ``(kind, payload)``."""
    if not isinstance(obj, dict):
        raise InvalidInput(f"must be an object, not {_type_name(obj)}", field=where)
    kind = obj.get("type")
    if not isinstance(kind, str) or kind not in KINDS:
        raise InvalidInput(f"unknown event type {kind!r}; expected one of "
                           f"{', '.join(KINDS)}", field=f"{where}.type")
    return kind, _fields(obj, where, KINDS[kind], DEFAULTS.get(kind, {}))


@dataclass(frozen=True, slots=True)
class Event:
    """A sealed event: content plus its canonical bytes and id."""

    session_key: str
    agent_id: str
    timestamp: Hlc
    kind: str
    payload: dict[str, Any]
    canonical: bytes
    id: bytes

    @property
    def sort_key(self) -> tuple[int, int, bytes]:
        """Events of a session are totally ordered by ``(timestamp, id)``."""
        return (self.timestamp.ms, self.timestamp.counter, self.id)

    def to_json(self) -> dict[str, Any]:
        """The seed's JSON form, plus ``hlc`` (the exact timestamp) and a hex id."""
        return {
            "id": self.id.hex(),
            "session_key": self.session_key,
            "agent_id": self.agent_id,
            "timestamp": self.timestamp.rfc3339(),
            "hlc": [self.timestamp.ms, self.timestamp.counter],
            "kind": {"type": self.kind, **self.payload},
        }

    @classmethod
    def from_trusted(cls, data: bytes, event_id: bytes) -> Event:
        """Rebuild an event that this node verified before it stored it (no re-validation)."""
        content = codec.decode_trusted(data)
        ms, counter = content["timestamp"]
        return cls(content["session_key"], content["agent_id"], Hlc(ms, counter),
                   content["kind"], content["payload"], data, event_id)

    @classmethod
    def from_canonical(cls, data: bytes) -> Event:
        """Rebuild and verify an event from its canonical bytes (from disk or a peer).

        Refuses anything that is not exactly the canonical encoding of a valid event, so
        a peer cannot smuggle in a second encoding of the same content.
        """
        if len(data) > EVENT_BYTES_MAX:
            raise LimitExceeded(f"event is {len(data)} bytes; the limit is {EVENT_BYTES_MAX}")
        # The hashed content wraps each field in two maps (content, payload), so it may be
        # two levels deeper than the depth ``parse_event`` allows inside a field.
        content = codec.decode(data, depth_max=codec.DEPTH_MAX + 2)
        if not isinstance(content, dict) or content.get("v") != SCHEMA_VERSION:
            raise InvalidInput(f"not a version {SCHEMA_VERSION} event")
        if set(content) != {"v", "session_key", "agent_id", "timestamp", "kind", "payload"}:
            raise InvalidInput("event content has missing or extra fields")
        stamp = content["timestamp"]
        if not isinstance(stamp, list) or len(stamp) != 2:
            raise InvalidInput("must be [ms, counter]", field="timestamp")
        kind = content["kind"]
        if not isinstance(kind, str) or kind not in KINDS:
            raise InvalidInput(f"unknown event type {kind!r}", field="kind")
        event = Draft(
            session_key=check_session_key(content["session_key"]),
            agent_id=check_name(content["agent_id"], "agent_id"),
            kind=kind,
            payload=_fields(content["payload"], "payload", KINDS[kind], {}),
            timestamp=Hlc(*stamp).check(),
        ).seal()
        if event.canonical != data:
            raise InvalidInput("event bytes are not in canonical form")
        return event


@dataclass(frozen=True, slots=True)
class Draft:
    """A validated event that may still lack its timestamp (the store's clock adds it)."""

    session_key: str
    agent_id: str
    kind: str
    payload: dict[str, Any]
    timestamp: Hlc | None = None
    claimed_id: bytes | None = None

    def seal(self, timestamp: Hlc | None = None) -> Event:
        """Fix the timestamp, encode canonically and hash. Checks a claimed id."""
        stamp = self.timestamp or timestamp
        if stamp is None:
            raise ValueError("a draft without a timestamp needs one to be sealed")
        canonical = codec.encode({
            "v": SCHEMA_VERSION,
            "session_key": self.session_key,
            "agent_id": self.agent_id,
            "timestamp": [stamp.ms, stamp.counter],
            "kind": self.kind,
            "payload": self.payload,
        })
        event_id = hashlib.blake2b(canonical, digest_size=ID_BYTES).digest()
        if self.claimed_id is not None and self.claimed_id != event_id:
            raise IdMismatch(f"does not match the content (hash is {event_id.hex()})",
                             field="id")
        return Event(self.session_key, self.agent_id, stamp, self.kind, self.payload,
                     canonical, event_id)


_TOP_FIELDS = {"id", "session_key", "agent_id", "timestamp", "hlc", "kind",
               # Local metadata in our own output: accepted so output can be re-posted.
               "position", "origin", "seq", "created"}


def parse_event(obj: Any, *, session_key: str | None = None,
                where: str = "") -> Draft | Event:
    """Validate one event from client input (JSON or CBOR) or a seed JSON export.

    Input with a timestamp is a complete event and comes back sealed (its claimed id, if
    any, checked); input without one comes back as a ``Draft`` for the store to stamp.

    ``session_key`` is the key from the URL; a key in the body must then agree with it.
    ``where`` prefixes field names in errors (``"events[3]"``).
    """
    prefix = f"{where}." if where else ""
    if not isinstance(obj, dict):
        raise InvalidInput(f"an event must be an object, not {_type_name(obj)}",
                           field=where or None)
    unknown = sorted(set(obj) - _TOP_FIELDS)
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r}", field=where or None)
    key = obj.get("session_key", session_key)
    if key is None:
        raise InvalidInput("is required", field=f"{prefix}session_key")
    key = check_session_key(key, f"{prefix}session_key")
    if session_key is not None and key != session_key:
        raise InvalidInput("differs from the session in the URL", field=f"{prefix}session_key")
    if "agent_id" not in obj:
        raise InvalidInput("is required", field=f"{prefix}agent_id")
    agent_id = check_name(obj["agent_id"], f"{prefix}agent_id")
    if "kind" not in obj:
        raise InvalidInput("is required", field=f"{prefix}kind")
    kind, payload = parse_kind(obj["kind"], f"{prefix}kind")
    timestamp = _parse_timestamp(obj, prefix)
    claimed = _parse_id(obj.get("id"), f"{prefix}id")
    if claimed is not None and timestamp is None:
        raise InvalidInput("an id can only be checked when the timestamp is given",
                           field=f"{prefix}id")
    draft = Draft(key, agent_id, kind, payload, timestamp, claimed)
    # Sealing now raises IdMismatch before anything is queued; an unstamped draft is
    # measured with the widest timestamp, so it cannot outgrow the limit when stamped.
    try:
        sealed = draft.seal(Hlc(MS_MAX, COUNTER_MAX))
    except IdMismatch as error:
        raise IdMismatch(error.reason, field=f"{prefix}id") from None
    if len(sealed.canonical) > EVENT_BYTES_MAX:
        raise LimitExceeded(f"event is {len(sealed.canonical)} bytes encoded; the limit is "
                            f"{EVENT_BYTES_MAX}", field=where or None)
    return sealed if timestamp is not None else draft


def _parse_timestamp(obj: dict[str, Any], prefix: str) -> Hlc | None:
    """``hlc: [ms, counter]`` is exact; ``timestamp`` may be RFC 3339 or integer ms."""
    hlc = None
    if obj.get("hlc") is not None:
        raw = obj["hlc"]
        if not isinstance(raw, list) or len(raw) != 2:
            raise InvalidInput("must be [ms, counter]", field=f"{prefix}hlc")
        hlc = Hlc(*raw).check(f"{prefix}hlc")
    stamp = obj.get("timestamp")
    if stamp is None:
        return hlc
    field = f"{prefix}timestamp"
    if isinstance(stamp, str):
        parsed = Hlc.parse_rfc3339(stamp, field)
    elif isinstance(stamp, int) and not isinstance(stamp, bool):
        parsed = Hlc(stamp, 0).check(field)
    else:
        raise InvalidInput("must be an RFC 3339 string or integer milliseconds", field=field)
    if hlc is None:
        return parsed
    if hlc.ms != parsed.ms:
        raise InvalidInput("disagrees with hlc", field=field)
    return hlc


def _parse_id(raw: Any, field: str) -> bytes | None:
    """A hex id is checked against the content. The seed's ids (an array of 32 bytes) hash
    a Rust debug string no other program can reproduce: they are dropped on import."""
    if raw is None or isinstance(raw, list):
        return None
    if isinstance(raw, bytes):
        value = raw
    elif isinstance(raw, str):
        try:
            value = bytes.fromhex(raw)
        except ValueError:
            raise InvalidInput("must be 64 hex digits", field=field) from None
    else:
        raise InvalidInput("must be 64 hex digits", field=field)
    if len(value) != ID_BYTES:
        raise InvalidInput("must be 64 hex digits", field=field)
    return value

