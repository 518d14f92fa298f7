"""The kinds of event this version knows, and how events evolve between versions.

The seed's eight kinds and their fields are ``KINDS`` (with ``DEFAULTS`` for the fields a
client may leave out). The rule by which the format evolves, so that nodes can be
upgraded one at a time:

* A newer version may add kinds, and fields to any kind. It never removes a field,
  changes a field's type or meaning, or changes the hashed envelope (``SCHEMA_VERSION``
  in ``crdt.events``: a change there is a new schema, which older nodes refuse).
* A field's name is a name (1 to 256 UTF-8 bytes, no control characters; ``type`` is
  the kind's); a field's value is a JSON value, normalised as every value is (``1.0`` is
  ``1``), so the same content has the same id in every version and language.
* A node stores, hashes and forwards an event of a kind it does not know, or with
  fields it does not know, exactly as it was written: the id proves it. Projections skip
  kinds they do not know and fields they do not read. Only malformed bytes, a known
  field of the wrong type, or a missing known field are refused.

Records the node itself writes ride on this rule as kinds outside ``KINDS``, so that
projections skip them on every version alike: ``origin_retired`` (``crdt.log.retire``)
and ``forget`` (``crdt.log.forget``); in the session ``clawsync:devices``, ``device_key``,
``device_added``, ``device_removed``, ``token_issued`` and ``token_revoked`` (``crdt.membership``).

A build that knows more kinds (an extension, a test) registers them with
``register_kind`` before it starts its node.

>>> parse_kind({"type": "session_ended", "reason": "done", "source": "openclaw"})
('session_ended', {'reason': 'done', 'source': 'openclaw'})
>>> parse_kind({"type": "reaction_added", "emoji": "+1"})
Traceback (most recent call last):
crdt.errors.InvalidInput: kind.type: unknown event type 'reaction_added'; expected one of ...
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from crdt.errors import InvalidInput, LimitExceeded
from crdt.keys import DEPTH_MAX, NAME_BYTES_MAX, check_name, type_name, utf8_len

Validator = Callable[[Any, str], Any]


def text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"must be a string, not {type_name(value)}", field=field)
    utf8_len(value, field)
    return value


def _boolean(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"must be a boolean, not {type_name(value)}", field=field)
    return value


def json_value(value: Any, field: str, depth: int = 0) -> Any:
    """Normalise a JSON value so it hashes the same in every language: integral floats
    become integers (JavaScript cannot tell 1.0 from 1), NaN and infinities are refused,
    integers must fit in 64 bits.

    >>> json_value({"n": 1.0, "x": [0.5, "é", None]}, "params")
    {'n': 1, 'x': [0.5, 'é', None]}
    >>> json_value({"x": [1, float("nan")]}, "params")
    Traceback (most recent call last):
    crdt.errors.InvalidInput: params.x[1]: NaN and infinity are not JSON numbers
    """
    try:
        return _json_quickly(value, depth)
    except _Doubt:
        return _json_value(value, field, depth)


class _Doubt(Exception):
    """A quick check leaves the value to its validator, which decides and names the fault."""


def _json_quickly(value: Any, depth: int) -> Any:
    """``json_value(value, ...)`` for a value it takes as plain types (no subclasses),
    without building a label for each item and key; ``_Doubt`` for any other."""
    kind = type(value)
    if kind is str:
        if not value.isascii():
            _encodes(value)
        return value
    if kind is int:
        if not -(2**63) <= value < 2**64:
            raise _Doubt
        return value
    if kind is float:
        if not math.isfinite(value):
            raise _Doubt
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if value is None or kind is bool:
        return value
    if depth >= DEPTH_MAX:
        raise _Doubt
    if kind is list:
        return [_json_quickly(item, depth + 1) for item in value]
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _Doubt
            if not key.isascii():
                _encodes(key)
            out[key] = _json_quickly(item, depth + 1)
        return out
    raise _Doubt


def _encodes(value: str) -> None:
    """``_Doubt`` unless ``value`` is valid Unicode (``utf8_len``)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _Doubt from None


