"""The automerge-repo network protocol, version 1: its messages and their strict parser.

Each websocket binary frame holds one CBOR map (as ``@automerge/automerge-repo``'s
cbor-x encoder writes it: plain maps, byte strings, no tags):

    {"type": "join", "senderId", "peerMetadata", "supportedProtocolVersions": ["1"]}
    {"type": "peer", "senderId", "peerMetadata", "selectedProtocolVersion": "1", "targetId"}
    {"type": "request" | "sync", "senderId", "targetId", "documentId", "data": <bytes>}
    {"type": "doc-unavailable", "senderId", "targetId", "documentId"}
    {"type": "ephemeral", "senderId", "targetId", "documentId", "count", "sessionId", "data"}
    {"type": "error", "senderId", "targetId", "message"}

``documentId`` is the base58check text of a document id (``crdt.automerge.document``), ``data`` an
Automerge sync message (or, for ``ephemeral``, the application's CBOR payload).

Input is untrusted: ``parse_frame`` refuses, before decoding, frames with tags,
indefinite lengths or more than ``ITEMS_MAX`` CBOR items, then anything malformed; any
refusal is a ``PeerFault``. Unknown keys are ignored, as automerge-repo itself does.

>>> parse_frame(encode_unavailable("server", "peer-1", "2rPXk7WCZuV9W9C4pNhWXz4JezQ6"))
Unavailable(sender='server', target='peer-1', document_id='2rPXk7WCZuV9W9C4pNhWXz4JezQ6')
>>> parse_frame(b"\\xff")
Traceback (most recent call last):
...
sync.errors.PeerFault: frame: CBOR indefinite lengths and breaks are not accepted
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import cbor2

from crdt.automerge.document import decode_document_id
from crdt.errors import InvalidInput
from sync.errors import PeerFault

#: Where a node serves this protocol: its websocket's path (``ws://host:port/automerge``).
SOCKET_PATH = "/automerge"
#: The only protocol version this module speaks (automerge-repo's ``ProtocolV1``).
PROTOCOL_VERSION = "1"
#: Most CBOR data items in one frame. A real message has about 20; the cap makes a frame
#: of millions of tiny items cost a scan, never the memory of building them.
ITEMS_MAX = 512
#: Deepest nesting in a frame (peerMetadata is a flat map).
DEPTH_MAX = 8
#: Longest peer id, session id of ephemeral messages, or protocol version, in characters.
NAME_CHARS_MAX = 256
#: Longest error message we send.
ERROR_CHARS_MAX = 512
#: Most bytes a sync frame adds around its message (``encode_sync``): its keys, its type,
#: two peer ids of up to ``NAME_CHARS_MAX`` characters (4 bytes each at most), a document
#: id and the CBOR headers, under 2.2 KiB. A client's outbox must hold a sync message of
#: ``RepoLimits.served_bytes_max`` with this around it.
SYNC_ENVELOPE_BYTES_MAX = 4096


@dataclass(frozen=True, slots=True)
class Join:
    sender: str
    versions: tuple[str, ...] | None  # None: the peer did not say (version 1 then)
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Sync:
    """A ``sync`` message, or a ``request`` (the first sync message of a peer that has
    nothing of the document yet)."""

    kind: str  # "request" or "sync"
    sender: str
    target: str
    document_id: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Unavailable:
    sender: str
    target: str
    document_id: str


@dataclass(frozen=True, slots=True)
class Ephemeral:
    sender: str
    target: str
    document_id: str
    count: int
    session_id: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Other:
    """A message type this node does not act on (remote heads gossip)."""

    type: str
    sender: str
    target: str


@dataclass(frozen=True, slots=True)
class Peer:
    """A node's answer to a join (what a client receives)."""

    sender: str
    target: str
    version: str


@dataclass(frozen=True, slots=True)
class Error:
    """A node's last words before it closes the connection."""

    sender: str
    target: str
    message: str


Frame = Join | Sync | Unavailable | Ephemeral | Other
NodeFrame = Peer | Sync | Unavailable | Ephemeral | Error

#: Message types a client may send that we accept and ignore.
IGNORED_TYPES = frozenset({"remote-subscription-change", "remote-heads-changed"})


