"""What a client's Automerge sync message holds, read without automerge.

Two readers of Automerge's own formats, kept apart from ``document`` because they only
parse bytes and text (``document`` and its parts remain the only modules that call
automerge):

* ``summarize_sync_message`` reads the outline of a sync message (how many heads, how
  many change chunks, their bytes, and, on demand, what they unpack to:
  ``crdt.automerge.chunks``) *before* automerge applies it, so the node can refuse a read-only
  client's changes, a document grown past its limit or a deflate bomb without touching
  the document;
* ``classify_patch`` reads the ``repr`` of an automerge patch (the binding exposes patches
  only as their Rust ``Debug`` text) to learn which root field, and which key inside it,
  a change touched, and whether it wrote a counter (which this binding cannot read).

The sync message layout (automerge's ``sync.rs``; both versions share it):

    type byte 0x42 (v1) or 0x43 (v2)
    heads, need:  uLEB128 count, then that many 32-byte change hashes
    have:         uLEB128 count, then per entry: hashes (as above), uLEB128 length + bloom
    changes:      uLEB128 count, then per chunk: uLEB128 length + bytes
    capabilities: optional uLEB128 count, then one byte each

>>> summarize_sync_message(bytes.fromhex("42000001000000020102"), changes_max=1000)
SyncSummary(heads=0, need=0, changes=0, change_bytes=0)
>>> classify_patch('Patch { obj: Root, path: [], action: PutMap { key: "state", value: '
...                '(Object(Text), Id(39, ActorID("4e35"), 1)), conflict: false } }')
Touch(field='state', key=None, counter=False)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from crdt.automerge.binreader import BinReader
from crdt.automerge.chunks import Unpacked, UnpackLimits, measure_chunks
from crdt.errors import InvalidInput, LimitExceeded

SYNC_MESSAGE_TYPES = (0x42, 0x43)
HASH_BYTES = 32


@dataclass(frozen=True, slots=True)
class SyncSummary:
    """The outline of one sync message."""

    heads: int
    need: int
    changes: int  # change entries (a v2 message may carry a whole saved document as one)
    change_bytes: int
    #: The entries themselves, for ``unpacked`` (not part of the outline's equality).
    entries: tuple[bytes, ...] = field(default=(), compare=False, repr=False)

    def unpacked(self, limits: UnpackLimits) -> Unpacked:
        """What the changes unpack to (``crdt.automerge.chunks.measure_chunks``): ``LimitExceeded``
        past ``limits``, ``InvalidInput`` if they are not automerge chunks."""
        return measure_chunks(self.entries, limits)


#: Bloom filters in one message; automerge sends one.
HAVES_MAX = 16


def summarize_sync_message(data: bytes, changes_max: int) -> SyncSummary:
    """The outline of a sync message; ``InvalidInput`` if it is not one or holds more
    than ``changes_max`` change entries (``LimitExceeded``).

    Reading is linear in the length of ``data`` with a step per change entry at most,
    so it is safe on hostile input of any size the frame limit lets through.
    """
    if not data or data[0] not in SYNC_MESSAGE_TYPES:
        raise InvalidInput("not an Automerge sync message (bad type byte)", field="data")
    reader = BinReader(data, "sync message", at=1)
    heads = _hashes(reader, "heads")
    need = _hashes(reader, "need")
    haves = reader.uleb("have")
    if haves > HAVES_MAX:
        raise reader.fail(f"{haves} bloom filters; the limit is {HAVES_MAX}")
    for _ in range(haves):
        _hashes(reader, "have.last_sync")
        reader.take(reader.uleb("have.bloom"), "have.bloom")
    changes = reader.uleb("changes")
    if changes > changes_max:
        raise LimitExceeded(f"sync message: {changes} changes; the limit is {changes_max}",
                            field="data")
    entries = tuple(reader.take(reader.uleb("a change"), "a change") for _ in range(changes))
    if reader.at < len(data):
        reader.take(reader.uleb("capabilities"), "capabilities")
    if reader.at != len(data):
        raise reader.fail("trailing bytes")
    return SyncSummary(heads, need, changes, sum(map(len, entries)), entries)


def _hashes(reader: BinReader, what: str) -> int:
    count = reader.uleb(what)
    reader.take(count * HASH_BYTES, what)
    return count


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
