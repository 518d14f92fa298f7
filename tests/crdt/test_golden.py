"""Golden vectors: event -> canonical CBOR bytes -> BLAKE2b-256 id.

These are the cross-language contract (DESIGN decision 2): a node written in any language
must produce exactly these bytes and ids for these events. If a test here fails, an
event's id changed: every stored and replicated event would be orphaned. Never update a
vector to make a test pass; bump ``SCHEMA_VERSION`` instead.

The first two vectors are assembled by hand from RFC 8949 (major type in the top three
bits of the initial byte, the argument in the low five bits or in the following 1/2/4/8
bytes; map keys in bytewise order of their encodings, which for text keys means shorter
keys first), so they do not depend on cbor2 or on ``crdt.codec``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from crdt import codec
from crdt.events import SCHEMA_VERSION, Event, parse_event


def text(value: str) -> str:
    """Hand-encode a short text string: major type 3 (0x60 | length) then UTF-8."""
    raw = value.encode("utf-8")
    assert len(raw) < 24
    return f"{0x60 | len(raw):02x}" + raw.hex()


# {"v": 1, "kind": "session_ended", "payload": {"reason": "done"}, "agent_id": "main",
#  "timestamp": [1700000000000, 0], "session_key": "s1"} -- keys in canonical order:
# "v" (0x61..) < "kind" (0x64..) < "payload" (0x67..) < "agent_id" (0x68..)
# < "timestamp" (0x69..) < "session_key" (0x6b..).
SESSION_ENDED_HEX = "".join([
    "a6",                                   # map, 6 pairs
    "6176", "01",                           # "v": 1
    "646b696e64",                           # "kind"
    "6d" + b"session_ended".hex(),          # text(13)
    "677061796c6f6164",                     # "payload"
    "a1", "66" + b"reason".hex(), "64" + b"done".hex(),  # {"reason": "done"}
    "68" + b"agent_id".hex(), "64" + b"main".hex(),
    "69" + b"timestamp".hex(),
    "82",                                   # array, 2 items
    "1b" "0000018bcfe56800",                # uint64: 1700000000000 = 0x18bcfe56800 > 2**32
    "00",                                   # counter 0
    "6b" + b"session_key".hex(), "62" + b"s1".hex(),
])
SESSION_ENDED_ID = "e3b72f56f17c98547a9e3b2effb737447183f8ab0bc6d4d4cbc625eb45b6323f"

# tool_called with nested JSON params. 10.0 and 2.0 are integral floats and must be
# hashed as the integers 10 and 2 (JavaScript cannot tell 10.0 from 10); 0.5 stays a
# float and takes the shortest exact form, half precision (0xf9 0x3800).
TOOL_CALLED_HEX = "".join([
    "a6", "6176", "01",
    "646b696e64", text("tool_called"),
    "677061796c6f6164",
    "a2",                                   # payload: "params" (0x66) < "tool_name" (0x69)
    text("params"),
    "a4",                                   # "limit" < "query" < "ratio" < "filters"
    text("limit"), "0a",                    # 10.0 -> unsigned 10
    text("query"), text("weather"),
    text("ratio"), "f93800",                # 0.5 as a half-precision float
    text("filters"),
    "a3",                                   # "days" < "lang" < "exact"
    text("days"), "83", "01", "02", "03",   # [1, 2.0, 3] -> [1, 2, 3]
    text("lang"), "f6",                     # null
    text("exact"), "f5",                    # true
    text("tool_name"), text("search"),
    text("agent_id"), text("main"),
    text("timestamp"), "82", "1b" "0000019b76daa800", "07",  # [1767225600000, 7]
    text("session_key"), text("s1"),
])
TOOL_CALLED_ID = "7011ccb1c3c2f4b8a0d869e62a612b21638682c3cc280a63644d11962b718b01"

# Unicode content, an attachment, a seed-style RFC 3339 timestamp with nanoseconds (the
# digits below the millisecond become the counter: 456789) and a structured session key.
MESSAGE_HEX = (
    "a6617601646b696e64706d6573736167655f7265636569766564677061796c6f6164a267636f6e74656e"
    "74774772c3bcc39f6520f09f918b20e2809420e4bda0e5a5bd6b6174746163686d656e747381a3646b69"
    "6e6465696d6167656473697a65190800696d696d655f7479706569696d6167652f706e67686167656e74"
    "5f6964646d61696e6974696d657374616d70821b0000019ca884c7bb1a0006f8556b73657373696f6e5f"
    "6b657978256167656e743a6d61696e3a74656c656772616d3a626f743132333a646d3a75736572343536")
MESSAGE_ID = "1d1492824befd438e6ee264667a36f11d0dff364d278200ade0b38be21d61153"

AGENT_RESPONSE_HEX = (
    "a6617601646b696e646e6167656e745f726573706f6e7365677061796c6f6164a3656d6f64656c66636c"
    "6175646566746f6b656e73a265696e7075740c666f75747075740767636f6e74656e746c497420697320"
    "3231c2b0432e686167656e745f6964646d61696e6974696d657374616d70821b0000019b76daa801006b"
    "73657373696f6e5f6b6579627331")
AGENT_RESPONSE_ID = "08570c71a3efc0e8a9b1865f5d87c2ee05759a1184e500fe6dd732773f94785e"

VECTORS: list[tuple[str, dict[str, Any], str, str, str]] = [
    ("session_ended", {
        "agent_id": "main", "hlc": [1700000000000, 0],
        "kind": {"type": "session_ended", "reason": "done"}},
     "s1", SESSION_ENDED_HEX, SESSION_ENDED_ID),
    ("tool_called", {
        "agent_id": "main", "hlc": [1767225600000, 7],
        "kind": {"type": "tool_called", "tool_name": "search", "params": {
            "query": "weather", "limit": 10.0, "ratio": 0.5,
            "filters": {"days": [1, 2.0, 3], "exact": True, "lang": None}}}},
     "s1", TOOL_CALLED_HEX, TOOL_CALLED_ID),
    ("message_received", {
        "agent_id": "main", "timestamp": "2026-03-01T08:30:00.123456789Z",
        "kind": {"type": "message_received", "content": "Grüße 👋 — 你好",
                 "attachments": [{"kind": "image", "mime_type": "image/png", "size": 2048}]}},
     "agent:main:telegram:bot123:dm:user456", MESSAGE_HEX, MESSAGE_ID),
    ("agent_response", {
        "agent_id": "main", "hlc": [1767225600001, 0],
        "kind": {"type": "agent_response", "content": "It is 21°C.", "model": "claude",
                 "tokens": {"input": 12, "output": 7}}},
     "s1", AGENT_RESPONSE_HEX, AGENT_RESPONSE_ID),
]


def sealed(body: dict[str, Any], session_key: str) -> Event:
    event = parse_event(body, session_key=session_key)
    assert isinstance(event, Event)
    return event


@pytest.mark.parametrize(("name", "body", "session_key", "hex_bytes", "hex_id"), VECTORS,
                         ids=[vector[0] for vector in VECTORS])
def test_golden_vector(name: str, body: dict[str, Any], session_key: str, hex_bytes: str,
                       hex_id: str) -> None:
    event = sealed(body, session_key)
    assert event.kind == name
    assert event.canonical.hex() == hex_bytes
    assert event.id.hex() == hex_id
    # The id is plain BLAKE2b-256 of those bytes: any language's hashlib reproduces it.
    assert hashlib.blake2b(bytes.fromhex(hex_bytes), digest_size=32).hexdigest() == hex_id


@pytest.mark.parametrize(("name", "body", "session_key", "hex_bytes", "hex_id"), VECTORS,
                         ids=[vector[0] for vector in VECTORS])
def test_golden_bytes_verify_and_rebuild_the_event(name: str, body: dict[str, Any],
                                                   session_key: str, hex_bytes: str,
                                                   hex_id: str) -> None:
    """What a peer does with the bytes: decode, validate, re-encode, re-hash."""
    event = Event.from_canonical(bytes.fromhex(hex_bytes))
    assert event.id.hex() == hex_id
    assert event == sealed(body, session_key)


def test_hand_assembled_vectors_match_the_documented_content_layout() -> None:
    """The hashed content is {v, session_key, agent_id, timestamp, kind, payload}."""
    content = codec.decode(bytes.fromhex(SESSION_ENDED_HEX))
    assert content == {"v": SCHEMA_VERSION, "session_key": "s1", "agent_id": "main",
                       "timestamp": [1700000000000, 0], "kind": "session_ended",
                       "payload": {"reason": "done"}}
    assert SCHEMA_VERSION == 1


def test_integral_floats_hash_like_integers() -> None:
    as_floats = sealed(VECTORS[1][1], "s1")
    body = {**VECTORS[1][1], "kind": {"type": "tool_called", "tool_name": "search", "params": {
        "query": "weather", "limit": 10, "ratio": 0.5,
        "filters": {"days": [1, 2, 3], "exact": True, "lang": None}}}}
    assert sealed(body, "s1").id == as_floats.id
    assert as_floats.payload["params"]["limit"] == 10
    assert type(as_floats.payload["params"]["limit"]) is int


def test_the_claimed_id_of_a_golden_vector_is_accepted() -> None:
    body = {**VECTORS[0][1], "id": SESSION_ENDED_ID}
    assert sealed(body, "s1").id.hex() == SESSION_ENDED_ID


def test_ids_change_with_every_hashed_field() -> None:
    base = VECTORS[0][1]
    variants = [
        ({**base, "agent_id": "other"}, "s1"),
        ({**base, "hlc": [1700000000000, 1]}, "s1"),
        ({**base, "hlc": [1700000000001, 0]}, "s1"),
        ({**base, "kind": {"type": "session_ended", "reason": "done!"}}, "s1"),
        (base, "s2"),
    ]
    ids = {sealed(body, key).id for body, key in variants}
    assert len(ids) == len(variants)
    assert SESSION_ENDED_ID not in {event_id.hex() for event_id in ids}
