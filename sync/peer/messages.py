"""The node-to-node anti-entropy messages (protocol version 1) and their strict parser.

Every message is one canonical CBOR map:

    {"type": "hello", "protocol": 1, "node": <node id>, "version": {origin: seq},
     "about": {"software": "0.2.0", "schema": 1, "retires": true}}
    {"type": "events", "items": [[origin, seq, canonical event bytes], ...]}
    {"type": "events", "items": [..., [origin, seq, {skeleton}], ...],
     "proofs": [canonical forget record bytes, ...]}
    {"type": "events", "items": [..., [origin, seq, event bytes, signature], ...]}
    {"type": "ack", "version": {origin: seq}}

``hello`` is the digest: the sender's version vector (per origin, the highest sequence
number it holds without gaps), and what it runs. It costs bytes in proportion to the
number of origins, never of sessions or events. ``events`` carries what the other side
lacks, in sequence order per origin; ``ack`` answers every ``events`` with the
receiver's version vector.

A forgotten event (``crdt.log.forget``) has no bytes left to re-hash: it travels as its
skeleton, ``{"id", "session_key", "agent_id", "timestamp", "kind", "forgotten_by"}``,
and the batch carries, in ``proofs``, the forget record named by each skeleton's
``forgotten_by``. The receiver re-hashes each proof and takes a skeleton only if its
proof covers it; anything else is the sender's fault. Skeletons go only to peers whose
hello says ``"forgets": true`` (older nodes refuse an item that is not bytes): an older
peer gets an origin's events up to its first forgotten one, and the rest once it is
upgraded.

An event of an origin bound to a device key (``crdt.log.bound``) travels with its
device's 64-byte signature over its id, origin and seq (``crdt.signing``) as a fourth
item element, only to peers whose hello says ``"signs": true`` (in ``about``; nodes that
do not say refuse a fourth element): an older peer gets 3-element items, and its
relays of them, unsigned, are not taken from it (``sync.peer.signatures``).

Input is untrusted. ``parse`` refuses anything over a limit before decoding it, then
anything malformed, then re-hashes every event; any failure is a ``PeerFault`` and
nothing of the message is used.

How the protocol evolves, so that nodes are upgraded one at a time: a newer version may
add fields to a message, and an older one ignores the fields it does not know; events
of kinds or with fields it does not know travel like any other (``crdt.kinds``). A
change an older node could not ignore takes a new ``protocol`` number, which the older
node refuses in the hello. Nodes of version 0.1 refuse any field they do not know, so
``about`` is sent only to a peer known to read it: one that dialed with the
``X-Clawsync-Hello: about`` header, or whose own hello carried ``about``.

>>> parse(encode(Hello(node="n1", version={"n1": 3})))
Hello(node='n1', version={'n1': 3}, protocol=1, about=None)
>>> parse(encode(Ack(version={})))
Ack(version={})
>>> parse(b"\\x01")
Traceback (most recent call last):
...
sync.errors.PeerFault: a message must be a CBOR map
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from crdt import codec
from crdt.clock import Hlc
from crdt.errors import InvalidInput
from crdt.events import ID_BYTES, Event
from crdt.keys import check_name, check_session_key
from crdt.log import forget
from crdt.log.records import Outgoing, Sealed
from crdt.signing import SIGNATURE_BYTES
from sync.errors import PeerFault, ProtocolMisuse
from sync.peer.limits import (
    BATCH_BYTES_MAX,
    BATCH_EVENTS_MAX,
    ITEMS_MAX,
    MESSAGE_BYTES_MAX,
    ORIGIN_BYTES_MAX,
    ORIGINS_MAX,
    ORIGINS_RESERVED,
    PROOF_OVERHEAD,
    SEQ_MAX,
    SOFTWARE_CHARS_MAX,
)
from sync.peer.plain_items import Shaped, plain_items

#: The protocol this module speaks. A peer that says another number in its hello is
#: refused rather than half-understood.
PROTOCOL = 1
_SKELETON_FIELDS = {"id", "session_key", "agent_id", "timestamp", "kind", "forgotten_by"}


def takes_origin(held: int, origin: str, sender: str | None) -> bool:
    """Whether a node holding ``held`` origins stores events of a new ``origin`` sent by
    the node ``sender``: freely below ``ORIGINS_MAX - ORIGINS_RESERVED``; past that only
    the sender's own, and never the last slot (the receiver's own origin may need it).
    Senders apply it too, to what they know the peer holds, so as not to send in vain.

    >>> takes_origin(ORIGINS_MAX - ORIGINS_RESERVED, "made-up", "n1")
    False
    >>> takes_origin(ORIGINS_MAX - ORIGINS_RESERVED, "n1", "n1")
    True
    """
    if held < ORIGINS_MAX - ORIGINS_RESERVED:
        return True
    return origin == sender and held < ORIGINS_MAX - 1


@dataclass(frozen=True, slots=True)
class About:
    """What a node runs: its software's version and the event schema it writes; and
    whether it drops retired origins from its version vector (``retires``: a peer that
    does not is told them, so that it does not offer their events again and again)."""

    software: str
    schema: int
    retires: bool = False
    #: It takes forgotten events as skeletons with proofs (``crdt.log.forget``).
    forgets: bool = False
    #: It takes (and checks) events' signatures, as a 4th item element.
    signs: bool = False


@dataclass(frozen=True, slots=True)
class Hello:
    """The sender's digest: who it is and what it holds; and, to a peer known to read
    it, what it runs (``about``)."""

    node: str
    version: dict[str, int]
    protocol: int = PROTOCOL
    about: About | None = None


class Item(NamedTuple):
    """One event in a batch, with the ``(origin, seq)`` the sender numbers it by."""

    origin: str
    seq: int
    event: Event
    #: The origin's device's signature, if the sender has it (``crdt.signing``).
    signature: bytes | None = None


@dataclass(frozen=True, slots=True)
class Events:
    """A batch of events the receiver lacks, in sequence order per origin; ``proofs``:
    the forget records that cover its skeletons."""

    items: tuple[Item, ...]
    proofs: tuple[Event, ...] = ()


@dataclass(frozen=True, slots=True)
class Batch:
    """An ``events`` message as this node sends it from its log (``Outbox``): each event
    as read for sending (``Outgoing``, its content not decoded). A peer parses the bytes
    as ``Events``."""

    items: tuple[Outgoing, ...]
    proofs: tuple[Event, ...] = ()


def item_bytes(event: Event | Sealed) -> int:
    """What one event counts for in ``BATCH_BYTES_MAX``: its bytes, or its skeleton's."""
    if event.forgotten_by is None:
        return len(event.canonical)
    return len(codec.encode(event.skeleton_fields()))


