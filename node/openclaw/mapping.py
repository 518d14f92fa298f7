"""OpenClaw records -> clawsync events, losslessly and the same on every device.

A record of the pi session format (version 3; OpenClaw 2026.9.6 writes 4) becomes one
event, or more for an assistant message that calls tools (one ``tool_called`` event per
call). The first event of a record (its *base*) carries what the eight kinds have no
field for in the extra field ``openclaw``::

    "openclaw": {"session_key": OpenClaw's session key, "session_id": its session id,
                 "record": the record, less what moved into a field of the kind,
                 "moved": {kind field: path in the record it came from},
                 "summarised": [{"path", "mime_type", "bytes", "sha256"}]}  # sizes.py

and every further event of the record names its base: ``{"session_key", "session_id",
"part_of": base event id (hex), "moved": {...}}``. Only big values move (texts, tool
arguments and outputs, custom data, summaries); small ones (model, tool name, tool-call
id) are copied, so the record keeps every field under its OpenClaw name (``id``,
``parentId``, ``message.usage.cost``, ``message.stopReason``, ...). ``records.py``
turns events back into records.

Determinism: an event's content depends only on the record, OpenClaw's agent id and
session key (``session_names.session_key_for``) and the session id, never on the device
or the clock. The timestamp is the record's (``timestamp``; else the message's; else
``fallback_ms``), and the n-th event of one record has the HLC counter n.

A rewind's copy: ``sessions.rewind`` keeps the whole transcript, record ids included,
under a new session id of the same key (a header newer than the records after it). Those
records are the conversation already shown, so they map to ``state_changed``
``openclaw.copy`` events that keep the record (for export) and add nothing else
(``copy_ms_of``, ``copy_ms``); the header's time is part of the source, so this is the
same on every device.

>>> ref = SessionRef("main", "agent:main:main", "s-1")
>>> mapped = events_for({"type": "message", "id": "a1b2c3d4", "parentId": None,
...     "timestamp": "2026-12-01T10:00:00.000Z",
...     "message": {"role": "user", "content": "hi", "timestamp": 1796119200000}}, ref)
>>> event = mapped.events[0]
>>> event.session_key, event.kind, event.payload["content"], mapped.warnings
('agent:main:main', 'message_received', 'hi', [])
>>> event.payload["openclaw"]["moved"]
{'content': ['message', 'content']}
"""

from __future__ import annotations

import base64
import binascii
import copy
from dataclasses import dataclass, field
from typing import Any

from crdt.clock import Hlc
from crdt.errors import InvalidInput
from crdt.events import EVENT_BYTES_MAX, Draft, Event
from crdt.keys import is_name
from crdt.kinds import parse_kind
from crdt.kinds import text as checked_text
from node.openclaw import sizes
from node.openclaw.session_names import session_key_for

#: The extra field every event from OpenClaw carries.
EXTRA = "openclaw"
#: The transcript versions this mapping was written for (OpenClaw 2026.9.6 writes 4, the
#: pi format it extends is 3); another is imported the same way, with a warning.
TRANSCRIPT_VERSIONS = (3, 4)
#: ``session_started.channel`` of an OpenClaw session header.
CHANNEL = "openclaw"

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class SessionRef:
    """Where a record comes from: OpenClaw's agent id, session key and session id."""

    agent_id: str
    session_key: str
    session_id: str


@dataclass(slots=True)
class Mapped:
    """The events of one record, and what a caller should tell its user about it."""

    events: list[Event]
    warnings: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Part:
    """One event of a record before it is built: kind, fields, moved fields' paths."""

    kind: str
    fields: dict[str, Any]
    moved: dict[str, Path] = field(default_factory=dict)


class _Unfit(Exception):
    """The record does not have the shape its type promises: it is kept whole."""


