"""crdt.automerge.document: genesis, URLs, persistence, idempotence, and two-node merges."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from automerge.core import ROOT, Document, Message, ObjType, ScalarType, SyncState, extract
from hypothesis import given, settings
from hypothesis import strategies as st

from crdt.automerge.chunks import UnpackLimits
from crdt.automerge.document import (
    EMPTY_FIELDS,
    Received,
    Replica,
    SessionDoc,
    automerge_url,
    decode_document_id,
    document_id,
    encode_document_id,
    genesis_actor,
    is_node_actor,
    new_sync_state,
    node_actor,
    parse_automerge_url,
)
from crdt.automerge.layout import _translated
from crdt.automerge.outline import (
    SyncSummary,
    Touch,
    classify_patch,
    creator_of,
    summarize_sync_message,
)
from crdt.errors import InvalidInput, LimitExceeded, StoreError
from tests.support.automerge import COUNTER_CHANGE, put_text, root

ACTOR_A, ACTOR_B, ACTOR_C, ACTOR_D = (bytes([n]) * 16 for n in (0xA1, 0xB2, 0xC3, 0xD4))
UNPACK = UnpackLimits(bytes_max=2**20, rows_max=10_000)
ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def fields(**values: Any) -> dict[str, Any]:
    return {**EMPTY_FIELDS, "session_key": "s1", **values}


def message(key: str, content: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"key": key, "id": key * 2, "timestamp": "2026-01-01T00:00:00.000Z",
            "role": "inbound", "content": content, **extra}


def merged(*docs: SessionDoc) -> SessionDoc:
    """What a client holds after syncing with each of these nodes."""
    into = Document.load(docs[0].save())
    for doc in docs[1:]:
        into.merge(Document.load(doc.save()))
    return SessionDoc.load(into.save(), ACTOR_D)


# --- ids and URLs ---------------------------------------------------------------------

def b58decode(text: str) -> bytes:
    """Independent base58 decoder: the number in base 58, each leading '1' a zero byte."""
    number = 0
    for char in text:
        number = number * 58 + ALPHABET.index(char)
    zeros = len(text) - len(text.lstrip("1"))
    return bytes(zeros) + number.to_bytes((number.bit_length() + 7) // 8, "big")


@pytest.mark.parametrize(("key", "url"), [
    # Cross-checked with npm bs58check.encode, which @automerge/automerge-repo uses.
    ("s1", "automerge:2rPXk7WCZuV9W9C4pNhWXz4JezQ6"),
])
def test_url_vector(key: str, url: str) -> None:
    doc_id = hashlib.blake2b(b"clawsync/automerge-doc/v1\0" + key.encode(),
                             digest_size=16).digest()
    assert document_id(key) == doc_id
    assert automerge_url(key) == url
    raw = b58decode(url.removeprefix("automerge:"))
    payload, checksum = raw[:-4], raw[-4:]
    assert payload == doc_id
    assert checksum == hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    assert parse_automerge_url(url) == doc_id


def test_zero_id_encodes_as_leading_ones() -> None:
    encoded = encode_document_id(bytes(16))
    assert encoded.startswith("1" * 16) and not encoded.startswith("1" * 17)
    assert decode_document_id(encoded) == bytes(16)


@pytest.mark.parametrize("url", [
    None, b"automerge:x", "", "automerge:", "http://2rPXk7WCZuV9W9C4pNhWXz4JezQ6",
    "automerge:2rPXk7WCZuV9W9C4pNhWXz4JezQ7",      # checksum broken
    "automerge:0OIl", "automerge:" + "2" * 65,      # not base58; too long
    "automerge:" + encode_document_id(bytes(15)),  # valid base58check, wrong length
])
def test_parse_rejects_garbage(url: Any) -> None:
    with pytest.raises(InvalidInput):
        parse_automerge_url(url)


# --- genesis, persistence, idempotence --------------------------------------------------

def test_genesis_is_the_same_for_every_actor() -> None:
    a, b = SessionDoc.new("s1", ACTOR_A), SessionDoc.new("s1", ACTOR_B)
    assert a.heads == b.heads and a.save() == b.save()
    assert SessionDoc.new("s2", ACTOR_A).heads != a.heads
    assert a.to_python() == {**EMPTY_FIELDS, "session_key": "s1", "messages": {},
                             "custom_state": {}}
    assert a.update(fields(), [], {}) == b""


def test_genesis_actor_may_not_write() -> None:
    with pytest.raises(StoreError):
        SessionDoc.new("s1", genesis_actor(document_id("s1")))


def test_update_is_idempotent() -> None:
    doc = SessionDoc.new("s1", ACTOR_A)
    args = (fields(state="active", message_count=1), [message("k1")], {"a": [1, {"b": "c"}]})
    changes = doc.update(*args)
    assert changes
    heads = doc.heads
    assert doc.update(*args) == b""
    assert doc.heads == heads


def test_text_fields_may_be_null() -> None:
    doc = SessionDoc.new("s1", ACTOR_A)
    assert doc.update(fields(last_event_id=None), [], {})
    assert doc.to_python()["last_event_id"] is None
    assert doc.update(fields(last_event_id=None), [], {}) == b""
    assert doc.update(fields(last_event_id="ab"), [], {})
    assert doc.to_python()["last_event_id"] == "ab"


def test_messages_are_never_rewritten() -> None:
    doc = SessionDoc.new("s1", ACTOR_A)
    doc.update(fields(), [message("k1", "first")], {})
    assert doc.update(fields(), [message("k1", "other"), message("k1", "x")], {}) == b""
    assert doc.to_python()["messages"]["k1"]["content"] == "first"


def test_save_load_and_snapshot_plus_increments() -> None:
    doc = SessionDoc.new("s1", ACTOR_A)
    doc.update(fields(state="active"), [message("k1")], {"a": 1})
    snapshot = doc.save()
    increments = [
        doc.update(fields(state="idle", message_count=2), [message("k2")], {"a": 2}),
        doc.update(fields(state="ended", message_count=3), [message("k3")], {}),
    ]
    for data in (doc.save(), snapshot + b"".join(increments)):
        again = SessionDoc.load(data, ACTOR_A)
        assert again.to_python() == doc.to_python()
        assert again.heads == doc.heads and again.session_key == "s1"
    # The loaded document goes on where it stopped.
    again.update(fields(state="gone", message_count=3), [], {})
    assert again.to_python()["state"] == "gone"


def test_strings_are_text_objects() -> None:
    doc = SessionDoc.new("s1", ACTOR_A)
    doc.update(fields(agent_id="main", last_activity="2026-01-01T00:00:00.000Z"),
               [message("k1", role="tool", tool_name="grep", success=True)],
               {"s": "x", "n": [{"deep": "y"}, "z"]})
    raw = Document.load(doc.save())
    texts: list[tuple[bytes, str | int]] = [
        (ROOT, "agent_id"), (ROOT, "last_activity"), (ROOT, "state")]
    msg = raw.get(raw.get(ROOT, "messages")[1], "k1")[1]  # type: ignore[index]
    texts += [(msg, name) for name in ("id", "timestamp", "role", "content", "tool_name")]
    state = raw.get(ROOT, "custom_state")[1]  # type: ignore[index]
    texts.append((state, "s"))
    nested = raw.get(raw.get(state, "n")[1], 0)[1]  # type: ignore[index]
    texts.append((nested, "deep"))
    texts.append((raw.get(state, "n")[1], 1))  # type: ignore[index]
    for obj, prop in texts:
        got = raw.get(obj, prop)
        assert got is not None and got[0] == ObjType.Text, prop
    assert raw.get(msg, "success")[0] == (ScalarType.Boolean, True)  # type: ignore[index]
    assert raw.get(ROOT, "message_count")[0] == (ScalarType.Int, 0)  # type: ignore[index]
    view: Any = extract(raw)
    assert view["agent_id"] == "main"
    assert view["messages"]["k1"]["tool_name"] == "grep"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(min_size=1, max_size=4), inner, max_size=4),
    max_leaves=12)
STATE = st.dictionaries(st.text(min_size=1, max_size=4), JSON, max_size=5)


@settings(max_examples=60)
@given(first=STATE, second=STATE)
def test_custom_state_round_trips(first: dict[str, Any], second: dict[str, Any]) -> None:
    doc = SessionDoc.new("s1", ACTOR_A)
    for state in (first, second):
        doc.update(fields(), [], state)
        assert doc.to_python()["custom_state"] == state
        assert SessionDoc.load(doc.save(), ACTOR_B).to_python()["custom_state"] == state
        assert doc.update(fields(), [], state) == b""


def test_types_are_compared_exactly() -> None:
    doc = SessionDoc.new("s1", ACTOR_A)
    doc.update(fields(), [], {"v": 1})
    for value in (1.0, True, "1", [1], 1):
        assert doc.update(fields(), [], {"v": value})
        assert type(doc.to_python()["custom_state"]["v"]) is type(value)


def test_empty_nested_keys_are_left_out() -> None:
    doc = SessionDoc.new("s1", ACTOR_A)
    doc.update(fields(), [], {"v": {"": 1, "a": 2}})
    assert doc.to_python()["custom_state"] == {"v": {"a": 2}}
    assert doc.update(fields(), [], {"v": {"": 1, "a": 2}}) == b""


# --- errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("data", [
    b"", b"garbage", Document().save(), SessionDoc.new("s1", ACTOR_A).save()[:-3],
])
def test_load_rejects_garbage(data: bytes) -> None:
    with pytest.raises(InvalidInput):
        SessionDoc.load(data, ACTOR_A)


def test_load_rejects_a_look_alike_without_our_genesis() -> None:
    fake = Document(actor_id=ACTOR_B)
    with fake.transaction() as tx:
        tx.insert(tx.put_object(ROOT, "session_key", ObjType.Text), 0, ScalarType.Str, "s1")
        tx.put_object(ROOT, "messages", ObjType.Map)
        tx.put_object(ROOT, "custom_state", ObjType.Map)
    with pytest.raises(InvalidInput, match="genesis"):
        SessionDoc.load(fake.save(), ACTOR_A)


@pytest.mark.parametrize(("flds", "msgs", "state"), [
    (fields(extra=1), [], {}),
    ({**fields(), "message_count": True}, [], {}),
    ({**fields(), "state": 1}, [], {}),
    ({**fields(), "message_count": None}, [], {}),
    (fields(session_key="s2"), [], {}),
    (fields(), [{**message("k"), "role": "system"}], {}),
    (fields(), [{**message("k"), "success": 1}], {}),
    (fields(), [{"key": "k"}], {}),
    (fields(), [], {"": 1}),
    (fields(), [], {"v": float("nan")}),
    (fields(), [], {"v": 2**64}),
    (fields(), [], {"v": {1: 2}}),
])
def test_bad_projection_is_our_error_and_writes_nothing(
        flds: dict[str, Any], msgs: list[dict[str, Any]], state: dict[str, Any]) -> None:
    doc = SessionDoc.new("s1", ACTOR_A)
    heads = doc.heads
    with pytest.raises(StoreError):
        doc.update(flds, msgs, state)
    assert doc.heads == heads
    assert doc.update(fields(), [message("k")], {"v": 1})  # still usable


class FakePanic(BaseException):
    """Stands in for pyo3's PanicException (a BaseException) without poisoning anything."""


