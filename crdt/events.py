"""Session events: validated, canonically encoded, content-addressed (kinds: ``crdt.kinds``).

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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from crdt import codec
from crdt.clock import COUNTER_MAX, MS_MAX, Hlc
from crdt.errors import IdMismatch, InvalidInput, LimitExceeded
from crdt.event_objects import draft_maker, event_maker, new_hlc
from crdt.keys import (
    NAME_BYTES_MAX,
    SESSION_KEY_BYTES_MAX,
    check_name,
    check_session_key,
    type_name,
)
from crdt.kinds import (
    KINDS,
    NODES_AGENT_ID,
    RECORD_KINDS,
    check_payload,
    parse_kind,
    written_by_nodes,
)

# NAMES and SESSION_KEYS are bound here once, for the quick path: they are fixed objects,
# to clear (as ``encoded_name`` does when one is full), never to rebind.
from crdt.quick_checks import NAMES, SESSION_KEYS, encoded_name, plain_only

#: Version of the hashed content layout; part of every id.
SCHEMA_VERSION = 1
#: Largest canonical encoding of one event, in bytes. Bounds memory per event, the size of
#: a session's Automerge document and of a replication batch. Big tool outputs belong in
#: attachments stored elsewhere.
EVENT_BYTES_MAX = 128 * 1024
ID_BYTES = 32


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
    #: Set on a skeleton: an event whose content was forgotten (``crdt.log.forget``):
    #: the id of the forget record that covers it. A skeleton keeps what replication
    #: needs (id, session, agent, timestamp, kind); its payload is empty and it has no
    #: canonical bytes (b""), so it cannot be re-hashed: it travels with its proof.
    forgotten_by: bytes | None = None

    @property
    def sort_key(self) -> tuple[int, int, bytes]:
        """Events of a session are totally ordered by ``(timestamp, id)``."""
        return (self.timestamp.ms, self.timestamp.counter, self.id)

    @property
    def known(self) -> bool:
        """True if this version knows the event's kind (projections read it)."""
        return self.kind in KINDS

    def to_json(self) -> dict[str, Any]:
        """The seed's JSON form, plus ``hlc`` (the exact timestamp) and a hex id; and
        ``"known_kind": false`` for a kind this version does not know."""
        out: dict[str, Any] = {
            "id": self.id.hex(),
            "session_key": self.session_key,
            "agent_id": self.agent_id,
            "timestamp": self.timestamp.rfc3339(),
            "hlc": [self.timestamp.ms, self.timestamp.counter],
            "kind": {"type": self.kind, **self.payload},
        }
        if not self.known and self.kind not in RECORD_KINDS:
            out["known_kind"] = False
        if self.forgotten_by is not None:
            out["forgotten_by"] = self.forgotten_by.hex()
        return out

    def skeleton(self, forgotten_by: bytes) -> Event:
        """This event with its content forgotten by the record ``forgotten_by``."""
        return Event(self.session_key, self.agent_id, self.timestamp, self.kind, {}, b"",
                     self.id, forgotten_by)

    def skeleton_fields(self) -> dict[str, Any]:
        """What a skeleton keeps, as stored and sent (with the id)."""
        assert self.forgotten_by is not None
        return {"id": self.id, "session_key": self.session_key, "agent_id": self.agent_id,
                "timestamp": [self.timestamp.ms, self.timestamp.counter],
                "kind": self.kind, "forgotten_by": self.forgotten_by}

    @classmethod
    def from_skeleton_fields(cls, fields: dict[str, Any]) -> Event:
        """A skeleton from ``skeleton_fields`` this node wrote (no checks)."""
        ms, counter = fields["timestamp"]
        return cls(fields["session_key"], fields["agent_id"], Hlc(ms, counter),
                   fields["kind"], {}, b"", fields["id"], fields["forgotten_by"])

    @classmethod
    def from_trusted(cls, data: bytes, event_id: bytes) -> Event:
        """Rebuild an event that this node verified before it stored it (no re-validation)."""
        content = codec.decode_trusted(data)
        ms, counter = content["timestamp"]
        # Made as a peer's events are (``_new_event``): every event read back with its
        # content (``StoredEvent.from_record``) is made this way.
        return _new_event(content["session_key"], content["agent_id"],
                          new_hlc(Hlc, (ms, counter)), content["kind"], content["payload"],
                          data, event_id)

    @classmethod
    def from_canonical(cls, data: bytes) -> Event:
        """Rebuild and verify an event from its canonical bytes (from disk or a peer).

        Refuses anything that is not exactly the canonical encoding of a valid event, so
        a peer cannot smuggle in a second encoding of the same content. A kind or fields
        this version does not know are kept as they are (``crdt.kinds``).
        """
        event = _from_canonical_quickly(data)
        if event is not None:
            return event
        # Not laid out as a draft seals, or in doubt: decide the long way, which also
        # names the fault.
        return cls._from_canonical_thoroughly(data)

    @classmethod
    def _from_canonical_thoroughly(cls, data: bytes) -> Event:
        """``from_canonical`` by decoding, validating and re-encoding everything."""
        if len(data) > EVENT_BYTES_MAX:
            raise LimitExceeded(f"event is {len(data)} bytes; the limit is {EVENT_BYTES_MAX}")
        content = codec.decode(data, depth_max=_CONTENT_DEPTH_MAX)
        if not isinstance(content, dict) or content.get("v") != SCHEMA_VERSION:
            raise InvalidInput(f"not a version {SCHEMA_VERSION} event")
        if set(content) != {"v", "session_key", "agent_id", "timestamp", "kind", "payload"}:
            raise InvalidInput("event content has missing or extra fields")
        stamp = content["timestamp"]
        if not isinstance(stamp, list) or len(stamp) != 2:
            raise InvalidInput("must be [ms, counter]", field="timestamp")
        kind = check_name(content["kind"], "kind")  # known or not: see crdt.kinds
        session_key = check_session_key(content["session_key"])
        agent_id = check_name(content["agent_id"], "agent_id")
        payload = check_payload(kind, content["payload"], "payload", fill_defaults=False)
        timestamp = Hlc(*stamp).check()
        # What ``Draft.seal`` would encode, encoded at once: a peer's catch-up checks
        # every event, and one encoding costs a third of the draft's three.
        canonical = codec.encode({"v": SCHEMA_VERSION, "session_key": session_key,
                                  "agent_id": agent_id, "kind": kind, "payload": payload,
                                  "timestamp": [timestamp.ms, timestamp.counter]})
        if canonical != data:
            raise InvalidInput("event bytes are not in canonical form")
        return cls(session_key, agent_id, timestamp, kind, payload, data,
                   hashlib.blake2b(data, digest_size=ID_BYTES).digest())