def events_for(record: Any, ref: SessionRef, *, fallback_ms: int = 0,
               copy_ms: int | None = None) -> Mapped:
    """The events of one OpenClaw record. Never raises for a record's content: a record
    of a type (or shape) this mapping does not know is kept whole in a ``state_changed``
    event of key ``openclaw.unknown``, with a warning naming it. ``fallback_ms`` is the
    time of a record without one (the caller's row time, say). ``copy_ms`` is the time
    of the session's header when that header begins a rewind's copy (``copy_ms_of``):
    the header and every record older than it are kept whole in a ``state_changed`` of
    key ``openclaw.copy`` (value: the session id), which adds no message and starts no
    session. ``InvalidInput`` only for a ``ref`` no event can name (an agent id that is
    not a name, say)."""
    session_key_for(ref.agent_id, ref.session_key)
    checked_text(ref.session_key, "session_key")
    checked_text(ref.session_id, "session_id")
    warnings: list[str] = []
    name = _name(record, ref)
    stamp = _timestamp(record, fallback_ms, warnings, name)
    try:
        if copy_ms is not None and (stamp < copy_ms or _is_header(record)):
            return Mapped(_build(record, [_copied(ref)], ref, stamp), warnings)
        parts = _parts(record, warnings, name)
        return Mapped(_build(record, parts, ref, stamp), warnings)
    except (_Unfit, InvalidInput) as error:
        unfit = error
    # One warning per record, naming what was kept in the end.
    try:
        whole = _build(record, [_unknown(record)], ref, stamp)
    except (InvalidInput, TypeError, ValueError) as error:
        warnings.append(f"{name}: only a summary kept ({error})")
        return Mapped(_build(_envelope(record), [_unreadable(record)], ref, stamp), warnings)
    warnings.append(f"{name}: kept whole as an unknown record ({unfit})")
    return Mapped(whole, warnings)


def copy_ms_of(header: Any, following: Any) -> int | None:
    """The header's time if it begins a rewind's copy, else None. ``sessions.rewind``
    writes, in one transaction, a new session id's header, then every record of the
    session it rewinds (ids and times kept), then a ``leaf``: the record after such a
    header is older than it, never so in a session OpenClaw began itself."""
    if not _is_header(header):
        return None
    start, after = _valid_ms(header), _valid_ms(following)
    return start if start is not None and after is not None and after < start else None


def _is_header(record: Any) -> bool:
    return isinstance(record, dict) and record.get("type") == "session"


def _valid_ms(record: Any) -> int | None:
    warnings: list[str] = []
    stamp = _timestamp(record, 0, warnings, "")
    return None if warnings else stamp


def _copied(ref: SessionRef) -> _Part:
    return _Part("state_changed", {"key": "openclaw.copy", "value": ref.session_id})


def _name(record: Any, ref: SessionRef) -> str:
    if isinstance(record, dict):
        return (f"record {record.get('id')!r} (type {record.get('type')!r}) of OpenClaw "
                f"session {ref.session_id}")
    return f"a record that is not an object in OpenClaw session {ref.session_id}"


def _timestamp(record: Any, fallback_ms: int, warnings: list[str], name: str) -> int:
    """The record's time; else its message's (milliseconds); else ``fallback_ms``."""
    if isinstance(record, dict):
        message = record.get("message")
        inner = message.get("timestamp") if isinstance(message, dict) else None
        for stamp in (record.get("timestamp"), inner):
            try:
                if isinstance(stamp, str):
                    return Hlc.parse_rfc3339(stamp).ms
                if isinstance(stamp, int) and not isinstance(stamp, bool):
                    return Hlc(stamp, 0).check().ms
            except InvalidInput:
                continue
    warnings.append(f"{name}: no valid timestamp, given the time {fallback_ms} ms")
    return fallback_ms


def _parts(record: Any, warnings: list[str], name: str) -> list[_Part]:
    if not isinstance(record, dict):
        raise _Unfit("not an object")
    kind = record.get("type")
    if kind == "session":
        return _header(record, warnings, name)
    if kind == "message":
        return _message(record)
    if kind == "reset":
        reason = record.get("reason")
        return [_Part("session_ended", {"reason": reason if isinstance(reason, str)
                                        else "reset"})]
    if kind in _STATES:
        return [_state(record, *_STATES[kind])]
    raise _Unfit(f"unknown record type {kind!r}")


def _header(record: dict[str, Any], warnings: list[str], name: str) -> list[_Part]:
    version, session_id = record.get("version"), record.get("id")
    if not isinstance(session_id, str):
        raise _Unfit("a session header without an id")
    if version not in TRANSCRIPT_VERSIONS:
        warnings.append(f"{name}: transcript version {version!r}, not one of "
                        f"{TRANSCRIPT_VERSIONS}; imported as version {TRANSCRIPT_VERSIONS[-1]}")
    return [_Part("session_started", {"channel": CHANNEL, "peer_id": session_id})]


# type -> (state key, or key prefix followed by the field naming it; the field whose
# value is the state: moved from the record, or copied from these fields)
_STATES: dict[str, tuple[str, str | None, str | tuple[str, ...]]] = {
    "model_change": ("openclaw.model", None, ("provider", "modelId")),
    "thinking_level_change": ("openclaw.thinking_level", None, "thinkingLevel"),
    "custom": ("openclaw.custom.", "customType", "data"),
    "custom_message": ("openclaw.custom_message.", "customType", "content"),
    "compaction": ("openclaw.compaction", None, "summary"),
    "branch_summary": ("openclaw.branch_summary", None, "summary"),
    "label": ("openclaw.label", None, ("targetId", "label")),
    "session_info": ("openclaw.session_info", None, ("name",)),
    # Written by sessions.rewind at the end of the copy it keeps: the entry it returned to.
    "leaf": ("openclaw.leaf", None, ("targetId",)),
}


