"""The records of the log, as they are kept in storage (``crdt.storage``).

Record keys are text; the unit separator ``\\x1f`` cannot occur in a session key:

    m                    meta: node id, next position, local sequence, clock, version vector,
                         retired origins (``crdt.log.retire``), forgotten sessions counted
    e␟<id hex>           [canonical event bytes, origin, seq, position, signature]  -- the
                         log itself (a forgotten event: its skeleton's fields instead of
                         the bytes; no signature: an unsigned event, as every one stored
                         before events were signed)
    g␟<origin>␟<seq>     the signature of an event held in a slot other than its own
                         (numbered again; ``e`` keeps the first slot's)
    b␟<origin>, v␟<device id>  bound origins (``crdt.log.bound``; ``d`` is taken by the
                         Automerge documents, ``crdt.automerge.documents``)
    f␟<session>          what the session's forget records cover (``crdt.log.erase``)
    p␟<n>                ids of positions n*128 .. n*128+127             -- local order
    o␟<origin>␟<n>       positions of that origin's seqs n*128 .. +127   -- per-origin order
    h␟<session>          projection header + session bookkeeping
    c␟<session>␟<n>      chunk n of the session's entries, in arrival (position) order
    l␟<index>            session key, in creation order                  -- paged session list
    k␟<peer key>         a peer link's last known version vector         -- sync checkpoint

Values are CBOR the node wrote itself (read back without checks), except ``l`` (the
session key in UTF-8). A session's entries are ``[position, ms, counter, id, message or
None]``. This layout is ``LOG_FORMAT`` 1; a log of another format is refused, not read.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from crdt import codec
from crdt.clock import HLC_ZERO, Hlc
from crdt.errors import InvalidInput, LogFormatError
from crdt.events import Event
from crdt.log.projection import Header, Message
from crdt.membership import shown

SEP = "\x1f"
LOG_FORMAT = 1
#: Positions (and per-origin sequence numbers) per index chunk.
INDEX_CHUNK = 128
#: The meta record's key.
META = "m"


def key(*parts: object) -> str:
    """A record key from its parts: ``key("c", "s1", 0)`` is ``"c␟s1␟0"``."""
    return SEP.join(map(str, parts))


def event_key(event_id: bytes) -> str:
    return f"e{SEP}{event_id.hex()}"


def position_chunk_key(position: int) -> str:
    return f"p{SEP}{position // INDEX_CHUNK}"


def origin_chunk_key(origin: str, seq: int) -> str:
    return f"o{SEP}{origin}{SEP}{seq // INDEX_CHUNK}"


class StoredEvent(NamedTuple):
    """An event with where this node keeps it and where it first came from."""

    event: Event
    position: int
    origin: str
    seq: int
    #: The origin's device's signature of the event at (origin, seq); None: unsigned.
    signature: bytes | None = None

    def to_json(self) -> dict[str, Any]:
        """The event as clients are shown it (``crdt.membership.shown``), and where this
        node keeps it."""
        out = shown(self.event)  # a new dict: added to in place, not copied
        out["position"], out["origin"], out["seq"] = self.position, self.origin, self.seq
        return out

    @classmethod
    def from_record(cls, raw: bytes, event_id: bytes) -> StoredEvent:
        content, origin, seq, position, *signed = codec.decode_trusted(raw)
        signature = signed[0] if signed else None  # stored before events were signed
        if isinstance(content, dict):  # a skeleton (``crdt.log.forget``)
            return cls(Event.from_skeleton_fields(content), position, origin, seq, signature)
        return new_tuple(cls, (Event.from_trusted(content, event_id), position, origin, seq,
                                signature))

    def to_record(self) -> bytes:
        event, signature = self.event, self.signature
        if event.forgotten_by is not None:  # a skeleton: its fields instead of the bytes
            fields = [event.skeleton_fields(), self.origin, self.seq, self.position]
            if signature is not None:
                fields.append(signature)
            return codec.encode_fast(fields)
        # What ``encode_fast`` gives the list of fields, put together directly: every
        # event takes one, and cbor2 takes several times as long for it.
        canonical, head = event.canonical, codec.head
        return b"".join((
            _ARRAY_4 if signature is None else _ARRAY_5, head(2, len(canonical)), canonical,
            _origin_text(self.origin), head(0, self.seq), head(0, self.position),
            b"" if signature is None else head(2, len(signature)) + signature))


class Sealed(NamedTuple):
    """An event as a peer is sent it: its canonical bytes and id, its content not
    decoded. A peer's catch-up reads every event it sends, and sending looks at nothing
    else: building each ``Event`` decoded its content for nothing (about a third of the
    sender's CPU time in ``bench.catchup``)."""

    canonical: bytes
    id: bytes
    forgotten_by: None = None  # a skeleton is read in full (``Outgoing``)


class Outgoing(NamedTuple):
    """A stored event as a peer is sent it (``EventLog.origin_outgoing``): a skeleton as
    an ``Event`` (its record holds its fields, decoded anyway), any other ``Sealed``."""

    event: Event | Sealed
    origin: str
    seq: int
    signature: bytes | None = None

    @classmethod
    def from_record(cls, raw: bytes, event_id: bytes) -> Outgoing:
        content, origin, seq, _position, *signed = codec.decode_trusted(raw)
        signature = signed[0] if signed else None
        if isinstance(content, dict):  # a skeleton (``crdt.log.forget``)
            return cls(Event.from_skeleton_fields(content), origin, seq, signature)
        return new_tuple(cls, (new_tuple(Sealed, (content, event_id, None)), origin, seq,
                               signature))


_ARRAY_4, _ARRAY_5 = codec.head(4, 4), codec.head(4, 5)
_NULL = codec.encode_fast(None)
_ID_HEAD = codec.head(2, 32)  # an event id's: 32 bytes


@functools.lru_cache(maxsize=1024)
def _origin_text(origin: str) -> bytes:
    """An origin's CBOR text, kept: a batch of a node's own events all have one."""
    return codec.encode_text(origin)


def entry_record(position: int, sort_key: tuple[int, int, bytes],
                 message: bytes | None) -> bytes:
    """A session entry as stored (``Entry.from_record`` reads it): the bytes that
    ``encode_fast([position, ms, counter, id, message or None])`` gives, put together
    directly, as every event adds one; ``message`` is the message's record (``Message.
    to_record``)."""
    ms, counter, event_id = sort_key
    head = codec.head
    return b"".join((_ARRAY_5, head(0, position), head(0, ms), head(0, counter),
                     _ID_HEAD if len(event_id) == 32 else head(2, len(event_id)), event_id,
                     _NULL if message is None else message))


class Appended(NamedTuple):
    stored: StoredEvent
    created: bool  # False when the event was already in the log


#: ``StoredEvent(event, ...)`` is ``new_tuple(StoredEvent, (event, ...))``, all fields
#: given, without the Python-level ``__new__`` a named tuple has: every event a batch
#: stores or a peer's catch-up reads makes one.
new_tuple = tuple.__new__


class Entry(NamedTuple):
    """One event in a session's chunk list."""

    position: int
    sort_key: tuple[int, int, bytes]
    message: Message | None

    @classmethod
    def from_record(cls, raw: list[Any]) -> Entry:
        position, ms, counter, event_id, message = raw
        sort_key = (ms, counter, event_id)
        return cls(position, sort_key,
                   Message.from_cbor(sort_key, message) if message else None)


@dataclass
class Meta:
    node_id: str
    next_position: int = 1
    local_seq: int = 0
    clock: Hlc = HLC_ZERO
    sessions: int = 0
    #: Active origins -> contiguous seq: the version vector hellos carry.
    version: dict[str, int] = field(default_factory=dict)
    #: Retired origins held up to their final seq, dropped from ``version``: -> final seq.
    retired: dict[str, int] = field(default_factory=dict)
    #: Retirements whose origin we do not hold up to the final seq yet (still active,
    #: when ``version`` has room for it): -> final seq.
    retiring: dict[str, int] = field(default_factory=dict)
    #: ``n`` of our origin if it is bound to our key (``crdt.log.bound``); None: a
    #: random origin, as every one taken before events were signed.
    origin_n: int | None = None
    #: Sessions of which nothing but forget records is left (``Session.forgotten``),
    #: kept by every commit (``Batch.flush``) so that counting them reads no header.
    #: None: not counted yet (a folder written before the count was kept, or whose meta
    #: record an older node wrote since), until ``EventLog.open`` counts them.
    forgotten_sessions: int | None = 0
    #: The software (its version, as the node names it) that wrote the record last:
    #: read only by a version that refuses the log as newer, to name the version to run
    #: (``LogFormatError.writer``). None: not said (a log an earlier version wrote).
    written_by: str | None = None

    def to_record(self) -> bytes:
        record = {
            "format": LOG_FORMAT, "node_id": self.node_id, "next": self.next_position,
            "seq": self.local_seq, "clock": list(self.clock), "sessions": self.sessions,
            "version": self.version, "retired": self.retired, "retiring": self.retiring,
            "origin_n": self.origin_n}
        # Left out until it is known: a commit before the count (an earlier upgrade as
        # the log opens) must not store a figure that the next open would then trust.
        if self.forgotten_sessions is not None:
            record["forgotten"] = self.forgotten_sessions
        # A field that versions before it ignore: each reads the fields it knows by
        # name and lets others pass (``from_fields``), so a log this writes stays
        # theirs to read.
        if self.written_by is not None:
            record["written_by"] = self.written_by
        return codec.encode_fast(record)

    def copy(self) -> Meta:
        """A copy to change during a commit, kept only if the commit succeeds."""
        return replace(self, version=dict(self.version), retired=dict(self.retired),
                       retiring=dict(self.retiring))

    @classmethod
    def from_record(cls, data: bytes) -> Meta:
        return cls.from_fields(cls.fields(data))

    @staticmethod
    def fields(data: bytes) -> dict[str, Any]:
        """The decoded record, its format checked (``from_fields`` builds the ``Meta``;
        the keys present tell which older format wrote it)."""
        try:
            raw = codec.decode(data)
        except InvalidInput:  # no version writes such bytes: a damaged record
            raise LogFormatError(None, LOG_FORMAT, damage="it is not CBOR") from None
        if not isinstance(raw, dict):
            raise LogFormatError(None, LOG_FORMAT, damage="it is not a map")
        if "format" not in raw:
            raise LogFormatError(None, LOG_FORMAT, damage="it has no format field")
        # ``type(...) is int``: True and 1.0 equal 1 but no version writes them (a
        # damaged record is refused, not read and then rewritten as format 1).
        if type(raw["format"]) is not int or raw["format"] != LOG_FORMAT:
            writer = raw.get("written_by")
            raise LogFormatError(raw["format"], LOG_FORMAT,
                                 writer=writer if isinstance(writer, str) else None)
        return raw

    @classmethod
    def from_fields(cls, raw: dict[str, Any]) -> Meta:
        missing = next((name for name in _META_KINDS
                        if name not in raw and name not in _META_LATER), None)
        if missing is not None:  # every version writes these: a damaged record
            raise LogFormatError(None, LOG_FORMAT, damage=f"it has no {missing} field")
        # Each kind checked: a value of another kind either failed deep in the start (a
        # traceback) or was taken, and the damaged record rewritten by the next commit.
        for name, (kind, said) in _META_KINDS.items():
            if name in raw and not kind(raw[name]):
                raise LogFormatError(None, LOG_FORMAT,
                                     damage=f"its {name} field is not {said}")
        # A log written before origins could retire has neither map: none retired. One
        # without the forgotten count is counted when it opens (``EventLog.open``).
        return cls(raw["node_id"], raw["next"], raw["seq"], Hlc(*raw["clock"]),
                   raw["sessions"], dict(raw["version"]), dict(raw.get("retired", {})),
                   dict(raw.get("retiring", {})), raw.get("origin_n"), raw.get("forgotten"))


def _is_int(value: object) -> bool:
    """An int, as every version writes: ``type(...) is``, since True is an int too."""
    return type(value) is int


def _is_clock(value: object) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == 2 \
        and all(_is_int(part) for part in value)


def _is_counts(value: object) -> bool:
    return isinstance(value, dict) \
        and all(type(key) is str and _is_int(count) for key, count in value.items())


def _is_int_or_none(value: object) -> bool:
    return value is None or _is_int(value)


#: Each field of the meta record: how to tell its kind, and the kind in words.
_META_KINDS: dict[str, tuple[Callable[[object], bool], str]] = {
    "node_id": (lambda value: type(value) is str, "a text"),
    "next": (_is_int, "a whole number"),
    "seq": (_is_int, "a whole number"),
    "clock": (_is_clock, "a pair of whole numbers"),
    "sessions": (_is_int, "a whole number"),
    "version": (_is_counts, "a map of names to whole numbers"),
    "retired": (_is_counts, "a map of names to whole numbers"),
    "retiring": (_is_counts, "a map of names to whole numbers"),
    "origin_n": (_is_int_or_none, "a whole number or null"),
    "forgotten": (_is_int_or_none, "a whole number or null"),
}
#: Fields that later versions added: a log written before them has none.
_META_LATER = frozenset({"retired", "retiring", "origin_n", "forgotten"})


@dataclass
class Session:
    """A session's header and the bookkeeping of its chunk list."""

    header: Header
    index: int  # place in the session list
    chunks: int = 1  # chunk count; the last one is open
    tail_bytes: int = 0  # estimated size of the open chunk (fixed part + message text)
    #: Entries in the chunks: one per event, known kind or not (``header.event_count``
    #: counts the known ones).
    entries: int = 0
    #: True once a forget record of the session is stored (its ``f`` record exists).
    forgets: bool = False
    #: Entries that are neither forgotten (skeletons) nor forget records, whatever their
    #: kind: unlike ``header.event_count`` it counts kinds this version does not know, so
    #: nodes of every version holding the same events agree on it (``forgotten``).
    live: int = 0

    @property
    def forgotten(self) -> bool:
        """Every event of the session forgotten (``clawsync forget``): it holds a forget
        record and nothing else is left. An event dated after the forget brings the
        session back."""
        return self.forgets and self.live == 0

    def to_record(self) -> bytes:
        record = {"header": self.header.to_cbor(), "index": self.index,
                  "chunks": self.chunks, "tail_bytes": self.tail_bytes,
                  "entries": self.entries}
        if self.forgets:
            record["forgets"] = True
            record["live"] = self.live
        return codec.encode_fast(record)

    @classmethod
    def from_record(cls, data: bytes) -> Session:
        raw = codec.decode_trusted(data)
        header = Header.from_cbor(raw["header"])
        # Written before there were kinds a node does not know, every entry was counted.
        entries = raw.get("entries", header.event_count)
        forgets = raw.get("forgets", False)
        # Without forgets, ``live`` is kept as ``entries`` (nothing was forgotten here),
        # to save a field in the most common record. One with forgets written before
        # ``live`` was counted: the known events left stand in for it until the next
        # forget of the session counts it again.
        live = raw.get("live", header.event_count) if forgets else entries
        return cls(header, raw["index"], raw["chunks"], raw["tail_bytes"], entries,
                   forgets, live)