def _header(data: bytes, at: int) -> tuple[int, int, int, int]:
    """Major type, additional info, argument and the offset after the header of the
    item at ``at``."""
    if at >= len(data):
        raise PeerFault("CBOR ends inside an item", field="frame")
    first = data[at]
    major, info = first >> 5, first & 0x1F
    if info == 31:
        raise PeerFault("CBOR indefinite lengths and breaks are not accepted", field="frame")
    if major == 6:
        raise PeerFault("CBOR tags are not accepted", field="frame")
    if info < 24:
        return major, info, info, at + 1
    if info > 27:
        raise PeerFault("CBOR reserved header", field="frame")
    width = 1 << (info - 24)
    if at + 1 + width > len(data):
        raise PeerFault("CBOR ends inside a header", field="frame")
    return major, info, int.from_bytes(data[at + 1:at + 1 + width], "big"), at + 1 + width


def _prescan(data: bytes) -> None:
    """Walk the CBOR headers: refuse tags, indefinite lengths, simple values other than
    false/true/null/undefined, more than ``ITEMS_MAX`` items and trailing bytes."""
    at, pending, items = 0, 1, 0
    while pending:
        items += 1
        if items > ITEMS_MAX:
            raise PeerFault(f"more than {ITEMS_MAX} CBOR items", field="frame")
        pending -= 1
        major, info, value, at = _header(data, at)
        if major in (2, 3):
            if value > len(data) - at:
                raise PeerFault("CBOR string runs past the frame", field="frame")
            at += value
        elif major in (4, 5):
            pending += value * (2 if major == 5 else 1)
            if pending > ITEMS_MAX:
                raise PeerFault(f"more than {ITEMS_MAX} CBOR items", field="frame")
        elif major == 7 and info not in (20, 21, 22, 23, 25, 26, 27):
            raise PeerFault("CBOR simple values are not accepted", field="frame")
    if at != len(data):
        raise PeerFault(f"{len(data) - at} trailing bytes after the CBOR map", field="frame")


def _plain(value: Any, depth: int = 0) -> Any:
    """cbor2's decoding made plain: ``undefined`` (cbor-x writes it for absent values)
    becomes None; map keys must be text; depth is bounded."""
    if value is cbor2.undefined:
        return None
    if isinstance(value, dict | list):
        if depth >= DEPTH_MAX:
            raise PeerFault(f"nesting deeper than {DEPTH_MAX}", field="frame")
        if isinstance(value, list):
            return [_plain(item, depth + 1) for item in value]
        if not all(isinstance(key, str) for key in value):
            raise PeerFault("map keys must be text", field="frame")
        return {key: _plain(item, depth + 1) for key, item in value.items()}
    return value


def _decode(data: bytes) -> dict[str, Any]:
    _prescan(data)
    decoder = cbor2.CBORDecoder(io.BytesIO(data), allow_duplicate_keys=False,
                                strict_hashable_types=True, max_depth=DEPTH_MAX + 1)
    try:
        value = decoder.decode()
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError,
            RecursionError) as exc:
        raise PeerFault(f"bad CBOR: {exc}", field="frame") from None
    value = _plain(value)
    if not isinstance(value, dict):
        raise PeerFault("a frame must hold a CBOR map", field="frame")
    return value


def _text(raw: dict[str, Any], name: str, chars_max: int = NAME_CHARS_MAX) -> str:
    value = raw.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= chars_max:
        raise PeerFault(f"must be a string of 1 to {chars_max} characters", field=name)
    return value


def _bytes(raw: dict[str, Any], name: str) -> bytes:
    value = raw.get(name)
    if not isinstance(value, bytes) or not value:
        raise PeerFault("must be a non-empty byte string", field=name)
    return value


def _document_id(raw: dict[str, Any]) -> str:
    value = raw.get("documentId")
    try:
        decode_document_id(value)
    except InvalidInput as exc:
        raise PeerFault(exc.reason, field="documentId") from None
    assert isinstance(value, str)
    return value