#: Events and drafts are made without their ``__init__`` (``crdt.event_objects``).
_new_event = event_maker(Event)


# The canonical content map holds six entries, sorted by their encoded keys: "v", "kind",
# "payload", "agent_id", then "timestamp", then "session_key". So an event's bytes are
# one part before the timestamp, the timestamp, and one part after it: a draft encodes
# and hashes the parts around the timestamp once, however often it is stamped.
_MAP_OF_SIX = b"\xa6"
_UP_TO_KIND = _MAP_OF_SIX + codec.encode("v") + codec.encode(SCHEMA_VERSION) + \
    codec.encode("kind")
_PAYLOAD_KEY = codec.encode("payload")
_AGENT_ID_KEY = codec.encode("agent_id")
_TIMESTAMP_KEY = codec.encode("timestamp")
_SESSION_KEY_KEY = codec.encode("session_key")


#: The hashed content wraps each field in two maps (content, payload), so it may be two
#: levels deeper than the depth ``parse_event`` allows inside a field.
_CONTENT_DEPTH_MAX = codec.DEPTH_MAX + 2


def _from_canonical_quickly(data: bytes) -> Event | None:
    """``Event.from_canonical(data)`` for the bytes of a valid event, or None when it
    cannot tell as cheaply (then the long way decides, and names the fault).

    Canonical bytes are laid out as ``Draft.parts`` lays them out, so they are
    canonical if they are that layout of their decoded fields, with the payload as
    validation leaves it, canonically encoded (``codec.encode_json``). Decoding checks no
    types: the payload's are those its validators take, which must be those of
    ``crdt.kinds``, see ``crdt.quick_checks.plain_only``.
    """
    if len(data) > EVENT_BYTES_MAX or not data.startswith(_UP_TO_KIND):
        return None
    try:
        # One level less than the long way, so that ``check_plain`` takes the value.
        content = codec.decode_first(data, depth_max=_CONTENT_DEPTH_MAX - 1)
    except codec.DECODE_ERRORS:
        return None
    if type(content) is not dict or len(content) != 6:
        return None
    kind: Any = content.get("kind")
    agent_id: Any = content.get("agent_id")
    session_key: Any = content.get("session_key")
    payload, stamp = content.get("payload"), content.get("timestamp")
    if type(stamp) is not list or len(stamp) != 2:
        return None
    ms, counter = stamp
    if type(ms) is not int or type(counter) is not int or not 0 <= ms <= MS_MAX \
            or not 0 <= counter <= COUNTER_MAX:
        return None
    kind_bytes = encoded_name(kind, NAME_BYTES_MAX, NAMES)
    agent_id_bytes = encoded_name(agent_id, NAME_BYTES_MAX, NAMES)
    session_key_bytes = encoded_name(session_key, SESSION_KEY_BYTES_MAX, SESSION_KEYS)
    if kind_bytes is None or agent_id_bytes is None or session_key_bytes is None \
            or not plain_only(kind):
        return None
    try:
        checked = check_payload(kind, payload, "payload", fill_defaults=False)
    except InvalidInput:
        return None
    layout = b"".join((_UP_TO_KIND, kind_bytes, _PAYLOAD_KEY, codec.encode_json(checked),
                       _AGENT_ID_KEY, agent_id_bytes, _TIMESTAMP_KEY,
                       codec.encode_stamp(ms, counter), _SESSION_KEY_KEY, session_key_bytes))
    if layout != data:
        return None
    return _new_event(session_key, agent_id, new_hlc(Hlc, (ms, counter)), kind, checked,
                      data, hashlib.blake2b(data, digest_size=ID_BYTES).digest())


