"""A quick reader of the common events message: its items straight from its bytes."""

from __future__ import annotations

from typing import Any

from crdt import codec
from crdt.errors import InvalidInput
from crdt.keys import check_name
from crdt.signing import SIGNATURE_BYTES
from sync.peer.limits import BATCH_EVENTS_MAX, ORIGIN_BYTES_MAX, SEQ_MAX

#: An events message's items as read, before their events are: origin, seq, the event's
#: bytes (or a forgotten event's skeleton) and its signature, if any.
Shaped = list[tuple[str, int, bytes | dict[str, Any], bytes | None]]

#: How an events message without proofs starts, canonically framed: its map of two, the
#: type, and the key of its items.
_EVENTS_START = codec.encode({"type": "events", "items": []})[:-1]


def plain_items(data: bytes) -> Shaped | None:
    """The items of an events message, read straight from its bytes: what
    ``sync.peer.messages`` makes of it, for a message framed as ``messages.encode``
    frames one (no proofs, every item ``[origin, seq, event bytes]`` or with a
    signature) and valid but for its events (which ``messages.parse`` checks next).
    None for any other message, in doubt included: the strict decoder then reads it,
    and names the fault. The pre-scan and the decoder cost several times this walk,
    which visits each item's few heads once.
    """
    if not data.startswith(_EVENTS_START):
        return None
    try:
        return _read_items(data)
    except (_InDoubt, IndexError):
        return None


class _InDoubt(Exception):
    """``plain_items`` leaves the message to the strict decoder."""


def _read_items(data: bytes) -> Shaped:
    count, offset = _argument(data, len(_EVENTS_START), 4)
    if not 0 < count <= BATCH_EVENTS_MAX:
        raise _InDoubt
    shaped: Shaped = []
    origins: dict[bytes, str] = {}  # the checked name of each origin's bytes
    last: dict[str, int] = {}
    # The array head and origin of the item before, as encoded: most items of a batch
    # repeat them, and are then read at once.
    start, elements, origin = b"", 0, ""
    for _ in range(count):
        if start and data.startswith(start, offset):
            offset += len(start)
        else:
            begun = offset
            elements = data[offset] - 0x80
            if elements not in (3, 4):
                raise _InDoubt
            origin_size, offset = _argument(data, offset + 1, 3)
            raw_origin = data[offset:offset + origin_size]
            offset += origin_size
            known = origins.get(raw_origin)
            if known is None:
                try:
                    known = check_name(raw_origin.decode("utf-8"), "origin",
                                       bytes_max=ORIGIN_BYTES_MAX)
                except (InvalidInput, UnicodeDecodeError):
                    raise _InDoubt from None
                origins[raw_origin] = known
            origin, start = known, data[begun:offset]
        # The sequence number and the event's length, read in line (a call costs as
        # much as the reading): each is a head of its type with a definite argument.
        initial = data[offset]
        if initial < 24:
            seq, offset = initial, offset + 1
        else:
            seq, offset = _argument(data, offset, 0)
        if not last.get(origin, 0) < seq <= SEQ_MAX:
            raise _InDoubt
        last[origin] = seq
        initial = data[offset]
        if initial == 0x58:  # a byte string of 24 to 255 bytes
            event_size, offset = data[offset + 1], offset + 2
        else:
            event_size, offset = _argument(data, offset, 2)
        event = data[offset:offset + event_size]
        offset += event_size
        signature = None
        if elements == 4:
            if data[offset:offset + 2] != _SIGNATURE_HEAD:
                raise _InDoubt
            signature = data[offset + 2:offset + 2 + SIGNATURE_BYTES]
            offset += 2 + SIGNATURE_BYTES
        shaped.append((origin, seq, event, signature))
    if offset != len(data):  # trailing bytes, or a string that ran past the end
        raise _InDoubt
    return shaped


_SIGNATURE_HEAD = codec.head(2, SIGNATURE_BYTES)


def _argument(data: bytes, offset: int, major: int) -> tuple[int, int]:
    """The argument of the head at ``offset``, of type ``major`` with a definite
    argument, and the offset after the head."""
    initial = data[offset]
    info = initial & 0x1F
    if initial >> 5 != major or info > 27:
        raise _InDoubt
    if info < 24:
        return info, offset + 1
    end = offset + 1 + (1 << (info - 24))
    if end > len(data):
        raise _InDoubt
    return int.from_bytes(data[offset + 1:end], "big"), end
