"""The automerge layer's foundation: what a session document holds and how it is written.

``document`` (the document), ``syncing`` (syncing it with clients) and this module are the
only ones that call automerge. Here: document ids and URLs, actor ids, the
layout and its genesis change, writing and reading JSON values, the checks on what goes
in, and ``AutomergeDoc``, the one wrapper every automerge call goes through.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import base58
from automerge.core import ROOT, Document, ObjType, ScalarType, Transaction

from crdt import codec
from crdt.automerge import answers
from crdt.errors import CrdtError, InvalidInput, StoreError

URL_PREFIX = "automerge:"
DOC_ID_BYTES = 16
#: Longest base58check document id accepted; 16 bytes + checksum need at most 28 characters.
#: Bounds the quadratic base58 decoding of hostile input.
DOC_ID_CHARS_MAX = 64
#: Longest actor id. Automerge's own are 16 bytes; a little room for other schemes.
ACTOR_BYTES_MAX = 32
#: Longest text (in code points) written one element per character, so that a client can
#: splice inside it. Longer texts are one element: writing costs one call per element and
#: holds the GIL (100,000 characters take about half a second).
SPLICEABLE_CHARS_MAX = 1024
#: Largest nesting below the custom_state map: the map itself, then a value as deep as
#: events may carry (``crdt.codec.DEPTH_MAX``; deeper ones are refused at ingress).
DEPTH_MAX = codec.DEPTH_MAX + 1
_DOC_ID_DOMAIN = b"clawsync/automerge-doc/v1\0"
#: Domain of the ids of documents rebuilt after a forget: the generation (32 bytes, fixed
#: length, so no key/generation pair reads as another) comes before the session key.
_FORGOTTEN_DOC_ID_DOMAIN = b"clawsync/automerge-doc-after-forget/v1\0"
#: Bytes of a generation: the id of the session's latest forget record.
GENERATION_BYTES = 32
_GENESIS_DOMAIN = b"clawsync/automerge-genesis/v1\0"
#: First bytes of every node's actor id. They tell a node's changes (projection values
#: derived from events, never turned into events) from a client's (edits to turn into
#: events) when a client relays another node's changes. They prove nothing: a client can
#: write with any actor. So whoever wrote a change, the receiving node puts back every
#: derived field and message it touched; a change in this node's own actor slot or the
#: genesis actor's is refused outright. What a forged node actor can still do is add
#: messages this node does not hold (they look like another node's messages whose events
#: have not arrived yet) and take a sequence number of that node's actor.
NODE_ACTOR_TAG = b"clawsync"

#: The root fields in genesis order. The order and kinds are part of the genesis hash:
#: changing them makes new documents unmergeable with old ones (bump the domains above).
LAYOUT: tuple[tuple[str, str], ...] = (
    ("session_key", "text"), ("agent_id", "text"), ("channel", "text"),
    ("peer_id", "text"), ("state", "text"), ("message_count", "int"),
    ("event_count", "int"), ("last_activity", "text"), ("last_event_id", "text"),
    ("messages", "map"), ("custom_state", "map"))
#: The scalar fields ``update`` takes, and their values in a fresh document.
EMPTY_FIELDS: dict[str, str | int] = {
    name: 0 if kind == "int" else "" for name, kind in LAYOUT if kind != "map"}
_LAYOUT_NAMES = frozenset(name for name, _ in LAYOUT)
ROLES = ("inbound", "outbound", "tool")
_MESSAGE_TEXTS = ("id", "timestamp", "role", "content", "tool_name")
_MESSAGE_KEYS = frozenset((*_MESSAGE_TEXTS, "key", "success"))
_MESSAGE_REQUIRED = frozenset(("key", "id", "timestamp", "role", "content"))
_FIELD_SCALARS = (ScalarType.Int, ScalarType.Null)
_FOREIGN = object()


def document_id(session_key: str, generation: str | None = None) -> bytes:
    """The session's 16-byte document id, the same on every node.

    ``generation`` is the hex id of the session's latest forget record (None if it was
    never forgotten, which keeps the ids documents had before forgetting existed). A
    forget gives the session a new document, with a history that never held what was
    forgotten; nodes that hold the same events agree on it.

    >>> document_id("s1").hex()
    '84e67c184ee7a1a6547988e8900e69dd'
    >>> document_id("s1", "ab" * 32) != document_id("s1")
    True
    """
    if generation is None:
        return hashlib.blake2b(_DOC_ID_DOMAIN + session_key.encode(), digest_size=16).digest()
    raw = bytes.fromhex(generation)
    if len(raw) != GENERATION_BYTES:
        raise StoreError(f"a generation is {GENERATION_BYTES} bytes in hex, not {len(raw)}")
    return hashlib.blake2b(_FORGOTTEN_DOC_ID_DOMAIN + raw + session_key.encode(),
                           digest_size=16).digest()


def genesis_actor(doc_id: bytes) -> bytes:
    """The actor of the genesis change: BLAKE2b-128 of a domain tag and the document id."""
    return hashlib.blake2b(_GENESIS_DOMAIN + doc_id, digest_size=16).digest()


def node_actor(node_id: str) -> bytes:
    """The 16-byte actor a node writes every document with: the tag, then 8 bytes of hash.

    >>> node_actor("n1").startswith(NODE_ACTOR_TAG), len(node_actor("n1"))
    (True, 16)
    """
    return NODE_ACTOR_TAG + hashlib.blake2b(node_id.encode(), digest_size=8).digest()


def is_node_actor(actor: bytes | None) -> bool:
    """True for the actors of nodes (``node_actor``): their changes are projections."""
    return actor is not None and actor.startswith(NODE_ACTOR_TAG)


def encode_document_id(doc_id: bytes) -> str:
    """automerge-repo's ``DocumentId``: base58 of the bytes and a 4-byte double-SHA-256 sum.

    >>> encode_document_id(bytes(16))
    '11111111111111114Ki9Gx'
    >>> automerge_url("s1")
    'automerge:2rPXk7WCZuV9W9C4pNhWXz4JezQ6'
    """
    return str(base58.b58encode_check(doc_id).decode("ascii"))


def decode_document_id(text: object, field: str = "documentId") -> bytes:
    """Inverse of ``encode_document_id``; ``InvalidInput`` unless it is a valid id."""
    if not isinstance(text, str) or not 0 < len(text) <= DOC_ID_CHARS_MAX:
        raise InvalidInput(f"must be a base58check string of at most {DOC_ID_CHARS_MAX} "
                           "characters", field=field)
    try:
        raw = bytes(base58.b58decode_check(text))
    except ValueError:  # bad character or checksum
        raise InvalidInput("is not valid base58check", field=field) from None
    if len(raw) != DOC_ID_BYTES:
        raise InvalidInput(f"must encode {DOC_ID_BYTES} bytes, not {len(raw)}", field=field)
    return raw


def automerge_url(session_key: str, generation: str | None = None) -> str:
    """The ``automerge:`` URL of a session's document, as automerge-repo writes it
    (``generation`` as in ``document_id``)."""
    return URL_PREFIX + encode_document_id(document_id(session_key, generation))


def parse_automerge_url(url: object, field: str = "url") -> bytes:
    """The document id in an ``automerge:`` URL; ``InvalidInput`` on anything else.

    >>> parse_automerge_url(automerge_url("s1")) == document_id("s1")
    True
    """
    if not isinstance(url, str) or not url.startswith(URL_PREFIX):
        raise InvalidInput(f"must be a string starting with {URL_PREFIX!r}", field=field)
    return decode_document_id(url[len(URL_PREFIX):], field)


@contextmanager
def _translated(error: type[CrdtError], doing: str,
                on_panic: Callable[[], None] | None = None) -> Iterator[None]:
    """Turn automerge's failures into ``error``: the one place that catches them.

    automerge raises bare ``Exception`` (and PyO3 conversion errors), which leave the
    document as it was; a Rust panic arrives as a ``BaseException`` and poisons it, so
    ``on_panic`` is called to stop anyone from touching it again.
    """
    try:
        yield
    except (CrdtError, KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:
        if not isinstance(exc, Exception) and on_panic is not None:
            on_panic()
        raise error(f"automerge failed while {doing}: {exc}") from exc


def _check_actor(actor: object, session_key: str, generation: str | None) -> bytes:
    if not isinstance(actor, bytes) or not 0 < len(actor) <= ACTOR_BYTES_MAX:
        raise StoreError(f"actor must be 1 to {ACTOR_BYTES_MAX} bytes")
    # The genesis actor's seq 2 would differ per node.
    if actor == genesis_actor(document_id(session_key, generation)):
        raise StoreError("the genesis actor must not write after genesis")
    return actor


def _genesis(session_key: str, generation: str | None) -> Document:
    """A document holding only the genesis change; identical bytes on every node."""
    doc = Document(actor_id=genesis_actor(document_id(session_key, generation)))
    with doc.transaction() as tx:
        for name, kind in LAYOUT:
            if kind == "int":
                tx.put(ROOT, name, ScalarType.Int, 0)
            else:
                obj = tx.put_object(ROOT, name, ObjType.Map if kind == "map" else ObjType.Text)
                if name == "session_key":  # known at birth, so it never needs rewriting
                    tx.insert(obj, 0, ScalarType.Str, session_key)
    return doc


def _put_text(tx: Transaction, obj: bytes, prop: str | int, value: str,
              whole: bool = False) -> None:
    """Write ``value`` as a new Text object, which JavaScript reads as a ``string``.

    One element per character lets a client splice inside the text; this binding has no
    splice, so that costs a call per character. A whole-string element is one call, but a
    client's splice inside it lands at its end. So: per character up to
    ``SPLICEABLE_CHARS_MAX``, whole beyond, and whole for read-only texts (messages).
    """
    text = (tx.put_object(obj, prop, ObjType.Text) if isinstance(prop, str)
            else tx.insert_object(obj, prop, ObjType.Text))
    if whole or len(value) > SPLICEABLE_CHARS_MAX:
        parts = [value] if value else []
    else:
        parts = list(value)
    for index, part in enumerate(parts):
        tx.insert(text, index, ScalarType.Str, part)


def _scalar(value: Any) -> tuple[ScalarType, Any]:
    if value is None:
        return ScalarType.Null, None
    if isinstance(value, bool):
        return ScalarType.Boolean, value
    if isinstance(value, int):
        return (ScalarType.Int if value < 2**63 else ScalarType.Uint), value
    return ScalarType.F64, value


def _put_json(tx: Transaction, obj: bytes, prop: str | int, value: Any) -> None:
    """Write a ``_storable`` value at a map key (``prop`` str) or list index (int)."""
    if isinstance(value, str):
        _put_text(tx, obj, prop, value)
    elif isinstance(value, list | dict):
        kind = ObjType.List if isinstance(value, list) else ObjType.Map
        child = (tx.put_object(obj, prop, kind) if isinstance(prop, str)
                 else tx.insert_object(obj, prop, kind))
        items = enumerate(value) if isinstance(value, list) else value.items()
        for key, item in items:
            _put_json(tx, child, key, item)
    elif isinstance(prop, str):
        tx.put(obj, prop, *_scalar(value))
    else:
        tx.insert(obj, prop, *_scalar(value))


def _storable(value: Any, field: str, depth: int = 0) -> Any:
    """Check a JSON value and drop what Automerge cannot hold: map entries with an empty
    key (refused by Automerge; the JSON projection keeps them). Comparing the document
    with this form rather than the input keeps an unchanged projection a no-op."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int) and -(2**63) <= value < 2**64:
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    if depth < DEPTH_MAX and isinstance(value, list):
        return [_storable(item, f"{field}[{i}]", depth + 1) for i, item in enumerate(value)]
    if depth < DEPTH_MAX and isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _storable(v, f"{field}.{k}", depth + 1) for k, v in value.items() if k}
    raise StoreError(f"{field}: {type(value).__name__} value cannot go into the document")


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (``1 == 1.0 == True`` in Python)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(_same, a, b))
    return bool(a == b)


