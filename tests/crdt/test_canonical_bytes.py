"""crdt.events' canonical form: the one CBOR encoding an event's id is the hash of, round
trips through it, and ``Event.from_canonical`` refusing every other encoding and every
tampered byte. Apart from ``test_events`` (parsing, the errors that name a field, limits)
because these tests hold the bytes, not the JSON a client sends."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crdt import codec
from crdt.clock import Hlc
from crdt.errors import InvalidInput, LimitExceeded
from crdt.events import EVENT_BYTES_MAX, Draft, Event, parse_event
from crdt.kinds import KINDS
from tests.crdt.support import MakeEvent, body, nest

# -- canonical bytes -----------------------------------------------------------------------

names = st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]),
                min_size=1, max_size=12)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=10))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8)


@st.composite
def kinds(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(sorted(KINDS)))
    text = st.text(max_size=20)
    fields: dict[str, Any] = {
        "session_started": {"channel": text, "peer_id": text},
        "message_received": {"content": text, "attachments": st.lists(st.fixed_dictionaries(
            {"kind": text}, optional={"mime_type": st.none() | text,
                                      "size": st.none() | st.integers(0, 2**64 - 1)}),
            max_size=2)},
        "message_sent": {"content": text, "message_id": text},
        "tool_called": {"tool_name": text, "params": json_values},
        "tool_result": {"tool_name": text, "result": json_values, "success": st.booleans()},
        "agent_response": {"content": text, "model": text, "tokens": st.dictionaries(
            names, st.integers(0, 2**64 - 1), max_size=3)},
        "session_ended": {"reason": text},
        "state_changed": {"key": names, "value": json_values},
    }[kind]
    return {"type": kind, **draw(st.fixed_dictionaries(fields))}


@st.composite
def events(draw: st.DrawFn) -> Event:
    event = parse_event({
        "agent_id": draw(names), "kind": draw(kinds()),
        "hlc": [draw(st.integers(0, 2**45)), draw(st.integers(0, 2**32 - 1))]},
        session_key=draw(names))
    assert isinstance(event, Event)
    return event


@settings(max_examples=150)
@given(events())
def test_from_canonical_round_trip(event: Event) -> None:
    again = Event.from_canonical(event.canonical)
    assert again == event
    assert again.id == hashlib.blake2b(event.canonical, digest_size=32).digest()
    assert Event.from_trusted(event.canonical, event.id) == event


@settings(max_examples=100)
@given(events(), st.lists(st.tuples(st.integers(0, 2**45), st.integers(0, 2**32 - 1)),
                          min_size=1, max_size=3))
def test_a_draft_stamped_again_is_the_whole_content_encoded(
        event: Event, stamps: list[tuple[int, int]]) -> None:
    """A draft encodes the bytes around its timestamp once: each stamp must give exactly
    the canonical encoding of the whole content, and its hash."""
    draft = Draft(event.session_key, event.agent_id, event.kind, event.payload)
    for ms, counter in stamps:
        sealed = draft.seal(Hlc(ms, counter))
        assert sealed.canonical == codec.encode({
            "v": 1, "session_key": event.session_key, "agent_id": event.agent_id,
            "timestamp": [ms, counter], "kind": event.kind, "payload": event.payload})
        assert sealed.id == hashlib.blake2b(sealed.canonical, digest_size=32).digest()


@settings(max_examples=100)
@given(events())
def test_to_json_parses_back_to_the_same_event(event: Event) -> None:
    assert parse_event(json.loads(json.dumps(event.to_json()))) == event


@pytest.mark.parametrize("levels", [codec.DEPTH_MAX - 1, codec.DEPTH_MAX])
def test_from_canonical_accepts_every_event_parse_event_accepts(levels: int) -> None:
    event = parse_event(body("tool_called", params=nest(levels)), session_key="s1")
    assert isinstance(event, Event)
    assert Event.from_canonical(event.canonical) == event


def content_of(event: Event) -> dict[str, Any]:
    content = codec.decode(event.canonical)
    assert isinstance(content, dict)
    return content


def test_non_canonical_encodings_of_the_same_content_are_refused(ev: MakeEvent) -> None:
    event = ev("tool_called", 1_704_110_400_000, 3, params={"b": 1, "a": [1, 2]})
    content = content_of(event)
    reordered = dict(reversed(list(content.items())))
    variants = [
        cbor2.dumps(reordered),                       # map keys out of canonical order
        cbor2.dumps({**content, "payload": {**content["payload"],
                                            "params": {"b": 1.0, "a": [1, 2]}}}),  # 1 as 1.0
        b"\xa6" + event.canonical[1:].replace(b"\x61\x76\x01", b"\x61\x76\x18\x01", 1),
    ]
    for data in variants:
        assert data != event.canonical
        assert codec.decode(data) == content  # the same content...
        with pytest.raises(InvalidInput):
            Event.from_canonical(data)  # ...but not the one encoding that is hashed


@pytest.mark.parametrize(("change", "field"), [
    ({"v": 2}, None), ({"extra": 1}, None), ({"timestamp": [1, 2, 3]}, "timestamp"),
    ({"timestamp": [-1, 0]}, "timestamp"), ({"kind": 5}, "kind"), ({"kind": ""}, "kind"),
    ({"session_key": ""}, "session_key"), ({"agent_id": 5}, "agent_id"),
    ({"payload": {"reason": 5}}, "payload.reason"), ({"payload": {}}, "payload.reason"),
    ({"payload": {"reason": "x", "": 1}}, "payload field name"),
    ({"payload": {"reason": "x", "more": float("inf")}}, "payload.more"),
])
def test_from_canonical_validates_the_content(ev: MakeEvent, change: dict[str, Any],
                                              field: str | None) -> None:
    content = {**content_of(ev("session_ended")), **change}
    with pytest.raises(InvalidInput) as caught:
        Event.from_canonical(codec.encode(content))
    assert caught.value.field == field


def test_from_canonical_refuses_what_is_not_an_event() -> None:
    for value in ([1, 2], "event", {"v": 1}, {}):
        with pytest.raises(InvalidInput):
            Event.from_canonical(codec.encode(value))
    with pytest.raises(LimitExceeded):
        Event.from_canonical(codec.encode({"v": 1, "x": "y" * EVENT_BYTES_MAX}))


@pytest.mark.parametrize("kind", [["session_ended"], {"type": "session_ended"}],
                         ids=["array", "map"])
def test_from_canonical_refuses_an_unhashable_kind(ev: MakeEvent, kind: Any) -> None:
    content = {**content_of(ev("session_ended")), "kind": kind}
    with pytest.raises(InvalidInput) as caught:
        Event.from_canonical(codec.encode(content))
    assert caught.value.field == "kind"


def test_tampered_bytes_never_keep_the_id(ev: MakeEvent) -> None:
    """Change any byte to any value: the result is refused, or it is another event (another
    id, the hash of the new bytes). Exhaustive over one event."""
    event = ev("session_ended", 1_700_000_000_000, 0, session="s1", reason="done")
    accepted = 0
    for index in range(len(event.canonical)):
        for value in range(256):
            tampered = bytearray(event.canonical)
            if tampered[index] == value:
                continue
            tampered[index] = value
            try:
                other = Event.from_canonical(bytes(tampered))
            except InvalidInput:
                continue
            accepted += 1
            assert other.id != event.id
            assert other.canonical == bytes(tampered)
            assert other.id == hashlib.blake2b(tampered, digest_size=32).digest()
    assert accepted > 0  # e.g. other letters in the strings: valid, different events
