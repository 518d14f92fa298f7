"""What the tests of sync.repo.connection share: a ``Link`` between an in-memory App and a
RepoConnection over a real EventStore, and the events they seed it with."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from crdt.automerge.document import document_id
from crdt.automerge.documents import Documents
from crdt.events import Event, parse_event
from crdt.log.store import EventStore
from node.automerge.library import StoreLibrary
from sync.repo.config import FULL_ACCESS, Access, RepoLimits
from sync.repo.connection import RepoConnection
from sync.repo.host import Outcome
from tests.support.automerge import App, text_id

OpenStore = Callable[[str], EventStore]
S1 = text_id("s1")
LIMITS = RepoLimits()


def event(kind: str, ms: int, session: str = "s1", **payload: Any) -> Event:
    made = parse_event({"agent_id": "main", "hlc": [ms, 0],
                        "kind": {"type": kind, **payload}}, session_key=session)
    assert isinstance(made, Event)
    return made


def seed(store: EventStore, session: str = "s1", messages: int = 3) -> None:
    store.append_batch(
        [event("session_started", 1_000, session, channel="tg", peer_id="alice")]
        + [event("message_received", 2_000 + i, session, content=f"hello {i}")
           for i in range(messages)]
        + [event("state_changed", 3_000, session, key="mood", value="calm")])


def seeded_link(open_store: OpenStore) -> Link:
    """A Link over a store holding ``seed``'s session s1, with s1 open."""
    link = Link(open_store("a"))
    seed(link.store)
    link.open()
    return link


_DOCS: weakref.WeakKeyDictionary[EventStore, Documents] = weakref.WeakKeyDictionary()


def docs_of(store: EventStore) -> Documents:
    """The one ``Documents`` of a store, as a node has (every link of it shares them)."""
    if store not in _DOCS:
        _DOCS[store] = Documents(store)
    return _DOCS[store]


class Link:
    """One connection between an App and a RepoConnection over a StoreLibrary."""

    def __init__(self, store: EventStore, app: App | None = None,
                 access: Access = FULL_ACCESS, limits: RepoLimits = LIMITS) -> None:
        self.store = store
        self.library = StoreLibrary(store, docs_of(store))
        self.app = app or App()
        self.conn = RepoConnection(peer_id="node-1", storage_id="storage-1", access=access,
                                   limits=limits, now=0.0)
        self.now = 0.0
        self.outcomes: list[Outcome] = []

    def send(self, *frames: bytes | None) -> Outcome:
        """Deliver frames from the app, and everything that follows, until quiet; the
        merged outcome of the node's side."""
        merged = Outcome()
        queue = [frame for frame in frames if frame is not None]
        while queue and not self.conn.closed:
            self.take(self.conn.receive(queue.pop(0), self.now, self.library), merged, queue)
        return merged

    def refresh(self, *sessions: str) -> Outcome:
        merged = Outcome()
        queue: list[bytes] = []
        ids = [document_id(session) for session in sessions]
        self.take(self.conn.refresh(ids, self.now, self.library), merged, queue)
        merged_rest = self.send(*queue)
        merged.frames += merged_rest.frames
        merged.edits += merged_rest.edits
        return merged

    def take(self, out: Outcome, merged: Outcome, queue: list[bytes]) -> None:
        self.outcomes.append(out)
        merged.frames += out.frames
        merged.edits += out.edits
        merged.notes += out.notes
        merged.changed |= out.changed
        merged.ephemeral += out.ephemeral
        merged.close = merged.close or out.close
        merged.trial = merged.trial or out.trial
        merged.watch = out.watch if out.watch is not None else merged.watch
        for frame in out.frames:
            queue += self.app.receive(frame)

    def open(self, doc: str = S1) -> Outcome:
        if self.app.server is None:
            self.send(self.app.join())
        return self.send(self.app.request(doc))

    def apply_edits(self, out: Outcome) -> list[str]:
        """Append the edits as the node does, release the documents, and refresh."""
        kinds = []
        for edit in out.edits:
            self.store.append_batch(list(edit.drafts))
            self.library.release(edit.session_key)
            kinds += [draft.kind for draft in edit.drafts]
            self.refresh(edit.session_key)
        return kinds


def messages(view: Any) -> list[str]:
    return [m["content"] for _, m in sorted(view["messages"].items())]


def expect_close(out: Outcome, code: int) -> None:
    assert out.close is not None and out.close.code == code, out.close