@dataclass(frozen=True, slots=True)
class _Parts:
    """A draft's canonical bytes around the timestamp, and the hash of the first part."""

    before: bytes
    after: bytes
    hashed_before: Any  # a hashlib.blake2b object fed ``before``; copied for each seal

    def encoded_size(self, stamp: Hlc | None = None) -> int:
        """Bytes of the event sealed with ``stamp``; with none, with the widest."""
        stamp_bytes = _WIDEST_STAMP_BYTES if stamp is None else \
            len(codec.encode_stamp(stamp.ms, stamp.counter))
        return len(self.before) + stamp_bytes + len(self.after)


@dataclass(frozen=True, slots=True)
class Draft:
    """A validated event that may still lack its timestamp (the store's clock adds it)."""

    session_key: str
    agent_id: str
    kind: str
    payload: dict[str, Any]
    timestamp: Hlc | None = None
    claimed_id: bytes | None = None
    _parts: _Parts | None = field(default=None, init=False, repr=False, compare=False)

    def parts(self) -> _Parts:
        """The canonical bytes around the timestamp, encoded on first use."""
        if self._parts is None:
            # The four entries that sort before "timestamp", put together in their
            # canonical order: only the payload needs its keys sorted
            # (``codec.encode_json``).
            # Names a check took are encoded already (``encoded_name``).
            before = b"".join((_UP_TO_KIND, NAMES.get(self.kind) or codec.encode_text(self.kind),
                               _PAYLOAD_KEY, codec.encode_json(self.payload), _AGENT_ID_KEY,
                               NAMES.get(self.agent_id) or codec.encode_text(self.agent_id),
                               _TIMESTAMP_KEY))
            after = _SESSION_KEY_KEY + (SESSION_KEYS.get(self.session_key)
                                        or codec.encode_text(self.session_key))
            object.__setattr__(self, "_parts", _Parts(
                before, after, hashlib.blake2b(before, digest_size=ID_BYTES)))
        assert self._parts is not None
        return self._parts

    def seal(self, timestamp: Hlc | None = None) -> Event:
        """Fix the timestamp, encode canonically and hash. Checks a claimed id."""
        stamp = self.timestamp or timestamp
        if stamp is None:
            raise ValueError("a draft without a timestamp needs one to be sealed")
        parts = self.parts()
        rest = codec.encode_stamp(stamp.ms, stamp.counter) + parts.after
        canonical = parts.before + rest
        hasher = parts.hashed_before.copy()
        hasher.update(rest)
        event_id = hasher.digest()
        if self.claimed_id is not None and self.claimed_id != event_id:
            raise IdMismatch(f"does not match the content (hash is {event_id.hex()})",
                             field="id")
        return _new_event(self.session_key, self.agent_id, stamp, self.kind, self.payload,
                          canonical, event_id)


_new_draft = draft_maker(Draft)


def _is_count(value: Any) -> bool:
    return type(value) is int and value >= 0  # not a boolean


#: Local metadata in a node's own output, by what each must be: accepted so that output
#: can be posted again, and ignored (each node numbers what it stores). A value of
#: another type is refused, as a mistyped field is anywhere else.
_LOCAL_FIELDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "position": ("a non-negative integer", _is_count),
    "seq": ("a non-negative integer", _is_count),
    "origin": ("a string", lambda value: isinstance(value, str)),
    "created": ("a boolean", lambda value: isinstance(value, bool)),
    "known_kind": ("a boolean", lambda value: isinstance(value, bool)),
}
_TOP_FIELDS = {"id", "session_key", "agent_id", "timestamp", "hlc", "kind", *_LOCAL_FIELDS}


