"""crdt.automerge.document syncing with clients: what a client's change is reported as,
what is refused or repaired, relayed changes, sync-message outlines, and replicas."""

from __future__ import annotations

from typing import Any

import pytest
from automerge.core import ROOT, Document, Message, ObjType, ScalarType, SyncState, extract

from crdt.automerge.chunks import UnpackLimits
from crdt.automerge.document import (
    EMPTY_FIELDS,
    Received,
    Replica,
    SessionDoc,
    document_id,
    genesis_actor,
    is_node_actor,
    new_sync_state,
    node_actor,
)
from crdt.automerge.outline import (
    SyncSummary,
    Touch,
    classify_patch,
    creator_of,
    summarize_sync_message,
)
from crdt.errors import InvalidInput, LimitExceeded
from tests.crdt.automerge.session_docs import ACTOR_C, fields, message
from tests.support.automerge import COUNTER_CHANGE, put_text, root

UNPACK = UnpackLimits(bytes_max=2**20, rows_max=10_000)


# --- syncing with clients -------------------------------------------------------------

NODE_A, NODE_B = node_actor("node-a"), node_actor("node-b")


class Client:
    """A client's document and its sync state with one node."""

    def __init__(self, doc: Document | None = None) -> None:
        self.doc = doc if doc is not None else Document(actor_id=ACTOR_C)
        self.state = SyncState()

    def change(self, edit: Any) -> None:
        with self.doc.transaction() as tx:
            edit(tx)

    def view(self) -> Any:
        return extract(self.doc)


def sync(node: SessionDoc, client: Client) -> list[Received]:
    """Exchange messages until both sides are quiet; what the node received."""
    received = []
    ours = new_sync_state()
    for _ in range(20):
        out = node.generate_sync_message(ours)
        if out is not None:
            client.doc.receive_sync_message(client.state, Message.decode(out))
        back = client.doc.generate_sync_message(client.state)
        if back is not None:
            received.append(node.receive_sync_message(ours, back.encode()))
        if out is None and back is None:
            return received
    raise AssertionError("sync did not settle")


def filled(actor: bytes = NODE_A) -> SessionDoc:
    doc = SessionDoc.new("s1", actor)
    doc.update(fields(state="active", agent_id="main", channel="tg", peer_id="u1"),
               [message("k1", "first"), message("k2", "second")], {"mood": "calm"})
    return doc


def edited(node: SessionDoc, edit: Any) -> tuple[Client, Received]:
    """A client that synced ``node``, made ``edit`` and synced again: the one Received
    that carried the change."""
    client = Client()
    sync(node, client)
    client.change(edit)
    [received] = [r for r in sync(node, client) if r.changes]
    return client, received


def test_a_client_syncs_the_whole_document() -> None:
    node, client = filled(), Client()
    received = sync(node, client)
    assert client.view() == node.to_python()
    assert all(not r.changes and not r.from_client and r.refusal is None for r in received)


def test_node_actors_are_tagged() -> None:
    assert is_node_actor(NODE_A) and is_node_actor(node_actor("x"))
    assert not is_node_actor(ACTOR_C) and not is_node_actor(None)
    assert node_actor("node-a") == NODE_A != NODE_B


def test_a_client_edit_is_reported() -> None:
    node = filled()

    def edit(tx: Any) -> None:
        put_text(tx, root(tx, "custom_state"), "mood", "happy")
        put_text(tx, ROOT, "state", "ended")

    _, received = edited(node, edit)
    assert received.from_client and received.refusal is None
    assert received.fields == {"custom_state", "state"} and received.messages == set()
    edits = node.edits_since(received.before)
    assert edits.state == "ended" and edits.custom_state == {"mood": "happy"}
    assert edits.context == {"agent_id": "main", "channel": "tg", "peer_id": "u1",
                             "state": "active"}
    assert node.to_python()["custom_state"] == {"mood": "happy"}  # kept, to be persisted
    again = SessionDoc.load(node.save(), NODE_A)
    assert again.to_python() == node.to_python()


def test_unreadable_and_removed_values_are_named() -> None:
    node = filled()

    def edit(tx: Any) -> None:
        state = root(tx, "custom_state")
        tx.put(state, "b", ScalarType.Bytes, b"xy")
        tx.put(state, "n", ScalarType.F64, 1.5)
        tx.put(state, "i", ScalarType.Str, "immutable")
        tx.delete(state, "mood")
        tx.put(ROOT, "state", ScalarType.Int, 3)

    _, received = edited(node, edit)
    edits = node.edits_since(received.before)
    assert edits.custom_state == {"n": 1.5, "i": "immutable"}
    assert edits.removed == ["mood"]
    assert edits.unreadable == {"b": "bytes", "state": "int"} and edits.state is None


