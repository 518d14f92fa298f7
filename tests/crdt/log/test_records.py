"""The records the log puts together by hand are the bytes cbor2 gives the same values,
so that every reader (and every older version) reads them as before."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crdt import codec
from crdt.clock import Hlc
from crdt.errors import LogFormatError
from crdt.events import Event, parse_event
from crdt.log.projection import Message
from crdt.log.records import LOG_FORMAT, Entry, Meta, StoredEvent, entry_record

counts = st.integers(0, 2**64 - 1)
_EVENT_FIELDS = [f.name for f in fields(Event)]
texts = st.text(max_size=300)


@st.composite
def events(draw: Any) -> Event:
    event = parse_event({"agent_id": "main", "hlc": [draw(st.integers(0, 2**40)), 0],
                         "kind": {"type": "message_received", "content": draw(texts)}},
                        session_key="s1")
    assert isinstance(event, Event)
    return event


@given(events(), st.text(min_size=1, max_size=40), st.integers(1, 2**63 - 1), counts,
       st.none() | st.binary(min_size=64, max_size=64))
def test_an_event_record_is_what_cbor2_encodes(event: Event, origin: str, seq: int,
                                               position: int, signature: bytes | None) -> None:
    stored = StoredEvent(event, position, origin, seq, signature)
    fields: list[Any] = [event.canonical, origin, seq, position]
    if signature is not None:
        fields.append(signature)
    assert stored.to_record() == codec.encode_fast(fields)
    again = StoredEvent.from_record(stored.to_record(), event.id)
    assert again == stored
    # Made without the constructors (``new_tuple``, ``_new_event``): the same types and
    # fields as they make.
    assert type(again) is StoredEvent and type(again.event) is Event
    assert type(again.event.timestamp) is type(event.timestamp)
    assert again._asdict() == stored._asdict()
    assert {f: getattr(again.event, f) for f in _EVENT_FIELDS} == \
        {f: getattr(event, f) for f in _EVENT_FIELDS}


messages = st.builds(Message, st.just((0, 0, bytes(32))), st.sampled_from(
    ["inbound", "outbound", "tool"]), texts, st.none() | texts, st.none() | st.booleans())


@given(counts, counts, st.integers(0, 2**32 - 1), st.binary(min_size=32, max_size=32),
       st.none() | messages)
def test_an_entry_is_what_cbor2_encodes(position: int, ms: int, counter: int,
                                        event_id: bytes, message: Message | None) -> None:
    sort_key = (ms, counter, event_id)
    raw = entry_record(position, sort_key, None if message is None else message.to_record())
    assert raw == codec.encode_fast(
        [position, ms, counter, event_id, None if message is None else message.to_cbor()])
    entry = Entry.from_record(codec.decode_trusted(raw))
    assert (entry.position, entry.sort_key) == (position, sort_key)
    if message is not None:
        assert entry.message == Message(sort_key, message.role, message.content,
                                        message.tool_name, message.success)


_META = Meta("n1", 7, 3, Hlc(5, 1), 2, {"o1": 3}, {"o2": 4}, {"o3": 5}, 1, 0)


@pytest.mark.parametrize(("name", "value", "said"), [
    ("node_id", 5, "a text"), ("next", "x", "a whole number"),
    ("seq", None, "a whole number"), ("seq", True, "a whole number"),
    ("sessions", "x", "a whole number"), ("sessions", 1.0, "a whole number"),
    ("clock", "ab", "a pair of whole numbers"), ("clock", [1], "a pair of whole numbers"),
    ("clock", [1, "x"], "a pair of whole numbers"),
    ("version", {"a": "x"}, "a map of names to whole numbers"),
    ("version", {"a": None}, "a map of names to whole numbers"),
    ("version", [1], "a map of names to whole numbers"),
    ("retired", [1], "a map of names to whole numbers"),
    ("retiring", {"a": False}, "a map of names to whole numbers"),
    ("origin_n", "x", "a whole number or null"),
    ("forgotten", "x", "a whole number or null")])
def test_a_meta_field_of_another_kind_is_a_damaged_record(
        name: str, value: object, said: str) -> None:
    """Refused, naming the field: no version writes it, and a record read with it would
    fail later (a traceback) or be rewritten by the next commit."""
    raw = {**codec.decode(_META.to_record()), name: value}
    with pytest.raises(LogFormatError) as refused:
        Meta.from_record(codec.encode_fast(raw))
    assert refused.value.damage == f"its {name} field is not {said}"


def test_a_meta_record_of_every_kind_is_read() -> None:
    """What ``to_record`` writes is read back as it was; the fields later versions added
    may be missing (none retired, no origin bound, the forgotten count not kept)."""
    assert Meta.from_record(_META.to_record()) == _META
    raw = codec.decode(_META.to_record())
    for later in ("retired", "retiring", "origin_n", "forgotten"):
        del raw[later]
    assert Meta.from_record(codec.encode_fast(raw)) == Meta(
        "n1", 7, 3, Hlc(5, 1), 2, {"o1": 3}, forgotten_sessions=None, origin_n=None)


def test_the_writer_and_fields_a_later_version_adds_pass_unread() -> None:
    """``written_by``, and any field a later version of the same format adds, is let
    through: an earlier version reads the fields it knows by name. The writer itself is
    not taken from the record (the opening node says who writes now)."""
    raw = {**codec.decode(_META.to_record()), "written_by": "9.1.0", "later": [1, {}]}
    assert Meta.from_record(codec.encode_fast(raw)) == _META
    written = replace(_META, written_by="0.3.0")
    assert codec.decode(written.to_record())["written_by"] == "0.3.0"
    assert "written_by" not in codec.decode(_META.to_record())


@pytest.mark.parametrize("writer", ["9.1.0", 7, None])
def test_a_newer_record_says_its_writer_if_it_is_a_text(writer: object) -> None:
    raw = {**codec.decode(_META.to_record()), "format": LOG_FORMAT + 1, "written_by": writer}
    with pytest.raises(LogFormatError) as refused:
        Meta.from_record(codec.encode_fast(raw))
    assert refused.value.newer
    assert refused.value.writer == (writer if isinstance(writer, str) else None)
