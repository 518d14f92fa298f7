"""What a client's Automerge sync message holds, read without automerge.

Two readers of Automerge's own formats, kept apart from ``crdt.amdoc`` because they only
parse bytes and text (``amdoc`` remains the only module that calls automerge):

* ``summarize_sync_message`` reads the outline of a sync message (how many heads, how
  many change chunks and their bytes) *before* automerge applies it, so the node can
  refuse a read-only client's changes or a document grown past its limit without
  touching the document;
* ``classify_patch`` reads the ``repr`` of an automerge patch (the binding exposes patches
  only as their Rust ``Debug`` text) to learn which root field, and which key inside it,
  a change touched, and whether it wrote a counter (which this binding cannot read).

The sync message layout (automerge's ``sync.rs``; both versions share it):

    type byte 0x42 (v1) or 0x43 (v2)
    heads, need:  uLEB128 count, then that many 32-byte change hashes
    have:         uLEB128 count, then per entry: hashes (as above), uLEB128 length + bloom
    changes:      uLEB128 count, then per chunk: uLEB128 length + bytes
    capabilities: optional uLEB128 count, then one byte each

>>> summarize_sync_message(bytes.fromhex("42000001000000020102"))
SyncSummary(heads=0, need=0, changes=0, change_bytes=0)
>>> classify_patch('Patch { obj: Root, path: [], action: PutMap { key: "state", value: '
...                '(Object(Text), Id(39, ActorID("4e35"), 1)), conflict: false } }')
Touch(field='state', key=None, counter=False)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from crdt.errors import InvalidInput

SYNC_MESSAGE_TYPES = (0x42, 0x43)
HASH_BYTES = 32
#: uLEB128 numbers longer than this many bytes exceed 64 bits.
_ULEB_BYTES_MAX = 10


@dataclass(frozen=True, slots=True)
class SyncSummary:
    """The outline of one sync message."""

    heads: int
    need: int
    changes: int  # change chunks (a v2 message may carry a whole saved document as one)
    change_bytes: int


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def uleb(self, what: str) -> int:
        value = shift = 0
        for index in range(_ULEB_BYTES_MAX):
            if self.at >= len(self.data):
                break
            byte = self.data[self.at]
            self.at += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value
            if index == _ULEB_BYTES_MAX - 1:
                break
        raise InvalidInput(f"sync message: bad length of {what}", field="data")

    def skip(self, count: int, what: str) -> None:
        if count > len(self.data) - self.at:
            raise InvalidInput(f"sync message: {what} runs past its end", field="data")
        self.at += count

    def hashes(self, what: str) -> int:
        count = self.uleb(what)
        self.skip(count * HASH_BYTES, what)
        return count


def summarize_sync_message(data: bytes) -> SyncSummary:
    """The outline of a sync message; ``InvalidInput`` if it is not one.

    Reading is linear in the length of ``data`` and allocates nothing per item, so it is
    safe on hostile input of any size the frame limit lets through.
    """
    if not data or data[0] not in SYNC_MESSAGE_TYPES:
        raise InvalidInput("not an Automerge sync message (bad type byte)", field="data")
    reader = _Reader(data)
    reader.at = 1
    heads = reader.hashes("heads")
    need = reader.hashes("need")
    for _ in range(reader.uleb("have")):
        reader.hashes("have.last_sync")
        reader.skip(reader.uleb("have.bloom"), "have.bloom")
    changes = reader.uleb("changes")
    change_bytes = 0
    for _ in range(changes):
        length = reader.uleb("a change")
        reader.skip(length, "a change")
        change_bytes += length
    if reader.at < len(data):
        reader.skip(reader.uleb("capabilities"), "capabilities")
    if reader.at != len(data):
        raise InvalidInput("sync message: trailing bytes", field="data")
    return SyncSummary(heads, need, changes, change_bytes)


@dataclass(frozen=True, slots=True)
class Touch:
    """Where one patch landed: the root ``field`` and the ``key`` inside it (a message key,
    a custom_state key), each None when the patch does not say or cannot be read."""

    field: str | None
    key: str | None
    counter: bool


_OBJ = r'(?:Root|Id\(\d+, ActorID\("[0-9a-f]*"\), \d+\))'
_STRING = r'"((?:[^"\\]|\\.)*)"'
_HEAD = re.compile(r"Patch \{ obj: " + _OBJ + r", path: \[")
_ELEMENT = re.compile(r"\(" + _OBJ + r", (?:Map\(" + _STRING + r"\)|Seq\((\d+)\))\)(, |\])")
_ACTION_KEY = re.compile(r"\], action: \w+ \{ (?:key: " + _STRING + r"|prop: Map\(" + _STRING
                         + r"\))")
#: A counter value anywhere in the patch (reading one panics this binding). A string
#: holding this text is a false alarm that errs on the side of refusing.
_COUNTER = "Counter(Counter {"


def _plain(escaped: str | None) -> str | None:
    """A Debug-escaped string, or None if it holds an escape (then it is no name of ours:
    root fields and message keys are plain ASCII)."""
    if escaped is None or "\\" in escaped:
        return None
    return escaped


def classify_patch(text: str) -> Touch:
    """Read where a patch (its ``repr``) landed; unreadable parts come back as None."""
    counter = _COUNTER in text
    head = _HEAD.match(text)
    if head is None:
        return Touch(None, None, counter)
    names: list[str | None] = []
    at = head.end()
    if text.startswith("]", at):
        closed = at
    else:
        closed = -1
        while len(names) < 2:
            element = _ELEMENT.match(text, at)
            if element is None:
                return Touch(names[0] if names else None, None, counter)
            names.append(_plain(element.group(1)) if element.group(2) is None else None)
            at = element.end()
            if element.group(3) == "]":
                closed = at - 1
                break
    if len(names) < 2 and closed >= 0:
        action = _ACTION_KEY.match(text, closed)
        if action is not None:
            names.append(_plain(action.group(1) if action.group(1) is not None
                                else action.group(2)))
    field = names[0] if names else None
    key = names[1] if len(names) > 1 else None
    return Touch(field, key, counter)


def creator_of(exid: bytes) -> bytes | None:
    """The actor that created an object or value, from its automerge id bytes
    (``0x10``-style tag, actor length, actor, then counters); None if unreadable."""
    if len(exid) < 2 or not 0 < exid[1] <= len(exid) - 2:
        return None
    return exid[2:2 + exid[1]]
