"""A session's document after a forget: named after the forget (its generation), so the
old and new documents are different documents on every node."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from crdt.automerge.document import (
    EMPTY_FIELDS,
    SessionDoc,
    automerge_url,
    document_id,
    genesis_actor,
    node_actor,
)
from crdt.automerge.documents import Documents
from crdt.clock import Hlc
from crdt.errors import InvalidInput, StorageFull, StoreError
from crdt.events import parse_event
from crdt.log import forget
from crdt.log.records import key
from crdt.log.store import EventStore

GEN_A, GEN_B = "ab" * 32, "cd" * 32
ACTOR = node_actor("n1")


def test_a_session_never_forgotten_keeps_its_id() -> None:
    assert document_id("s1") == document_id("s1", None)
    assert automerge_url("s1") == "automerge:2rPXk7WCZuV9W9C4pNhWXz4JezQ6"


def test_each_generation_is_another_document() -> None:
    ids = {document_id("s1"), document_id("s1", GEN_A), document_id("s1", GEN_B),
           document_id("s2", GEN_A)}
    assert len(ids) == 4
    assert document_id("s1", GEN_A) == document_id("s1", GEN_A.upper())
    new = SessionDoc.new("s1", ACTOR, GEN_A)
    assert new.document_id == document_id("s1", GEN_A) and new.generation == GEN_A
    assert new.heads != SessionDoc.new("s1", ACTOR).heads  # another genesis


@pytest.mark.parametrize("generation", ["ab", "zz" * 32, "ab" * 33])
def test_a_malformed_generation_is_refused(generation: str) -> None:
    with pytest.raises((StoreError, ValueError)):
        document_id("s1", generation)


def test_a_document_loads_only_as_its_own_generation() -> None:
    doc = SessionDoc.new("s1", ACTOR, GEN_A)
    doc.update(dict(EMPTY_FIELDS, session_key="s1", state="active"), [], {})
    assert SessionDoc.load(doc.save(), ACTOR, GEN_A).generation == GEN_A
    for other in (None, GEN_B):
        with pytest.raises(InvalidInput, match="genesis map"):
            SessionDoc.load(doc.save(), ACTOR, other)


def test_the_genesis_actor_of_a_generation_may_not_write() -> None:
    with pytest.raises(StoreError, match="genesis actor"):
        SessionDoc.new("s1", genesis_actor(document_id("s1", GEN_A)), GEN_A)


def test_documents_are_deleted_once_replaced(
        open_store: Callable[[str], EventStore]) -> None:
    store = open_store("a")
    for session in ("s1", "s2"):
        store.append(parse_event({"agent_id": "main", "hlc": [1_000, 0], "kind": {
            "type": "message_received", "content": f"hi {session}"}}, session_key=session))
    documents = Documents(store)
    for session in ("s1", "s2"):
        documents.saved(session)
    record = forget.forget("s1").seal(Hlc(2_000, 0))
    store.append(record)  # the commit's erasure tells the documents at once
    assert store.log.storage.get(key("ds", "s1")) is None
    assert store.log.storage.get(key("ds", "s2")) is not None
    assert documents.document("s1").generation == record.id.hex()
    assert documents.drop_all_replaced(["s1", "s2"]) == 0  # the new one is current
    documents.saved("s1")
    # A node stopped before it could delete the old document: the sweep at start does.
    store.erased_listeners.clear()
    store.append(forget.forget("s1").seal(Hlc(3_000, 0)))
    assert store.log.storage.get(key("ds", "s1")) is not None
    assert documents.drop_all_replaced(["s1", "s2"]) == 1
    assert store.log.storage.get(key("ds", "s1")) is None


def test_the_sessions_with_a_stored_document_are_listed(
        open_store: Callable[[str], EventStore]) -> None:
    """The sweep at start walks these, not every session."""
    store = open_store("a")
    for session in ("s1", "s2", "s3", "s10"):
        store.append(parse_event({"agent_id": "main", "kind": {
            "type": "message_received", "content": f"hi {session}"}}, session_key=session))
    documents = Documents(store)
    assert documents.stored_sessions() == []
    for session in ("s3", "s1", "s10"):
        documents.saved(session)
    assert documents.stored_sessions() == ["s1", "s10", "s3"]
    assert documents.stored_sessions("s1", 1) == ["s10"]
    assert documents.stored_sessions("s10") == ["s3"]
    store.erased_listeners.clear()  # the old document stays until the sweep
    store.append(forget.forget("s1").seal(Hlc(3_000, 0)))
    assert documents.drop_all_replaced(documents.stored_sessions()) == 1
    assert documents.stored_sessions() == ["s10", "s3"]


def test_an_old_document_a_full_disk_kept_is_deleted_after_the_next_commit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deleting the replaced document fails once (the disk is full) after a forget that
    committed: the next commit tells the documents again, and the forgotten words
    leave the SQLite file without a restart."""
    store = EventStore.open(str(tmp_path))
    try:
        store.append(parse_event({"agent_id": "main", "kind": {
            "type": "message_received", "content": "my password"}}, session_key="s1"))
        documents = Documents(store)
        documents.saved("s1")
        drop = documents.drop_replaced
        failures: list[str] = []

        def full_once(session_key: str, purge: bool = True) -> bool:
            if not failures:
                failures.append(session_key)
                raise StorageFull("the disk is full", location=str(tmp_path))
            return drop(session_key, purge)

        monkeypatch.setattr(documents, "drop_replaced", full_once)
        assert store.forget("s1", by="t").created  # the commit stands
        assert failures == ["s1"] and store.after_commit_failures == 1
        assert documents.stored_sessions() == ["s1"]  # kept by the failure
        store.append(parse_event({"agent_id": "main", "kind": {
            "type": "message_received", "content": "later"}}, session_key="s2"))
        assert documents.stored_sessions() == []
        assert not [file.name for file in tmp_path.iterdir()
                    if file.is_file() and b"my password" in file.read_bytes()]
        store.append(parse_event({"agent_id": "main", "kind": {
            "type": "message_received", "content": "again"}}, session_key="s2"))
        assert store.after_commit_failures == 1  # told once more, no more
    finally:
        store.close()
