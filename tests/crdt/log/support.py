"""What the tests of crdt.log.store share: reading a store whole, drafts, and the check
that a session's Automerge document shows its projection."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from automerge.core import Document, extract

from crdt.automerge.documents import Documents
from crdt.events import Draft, Event, parse_event
from crdt.log.records import StoredEvent
from crdt.log.store import EventStore

MakeEvent = Callable[..., Event]  # the ``ev`` fixture of conftest.py


def ids(stored: Iterable[StoredEvent]) -> list[bytes]:
    return [s.event.id for s in stored]


def positions(stored: Iterable[StoredEvent]) -> list[int]:
    return [s.position for s in stored]


def by_sort_key(events: Iterable[Event]) -> list[Event]:
    return sorted({e.id: e for e in events}.values(), key=lambda e: e.sort_key)


def draft(content: str = "hi", session: str = "s1") -> Draft:
    made = parse_event({"agent_id": "main", "kind": {"type": "message_received",
                                                     "content": content}}, session_key=session)
    assert isinstance(made, Draft)
    return made


def all_events(store: EventStore) -> list[StoredEvent]:
    out: list[StoredEvent] = []
    while page := store.events_after(out[-1].position if out else 0, limit=1000):
        out += page
    return out


def without_empty_keys(value: Any) -> Any:
    """Automerge cannot hold a map entry with an empty key; the document drops them."""
    if isinstance(value, dict):
        return {k: without_empty_keys(v) for k, v in value.items() if k}
    if isinstance(value, list):
        return [without_empty_keys(v) for v in value]
    return value


def assert_document_matches(docs: Documents | EventStore, session_key: str) -> None:
    """The session's Automerge document, loaded by automerge itself, shows the projection.
    Given a store, its documents are loaded afresh from its folder."""
    if isinstance(docs, EventStore):
        docs = Documents(docs)
    store = docs.store
    doc = extract(Document.load(docs.saved(session_key)))
    view = store.get_projection(session_key).to_json()
    for name in ("session_key", "agent_id", "channel", "peer_id", "state", "message_count",
                 "event_count", "last_activity", "last_event_id"):
        assert doc[name] == view[name], name
    assert doc["messages"] == {m["key"]: {k: v for k, v in m.items() if k != "key"}
                               for m in view["messages"]}
    assert doc["custom_state"] == without_empty_keys(view["custom_state"])