def _state(record: dict[str, Any], key: str, named_by: str | None,
           value_from: str | tuple[str, ...]) -> _Part:
    if named_by is not None:
        suffix = record.get(named_by)
        if not isinstance(suffix, str):
            raise _Unfit(f"{named_by} is not a string")
        key += suffix
    if isinstance(value_from, tuple):
        value = {name: record[name] for name in value_from if name in record}
        return _Part("state_changed", {"key": key, "value": value})
    if value_from not in record:
        return _Part("state_changed", {"key": key, "value": None})
    return _Part("state_changed", {"key": key, "value": record[value_from]},
                 {"value": (value_from,)})


def _message(record: dict[str, Any]) -> list[_Part]:
    message = record.get("message")
    if not isinstance(message, dict):
        raise _Unfit("message is not an object")
    role = message.get("role")
    if role == "user":
        content, moved = _text_of(message)
        return [_Part("message_received", {"content": content,
                                           "attachments": _attachments(message)}, moved)]
    if role == "assistant":
        return _assistant(message)
    if role == "toolResult":
        return [_tool_result(message)]
    raise _Unfit(f"unknown message role {role!r}")


def _text_of(message: dict[str, Any]) -> tuple[str, dict[str, Path]]:
    """A message's text, and where it moved from: a string content, or the one text
    block's text; the texts of several blocks are joined by a blank line and copied."""
    content = message.get("content")
    if isinstance(content, str):
        return content, {"content": ("message", "content")}
    if not isinstance(content, list):
        return "", {}
    texts = [(i, block["text"]) for i, block in enumerate(content) if _is_text(block)]
    if len(texts) == 1:
        i, text = texts[0]
        return text, {"content": ("message", "content", i, "text")}
    return "\n\n".join(text for _, text in texts), {}


def _is_text(block: Any) -> bool:
    return (isinstance(block, dict) and block.get("type") == "text"
            and isinstance(block.get("text"), str))


def _attachments(message: dict[str, Any]) -> list[dict[str, Any]]:
    """Image blocks, then the files OpenClaw keeps in its workspace and names under
    ``__openclaw.media`` (an image sent with a message: only its description travels)."""
    out = []
    content = message.get("content")
    for block in content if isinstance(content, list) else []:
        if isinstance(block, dict) and block.get("type") == "image":
            data = block.get("data")
            out.append({"kind": "image", "mime_type": _text_or_none(block.get("mimeType")),
                        "size": _decoded_size(data) if isinstance(data, str) else None})
    extra = message.get("__openclaw")
    media = extra.get("media") if isinstance(extra, dict) else None
    for item in media if isinstance(media, list) else []:
        if isinstance(item, dict):
            size = item.get("sizeBytes")
            out.append({"kind": _text_or_none(item.get("kind")) or "file",
                        "mime_type": _text_or_none(item.get("contentType")),
                        "size": size if _is_count("size", size) else None})
    return out


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and _valid_text(value) else None


def _decoded_size(data: str) -> int | None:
    try:
        return len(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError):
        return None


def _assistant(message: dict[str, Any]) -> list[_Part]:
    """An ``agent_response`` with the text, then a ``tool_called`` per call; a step
    that only calls tools has no response (the first call is the base)."""
    text, moved = _text_of(message)
    model = message.get("model")
    usage = message.get("usage")
    tokens = {name: count for name, count in usage.items() if _is_count(name, count)} \
        if isinstance(usage, dict) else {}
    response = _Part("agent_response", {"content": text, "model": model
                                        if isinstance(model, str) else "",
                                        "tokens": tokens}, moved)
    calls = []
    content = message.get("content")
    for i, block in enumerate(content if isinstance(content, list) else []):
        if isinstance(block, dict) and block.get("type") == "toolCall":
            fields: dict[str, Any] = {"tool_name": _string(block.get("name")),
                                      "params": block.get("arguments")}
            if isinstance(block.get("id"), str):
                fields["tool_call_id"] = block["id"]
            where: dict[str, Path] = {"params": ("message", "content", i, "arguments")} \
                if "arguments" in block else {}
            calls.append(_Part("tool_called", fields, where))
    if calls and not moved and not text:
        return calls
    return [response, *calls]


def _is_count(name: Any, count: Any) -> bool:
    """A usage entry that ``tokens`` can hold (a count under a valid name)."""
    return is_name(name) and isinstance(count, int) and not isinstance(count, bool) \
        and 0 <= count < 2**64