def _json_value(value: Any, field: str, depth: int = 0) -> Any:
    """``json_value``, labelling every item and key as it goes (the faults' fields)."""
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
        return text(value, field)
    if depth >= DEPTH_MAX:
        raise LimitExceeded(f"nesting deeper than {DEPTH_MAX}", field=field)
    if isinstance(value, list):
        return [_json_value(item, f"{field}[{i}]", depth + 1)
                for i, item in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInput("object keys must be strings", field=field)
            out[text(key, field)] = _json_value(item, f"{field}.{key}", depth + 1)
        return out
    raise InvalidInput(f"{type_name(value)} is not a JSON value", field=field)


#: What a byte count or token count may be (an unsigned 64-bit integer, the seed's
#: ``u64``): said whole, so that a count past the top is not refused as "negative".
COUNT_WORDS = "an integer from 0 to 2^64 - 1"


def _optional_string(value: Any, field: str) -> str | None:
    return None if value is None else text(value, field)


def _optional_size(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**64:
        raise InvalidInput(f"must be {COUNT_WORDS}, or null", field=field)
    return value


def _attachments(value: Any, field: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise InvalidInput(f"must be an array, not {type_name(value)}", field=field)
    out = []
    for i, item in enumerate(value):
        quick = _attachment_quickly(item)
        out.append(quick if quick is not None else
                   _record(item, f"{field}[{i}]", _ATTACHMENT_FIELDS, _ATTACHMENT_DEFAULTS))
    return out


def _attachment_quickly(item: Any) -> dict[str, Any] | None:
    """What ``_record`` makes of an attachment of exactly its three fields, with ASCII
    text and a size in range or nulls; None for any other (``_record`` decides)."""
    if type(item) is not dict or len(item) != 3 or "size" not in item \
            or "mime_type" not in item or "kind" not in item:
        return None
    kind, mime_type, size = item["kind"], item["mime_type"], item["size"]
    if type(kind) is str and kind.isascii() \
            and (mime_type is None or (type(mime_type) is str and mime_type.isascii())) \
            and (size is None or (type(size) is int and 0 <= size < 2**64)):
        return {"kind": kind, "mime_type": mime_type, "size": size}
    return None


def _tokens(value: Any, field: str) -> dict[str, int]:
    """The seed's ``TokenUsage``: counts by name (``input``, ``output``, ...)."""
    if type(value) is dict and all(
            type(key) is str and 0 < len(key) <= NAME_BYTES_MAX and key.isascii()
            and key.isprintable() and type(count) is int and 0 <= count < 2**64
            for key, count in value.items()):
        return dict(value)  # printable ASCII names: what ``check_name`` takes at once
    if not isinstance(value, dict):
        raise InvalidInput(f"must be an object, not {type_name(value)}", field=field)
    for key, count in value.items():
        check_name(key, f"{field} key")
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count < 2**64:
            raise InvalidInput(f"must be {COUNT_WORDS}", field=f"{field}.{key}")
    return dict(value)


def _state_key(value: Any, field: str) -> str:
    return check_name(value, field)


_ATTACHMENT_FIELDS: dict[str, Validator] = {
    "kind": text, "mime_type": _optional_string, "size": _optional_size}
_ATTACHMENT_DEFAULTS: dict[str, Any] = {"mime_type": None, "size": None}

#: The seed's ``SessionEventKind`` variants and their fields, in serde's snake_case.
KINDS: dict[str, dict[str, Validator]] = {
    "session_started": {"channel": text, "peer_id": text},
    "message_received": {"content": text, "attachments": _attachments},
    "message_sent": {"content": text, "message_id": text},
    "tool_called": {"tool_name": text, "params": json_value},
    "tool_result": {"tool_name": text, "result": json_value, "success": _boolean},
    "agent_response": {"content": text, "model": text, "tokens": _tokens},
    "session_ended": {"reason": text},
    "state_changed": {"key": _state_key, "value": json_value},
}
#: Kinds of the records nodes write themselves, not session content: device keys,
#: membership and tokens (``crdt.membership``), forgets (``crdt.log.forget``) and
#: retirements (``crdt.log.retire``). This version knows them (an event of one is not
#: shown as unknown), projections leave them out, and no client may post one, not even
#: as a copy: a node acts on them when it stores them.
RECORD_KINDS = frozenset({"device_key", "device_added", "device_removed", "token_issued",
                          "token_revoked", "forget", "origin_retired"})
#: The agent id of every record a node writes, this version's kinds and a later
#: version's alike. A kind this version does not know, under this agent, is a later
#: version's record: no client may post it either, as a copy or otherwise
#: (``crdt.events.parse_event``), since the nodes that know it would act on it.
NODES_AGENT_ID = "clawsync"


def written_by_nodes(kind: str, agent_id: str, known: bool) -> bool:
    """Whether an event of ``kind`` under ``agent_id`` is a record only nodes write:
    one of ``RECORD_KINDS``, or a kind not ``known`` here under ``NODES_AGENT_ID``."""
    return kind in RECORD_KINDS or (agent_id == NODES_AGENT_ID and not known)

#: Fields that may be left out, and the value they then take.
DEFAULTS: dict[str, dict[str, Any]] = {
    "message_received": {"attachments": []},
    "agent_response": {"tokens": {}},
}


def register_kind(name: str, fields: Mapping[str, Validator],
                  defaults: Mapping[str, Any] | None = None) -> None:
    """Teach this process a kind beyond the seed's (call before its node starts). Its
    events are then validated, counted in projections and shown as known.

    ``fields`` maps each field to a validator, such as ``text`` or ``json_value``."""
    check_name(name, "kind")
    if name in KINDS or name in RECORD_KINDS:
        raise ValueError(f"the kind {name!r} is known already")
    KINDS[name] = dict(fields)
    if defaults:
        DEFAULTS[name] = dict(defaults)


def check_payload(kind: str, obj: Any, where: str, *, fill_defaults: bool) -> dict[str, Any]:
    """The fields of an event of ``kind``: a known kind's fields checked (missing ones
    filled in from ``DEFAULTS`` if ``fill_defaults``), every other field a name with a
    JSON value."""
    defaults = DEFAULTS.get(kind, {}) if fill_defaults else {}
    return _record(obj, where, KINDS.get(kind, {}), defaults, reserved={"type"})


def _record(obj: Any, where: str, spec: Mapping[str, Validator],
            defaults: Mapping[str, Any], reserved: set[str] | None = None) -> dict[str, Any]:
    """An object with the fields of ``spec`` (checked) and any others (kept as JSON)."""
    if not isinstance(obj, dict):
        raise InvalidInput(f"must be an object, not {type_name(obj)}", field=where)
    out = {}
    taken = 0
    for name, check in spec.items():
        if name in obj:
            value = obj[name]
            # Most fields are short ASCII text, which ``text`` takes as it is: its label
            # is only built for a value it might refuse.
            out[name] = value if check is text and type(value) is str and value.isascii() \
                else check(value, f"{where}.{name}")
            taken += 1
        elif name in defaults:
            out[name] = defaults[name]
        else:
            raise InvalidInput("is required", field=f"{where}.{name}")
    extra = len(obj) - taken
    for name in reserved or ():
        # A reserved name that is also a field of ``spec`` was counted in ``taken``.
        extra -= name in obj and name not in spec
    if extra:  # fields beyond ``spec`` and ``reserved``, kept as JSON values
        for name in obj.keys() - spec.keys() - (reserved or set()):
            check_name(name, f"{where} field name")
            out[name] = json_value(obj[name], f"{where}.{name}")
    return out


def parse_kind(obj: Any, where: str = "kind", *, unknown_ok: bool = False,
               records_ok: bool = False) -> tuple[str, dict[str, Any]]:
    """Validate a ``{"type": ..., fields...}`` object; return ``(kind, payload)``. A kind
    this version does not know is refused unless ``unknown_ok``; a record nodes write
    (``RECORD_KINDS``) unless ``records_ok`` (reading what a node showed, never taking a
    client's input) and ``unknown_ok``."""
    if not isinstance(obj, dict):
        raise InvalidInput(f"must be an object, not {type_name(obj)}", field=where)
    kind = obj.get("type")
    if kind is None:
        raise InvalidInput(f"is required: one of {', '.join(KINDS)}", field=f"{where}.type")
    if isinstance(kind, str) and kind in RECORD_KINDS and not records_ok:
        raise InvalidInput(f"{kind!r} records are written by nodes, never taken from a "
                           "client (to forget, POST /v1/sessions/{key}/forget)",
                           field=f"{where}.type")
    if not isinstance(kind, str) or (kind not in KINDS and not unknown_ok):
        raise InvalidInput(f"unknown event type {kind!r}; expected one of "
                           f"{', '.join(KINDS)}", field=f"{where}.type")
    if kind not in KINDS:  # a known kind's name was checked when it was registered
        kind = check_name(kind, f"{where}.type")
    return kind, check_payload(kind, obj, where, fill_defaults=True)