def test_translation_of_foreign_errors() -> None:
    panics: list[bool] = []

    def on_panic() -> None:
        panics.append(True)

    with pytest.raises(StoreError) as info, _translated(StoreError, "x", on_panic):
        raise Exception("automerge said no")
    assert isinstance(info.value.__cause__, Exception) and panics == []
    with pytest.raises(InvalidInput), _translated(InvalidInput, "x", on_panic):
        raise FakePanic("rust panicked")
    assert panics == [True]
    with pytest.raises(KeyboardInterrupt), _translated(StoreError, "x"):
        raise KeyboardInterrupt


def test_a_panic_retires_the_document() -> None:
    doc = SessionDoc.new("s1", ACTOR_A)
    with pytest.raises(StoreError), doc._automerge("testing"):
        raise FakePanic("rust panicked")
    with pytest.raises(StoreError, match="load it again"):
        doc.save()


# --- two nodes, one client ------------------------------------------------------------

EVENT = st.one_of(
    st.tuples(st.just("message"), st.sampled_from(["inbound", "outbound", "tool"]),
              st.text(max_size=6)),
    st.tuples(st.just("state"), st.sampled_from("abc"), JSON | st.just("<delete>")),
    st.tuples(st.just("meta"), st.sampled_from(["agent_id", "channel", "state"]),
              st.text(max_size=6)))