def parse_event(obj: Any, *, session_key: str | None = None, where: str = "",
                records_ok: bool = False) -> Draft | Event:
    """Validate one event from client input (JSON or CBOR) or a seed JSON export.

    Input with a timestamp is a complete event and comes back sealed (its claimed id, if
    any, checked); input without one comes back as a ``Draft`` for the store to stamp.

    ``session_key`` is the key from the URL; a key in the body must then agree with it.
    ``where`` prefixes field names in errors (``"events[3]"``). ``records_ok``: the
    event is read from what a node showed (``GET .../events``), never taken from a
    client, and may be a record nodes write (``crdt.kinds.RECORD_KINDS``), with its id.
    """
    prefix = f"{where}." if where else ""
    if not isinstance(obj, dict):
        raise InvalidInput(f"an event must be an object, not {type_name(obj)}",
                           field=where or None)
    unknown = obj.keys() - _TOP_FIELDS
    if obj.get("forgotten_by") is not None:  # as our own output shows a forgotten event
        raise InvalidInput("the event was forgotten: its content is gone, and it cannot "
                           "be stored again", field=f"{prefix}forgotten_by")
    if unknown:
        raise InvalidInput(f"unknown field {min(unknown)!r}", field=where or None)
    for name in obj.keys() & _LOCAL_FIELDS.keys():
        what, fits = _LOCAL_FIELDS[name]
        if not fits(obj[name]):
            shown = obj[name] if type(obj[name]) is int else type_name(obj[name])
            raise InvalidInput(f"must be {what}, not {shown} (a node's own numbering, "
                               "ignored here)", field=f"{prefix}{name}")
    key = obj.get("session_key", session_key)
    if key is None:
        raise InvalidInput("is required", field=f"{prefix}session_key")
    # Names taken before are known (``encoded_name``, which ``Draft.parts`` reads
    # too): a client repeats its session keys and agent ids. Any other is checked the
    # long way, which names the fault.
    if encoded_name(key, SESSION_KEY_BYTES_MAX, SESSION_KEYS) is None:
        key = check_session_key(key, f"{prefix}session_key")
    if session_key is not None and key != session_key:
        raise InvalidInput("differs from the session in the URL", field=f"{prefix}session_key")
    if "agent_id" not in obj:
        raise InvalidInput("is required", field=f"{prefix}agent_id")
    agent_id = obj["agent_id"]
    if encoded_name(agent_id, NAME_BYTES_MAX, NAMES) is None:
        agent_id = check_name(agent_id, f"{prefix}agent_id")
    if "kind" not in obj:
        raise InvalidInput("is required", field=f"{prefix}kind")
    timestamp = parse_timestamp(obj, prefix)
    claimed = _parse_id(obj.get("id"), f"{prefix}id")
    if claimed is not None and timestamp is None:
        raise InvalidInput("an id can only be checked when the timestamp is given",
                           field=f"{prefix}id")
    # A kind this version does not know comes only as a copy of an event written by a
    # newer one: with its timestamp and id, which also rule out a mistyped kind.
    kind, payload = parse_kind(obj["kind"], f"{prefix}kind", unknown_ok=claimed is not None,
                               records_ok=records_ok)
    if not records_ok and written_by_nodes(kind, agent_id, kind in KINDS):
        raise InvalidInput(f"{kind!r} under the agent {NODES_AGENT_ID!r} is a record of a "
                           "later version, written by nodes and never taken from a client",
                           field=f"{prefix}kind.type")
    draft = _new_draft(key, agent_id, kind, payload, timestamp, claimed)
    # An unstamped draft is measured with the widest timestamp, so it cannot outgrow the
    # limit when stamped.
    size = draft.parts().encoded_size(timestamp)
    if size > EVENT_BYTES_MAX:
        raise LimitExceeded(f"event is {size} bytes encoded; the limit is "
                            f"{EVENT_BYTES_MAX}", field=where or None)
    if timestamp is None:
        return draft
    # Sealing now raises IdMismatch before anything is queued.
    try:
        return draft.seal()
    except IdMismatch as error:
        raise IdMismatch(error.reason, field=f"{prefix}id") from None


#: Bytes of the widest timestamp: what an unstamped draft is measured with.
_WIDEST_STAMP_BYTES = len(codec.encode_stamp(MS_MAX, COUNTER_MAX))


def parse_timestamp(obj: dict[str, Any], prefix: str) -> Hlc | None:
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
        if not 0 <= stamp <= MS_MAX:  # Hlc.check would speak of [ms, counter]
            raise InvalidInput(f"integer milliseconds must be from 0 to {MS_MAX}",
                               field=field)
        parsed = Hlc(stamp, 0)
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

