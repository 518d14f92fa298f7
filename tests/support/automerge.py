"""A minimal automerge-repo client in Python, for tests: it speaks the frames of
``sync.repo.messages`` the way ``@automerge/automerge-repo`` does, holding one plain
automerge ``Document`` per document id. Written from the protocol's description, so it
checks the node independently of the node's own encoder."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import cbor2
from automerge.core import ROOT, Document, Message, ObjType, ScalarType, SyncState, extract

from crdt.automerge.binreader import uleb
from crdt.automerge.chunks import MAGIC
from crdt.automerge.document import automerge_url


def text_id(session_key: str) -> str:
    """The documentId automerge-repo uses for a session."""
    return automerge_url(session_key).removeprefix("automerge:")


class App:
    """One client: peer id, documents, sync states, and what the node said."""

    def __init__(self, peer: str = "peer-app", actor: bytes = b"\xa9" * 16) -> None:
        self.peer = peer
        self.actor = actor
        self.server: str | None = None
        self.docs: dict[str, Document] = {}
        self.states: dict[str, SyncState] = {}
        self.unavailable: list[str] = []
        self.errors: list[str] = []
        self.ephemeral: list[dict[str, Any]] = []

    def frame(self, **fields: Any) -> bytes:
        return bytes(cbor2.dumps({"senderId": self.peer, **fields}))

    def join(self, versions: list[str] | None = None) -> bytes:
        return self.frame(type="join", peerMetadata={"isEphemeral": True},
                          supportedProtocolVersions=versions or ["1"])

    def request(self, doc: str) -> bytes:
        """The first message for a document: a request if the app has nothing of it yet
        (as automerge-repo does), else a sync."""
        self.docs.setdefault(doc, Document(actor_id=self.actor))
        kind = "sync" if self.docs[doc].get_heads() else "request"
        data = self._generate(doc)
        assert data is not None
        return self.frame(type=kind, targetId=self.server, documentId=doc, data=data)

    def reconnect(self) -> None:
        """Forget the node (a new connection, perhaps to another node); keep the docs."""
        self.server = None
        self.states = {}

    def sync(self, doc: str) -> bytes | None:
        data = self._generate(doc)
        if data is None:
            return None
        return self.frame(type="sync", targetId=self.server, documentId=doc, data=data)

    def _generate(self, doc: str) -> bytes | None:
        state = self.states.setdefault(doc, SyncState())
        message = self.docs[doc].generate_sync_message(state)
        return None if message is None else bytes(message.encode())

    def receive(self, data: bytes) -> list[bytes]:
        """Handle one frame from the node; the frames to answer with."""
        message = cbor2.loads(data)
        kind = message["type"]
        if kind == "peer":
            assert message["selectedProtocolVersion"] == "1"
            assert message["targetId"] == self.peer
            self.server = message["senderId"]
        elif kind == "sync":
            doc = message["documentId"]
            self.docs.setdefault(doc, Document(actor_id=self.actor))
            self.unavailable = [d for d in self.unavailable if d != doc]
            state = self.states.setdefault(doc, SyncState())
            self.docs[doc].receive_sync_message(state, Message.decode(message["data"]))
            reply = self.sync(doc)
            return [] if reply is None else [reply]
        elif kind == "doc-unavailable":
            self.unavailable.append(message["documentId"])
        elif kind == "error":
            self.errors.append(message["message"])
        elif kind == "ephemeral":
            self.ephemeral.append(message)
        return []

    def view(self, doc: str) -> Any:
        return extract(self.docs[doc])

    def change(self, doc: str, edit: Callable[[Any], None]) -> None:
        with self.docs[doc].transaction() as tx:
            edit(tx)


def put_text(tx: Any, obj: bytes, key: str, value: str) -> None:
    tx.insert(tx.put_object(obj, key, ObjType.Text), 0, ScalarType.Str, value)


def root(tx: Any, name: str) -> bytes:
    got = tx.get(ROOT, name)
    assert got is not None
    return bytes(got[1])


def set_custom(key: str, value: str) -> Callable[[Any], None]:
    return lambda tx: put_text(tx, root(tx, "custom_state"), key, value)


def set_state(value: str) -> Callable[[Any], None]:
    return lambda tx: put_text(tx, ROOT, "state", value)


# -- raw Automerge bytes, for hostile clients -------------------------------------------

#: A change made by automerge-js 3.5 on the genesis of "s1": ``custom_state.c = new
#: Counter(1)`` (actor aa…aa, time 0). This binding cannot write counters, nor read them.
COUNTER_CHANGE = bytes.fromhex(
    "856f4a83f0ed5b4b0168013d0b3202a78617ae85a1b8dee9fe894d328407ac3ebd1602a52fa93e45749e"
    "c010aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa010d00000110c8b1781ca13b52812848c0a7bd7364010801"
    "0202021503340142025602570170027f017f0c7f0163017f017f18017f00")


def chunk(kind: int, body: bytes) -> bytes:
    return MAGIC + b"\x00" * 4 + bytes([kind]) + uleb(len(body)) + body


def deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()
