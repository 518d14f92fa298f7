"""Automerge documents materialised from the log: persistence under failure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from automerge.core import Document, extract

from crdt.automerge.documents import Documents
from crdt.events import parse_event
from crdt.log.store import EventStore


def said(store: EventStore, text: str) -> None:
    store.append(parse_event({"agent_id": "main", "kind": {
        "type": "message_received", "content": text}}, session_key="s"))


def test_a_failed_save_leaves_no_unsaved_changes_in_memory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = EventStore.open(tmp_path)
    docs = Documents(store)
    said(store, "one")
    docs.saved("s")
    said(store, "two")
    cache = store._log.cache
    real_set = cache.set

    def failing_set(key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        if key.startswith("di"):  # an increment: the disk is full, say
            raise OSError("no space left on device")
        return real_set(key, value, *args, **kwargs)

    monkeypatch.setattr(cache, "set", failing_set)
    with pytest.raises(OSError):
        docs.saved("s")
    assert len(docs) == 0  # dropped, not kept ahead of disk
    monkeypatch.setattr(cache, "set", real_set)
    doc = extract(Document.load(docs.saved("s")))
    assert sorted(m["content"] for m in doc["messages"].values()) == ["one", "two"]
    store.close()
    reopened = EventStore.open(tmp_path)
    doc = extract(Document.load(Documents(reopened).saved("s")))
    assert sorted(m["content"] for m in doc["messages"].values()) == ["one", "two"]
    reopened.close()
