"""crdt.automerge.trial: what the node's worker does with a client's sync message."""

from __future__ import annotations

from automerge.core import ROOT, Document, ObjType

from crdt.automerge.binreader import uleb
from crdt.automerge.document import EMPTY_FIELDS, SessionDoc, new_sync_state, node_actor
from crdt.automerge.trial import NESTING_MAX, Tried, try_sync_message

ACTOR = node_actor("n1")
LEVELS = 60  # within what one message may nest (crdt.automerge.chunks.NESTING_MAX)


#: A session whose genesis actor sorts before every other actor here, so that its
#: documents' object ids read the same after a reload.
SESSION = "s7"


def node_doc() -> SessionDoc:
    doc = SessionDoc.new(SESSION, ACTOR)
    doc.update(dict(EMPTY_FIELDS, session_key=SESSION, state="active"), [], {})
    return doc


def deeper(saved: bytes, levels: int = LEVELS) -> bytes:
    """A sync message nesting ``levels`` more maps below the deepest one of ``saved``."""
    client = Document.load(saved)
    client.set_actor(b"\xa9" * 16)
    heads = client.get_heads()
    with client.transaction() as tx:
        got = tx.get(ROOT, "custom_state")
        assert got is not None
        obj = got[1]
        while (inner := tx.get(obj, "deep")) is not None:
            obj = inner[1]
        for _ in range(levels):
            obj = tx.put_object(obj, "deep", ObjType.Map)
    changes = [change.bytes for change in client.get_changes(heads)]
    return b"\x42" + uleb(0) * 3 + uleb(len(changes)) + b"".join(
        uleb(len(change)) + change for change in changes)


def test_nesting_that_grows_with_every_message_is_refused_past_the_bound() -> None:
    doc = node_doc()
    first = deeper(doc.save())
    assert isinstance(try_sync_message(doc.save(), first, ACTOR), Tried)
    assert doc.receive_sync_message(new_sync_state(), first).refusal is None
    second = deeper(doc.save())
    reason = try_sync_message(doc.save(), second, ACTOR)
    assert reason == f"values nested {2 * LEVELS + 2} deep; the limit is {NESTING_MAX}"


def test_what_automerge_refuses_is_left_to_the_node() -> None:
    doc = node_doc()
    assert try_sync_message(doc.save(), b"\x42garbage", ACTOR) is None


def test_the_node_takes_the_tried_document_instead_of_applying_again() -> None:
    doc, twin = node_doc(), node_doc()
    data = deeper(doc.save())
    tried = try_sync_message(doc.save(), data, ACTOR)
    assert isinstance(tried, Tried)
    state = new_sync_state()
    received = doc.receive_tried(state, data, tried.after, tried.received)
    assert received == twin.receive_sync_message(new_sync_state(), data)
    assert doc.heads == twin.heads and doc.to_python() == twin.to_python()
    assert doc.generate_sync_message(state) is not None  # the sync state came along
    again = deeper(doc.save(), levels=1)
    stale = try_sync_message(doc.save(), again, ACTOR)
    assert isinstance(stale, Tried)
    doc.update(dict(EMPTY_FIELDS, session_key=SESSION, state="ended"), [], {})  # meanwhile
    heads = doc.heads
    assert doc.receive_tried(new_sync_state(), again, stale.after, stale.received) is None
    assert doc.heads == heads  # nothing taken: the node applies the changes itself
