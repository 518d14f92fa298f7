"""What a ``RepoConnection`` (``sync.repo.connection``) and its host exchange.

The host (the node's websocket, ``node.automerge``) gives the machine its documents
through the ``Library`` interface, and each call of the machine returns an ``Outcome``:
frames to send, ``Edit``s to append, ``Note``s to log, a ``Trial`` to run, and a
``Close`` with one of the websocket close codes below. Apart from the machine so that a
host's author reads the contract without the protocol's rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from crdt.automerge.document import SessionDoc
from crdt.events import Draft, Event
from sync.repo.messages import Ephemeral

# Websocket close codes (RFC 6455).
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL = 1002
CLOSE_UNSUPPORTED = 1003
CLOSE_INVALID = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011


class Library(Protocol):
    """The node's documents, as the machine sees them (called on the store's writer)."""

    def resolve(self, doc_id: bytes) -> str | None:
        """The session key of a document id; None if no such session (yet), or if the
        id is no longer the session's (a forget gave the session a new document)."""

    def document(self, session_key: str) -> SessionDoc:
        """The live document, caught up with the log unless an edit is being held."""

    def record(self, session_key: str, changes: bytes) -> None:
        """Persist changes just applied to the live document."""

    def discard(self, session_key: str) -> None:
        """Forget the live document (it reloads from disk without unrecorded changes)."""

    def stored_bytes(self, session_key: str) -> int:
        """The document's size on disk."""

    def messages(self, session_key: str) -> list[dict[str, Any]]:
        """The projection's messages (JSON form), to repair a document with."""

    def hold(self, session_key: str) -> None:
        """A client's edit is on its way into the log: leave the document as it is
        until the host has appended it and releases it."""

    def saved(self, session_key: str) -> bytes:
        """The document a client's changes would be applied to, as saved bytes."""

    def holds_node(self, actor: bytes) -> bool:
        """Whether ``actor`` is the document actor of a node whose events this node
        takes (an origin it holds and has not retired): a change of such a node that
        builds on a client's edit shows the edit is an event coming by gossip."""


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Note:
    """Something to log: ``level`` is "debug", "info" or "warning"."""

    level: str
    event: str
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Edit:
    """Events to append for a client's edit of one session."""

    session_key: str
    drafts: tuple[Draft | Event, ...]


@dataclass(frozen=True, slots=True)
class Trial:
    """Changes to try on a copy of a document before they are applied: ``data`` (a sync
    message) on ``saved`` (the document's bytes). The host answers with ``resume``."""

    session_key: str
    saved: bytes
    data: bytes
    #: The document's forget generation (``SessionDoc.generation``), to load it with.
    generation: str | None = None


@dataclass(slots=True)
class Outcome:
    """What one call asks of the host."""

    frames: list[bytes] = field(default_factory=list)
    edits: list[Edit] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    #: Documents whose node copy changed: every other connection holding them must hear.
    changed: set[bytes] = field(default_factory=set)
    #: Ephemeral messages to pass on to the other clients of their document.
    ephemeral: list[tuple[bytes, Ephemeral]] = field(default_factory=list)
    #: When not None, the documents this connection now watches (True: open; False:
    #: waiting for it to appear).
    watch: dict[bytes, bool] | None = None
    close: Close | None = None
    #: Changes the host must try before the machine applies them (see ``resume``).
    trial: Trial | None = None

