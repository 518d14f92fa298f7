"""Automerge documents of sessions, materialised from the log on demand.

A session's document is a projection like its header: it is brought up to date only when
someone asks for it, by applying the session's entries it has not seen yet. Appends never
pay for Automerge. Each catch-up is persisted as an increment (the new changes' bytes)
beside a snapshot; after ``INCREMENTS_MAX`` increments the snapshot is rewritten.
``Document.load(snapshot + increments)`` restores it.

    d␟<session>          {"cursor": [chunk, offset], "increments": n, "bytes": stored,
                          "generation": hex id of the session's latest forget, or null}
    ds␟<session>         snapshot (saved document)
    di␟<session>␟<i>     increment i (concatenated change bytes)

Documents stay in memory in a bounded LRU; the least recently used are dropped and
reload from disk the next time.

A forget makes a new document (DESIGN decision 14): a document's id follows from its
session and *generation*, the id of the session's latest forget record
(``EventStore.forget_generation``). Once the generation moved, the old document is
deleted from memory and disk (``drop_replaced``, called when the forget arrives; every
load checks too) and a new one is built from the log, whose forgotten payloads are gone,
so its history never held them.

Clients that sync a document (``sync.repo.connection``) may add changes of their own, or
another node's that they relay. Those are kept: the node's next changes build on them, so they
are persisted (``record``) before anything else happens to the document, exactly like
the node's own changes are persisted before they are sent to anyone.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

from crdt import codec
from crdt.automerge.document import SessionDoc, node_actor
from crdt.errors import StoreError
from crdt.log import forget
from crdt.log.records import key
from crdt.log.store import EventStore

#: Increments kept before the snapshot is rewritten. More makes each catch-up cheaper to
#: persist; fewer makes loading faster.
INCREMENTS_MAX = 32


class Documents:
    """The Automerge documents of one store. Used by the store's single writer thread.

    >>> import tempfile
    >>> from crdt.events import parse_event
    >>> store = EventStore.open(tempfile.mkdtemp())
    >>> _ = store.append(parse_event({"agent_id": "main", "kind": {
    ...     "type": "message_received", "content": "hi"}}, session_key="s1"))
    >>> documents = Documents(store)
    >>> documents.document("s1").to_python()["messages"].popitem()[1]["content"]
    'hi'
    >>> store.close()
    """

    def __init__(self, store: EventStore, in_memory_max: int = 64) -> None:
        self.store = store
        self.log = log = store.log
        self.in_memory_max = in_memory_max
        # One actor per node: a node is the only writer of its changes to any document.
        self.actor = node_actor(log.meta.node_id)
        self._docs: OrderedDict[str, tuple[SessionDoc, dict[str, Any]]] = OrderedDict()
        self._used: dict[str, float] = {}  # session -> time.monotonic() of last use
        # In the commit's wake, on the writer thread: the old documents go at once.
        store.erased_listeners.append(self._erased)
        self._purge_due = False  # a purge could not finish (readers held on): try again

    def saved(self, session_key: str, catch_up: bool = True) -> bytes:
        """The session's document, caught up with the log (unless ``catch_up`` is False,
        as in ``document``), as Automerge bytes."""
        doc, state = self._load(session_key)
        if catch_up:
            self._catch_up(session_key, doc, state)
        return doc.save()  # reused while the document does not change

    def document(self, session_key: str, catch_up: bool = True) -> SessionDoc:
        """The live document (for the Automerge sync protocol), caught up with the log
        unless ``catch_up`` is False (a client's edit is on its way into the log)."""
        doc, state = self._load(session_key)
        if catch_up:
            self._catch_up(session_key, doc, state)
        return doc

    def record(self, session_key: str, changes: bytes) -> None:
        """Persist ``changes`` already applied to the live document by someone other than
        its catch-up (a client's changes, a repair)."""
        if changes:
            doc, state = self._load(session_key)
            self._persist(session_key, doc, state, changes, state["cursor"])

    def stored_bytes(self, session_key: str) -> int:
        """Bytes the document takes on disk (snapshot plus increments)."""
        _doc, state = self._load(session_key)
        return int(state["bytes"])

    def generation(self, session_key: str) -> str | None:
        """The session's forget generation, which its current document is named after."""
        return self.store.forget_generation(session_key)

    def drop_replaced(self, session_key: str, purge: bool = True) -> bool:
        """Delete the session's document from memory and disk if a forget replaced it
        (its generation is not the session's now); True if one was deleted. Unless
        ``purge`` is False, the storage is then purged (``Storage.purge``), so that the
        deleted bytes leave the data folder's files too."""
        generation = self.generation(session_key)
        held = self._docs.get(session_key)
        dropped = held is not None and held[0].generation != generation
        if dropped:
            self.drop(session_key)
        raw = self.log.storage.get(key("d", session_key))
        state = None if raw is None else codec.decode(raw)
        if state is not None and state.get("generation") != generation:
            self.drop(session_key)
            with self.log.storage.transaction() as tx:
                tx.delete(key("ds", session_key))
                for i in range(state["increments"]):
                    tx.delete(key("di", session_key, i))
                tx.delete(key("d", session_key))
            if purge:
                self._purge()
            dropped = True
        return dropped

    def _purge(self) -> None:
        self._purge_due = not self.log.storage.purge()

    def _erased(self, records: list[forget.Forget]) -> None:
        # The store purges its storage right after its listeners return: no purge here.
        for session_key in sorted({record.session_key for record in records}):
            self.drop_replaced(session_key, purge=False)

    def stored_sessions(self, after: str = "", limit: int = 1000) -> list[str]:
        """Up to ``limit`` sessions with a document on disk, in key order after
        ``after``. Most sessions have none: walking these, not every session, keeps
        the sweep at start (``drop_all_replaced``) as short as the documents are few."""
        return self.store.record_keys("d", after, limit)

    def drop_all_replaced(self, sessions: list[str]) -> int:
        """``drop_replaced`` for each of ``sessions``, with one purge; how many were
        deleted. The sweep at start (a node stopped between a forget and the deletion of
        its document)."""
        dropped = sum(self.drop_replaced(session_key, purge=False) for session_key in sessions)
        if dropped or self._purge_due:
            self._purge()
        return dropped

    def _load(self, session_key: str) -> tuple[SessionDoc, dict[str, Any]]:
        self.log.session(session_key)  # raises NotFound for an unknown session
        generation = self.generation(session_key)
        held = self._docs.get(session_key)
        if held is not None and held[0].generation == generation:
            self._used[session_key] = time.monotonic()
            self._docs.move_to_end(session_key)
            return held
        self.drop_replaced(session_key)
        self._used[session_key] = time.monotonic()
        storage = self.log.storage
        raw = storage.get(key("d", session_key))
        if raw is None:
            doc = SessionDoc.new(session_key, self.actor, generation)
            state: dict[str, Any] = {"cursor": [0, 0], "increments": 0, "bytes": 0,
                                     "generation": generation}
        else:
            state = codec.decode(raw)
            found = storage.get_many([key("ds", session_key)] + [
                key("di", session_key, i) for i in range(state["increments"])])
            parts = [part for part in found if part is not None]
            if len(parts) < len(found):
                raise StoreError(f"the Automerge document of {session_key!r} is incomplete "
                                 "on disk")
            state.setdefault("bytes", sum(map(len, parts)))  # records from before "bytes"
            doc = SessionDoc.load(b"".join(parts), self.actor, generation)
        self._docs[session_key] = (doc, state)
        while len(self._docs) > self.in_memory_max:
            self.drop(next(iter(self._docs)))
        return doc, state

    def _catch_up(self, session_key: str, doc: SessionDoc, state: dict[str, Any]) -> None:
        """Apply the entries after the document's cursor, then the current header, as one
        change: a document built from the log is its genesis and one change, whatever
        the session's history, and costs one pass over the session's entries."""
        session = self.log.session(session_key)
        chunk, offset = cursor = state["cursor"]
        messages = []
        seen = 0  # entries read of the chunk ``cursor`` points into
        for number, entry in self.log.entries(session, chunk):
            if number != cursor[0]:
                cursor, seen = [number, 0], 0
            seen += 1
            if number == chunk and seen <= offset:
                continue
            cursor = [number, seen]
            if entry.message:
                messages.append(entry.message.to_json())
        before = doc.write(session.header.fields(), messages, session.header.state_values())
        if before is not None or cursor != state["cursor"]:
            self._persist(session_key, doc, state, before, cursor)

    def _persist(self, session_key: str, doc: SessionDoc, state: dict[str, Any],
                 changes: bytes | list[bytes] | None, cursor: list[int]) -> None:
        """Save the document's new changes (or a new snapshot) and its cursor, in one
        transaction. ``state`` changes only once that committed. ``changes``: their
        bytes, or the heads they follow (read only if an increment is written)."""
        new = dict(state)
        try:
            with self.log.storage.transaction() as tx:
                if new["increments"] >= INCREMENTS_MAX or not tx.has(key("ds", session_key)):
                    snapshot = doc.save()
                    tx.put(key("ds", session_key), snapshot)
                    for i in range(new["increments"]):
                        tx.delete(key("di", session_key, i))
                    new["increments"], new["bytes"] = 0, len(snapshot)
                elif changes:
                    if isinstance(changes, list):
                        changes = doc.changes_since(changes)
                    tx.put(key("di", session_key, new["increments"]), changes)
                    new["increments"] += 1
                    new["bytes"] = new.get("bytes", 0) + len(changes)
                new["cursor"] = cursor
                tx.put(key("d", session_key), codec.encode(new))
        except BaseException:
            # The document in memory now holds changes the disk does not. Never serve or
            # build on them: after a reload, their actor numbers would be issued again.
            self.drop(session_key)
            raise
        state.update(new)
        if self._purge_due:  # the next write after a purge that could not finish
            self._purge()

    def drop(self, session_key: str) -> None:
        """Forget the in-memory copy (it reloads from disk on demand)."""
        self._docs.pop(session_key, None)
        self._used.pop(session_key, None)

    def drop_idle(self, idle_s: float) -> int:
        """Drop documents unused for ``idle_s`` seconds; returns how many were dropped."""
        cutoff = time.monotonic() - idle_s
        idle = [key for key, used in self._used.items() if used < cutoff]
        for session_key in idle:
            self.drop(session_key)
        return len(idle)

    def __len__(self) -> int:
        return len(self._docs)