def _check_fields(fields: Mapping[str, Any]) -> dict[str, str | int | None]:
    """Text fields may be None (a session without events has no last_event_id): they are
    then written as null, as in the JSON projection."""
    if set(fields) != set(EMPTY_FIELDS):
        raise StoreError(f"fields must be exactly {sorted(EMPTY_FIELDS)}, not {sorted(fields)}")
    for name, empty in EMPTY_FIELDS.items():
        value = fields[name]
        if isinstance(empty, str) and (value is None or type(value) is str):
            continue
        if isinstance(empty, int) and type(value) is int and 0 <= value < 2**63:
            continue
        raise StoreError(f"field {name} must be a {type(empty).__name__} (64-bit if int)")
    return dict(fields)


def _check_message(message: Mapping[str, Any]) -> dict[str, Any]:
    """Checked once per message of a document built from the log: set operations on the
    keys and one pass over the texts, no per-message sets."""
    keys = message.keys()
    if not _MESSAGE_REQUIRED <= keys <= _MESSAGE_KEYS:
        raise StoreError(f"message has unknown keys {sorted(keys - _MESSAGE_KEYS)} or lacks "
                         f"{sorted(_MESSAGE_REQUIRED - keys)}")
    if not isinstance(message["key"], str) or not message["key"]:
        raise StoreError("message key must be a non-empty string")
    if message["role"] not in ROLES:
        raise StoreError(f"message role must be one of {', '.join(ROLES)}")
    for name in _MESSAGE_TEXTS:
        if not isinstance(message.get(name, ""), str):
            raise StoreError(f"message fields {', '.join(_MESSAGE_TEXTS)} must be strings")
    if not isinstance(message.get("success", False), bool):
        raise StoreError("message success must be a boolean")
    return dict(message)