@dataclass(frozen=True, slots=True)
class Ack:
    """The receiver's version vector after it stored a batch."""

    version: dict[str, int]


Message = Hello | Events | Ack


def encode(message: Message | Batch) -> bytes:
    """The canonical CBOR bytes of ``message``; ``ProtocolMisuse`` if a peer would refuse
    them (we never send what we would not accept).

    >>> encode(Ack(version={"a": 1})).hex()
    'a264747970656361636b6776657273696f6ea1616101'
    """
    raw: dict[str, Any]
    if not isinstance(message, Events | Batch) and len(message.version) > ORIGINS_MAX:
        raise ProtocolMisuse(f"{len(message.version)} origins; the limit is {ORIGINS_MAX}")
    if isinstance(message, Hello):
        raw = {"type": "hello", "protocol": message.protocol, "node": message.node,
               "version": message.version}
        if message.about is not None:
            raw["about"] = {"software": message.about.software,
                            "schema": message.about.schema}
            if message.about.retires:
                raw["about"]["retires"] = True
            if message.about.forgets:
                raw["about"]["forgets"] = True
            if message.about.signs:
                raw["about"]["signs"] = True
    elif isinstance(message, Ack):
        raw = {"type": "ack", "version": message.version}
    else:
        _check_batch_size([item_bytes(item.event) for item in message.items],
                          ProtocolMisuse, message.proofs)
        raw = {"type": "events", "items": [
            [i.origin, i.seq, i.event.canonical if i.event.forgotten_by is None
             else i.event.skeleton_fields(), *([] if i.signature is None else [i.signature])]
            for i in message.items]}
        if message.proofs:
            raw["proofs"] = [proof.canonical for proof in message.proofs]
    data = codec.encode(raw)
    if len(data) > MESSAGE_BYTES_MAX:
        raise ProtocolMisuse(f"message of {len(data)} bytes is over {MESSAGE_BYTES_MAX}")
    return data


