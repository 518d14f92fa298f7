"""Automerge documents materialised from the log: persistence under failure."""

from __future__ import annotations

from pathlib import Path

import pytest
from automerge.core import Document, extract

from crdt.automerge.documents import Documents
from crdt.errors import StorageFull
from crdt.events import parse_event
from crdt.log.store import EventStore
from crdt.storage.backends import open_storage
from tests.support.storage import FailingStorage


def said(store: EventStore, text: str) -> None:
    store.append(parse_event({"agent_id": "main", "kind": {
        "type": "message_received", "content": text}}, session_key="s"))


def test_a_failed_save_leaves_no_unsaved_changes_in_memory(tmp_path: Path) -> None:
    storage = FailingStorage(open_storage(tmp_path))
    store = EventStore(storage)
    docs = Documents(store)
    said(store, "one")
    docs.saved("s")
    said(store, "two")
    storage.failing = "di"  # an increment: the disk is full, say
    with pytest.raises(StorageFull):
        docs.saved("s")
    assert len(docs) == 0  # dropped, not kept ahead of disk
    storage.failing = None
    doc = extract(Document.load(docs.saved("s")))
    assert sorted(m["content"] for m in doc["messages"].values()) == ["one", "two"]
    store.close()
    reopened = EventStore.open(tmp_path)
    doc = extract(Document.load(Documents(reopened).saved("s")))
    assert sorted(m["content"] for m in doc["messages"].values()) == ["one", "two"]
    reopened.close()


def test_built_from_the_log_in_one_change_and_caught_up_across_chunks(tmp_path: Path) -> None:
    store = EventStore.open(tmp_path)
    docs = Documents(store)
    # A history of many batches and state changes, over several log chunks.
    for batch in range(5):
        store.append_batch([parse_event({"agent_id": "main", "kind": {
            "type": "message_received", "content": f"m{batch}.{n}"}}, session_key="s")
            for n in range(30)] + [parse_event({"agent_id": "main", "kind": {
                "type": "state_changed", "key": "k", "value": batch}}, session_key="s")])
    assert store.log.session("s").chunks > 2
    built = Document.load(docs.saved("s"))
    assert len(built.get_changes([])) == 2  # the genesis and one change, whatever came before
    said(store, "late")  # lands mid-chunk, after the cursor
    docs.saved("s")
    said(store, "later")
    doc = Document.load(docs.saved("s"))
    contents = [m["content"] for _, m in sorted(extract(doc)["messages"].items())]
    assert sorted(contents) == sorted([f"m{b}.{n}" for b in range(5) for n in range(30)]
                                      + ["late", "later"])
    assert len(doc.get_changes([])) == 4  # one per catch-up
    assert extract(doc)["custom_state"] == {"k": 4}
    store.close()