def _put_message(tx: Transaction, messages: bytes, message: Mapping[str, Any]) -> None:
    """A message's texts are read-only: each is one whole-string element (``_put_text``
    with ``whole``, inlined: a document built from the log writes thousands)."""
    obj = tx.put_object(messages, message["key"], ObjType.Map)
    for name in _MESSAGE_TEXTS:
        if name in message:
            text = tx.put_object(obj, name, ObjType.Text)
            if value := message[name]:
                tx.insert(text, 0, ScalarType.Str, value)
    if "success" in message:
        tx.put(obj, "success", ScalarType.Boolean, message["success"])


def _root_map(doc: Document, name: str) -> bytes:
    got = doc.get(ROOT, name)
    if got is None or got[0] != ObjType.Map:  # a client may have replaced it
        raise StoreError(f"document root {name!r} is no longer a map")
    return got[1]


def _root_field(doc: Document, name: str) -> object:
    """A root field as ``update`` writes it (Text, Int or Null), or a marker that equals
    nothing if it is anything else (a client may have written something odd)."""
    got = doc.get(ROOT, name)
    if got is not None and got[0] == ObjType.Text:
        return doc.text(got[1])
    if got is not None and isinstance(got[0], tuple) and got[0][0] in _FIELD_SCALARS:
        return got[0][1]
    return _FOREIGN