def parse(data: bytes) -> Message:
    """Decode and validate one message from a peer; raise ``PeerFault`` if it is refused.

    Limits are checked first (length, then a scan of the CBOR item headers), so an
    oversized message costs no decoding. Events are re-hashed last, once the whole
    message is known to be well-formed. An events message framed as ``encode`` frames
    one is read straight from its bytes, within the same limits
    (``sync.peer.plain_items``).
    """
    if len(data) > MESSAGE_BYTES_MAX:
        raise PeerFault(f"message is {len(data)} bytes; the limit is {MESSAGE_BYTES_MAX}")
    # The quick reading slices ``bytes``; a bytearray or memoryview takes the strict way.
    shaped = plain_items(data) if type(data) is bytes else None
    if shaped is not None:  # most messages of a catch-up
        return _checked_events(shaped, {})
    return _parse_strictly(data)


def _parse_strictly(data: bytes) -> Message:
    """``parse`` of a message within the size limit, by the strict decoder."""
    _prescan(data)
    try:
        raw = codec.decode(data)
    except InvalidInput as exc:
        raise PeerFault(str(exc)) from None
    if not isinstance(raw, dict):
        raise PeerFault("a message must be a CBOR map")
    kind = raw.get("type")
    if kind == "hello":
        return _hello(raw)
    if kind == "events":
        return _events(raw)
    if kind == "ack":
        _fields(raw, "ack", {"type", "version"})
        return Ack(_version(raw["version"], "ack.version"))
    raise PeerFault(f"unknown message type {kind!r}; expected hello, events or ack",
                    field="type")


def _hello(raw: dict[str, Any]) -> Hello:
    if "protocol" not in raw:
        raise PeerFault("is required", field="hello.protocol")
    protocol = raw["protocol"]  # checked first: another version may have other fields
    if protocol != PROTOCOL or isinstance(protocol, bool):
        raise PeerFault(f"protocol {protocol!r} is not supported; this node speaks "
                        f"{PROTOCOL}", field="hello.protocol")
    _fields(raw, "hello", {"type", "protocol", "node", "version"})
    about = _about(raw["about"]) if "about" in raw else None
    return Hello(_origin(raw["node"], "hello.node"), _version(raw["version"], "hello.version"),
                 about=about)


def _about(raw: Any) -> About:
    if not isinstance(raw, dict):
        raise PeerFault("must be a map", field="hello.about")
    software, schema = raw.get("software"), raw.get("schema")
    if not isinstance(software, str) or not 0 < len(software) <= SOFTWARE_CHARS_MAX:
        raise PeerFault(f"must be text of 1 to {SOFTWARE_CHARS_MAX} characters",
                        field="hello.about.software")
    if isinstance(schema, bool) or not isinstance(schema, int) or not 0 < schema < 2**31:
        raise PeerFault("must be a positive integer", field="hello.about.schema")
    return About(software, schema, raw.get("retires") is True, raw.get("forgets") is True,
                 raw.get("signs") is True)