EVENTS = st.lists(st.tuples(st.integers(0, 20), EVENT), min_size=1, max_size=10)


def project(events: list[tuple[int, int, Any]]) -> tuple[dict[str, Any], list[Any], dict[str, Any]]:
    """A tiny stand-in for the projection fold: a pure function of the event set."""
    flds = fields(event_count=len(events))
    messages: list[Any] = []
    state: dict[str, Any] = {}
    for ts, n, (kind, a, b) in sorted(events):
        flds["last_activity"] = f"{ts:06d}"
        flds["last_event_id"] = f"{n:04x}"
        if kind == "message":
            messages.append({**message(f"{ts:06d}-{n:04x}", b), "role": a})
        elif kind == "meta":
            flds[a] = b
        elif b == "<delete>":
            state.pop(a, None)
        else:
            state[a] = b
    flds["message_count"] = len(messages)
    return flds, messages, state


def run_node(actor: bytes, events: list[Any], order: list[int], cuts: list[int]) -> SessionDoc:
    """A node that learns the events in ``order``, updating its document after each batch."""
    doc = SessionDoc.new("s1", actor)
    seen: list[Any] = []
    bounds = sorted({c % (len(order) + 1) for c in cuts} | {len(order)})
    start = 0
    for end in bounds:
        seen += [events[i] for i in order[start:end]]
        start = end
        doc.update(*project(seen))
    return doc


@settings(max_examples=80)
@given(data=st.data(), raw=EVENTS, exchange=st.booleans())
def test_two_nodes_merge_to_the_direct_build(data: st.DataObject, raw: list[Any],
                                             exchange: bool) -> None:
    events = [(ts, n, event) for n, (ts, event) in enumerate(raw)]
    indexes = list(range(len(events)))
    cuts = st.lists(st.integers(0, len(events)), max_size=4)
    a = run_node(ACTOR_A, events, data.draw(st.permutations(indexes)), data.draw(cuts))
    b = run_node(ACTOR_B, events, data.draw(st.permutations(indexes)), data.draw(cuts))
    if exchange:  # a client relayed b's changes to a, which then keeps writing
        a = SessionDoc.load(merged(a, b).save(), ACTOR_A)
        a.update(*project(events[:1]))
        a.update(*project(events))
    direct = SessionDoc.new("s1", ACTOR_C)
    direct.update(*project(events))
    expected = direct.to_python()
    assert len(expected["messages"]) == sum(e[2][0] == "message" for e in events)
    for doc in (a, b, merged(a, b), merged(b, a), merged(a, b, direct)):
        assert doc.to_python() == expected
        assert doc.update(*project(events)) == b""


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