def _replaced_maps(doc: Document, session_key: str, generation: str | None,
                   names: Iterable[str]) -> list[str]:
    """Those of the root maps ``names`` that are no longer the ones this session's genesis
    change created (replaced, deleted, or never there).

    Both ids are read from ``doc`` itself. An object id's bytes hold its creating actor's
    index in the actor table of the document that answered, and that table is
    per-document: a fresh document numbers actors as they write, a loaded one in sorted
    order. Ids from two documents, or from two loads, may differ for the same object.
    """
    heads = _genesis(session_key, generation).get_heads()
    replaced = []
    for name in names:
        now, then = doc.get(ROOT, name), doc.get(ROOT, name, heads)
        if now is None or then is None or now[0] != ObjType.Map or now[1] != then[1]:
            replaced.append(name)
    return replaced


def _check_genesis(doc: Document, session_key: str, generation: str | None) -> None:
    """The root maps must be the ones of this session's genesis change (of this
    generation), or a merge with our documents would hide one side's messages."""
    for name in _replaced_maps(doc, session_key, generation, ("messages", "custom_state")):
        raise InvalidInput(f"not this session's document: {name!r} is not the genesis map")


class _NotJson(Exception):
    def __init__(self, what: str) -> None:
        self.what = what


def _read_json(doc: Document, got: tuple[Any, bytes] | None, heads: list[bytes] | None,
               depth: int = 0) -> Any:
    """A value as plain JSON, read at ``heads`` (None: now). ``_NotJson`` for what JSON
    cannot hold; never reads a counter's value, whose conversion panics."""
    if got is None:
        raise _NotJson("nothing")
    value, obj = got
    if value == ObjType.Text:
        return doc.text(obj, heads)
    if value in (ObjType.Map, ObjType.List):
        if depth >= DEPTH_MAX:
            raise _NotJson(f"nesting deeper than {DEPTH_MAX}")
        if value == ObjType.Map:
            return {key: _read_json(doc, doc.get(obj, key, heads), heads, depth + 1)
                    for key in doc.keys(obj, heads)}
        return [_read_json(doc, doc.get(obj, index, heads), heads, depth + 1)
                for index in range(doc.length(obj, heads))]
    kind, scalar = value
    if kind in (ScalarType.Str, ScalarType.Int, ScalarType.Uint, ScalarType.Boolean,
                ScalarType.Null):
        return scalar
    if kind == ScalarType.F64 and math.isfinite(scalar):
        return scalar
    raise _NotJson(str(kind).rpartition(".")[2].lower())


