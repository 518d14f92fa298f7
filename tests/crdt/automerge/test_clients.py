"""Documents with clients: their changes persisted, catch-up held back, sizes tracked."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from automerge.core import ROOT, Document, Message, ObjType, ScalarType, SyncState

from crdt.automerge import answers
from crdt.automerge.document import NODE_ACTOR_TAG, new_sync_state
from crdt.automerge.documents import Documents
from crdt.events import Event
from crdt.log.store import EventStore

MakeEvent = Callable[..., Event]  # the ``ev`` fixture of conftest.py


def client_edit(docs: Documents, key: str, value: str) -> bytes:
    """A client syncs the session, sets ``custom_state[key]`` and syncs back; the change
    bytes the node received (applied to its live document, not yet persisted)."""
    doc = docs.document("s1")
    ours, client, theirs = new_sync_state(), Document(actor_id=b"\xcc" * 16), SyncState()
    changes = b""
    for _ in range(10):
        out = doc.generate_sync_message(ours)
        if out is not None:
            client.receive_sync_message(theirs, Message.decode(out))
        if not changes and out is None:
            with client.transaction() as tx:
                state = tx.get(ROOT, "custom_state")[1]  # type: ignore[index]
                text = tx.put_object(state, key, ObjType.Text)
                tx.insert(text, 0, ScalarType.Str, value)
        back = client.generate_sync_message(theirs)
        if back is not None:
            changes += doc.receive_sync_message(ours, back.encode()).changes
    assert changes
    return changes


def test_node_actor_is_tagged(store: EventStore) -> None:
    assert Documents(store).actor.startswith(NODE_ACTOR_TAG)


def test_recorded_client_changes_survive_a_reopen(store_path: Path, ev: MakeEvent) -> None:
    with EventStore.open(store_path) as store:
        store.append(ev())
        docs = Documents(store)
        docs.record("s1", client_edit(docs, "mood", "happy"))
        size = docs.stored_bytes("s1")
        assert size > 0
    with EventStore.open(store_path) as again:
        docs = Documents(again)
        doc = docs.document("s1", catch_up=False)
        assert doc.to_python()["custom_state"] == {"mood": "happy"}
        assert docs.stored_bytes("s1") == size


def test_unrecorded_changes_are_forgotten_on_drop(store: EventStore, ev: MakeEvent) -> None:
    store.append(ev())
    docs = Documents(store)
    client_edit(docs, "mood", "happy")
    docs.drop("s1")
    view = docs.document("s1", catch_up=False).to_python()
    assert view["custom_state"] == {}


def test_catch_up_can_wait_for_an_edit(store: EventStore, ev: MakeEvent) -> None:
    store.append(ev())
    docs = Documents(store)
    docs.record("s1", client_edit(docs, "mood", "happy"))
    held = docs.document("s1", catch_up=False)
    assert held.to_python()["custom_state"] == {"mood": "happy"}
    # Caught up, the document shows the projection again (no event says "happy").
    assert docs.document("s1").to_python()["custom_state"] == {}
    store.append(ev("state_changed", 2_000, key="mood", value="happy"))
    assert docs.document("s1").to_python()["custom_state"] == {"mood": "happy"}


def test_stored_bytes_grow_with_increments(store: EventStore, ev: MakeEvent) -> None:
    store.append(ev())
    docs = Documents(store)
    docs.saved("s1")
    first = docs.stored_bytes("s1")
    store.append(ev(content="more", ms=2_000))
    docs.saved("s1")
    assert docs.stored_bytes("s1") > first


#: The first message of an automerge 3.5 (JS) client with nothing: another capability
#: list than this binding's, the same answer.
JS_BLANK_REQUEST = bytes.fromhex("42000001000000020284")


@pytest.mark.parametrize("js", [False, True], ids=["binding", "automerge-js-3.5"])
def test_first_answer_to_a_client_with_nothing(store: EventStore, ev: MakeEvent,
                                               js: bool) -> None:
    store.append(ev())
    doc = Documents(store).document("s1")
    client, theirs = Document(actor_id=b"\xcc" * 16), SyncState()
    blank = client.generate_sync_message(theirs)
    assert blank is not None
    request = JS_BLANK_REQUEST if js else blank.encode()
    answer = doc.first_answer(request)
    assert answer is not None and answer == doc.first_answer(request)
    # What the ordinary path sends such a client: the saved document, as one chunk.
    ours = new_sync_state()
    doc.receive_sync_message(ours, request)
    assert answer == doc.generate_sync_message(ours)
    assert doc.save() in answer
    client.receive_sync_message(theirs, Message.decode(answer))
    assert sorted(client.get_heads()) == doc.heads
    # A client that has something takes the ordinary path.
    reply = client.generate_sync_message(theirs)
    assert reply is not None and doc.first_answer(reply.encode()) is None
    assert doc.first_answer(b"not a sync message") is None


def test_first_answer_to_a_v1_client_is_its_own(store: EventStore, ev: MakeEvent) -> None:
    """A client with nothing that reads only v1 messages (no capabilities) gets changes,
    not the saved document: tried on a small document first, its form is not taken for
    the v2 one, and it is answered as the ordinary path answers it."""
    store.append(ev())
    doc = Documents(store).document("s1")
    request = bytes.fromhex("4200000100000000")
    answer = doc.first_answer(request)
    assert answers.gets_same_answer(request) is None
    ours = new_sync_state()
    doc.receive_sync_message(ours, request)
    assert answer is not None and answer == doc.generate_sync_message(ours)
    assert doc.save() not in answer


def test_first_answer_is_the_ordinary_one_whatever_the_bloom(store: EventStore,
                                                             ev: MakeEvent) -> None:
    """A first message with no heads whose bloom filter lists every change of the
    document (learnt on a small document, which has none of them) still gets what the
    ordinary path sends it: the saved document."""
    store.append(ev())
    doc = Documents(store).document("s1")
    holder = Document.load(doc.save())
    message = holder.generate_sync_message(SyncState())
    assert message is not None
    full = message.encode()
    assert full[1] == 1  # one head, then the have entry with the bloom of every change
    request = full[:1] + b"\x00" + full[2 + 32:]
    answer = doc.first_answer(request)
    ours = new_sync_state()
    doc.receive_sync_message(ours, request)
    assert answer is not None and answer == doc.generate_sync_message(ours)
    assert doc.save() in answer