def _events(raw: dict[str, Any]) -> Events:
    _fields(raw, "events", {"type", "items"})
    items = raw["items"]
    if not isinstance(items, list) or not items:
        raise PeerFault("must be a non-empty array", field="events.items")
    if len(items) > BATCH_EVENTS_MAX:  # before looking at any item
        raise PeerFault(f"{len(items)} items; the limit is {BATCH_EVENTS_MAX}",
                        field="events.items")
    proofs = _proofs(raw.get("proofs", []))
    shaped: Shaped = []
    last: dict[str, int] = {}
    for i, item in enumerate(items):
        where = f"events.items[{i}]"
        if not isinstance(item, list) or len(item) not in (3, 4):
            raise PeerFault("must be [origin, seq, event bytes] or [origin, seq, event "
                            "bytes, signature]", field=where)
        origin, seq, data = _origin(item[0], where), _seq(item[1], where), item[2]
        if not isinstance(data, bytes | dict):
            raise PeerFault("event must be a byte string or a skeleton", field=where)
        signature = item[3] if len(item) == 4 else None
        if len(item) == 4 and (not isinstance(signature, bytes)
                               or len(signature) != SIGNATURE_BYTES):
            raise PeerFault(f"a signature must be {SIGNATURE_BYTES} bytes", field=where)
        if seq <= last.get(origin, 0):
            raise PeerFault("sequence numbers of an origin must increase", field=where)
        last[origin] = seq
        shaped.append((origin, seq, data, signature))
    return _checked_events(shaped, proofs)


def _checked_events(shaped: Shaped, proofs: dict[bytes, Event]) -> Events:
    """The batch of well-formed items ``shaped``, within its limits and re-hashed."""
    sizes = [len(data) if isinstance(data, bytes) else len(codec.encode(data))
             for _, _, data, _ in shaped]
    _check_batch_size(sizes, PeerFault, tuple(proofs.values()))
    out = []
    from_canonical = Event.from_canonical
    for i, (origin, seq, data, signature) in enumerate(shaped):
        try:
            event = from_canonical(data) if isinstance(data, bytes) else \
                _skeleton(data, proofs)
        except InvalidInput as exc:
            raise PeerFault(str(exc), field=f"events.items[{i}]") from None
        out.append(_new_item(Item, (origin, seq, event, signature)))
    return Events(tuple(out), tuple(proofs.values()))


#: ``Item(origin, seq, event, signature)`` is ``_new_item(Item, (origin, ...))``,
#: without the Python-level ``__new__`` a named tuple has.
_new_item = tuple.__new__


def _proofs(raw: Any) -> dict[bytes, Event]:
    """The forget records a batch carries, re-hashed, by id."""
    if not isinstance(raw, list) or len(raw) > BATCH_EVENTS_MAX:
        raise PeerFault(f"must be an array of at most {BATCH_EVENTS_MAX} forget records",
                        field="events.proofs")
    out = {}
    for i, data in enumerate(raw):
        where = f"events.proofs[{i}]"
        if not isinstance(data, bytes):
            raise PeerFault("must be a byte string", field=where)
        try:
            record = Event.from_canonical(data)
        except InvalidInput as exc:
            raise PeerFault(str(exc), field=where) from None
        if forget.read(record) is None:
            raise PeerFault("is not a forget record", field=where)
        out[record.id] = record
    return out


def _skeleton(raw: dict[str, Any], proofs: dict[bytes, Event]) -> Event:
    """A forgotten event as a peer sent it: taken only with a proof that covers it."""
    if set(raw) != _SKELETON_FIELDS:
        raise InvalidInput(f"a skeleton has exactly the fields {sorted(_SKELETON_FIELDS)}")
    for name in ("id", "forgotten_by"):
        if not isinstance(raw[name], bytes) or len(raw[name]) != ID_BYTES:
            raise InvalidInput(f"must be {ID_BYTES} bytes", field=name)
    stamp = raw["timestamp"]
    if not isinstance(stamp, list) or len(stamp) != 2:
        raise InvalidInput("must be [ms, counter]", field="timestamp")
    skeleton = Event(check_session_key(raw["session_key"]),
                     check_name(raw["agent_id"], "agent_id"), Hlc(*stamp).check(),
                     check_name(raw["kind"], "kind"), {}, b"", raw["id"], raw["forgotten_by"])
    proof = proofs.get(skeleton.forgotten_by or b"")
    record = forget.read(proof) if proof is not None else None
    if record is None or not forget.covers(record, skeleton):
        raise InvalidInput("a forgotten event must come with the forget record that "
                           "covers it")
    return skeleton