def _tool_result(message: dict[str, Any]) -> _Part:
    """The output as a person reads it: the one text block's text (moved); for text and
    image blocks, their texts (copied: the blocks stay in the record) with the images as
    the extra field ``attachments``; any other content as it is (moved)."""
    fields: dict[str, Any] = {"tool_name": _string(message.get("toolName")),
                              "success": message.get("isError") is not True}
    if isinstance(message.get("toolCallId"), str):
        fields["tool_call_id"] = message["toolCallId"]
    content = message.get("content")
    if isinstance(content, list) and len(content) == 1 and _is_text(content[0]):
        fields["result"] = content[0]["text"]
        path: Path = ("message", "content", 0, "text")
        return _Part("tool_result", fields, {"result": path})
    if isinstance(content, list) and content and all(
            _is_text(block) or _is_image(block) for block in content):
        text, _ = _text_of(message)
        return _Part("tool_result", {**fields, "result": text,
                                     "attachments": _attachments(message)})
    if "content" not in message:
        return _Part("tool_result", {**fields, "result": None})
    return _Part("tool_result", {**fields, "result": content},
                 {"result": ("message", "content")})


def _is_image(block: Any) -> bool:
    return isinstance(block, dict) and block.get("type") == "image"


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _unknown(record: Any) -> _Part:
    kind = record.get("type") if isinstance(record, dict) else None
    return _Part("state_changed", {"key": "openclaw.unknown", "value": kind})


_ENVELOPE = ("type", "id", "parentId", "timestamp")


def _envelope(record: Any) -> dict[str, Any]:
    """The fields that place a record, those of them that are valid strings or null."""
    if not isinstance(record, dict):
        return {}
    out = {}
    for name in _ENVELOPE:
        value = record.get(name)
        if name in record and (value is None or _valid_text(value)):
            out[name] = value
    return out


def _valid_text(value: Any) -> bool:
    try:
        checked_text(value, "")
    except InvalidInput:
        return False
    return True


def _unreadable(record: Any) -> _Part:
    return _Part("state_changed", {"key": "openclaw.unreadable",
                                   "value": sizes.whole_summary(record)})


def _build(record: Any, parts: list[_Part], ref: SessionRef, ms: int) -> list[Event]:
    """Seal the parts into events: the base first (holding the record less what
    moved), then the others, each naming the base."""
    rest = _without(record, [path for part in parts for path in part.moved.values()])
    session_key = session_key_for(ref.agent_id, ref.session_key)
    events: list[Event] = []
    for n, part in enumerate(parts):
        extra: dict[str, Any] = {"session_key": ref.session_key, "session_id": ref.session_id}
        if events:
            extra["part_of"] = events[0].id.hex()
        else:
            extra["record"] = rest
        if part.moved:
            extra["moved"] = {name: list(path) for name, path in part.moved.items()}
        kind, payload = parse_kind({"type": part.kind, **part.fields, EXTRA: extra})
        events.append(_fitted(Draft(session_key, ref.agent_id, kind, payload, Hlc(ms, n))))
    return events


def _fitted(draft: Draft) -> Event:
    """The draft sealed, its largest strings summarised until it fits (``sizes``)."""
    assert draft.timestamp is not None
    payload = draft.payload
    while draft.parts().encoded_size(draft.timestamp) > EVENT_BYTES_MAX:
        largest = sizes.largest_string(payload)
        if largest is None or largest[0] < sizes.SUMMARY_FROM_BYTES:
            raise InvalidInput(f"still over {EVENT_BYTES_MAX} bytes with every long "
                               "string summarised")
        payload = copy.deepcopy(payload)
        summary = sizes.summarise_at(payload, largest[1])
        payload[EXTRA].setdefault("summarised", []).append(summary)
        draft = Draft(draft.session_key, draft.agent_id, draft.kind, payload,
                      draft.timestamp)
    return draft.seal()


def _without(value: Any, paths: list[Path]) -> Any:
    """``value`` less what is at ``paths``: containers on a path are copied, the rest is
    shared (``parse_kind`` copies it all afterwards; a deep copy would cost a third of
    the time of an import)."""
    if not paths:
        return value
    out: Any = dict(value) if isinstance(value, dict) else list(value)
    deeper: dict[str | int, list[Path]] = {}
    for path in paths:
        if len(path) > 1:
            deeper.setdefault(path[0], []).append(path[1:])
        elif isinstance(out, dict):
            del out[path[0]]
        else:  # only strings and object members move, never list items: keep the place
            out[path[0]] = None
    for step, rest in deeper.items():
        out[step] = _without(out[step], rest)
    return out