def test_changes_relayed_from_another_node_are_not_a_clients() -> None:
    a, b = filled(NODE_A), filled(NODE_B)
    b.update(fields(state="active", agent_id="main", channel="tg", peer_id="u1",
                    message_count=1), [message("k3", "third")], {"mood": "calm"})
    client = Client()
    sync(a, client)
    received = [r for r in sync(b, client) if r.changes]
    assert received and not any(r.from_client or r.refusal for r in received)
    view = client.view()
    assert sorted(view["messages"]) == ["k1", "k2", "k3"]  # each once
    assert extract(Document.load(b.save())) == view


def test_changes_relayed_under_another_node_are_repaired() -> None:
    node = filled()
    client = Client(Document(actor_id=node_actor("forger")))
    sync(node, client)
    client.change(lambda tx: tx.delete(root(tx, "messages"), "k1"))
    [received] = [r for r in sync(node, client) if r.changes]
    assert not received.from_client and received.refusal is None
    assert received.messages == {"k1"}
    assert node.repair([message("k1", "first"), message("k2", "second")], received.messages)
    assert sorted(node.to_python()["messages"]) == ["k1", "k2"]


@pytest.mark.parametrize("actor", [NODE_A, genesis_actor(document_id("s1"))],
                         ids=["node", "genesis"])
def test_a_change_in_this_nodes_or_the_genesis_slot_is_refused(actor: bytes) -> None:
    node = filled(NODE_A)
    client = Client(Document(actor_id=actor))
    sync(node, client)
    client.change(lambda tx: put_text(tx, root(tx, "custom_state"), "mood", "forged"))
    [received] = [r for r in sync(node, client) if r.changes]
    assert received.refusal is not None and "actor" in received.refusal


def test_a_counter_is_refused() -> None:
    node = SessionDoc.new("s1", NODE_A)
    client = Client(Document.load(node.save() + COUNTER_CHANGE))
    received = [r for r in sync(node, client) if r.changes]
    assert received[0].refusal is not None and "counter" in received[0].refusal


@pytest.mark.parametrize("edit", [
    lambda tx: tx.put_object(ROOT, "messages", ObjType.Map),
    lambda tx: tx.delete(ROOT, "custom_state"),
    lambda tx: put_text(tx, ROOT, "session_key", "s2"),
    lambda tx: tx.put(ROOT, "session_key", ScalarType.Int, 1),
])
def test_breaking_the_root_is_refused(edit: Any) -> None:
    _, received = edited(filled(), edit)
    assert received.refusal is not None


def key_with_genesis(after: bool, actor: bytes = NODE_A) -> str:
    """A session key whose genesis actor sorts after ``actor`` (or before it)."""
    return next(key for key in (f"s{i}" for i in range(100))
                if (genesis_actor(document_id(key)) > actor) == after)


@pytest.mark.parametrize("after", [False, True], ids=["genesis-first", "genesis-last"])
def test_the_root_maps_are_recognised_after_a_reload(after: bool) -> None:
    # A loaded document numbers its actors in sorted order, a new one in order of
    # writing: the genesis actor is no longer first when it sorts after the node's.
    key = key_with_genesis(after)
    node = SessionDoc.new(key, NODE_A)
    node.update({**EMPTY_FIELDS, "session_key": key, "state": "active"},
                [message("k1")], {"mood": "calm"})
    node = SessionDoc.load(node.save(), NODE_A)

    def edit(tx: Any) -> None:
        put_text(tx, root(tx, "custom_state"), "mood", "happy")
        tx.delete(root(tx, "messages"), "k1")

    _, received = edited(node, edit)
    assert received.refusal is None and received.fields == {"custom_state", "messages"}
    assert node.edits_since(received.before).custom_state == {"mood": "happy"}
    for broken in ("messages", "custom_state"):
        again = SessionDoc.load(node.save(), NODE_A)
        _, received = edited(again, lambda tx, name=broken: tx.put_object(ROOT, name, ObjType.Map))
        assert received.refusal == f"the root {broken!r} map was replaced or deleted"


def test_message_edits_are_repaired() -> None:
    node = filled()
    projection = [message("k1", "first"), message("k2", "second")]

    def edit(tx: Any) -> None:
        messages = root(tx, "messages")
        content = tx.get(tx.get(messages, "k1")[1], "content")[1]
        tx.insert(content, 0, ScalarType.Str, "X")
        tx.delete(messages, "k2")
        fake = tx.put_object(messages, "k9", ObjType.Map)
        put_text(tx, fake, "content", "fake")

    client, received = edited(node, edit)
    assert received.messages == {"k1", "k2", "k9"} and received.from_client
    assert node.repair(projection, received.messages)
    assert node.repair(projection, None) == b""  # nothing left to do
    sync(node, client)
    assert {k: v["content"] for k, v in client.view()["messages"].items()} == {
        "k1": "first", "k2": "second"}