def _check_batch_size(sizes: Sequence[int],
                      error: type[PeerFault] | type[ProtocolMisuse],
                      proofs: tuple[Event, ...] = ()) -> None:
    """``sizes``: what each item of the batch counts for (``item_bytes``), whatever
    holds the items (a tuple as ``Events`` declares, or a list a caller built)."""
    if not sizes or len(sizes) > BATCH_EVENTS_MAX:
        raise error(f"a batch holds 1 to {BATCH_EVENTS_MAX} events, not {len(sizes)}")
    total = sum(sizes)
    total += sum(len(proof.canonical) + PROOF_OVERHEAD for proof in proofs)
    if total > BATCH_BYTES_MAX:
        raise error(f"batch of {total} event bytes is over {BATCH_BYTES_MAX}")


def _fields(raw: dict[str, Any], where: str, expected: set[str]) -> None:
    """Every field of ``expected`` is there. Others are a newer version's: ignored."""
    missing = sorted(expected - set(raw))
    if missing:
        raise PeerFault("is required", field=f"{where}.{missing[0]}")


def _origin(value: Any, field: str) -> str:
    try:
        return check_name(value, field, bytes_max=ORIGIN_BYTES_MAX)
    except InvalidInput as exc:
        raise PeerFault(exc.reason, field=field) from None


def _seq(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= SEQ_MAX:
        raise PeerFault(f"sequence number must be an integer from 1 to {SEQ_MAX}",
                        field=field)
    return value


def _version(value: Any, field: str) -> dict[str, int]:
    """A version vector ``{origin: seq}``; 0 is accepted and means "nothing yet"."""
    if not isinstance(value, dict):
        raise PeerFault("must be a map of origin to sequence number", field=field)
    if len(value) > ORIGINS_MAX:
        raise PeerFault(f"{len(value)} origins; the limit is {ORIGINS_MAX}", field=field)
    out = {}
    for origin, seq in value.items():
        where = f"{field}.{origin}" if isinstance(origin, str) else field
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= SEQ_MAX:
            raise PeerFault(f"must be an integer from 0 to {SEQ_MAX}", field=where)
        out[_origin(origin, field)] = seq
    return out


def _prescan(data: bytes) -> None:
    """Walk the CBOR item headers without building anything; refuse a message with more
    than ``ITEMS_MAX`` items or a container longer than any the protocol allows.

    It only counts: everything else (tags, indefinite lengths, nesting depth, trailing
    bytes) is left to the strict decoder that runs next.
    """
    container_max = max(BATCH_EVENTS_MAX, ORIGINS_MAX)
    pending, offset, seen, size = 1, 0, 0, len(data)
    while pending and offset < size:
        pending, seen = pending - 1, seen + 1
        if seen > ITEMS_MAX:
            raise PeerFault(f"message has more than {ITEMS_MAX} CBOR items")
        major, info = data[offset] >> 5, data[offset] & 0x1F
        offset += 1
        if info < 24:
            length = info
        elif info <= 27:
            width = 1 << (info - 24)
            length = int.from_bytes(data[offset:offset + width], "big")
            offset += width
        else:
            return  # reserved or indefinite: the decoder refuses it with a clear message
        if major in (2, 3):  # byte and text strings: skip the content
            offset += length
        elif major in (4, 5):
            if length > container_max:
                raise PeerFault(f"a CBOR container of {length} entries; the limit is "
                                f"{container_max}")
            pending += length * (2 if major == 5 else 1)
        elif major == 6:
            pending += 1
