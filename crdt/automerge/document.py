"""Automerge projection documents: a session's projection as an Automerge document.

With ``crdt.automerge.layout`` and ``crdt.automerge.syncing`` (this module's parts, re-exported
here), the only code that calls automerge. Pure: values in, bytes out.

Clients sync these documents; nodes replicate events, and each node builds its own
document for a session from them (DESIGN decision 7). A client that syncs with two nodes
merges their documents, so the nodes must not create rival containers: if each created
its own ``messages`` map, the merge would keep one map and hide the other's messages.
Hence every document starts with the same *genesis change* (an actor derived from the
document id, timestamp 0) creating every root field and container. Later changes use the
node's own actor and only put a message under a missing key (messages never change),
replace a root field or ``custom_state`` entry whole (a new Text object, never an edit in
the old one: two nodes inserting the same text would merge to it twice), or delete a
``custom_state`` key. Nodes that saw the same events thus write equal values, and
whichever of their concurrent writes Automerge picks, a merge reads like either of them.

>>> doc = SessionDoc.new("s1", actor=bytes(16) + b"\\x01")
>>> changes = doc.update(dict(EMPTY_FIELDS, session_key="s1", state="active"), [
...     {"key": "0001", "id": "ab", "timestamp": "2026-01-01T00:00:00.000Z",
...      "role": "inbound", "content": "hi"}], {"mood": ["calm", 1]})
>>> view = doc.to_python()
>>> view["state"], view["messages"]["0001"]["content"], view["custom_state"]
('active', 'hi', {'mood': ['calm', 1]})
>>> doc.update(dict(EMPTY_FIELDS, session_key="s1", state="active"), [], {"mood": ["calm", 1]})
b''
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from automerge.core import ROOT, Document, ObjType, extract

from crdt.automerge.layout import (
    ACTOR_BYTES_MAX,
    DEPTH_MAX,
    DOC_ID_BYTES,
    DOC_ID_CHARS_MAX,
    EMPTY_FIELDS,
    GENERATION_BYTES,
    LAYOUT,
    NODE_ACTOR_TAG,
    ROLES,
    SPLICEABLE_CHARS_MAX,
    URL_PREFIX,
    _check_actor,
    _check_fields,
    _check_genesis,
    _check_message,
    _genesis,
    _put_json,
    _put_message,
    _root_field,
    _root_map,
    _same,
    _storable,
    _translated,
    automerge_url,
    decode_document_id,
    document_id,
    encode_document_id,
    genesis_actor,
    is_node_actor,
    node_actor,
    parse_automerge_url,
)
from crdt.automerge.syncing import Edits, Received, Replica, SyncingDoc, new_sync_state
from crdt.errors import InvalidInput, StoreError
from crdt.keys import check_session_key

__all__ = [
    "ACTOR_BYTES_MAX", "DEPTH_MAX", "DOC_ID_BYTES", "DOC_ID_CHARS_MAX", "EMPTY_FIELDS",
    "GENERATION_BYTES", "LAYOUT", "NODE_ACTOR_TAG", "ROLES", "SPLICEABLE_CHARS_MAX",
    "URL_PREFIX", "Edits",
    "Received", "Replica", "SessionDoc", "automerge_url", "decode_document_id",
    "document_id", "encode_document_id", "genesis_actor", "is_node_actor",
    "new_sync_state", "node_actor", "parse_automerge_url",
]


class SessionDoc(SyncingDoc):
    """One session's Automerge document, written by this node's actor. Not thread-safe.

    The actor must be unique to this node *and* must not have written to this document
    before unless the document is loaded from its saved bytes: an actor that rebuilds a
    document from scratch reuses sequence numbers that clients already hold for other
    changes. Use a fresh actor whenever a document is rebuilt rather than loaded.
    """

    _unusable = "document unusable (load it again from its saved bytes)"

    def __init__(self, doc: Document, session_key: str, generation: str | None = None
                 ) -> None:
        super().__init__(doc)
        #: A client's edit is on its way into the log (``node.automerge.library`` sets it):
        #: ``update`` leaves ``state`` and ``custom_state`` as the client left them, so
        #: that a catch-up by anyone (``GET .../automerge`` too) does not briefly write
        #: the old values back over the new ones.
        self.held = False
        self.session_key = session_key
        #: The session's latest forget record when the document was made (its id's
        #: input, see ``document_id``); None if the session was never forgotten.
        self.generation = generation
        self.document_id = document_id(session_key, generation)

    @classmethod
    def new(cls, session_key: str, actor: bytes, generation: str | None = None
            ) -> SessionDoc:
        """The genesis document of ``session_key`` (of ``generation``, see
        ``document_id``), to be written by ``actor``."""
        _check_actor(actor, check_session_key(session_key), generation)
        with _translated(StoreError, "creating a document"):
            doc = _genesis(session_key, generation)
            doc.set_actor(actor)
        return cls(doc, session_key, generation)

    @classmethod
    def load(cls, data: bytes, actor: bytes, generation: str | None = None) -> SessionDoc:
        """Load saved bytes (a snapshot, optionally followed by change bytes from ``update``).
        ``InvalidInput`` if they are not a clawsync session document of ``generation``."""
        if not isinstance(data, bytes):
            raise InvalidInput("document must be bytes")
        with _translated(InvalidInput, "loading a document"):
            doc = Document.load(data)
            got = doc.get(ROOT, "session_key")
            if got is None or got[0] != ObjType.Text:
                raise InvalidInput("not a session document: no session_key text")
            session_key = doc.text(got[1])
            _check_genesis(doc, session_key, generation)
            doc.set_actor(_check_actor(actor, session_key, generation))
        return cls(doc, session_key, generation)

    def to_python(self) -> dict[str, Any]:
        """The document as plain values; messages as a dict keyed by sort key."""
        with self._automerge("reading the document") as doc:
            view = extract(doc)
        assert isinstance(view, dict)
        return view

    def update(self, fields: Mapping[str, Any], messages: Iterable[Mapping[str, Any]],
               custom_state: Mapping[str, Any]) -> bytes:
        """Make the document show this projection; return the new change bytes, ``b""``
        if it already did. ``fields`` are the scalar root fields (keys of ``EMPTY_FIELDS``);
        ``messages`` may repeat ones already written (they are skipped)."""
        before = self.write(fields, messages, custom_state)
        return b"" if before is None else self.changes_since(before)

    def write(self, fields: Mapping[str, Any], messages: Iterable[Mapping[str, Any]],
              custom_state: Mapping[str, Any]) -> list[bytes] | None:
        """``update`` without collecting the change bytes (a caller about to save the
        whole document has no use for them): the heads before, None if nothing changed."""
        wanted = _check_fields(fields)
        if wanted["session_key"] != self.session_key:
            raise StoreError("fields belong to another session")
        batch = {m["key"]: m for m in map(_check_message, messages)}
        if "" in custom_state:
            raise StoreError("custom_state keys must not be empty")
        state = _storable(dict(custom_state), "custom_state")
        with self._automerge("updating") as doc:
            messages_obj, state_obj = _root_map(doc, "messages"), _root_map(doc, "custom_state")
            changed = {k: v for k, v in wanted.items() if not _same(v, _root_field(doc, k))}
            if doc.length(messages_obj):
                new = [batch[k] for k in sorted(batch) if doc.get(messages_obj, k) is None]
            else:  # a document built from the log: every message is new
                new = [batch[k] for k in sorted(batch)]
            current = extract(doc, state_obj)
            assert isinstance(current, dict)
            puts = {k: v for k, v in state.items() if k not in current or not _same(v, current[k])}
            drops = [k for k in current if k not in state]
            if self.held:
                changed.pop("state", None)
                puts, drops = {}, []
            if not (changed or new or puts or drops):
                return None
            before = doc.get_heads()
            with doc.transaction() as tx:
                for name, value in changed.items():
                    _put_json(tx, ROOT, name, value)
                for message in new:
                    _put_message(tx, messages_obj, message)
                for key, value in puts.items():
                    _put_json(tx, state_obj, key, value)
                for key in drops:
                    tx.delete(state_obj, key)
            return before

    def changes_since(self, heads: list[bytes]) -> bytes:
        """The bytes of every change made after ``heads``, concatenated."""
        with self._automerge("reading changes") as doc:
            return b"".join(change.bytes for change in doc.get_changes(heads))