def test_repair_keeps_messages_other_nodes_wrote() -> None:
    a, b = filled(NODE_A), filled(NODE_B)
    a.update(fields(), [message("k3", "from a")], {})
    client = Client()
    sync(a, client)
    sync(b, client)
    assert b.repair([message("k1", "first"), message("k2", "second")], None) == b""
    assert "k3" in b.to_python()["messages"]


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x42\x05", b"\x43\x01" + bytes(5)])
def test_garbage_sync_messages_are_invalid_input(data: bytes) -> None:
    node = filled()
    with pytest.raises(InvalidInput):
        node.receive_sync_message(new_sync_state(), data)
    with pytest.raises(InvalidInput):
        summarize_sync_message(data, changes_max=100)


def test_sync_message_outline() -> None:
    node, client = filled(), Client()
    first = node.generate_sync_message(new_sync_state())
    assert first is not None
    assert summarize_sync_message(first, changes_max=100) == SyncSummary(1, 0, 0, 0)
    # A client that has nothing answers with an empty bloom filter, so the node's next
    # message carries every change. (A client's change is not always in its first
    # message: its hash can be a false positive in the other side's filter.)
    ours = new_sync_state()
    node.generate_sync_message(ours)
    back = client.doc.generate_sync_message(client.state)
    assert back is not None
    node.receive_sync_message(ours, back.encode())
    out = node.generate_sync_message(ours)
    assert out is not None
    outline = summarize_sync_message(out, changes_max=100)
    assert outline.heads == 1 and outline.changes >= 1 and outline.change_bytes > 0
    unpacked = outline.unpacked(UNPACK)
    assert unpacked.bytes > 0 and unpacked.rows > 0
    with pytest.raises(LimitExceeded):
        summarize_sync_message(out, changes_max=0)
    for trailing in (b"\x00\x01", bytes(40)):  # automerge itself shrugs at some of these
        with pytest.raises(InvalidInput):
            summarize_sync_message(out + trailing, changes_max=100)
    with pytest.raises(InvalidInput):
        summarize_sync_message(out[:-5], changes_max=100)


@pytest.mark.parametrize(("text", "touch"), [
    ('Patch { obj: Root, path: [], action: DeleteMap { key: "messages" } }',
     Touch("messages", None, False)),
    ('Patch { obj: Id(11, ActorID("c8b1"), 1), path: [(Root, Map("messages"))], action: '
     'DeleteMap { key: "0001" } }', Touch("messages", "0001", False)),
    ('Patch { obj: Id(28, ActorID("00"), 0), path: [(Root, Map("messages")), (Id(11, '
     'ActorID("c8"), 2), Map("0001")), (Id(21, ActorID("00"), 0), Map("content"))], action: '
     'Insert { index: 0, values: … } }', Touch("messages", "0001", False)),
    ('Patch { obj: Id(12, ActorID("c8"), 2), path: [(Root, Map("custom_state"))], action: '
     'PutMap { key: "we\\"ird", value: (Scalar(Int(1)), Id(39, ActorID("c5"), 1)), '
     'conflict: false } }', Touch("custom_state", None, False)),
    ('Patch { obj: Id(12, ActorID("c8"), 2), path: [(Root, Map("custom_state"))], action: '
     'PutMap { key: "c", value: (Scalar(Counter(Counter { start: 1, current: 1 })), '
     'Id(39, ActorID("1f"), 1)), conflict: false } }', Touch("custom_state", "c", True)),
    ('Patch { obj: Root, path: [], action: Increment { prop: Map("n"), value: 2 } }',
     Touch("n", None, False)),
    ("something else entirely", Touch(None, None, False)),
])
def test_patches_are_classified(text: str, touch: Touch) -> None:
    assert classify_patch(text) == touch


def test_creator_of_reads_the_actor() -> None:
    doc = Document(actor_id=NODE_A)
    with doc.transaction() as tx:
        obj = tx.put_object(ROOT, "m", ObjType.Map)
    assert creator_of(obj) == NODE_A
    assert creator_of(b"") is None and creator_of(b"\x10\x40ab") is None


def test_a_replica_follows_the_node() -> None:
    node, replica = filled(), Replica()
    assert replica.to_python() is None
    ours, theirs = new_sync_state(), new_sync_state()
    for _ in range(3):
        out = node.generate_sync_message(ours)
        if out is not None:
            replica.receive_sync_message(theirs, out)
        back = replica.generate_sync_message(theirs)
        if back is not None:
            node.receive_sync_message(ours, back)
    assert replica.to_python() == node.to_python() and replica.heads == node.heads


def test_repair_drops_root_keys_of_a_client() -> None:
    node = filled()
    client, received = edited(node, lambda tx: put_text(tx, ROOT, "extra", "mine"))
    assert received.fields == {"extra"}
    assert node.repair([message("k1", "first"), message("k2", "second")], set())
    sync(node, client)
    assert "extra" not in client.view() and "extra" not in node.to_python()
