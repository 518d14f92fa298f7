"""crdt.automerge.document: URLs and ids, genesis, persistence, idempotence, and errors."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from automerge.core import ROOT, Document, ObjType, ScalarType, extract
from hypothesis import given, settings
from hypothesis import strategies as st

from crdt.automerge.document import (
    EMPTY_FIELDS,
    SessionDoc,
    automerge_url,
    decode_document_id,
    document_id,
    encode_document_id,
    genesis_actor,
    parse_automerge_url,
)
from crdt.automerge.layout import _translated
from crdt.errors import InvalidInput, StoreError
from tests.crdt.automerge.session_docs import ACTOR_A, ACTOR_B, JSON, fields, message

ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


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
