"""Pages of events bounded in bytes as well as in count, encoded on a reader thread.

An event may be 128 KiB of CBOR, and JSON escapes a control character as six bytes, so
a page of ``page_max`` such events would be hundreds of MiB. A page therefore ends at
``limit`` events or once its encoded events reach ``bytes_max`` (always at least one
event, so paging advances), and ``more`` says whether another follows. The log is read
a few events at a time and each is encoded at once, so what a read holds is bounded by
``bytes_max`` plus one read chunk, whatever the events are.

>>> head = cbor_array_head(3), cbor_array_head(24), cbor_array_head(300)
>>> [h.hex() for h in head]
['83', '9818', '99012c']
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from crdt import codec
from crdt.log.projection import Projection
from crdt.log.records import StoredEvent
from node.http.wire import to_json_bytes

#: Events read from the log at a time while a page is built: small, so that a page of
#: large events holds few decoded events beside the encoded ones (16 of 128 KiB at most).
READ_CHUNK_EVENTS = 16

#: Reads up to ``limit`` stored events after a position.
Fetch = Callable[[int, int], list[StoredEvent]]
#: One stored event as the bytes that go on the wire.
Encode = Callable[[StoredEvent], bytes]


class Page(NamedTuple):
    """Encoded events, the position of the last one (``after`` when none), and whether
    more events follow."""

    parts: list[bytes]
    next: int
    more: bool


def build(fetch: Fetch, encode: Encode, after: int, limit: int, bytes_max: int) -> Page:
    """Up to ``limit`` events after ``after``, ending early once their encoded size
    reaches ``bytes_max``; runs where blocking is allowed (a reader thread)."""
    parts: list[bytes] = []
    size = 0
    cursor = after
    while True:
        # One more than still fits tells whether another page follows.
        wanted = min(READ_CHUNK_EVENTS, limit + 1 - len(parts))
        chunk = fetch(cursor, wanted)
        for stored in chunk:
            if len(parts) >= limit or size >= bytes_max:
                return Page(parts, cursor, True)
            part = encode(stored)
            parts.append(part)
            size += len(part)
            cursor = stored.position
        if len(chunk) < wanted:
            return Page(parts, cursor, False)


def json_body(page: Page) -> bytes:
    """``{"events": [...], "next": N, "more": B}`` as compact JSON, from JSON parts."""
    more = b"true" if page.more else b"false"
    return b'{"events":[%s],"next":%d,"more":%s}' % (b",".join(page.parts), page.next, more)


def cbor_body(page: Page) -> bytes:
    """The same map as canonical CBOR, from CBOR parts: canonical order puts "events"
    (the longest key) last, so the parts follow the rest as they are."""
    rest = codec.encode({"more": page.more, "next": page.next, "events": []})
    assert rest.endswith(b"\x80")  # the empty array, last
    return rest[:-1] + cbor_array_head(len(page.parts)) + b"".join(page.parts)


def projection_json(projection: Projection, extra: dict[str, Any], bytes_max: int
                    ) -> Iterator[bytes]:
    """``projection.to_json()`` with ``extra`` after it, as compact JSON in pieces of
    about ``bytes_max`` (one message may go beyond), byte for byte what encoding the
    whole would give: a session of large messages is sent without ever being held
    encoded whole (JSON may make each character six bytes)."""
    head = to_json_bytes(projection.header.fields())
    piece = [head[:-1] + b',"messages":[']
    size = len(piece[0])
    for n, message in enumerate(projection.messages):
        if size >= bytes_max:
            yield b"".join(piece)
            piece, size = [], 0
        part = (b"," if n else b"") + to_json_bytes(message.to_json())
        piece.append(part)
        size += len(part)
    tail = to_json_bytes({"custom_state": projection.header.state_values(), **extra})
    piece.append(b"]," + tail[1:])
    yield b"".join(piece)


def cbor_array_head(count: int) -> bytes:
    """The CBOR head of an array of ``count`` items (major type 4)."""
    if count < 24:
        return bytes([0x80 + count])
    for marker, form, top in ((0x98, ">B", 0xFF), (0x99, ">H", 0xFFFF),
                              (0x9A, ">I", 0xFFFF_FFFF)):
        if count <= top:
            return bytes([marker]) + struct.pack(form, count)
    return b"\x9b" + struct.pack(">Q", count)