def _message_entry(message: Mapping[str, Any]) -> dict[str, Any]:
    """A message as ``_put_message`` writes it (without its key)."""
    entry = {name: message[name] for name in _MESSAGE_TEXTS if name in message}
    if "success" in message:
        entry["success"] = message["success"]
    return entry


class AutomergeDoc:
    """An automerge ``Document`` that every call reaches through ``_automerge``, which
    translates automerge's failures and makes the object unusable after a panic."""

    #: How a panic's error names the object and what to do about it.
    _unusable = "document unusable"

    def __init__(self, doc: Document) -> None:
        self._doc = doc
        self._failure: str | None = None
        # Saving a large document costs tens of milliseconds of GIL: the last save is
        # reused while the heads (which fix the content) have not moved.
        self._saved: tuple[list[bytes], bytes] | None = None
        # The bytes around the save in the answer to a peer with nothing (``answers``),
        # for the heads of ``_saved``; None if the save was made another way.
        self._around: tuple[bytes, bytes] | None = None

    @contextmanager
    def _automerge(self, doing: str) -> Iterator[Document]:
        """The document, for a call that may fail inside automerge."""
        if self._failure is not None:
            raise StoreError(f"{self._unusable} since an automerge panic ({self._failure})")
        with _translated(StoreError, doing, lambda: setattr(self, "_failure", doing)):
            yield self._doc

    @property
    def heads(self) -> list[bytes]:
        """Hashes of the latest changes, sorted."""
        with self._automerge("reading heads") as doc:
            return sorted(doc.get_heads())

    def save(self) -> bytes:
        """A compact snapshot of the whole document."""
        with self._automerge("saving") as doc:
            return self._save(doc)

    def blank_answer(self) -> bytes | None:
        """The answer to ``answers.blank_request``, if it carries the saved document."""
        with self._automerge("answering a peer with nothing") as doc:
            saved = self._save(doc)
            return None if self._around is None else self._around[0] + saved + self._around[1]

    def _save(self, doc: Document) -> bytes:
        heads = doc.get_heads()
        if self._saved is None or self._saved[0] != heads:
            # Made as the answer to a peer with nothing, which carries it (``answers``).
            data = answers.answer(doc, answers.blank_request())
            parts = None if data is None else answers.split(data)
            if parts is None:
                self._saved, self._around = (heads, doc.save()), None
            else:
                self._saved, self._around = (heads, parts[1]), (parts[0], parts[2])
        return self._saved[1]

    def generate_sync_message(self, state: Any) -> bytes | None:
        """The next message for the peer of ``state``; None when there is nothing to say.

        To a peer that has nothing and lists the v2 capability (automerge 2.2 and later)
        automerge sends a v2 message carrying the whole saved document as one chunk,
        which the peer loads as one unit; later messages carry changes.
        """
        with self._automerge("generating a sync message") as doc:
            message = doc.generate_sync_message(state)
            return None if message is None else bytes(message.encode())