def _join(raw: dict[str, Any], sender: str) -> Join:
    versions = raw.get("supportedProtocolVersions")
    if versions is not None and (not isinstance(versions, list) or len(versions) > 16 or not all(
            isinstance(v, str) and len(v) <= NAME_CHARS_MAX for v in versions)):
        raise PeerFault("must be a list of at most 16 strings",
                        field="supportedProtocolVersions")
    metadata = raw.get("peerMetadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise PeerFault("must be a map", field="peerMetadata")
    return Join(sender, None if versions is None else tuple(versions), metadata or {})


def parse_frame(data: bytes) -> Frame:
    """Decode and check one frame from a client; ``PeerFault`` if it is refused."""
    raw = _decode(data)
    kind = raw.get("type")
    if not isinstance(kind, str):
        raise PeerFault("must be a string", field="type")
    sender = _text(raw, "senderId")
    if kind == "join":
        return _join(raw, sender)
    target = _text(raw, "targetId")
    if kind in ("request", "sync"):
        return Sync(kind, sender, target, _document_id(raw), _bytes(raw, "data"))
    if kind == "doc-unavailable":
        return Unavailable(sender, target, _document_id(raw))
    if kind == "ephemeral":
        count = raw.get("count")
        if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count < 2**53:
            raise PeerFault("must be a non-negative integer", field="count")
        return Ephemeral(sender, target, _document_id(raw), count, _text(raw, "sessionId"),
                         _bytes(raw, "data"))
    if kind in IGNORED_TYPES:
        return Other(kind, sender, target)
    raise PeerFault(f"unknown message type {kind[:NAME_CHARS_MAX]!r}", field="type")


def parse_node_frame(data: bytes) -> NodeFrame:
    """Decode and check one frame from a node, for a client (``node.client.subscribe``)."""
    raw = _decode(data)
    kind = raw.get("type")
    if kind == "peer":
        return Peer(_text(raw, "senderId"), _text(raw, "targetId"),
                    _text(raw, "selectedProtocolVersion"))
    if kind == "error":
        return Error(_text(raw, "senderId"), _text(raw, "targetId"),
                     _text(raw, "message", ERROR_CHARS_MAX))
    message = parse_frame(data)
    if isinstance(message, Sync | Unavailable | Ephemeral):
        return message
    raise PeerFault(f"a node does not send {kind!r}", field="type")


def _encode(value: dict[str, Any]) -> bytes:
    return bytes(cbor2.dumps(value))


def encode_peer(sender: str, target: str, metadata: dict[str, Any]) -> bytes:
    """The answer to a join: who we are, and the protocol version chosen."""
    return _encode({"type": "peer", "senderId": sender, "peerMetadata": metadata,
                    "selectedProtocolVersion": PROTOCOL_VERSION, "targetId": target})


def encode_join(sender: str) -> bytes:
    """A client's first message (``node.client.subscribe``)."""
    return _encode({"type": "join", "senderId": sender, "peerMetadata": {"isEphemeral": True},
                    "supportedProtocolVersions": [PROTOCOL_VERSION]})


def encode_sync(sender: str, target: str, document_id: str, data: bytes,
                kind: str = "sync") -> bytes:
    """A sync message (``kind`` "request" for a client's first one of a document)."""
    return _encode({"type": kind, "senderId": sender, "targetId": target,
                    "documentId": document_id, "data": data})


def encode_unavailable(sender: str, target: str, document_id: str) -> bytes:
    return _encode({"type": "doc-unavailable", "senderId": sender, "targetId": target,
                    "documentId": document_id})


def encode_error(sender: str, target: str, message: str) -> bytes:
    """An error the client's adapter logs; the connection closes after it."""
    return _encode({"type": "error", "senderId": sender, "targetId": target,
                    "message": message[:ERROR_CHARS_MAX]})


def encode_ephemeral(message: Ephemeral, target: str) -> bytes:
    """``message`` passed on to another client, as automerge-repo relays it: the
    original sender, count and session id, a new target."""
    return _encode({"type": "ephemeral", "senderId": message.sender, "targetId": target,
                    "documentId": message.document_id, "count": message.count,
                    "sessionId": message.session_id, "data": message.data})
