"""``StoreLibrary``: the ``sync.repo.host.Library`` of a node, over its ``EventStore``.

Used from the store's writer thread only, like the documents it hands out. It finds a
session by its document id (an index of every session's id, built on first use and
extended from the store's session list when an unknown id is asked for; a forget gives
a session a new id, ``replaced`` moves it, and an id is checked against its session's
generation whenever it is resolved, so a replaced one never opens again) and holds a
document's catch-up while a client's edit is being appended, so that the node does not
briefly write the old value back over the client's new one. Other catch-ups meanwhile
(``GET /v1/sessions/{key}/automerge``) see ``SessionDoc.held`` and leave the edited
fields alone; a document that leaves memory during the append loses that mark.

>>> import tempfile
>>> from crdt.automerge.document import document_id
>>> from crdt.automerge.documents import Documents
>>> from crdt.events import parse_event
>>> from crdt.log.store import EventStore
>>> store = EventStore.open(tempfile.mkdtemp())
>>> library = StoreLibrary(store, Documents(store))
>>> library.resolve(document_id("s1")) is None
True
>>> _ = store.append(parse_event({"agent_id": "main", "kind": {"type": "session_ended",
...     "reason": "done"}}, session_key="s1"))
>>> library.resolve(document_id("s1"))
's1'
>>> store.close()
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from crdt.automerge.document import SessionDoc, document_id, node_actor
from crdt.automerge.documents import Documents
from crdt.log import forget
from crdt.log.store import EventStore

#: Sessions read per page while indexing document ids.
INDEX_PAGE = 1000


class StoreLibrary:
    """The documents of one ``EventStore`` for ``sync.repo.connection.RepoConnection``."""

    def __init__(self, store: EventStore, documents: Documents) -> None:
        self.store = store
        self.documents = documents
        self._index: dict[bytes, str] = {}
        #: Session -> its id in ``_index``, for sessions with a forget generation only:
        #: the id of any other is ``document_id(session_key)``, and there are millions.
        self._ids: dict[str, bytes] = {}
        #: Ids a forget replaced, whose clients have not been told yet: id -> session.
        self._retired: dict[bytes, str] = {}
        self._indexed_after = 0
        self._held: Counter[str] = Counter()
        # In the wake of the commit that stored a forget, on the writer thread.
        store.erased_listeners.append(self._erased)

    def resolve(self, doc_id: bytes) -> str | None:
        session_key = self._index.get(doc_id)
        if session_key is None:
            self._extend_index()
            session_key = self._index.get(doc_id)
        if session_key is not None and self.document_id(session_key) != doc_id:
            self.replaced(session_key)  # a forget the caller has not told us of yet
            return None
        return session_key

    def document_id(self, session_key: str) -> bytes:
        """The session's current document id (of its forget generation)."""
        return document_id(session_key, self.documents.generation(session_key))

    def replaced(self, session_key: str) -> bytes | None:
        """A forget gave ``session_key`` a new document: index its new id, delete the
        old document; the old id (None if it was never indexed), whose clients must be
        told it is gone."""
        self.documents.drop_replaced(session_key)
        old = self._ids.get(session_key)
        if old is None:  # indexed under the id of a session never forgotten, or not yet
            plain = document_id(session_key)
            if self._index.get(plain) != session_key:
                return None  # not indexed yet: indexing will find its current id
            old = plain
        new = self.document_id(session_key)
        if old == new:
            return None
        self._index.pop(old, None)
        self._index[new], self._ids[session_key] = session_key, new
        self._retired[old] = session_key
        return old

    def _erased(self, records: list[forget.Forget]) -> None:
        for session_key in sorted({record.session_key for record in records}):
            self.replaced(session_key)

    def take_retired(self, sessions: set[str]) -> list[bytes]:
        """The ids that forgets of ``sessions`` replaced since last asked (their clients
        must be told the documents are gone)."""
        taken = [doc_id for doc_id, key in self._retired.items() if key in sessions]
        for doc_id in taken:
            del self._retired[doc_id]
        return taken

    def _extend_index(self) -> None:
        if not self._indexed_after:
            self._index_every_session()
        while page := self.store.list_sessions(self._indexed_after, INDEX_PAGE):
            for ref in page:
                self._add(ref.session_key, self.documents.generation(ref.session_key))
            self._indexed_after = page[-1].index

    def _index_every_session(self) -> None:
        """Index every session in one walk over the keys of their records: a session
        without forget records (nearly all) has no generation, so its header is not
        read. On the writer thread no session is created meanwhile."""
        sessions = self.store.stats()["sessions"]
        forgotten: set[str] = set()
        after = ""
        while page := self.store.sessions_with_forgets(after, INDEX_PAGE):
            forgotten.update(page)
            after = page[-1]
        after = ""
        while page := self.store.sessions_by_key(after, INDEX_PAGE):
            for session_key in page:
                self._add(session_key, self.documents.generation(session_key)
                          if session_key in forgotten else None)
            after = page[-1]
        self._indexed_after = sessions

    def _add(self, session_key: str, generation: str | None) -> None:
        doc_id = document_id(session_key, generation)
        self._index[doc_id] = session_key
        if generation is not None:  # else ``replaced`` finds its id again
            self._ids[session_key] = doc_id

    def document(self, session_key: str) -> SessionDoc:
        held = self._held[session_key] > 0
        doc = self.documents.document(session_key, catch_up=not held)
        doc.held = held  # for catch-ups by others (``EventStore.automerge``) meanwhile
        return doc

    def saved(self, session_key: str) -> bytes:
        """The document a client's changes would be applied to, as saved bytes."""
        return self.documents.saved(session_key, catch_up=not self.held(session_key))

    def holds_node(self, actor: bytes) -> bool:
        # Asked only of the node actors that built on a client's edit in one message: a
        # hash per origin held, not worth a cache that would have to follow retirements.
        return any(node_actor(origin) == actor for origin in self.store.version)

    def record(self, session_key: str, changes: bytes) -> None:
        self.documents.record(session_key, changes)

    def discard(self, session_key: str) -> None:
        self.documents.drop(session_key)

    def stored_bytes(self, session_key: str) -> int:
        return self.documents.stored_bytes(session_key)

    def messages(self, session_key: str) -> list[dict[str, Any]]:
        return [message.to_json() for message in self.store.get_projection(session_key).messages]

    def hold(self, session_key: str) -> None:
        self._held[session_key] += 1
        self.document(session_key)

    def release(self, session_key: str) -> None:
        """The held edit is in the log (or failed): catch-ups may go on."""
        self._held[session_key] -= 1
        if self._held[session_key] <= 0:
            del self._held[session_key]
            self.documents.document(session_key, catch_up=False).held = False

    def held(self, session_key: str) -> bool:
        return self._held[session_key] > 0
