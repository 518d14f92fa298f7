"""``StoreLibrary``'s index of document ids, on a real disk store."""

from __future__ import annotations

from pathlib import Path

from crdt.automerge.document import document_id
from crdt.automerge.documents import Documents
from crdt.clock import Hlc
from crdt.events import parse_event
from crdt.log import forget
from crdt.log.store import EventStore
from node.automerge.library import StoreLibrary


def _append(store: EventStore, session_key: str) -> None:
    store.append(parse_event({"agent_id": "main", "kind": {
        "type": "message_received", "content": "hi"}}, session_key=session_key))


def test_the_index_finds_every_session_by_its_current_id(tmp_path: Path) -> None:
    with EventStore.open(tmp_path / "log") as store:
        for session in ("s1", "s2", "s3"):
            _append(store, session)
        store.append(forget.forget("s2").seal(Hlc(3_000, 0)))
        generation = store.forget_generation("s2")
        assert store.sessions_by_key() == ["s1", "s2", "s3"]
        assert store.sessions_with_forgets() == ["s2"]
        library = StoreLibrary(store, Documents(store))
        assert library.resolve(document_id("s1")) == "s1"
        assert library.resolve(document_id("s2")) is None  # replaced by the forget
        assert library.resolve(document_id("s2", generation)) == "s2"
        _append(store, "s4")  # created after the index was built
        assert library.resolve(document_id("s4")) == "s4"
        assert library.resolve(b"\0" * 16) is None
        store.append(forget.forget("s1").seal(Hlc(4_000, 0)))
        # A session indexed under the id it had before any forget: that id is retired.
        assert library.take_retired({"s1"}) == [document_id("s1")]
        assert library.resolve(document_id("s1")) is None
        assert library.resolve(document_id("s1", store.forget_generation("s1"))) == "s1"
