"""Event.from_canonical's quick check against the long way (decode, validate, re-encode
the whole content canonically): same events taken, the same faults named, over valid
events and other encodings of them."""

from __future__ import annotations

import random
from dataclasses import FrozenInstanceError, fields
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crdt import codec, quick_checks
from crdt.clock import COUNTER_MAX, MS_MAX, Hlc
from crdt.errors import InvalidInput, LimitExceeded
from crdt.events import Draft, Event, _from_canonical_quickly
from crdt.kinds import KINDS, check_payload
from tests.crdt.cbor_variants import mutated, variant
from tests.support.events import PAYLOADS

_TEXT = st.text(max_size=12)
_NAMES = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")),
                 min_size=1, max_size=12)
_FLOATS = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [0.5, -0.0, 2.0, 1.5e300, 0.1, 65504.0, 2.0**24 + 1, 3.4028234663852886e38])
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | _TEXT | _FLOATS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8)
#: One seed drawn per example: the encoders' many choices come from it.
_RNGS = st.integers(0, 2**32).map(random.Random)
_EXTRA = st.dictionaries(_NAMES.filter(lambda name: name != "type"), _VALUES, max_size=3)


@st.composite
def events(draw: Any) -> Event:
    """A valid event: a known kind (extra fields too) or an unknown one."""
    kind = draw(st.sampled_from(sorted(KINDS)) | _NAMES)
    fields = {**draw(_EXTRA), **PAYLOADS.get(kind, {})}
    if kind == "message_received" and draw(st.booleans()):
        fields["attachments"] = [{"kind": "image", "mime_type": "image/png", "size": 3},
                                 {"kind": "voice", "mime_type": None, "size": None,
                                  **draw(_EXTRA)}]
    payload = check_payload(kind, fields, "kind", fill_defaults=True)
    stamp = Hlc(draw(st.integers(0, MS_MAX)), draw(st.integers(0, COUNTER_MAX)))
    return Draft(draw(_NAMES), draw(_NAMES), kind, payload).seal(stamp)


def outcome(work: Any, data: bytes) -> Any:
    """What ``work(data)`` gives: the event and its payload's bytes and field order,
    or the fault's class, message and field."""
    try:
        event = work(data)
    except InvalidInput as error:
        return (type(error), str(error), error.field)
    return (event, codec.encode(event.payload), list(event.payload))


def assert_agrees(data: bytes) -> None:
    quick = _from_canonical_quickly(data)
    thorough = outcome(Event._from_canonical_thoroughly, data)
    if quick is not None:
        assert outcome(lambda _: quick, data) == thorough
        assert codec.encode(codec.decode(data, depth_max=codec.DEPTH_MAX + 2)) == data
    assert outcome(Event.from_canonical, data) == thorough


@settings(max_examples=300)
@given(events())
def test_a_valid_event_is_taken_quickly_and_as_the_long_way_takes_it(event: Event) -> None:
    assert _from_canonical_quickly(event.canonical) == event
    assert_agrees(event.canonical)


@settings(max_examples=1000)
@given(events(), _RNGS)
def test_other_encodings_of_an_event_get_the_long_ways_verdict(event: Event,
                                                               rng: random.Random) -> None:
    content = codec.decode(event.canonical, depth_max=codec.DEPTH_MAX + 2)
    assert_agrees(variant(rng, content))


@settings(max_examples=500)
@given(events(), _RNGS)
def test_damaged_bytes_get_the_long_ways_verdict(event: Event, rng: random.Random) -> None:
    assert_agrees(mutated(rng, event.canonical))


@settings(max_examples=300)
@given(st.data(), _RNGS)
def test_changed_content_gets_the_long_ways_verdict(data: st.DataObject,
                                                    rng: random.Random) -> None:
    """Content the checks refuse or normalise, encoded canonically and otherwise."""
    content = {"v": 1, "session_key": "s", "agent_id": "a", "timestamp": [1, 2],
               "kind": "tool_called", "payload": {"tool_name": "t", "params": 1}}
    field = data.draw(st.sampled_from(sorted(content)))
    content[field] = data.draw(_VALUES | st.just(["x"] * 2) | st.just({"tool_name": 1}))
    try:
        canonical = codec.encode(content)
    except Exception:  # not encodable: nothing a peer could send
        return
    assert_agrees(canonical)
    assert_agrees(variant(rng, content))


def test_deep_values_near_the_limit_get_the_long_ways_verdict() -> None:
    """The quick decoder's depth bound is one level short of the long way's: values at
    the limit take the long way, and get its verdict."""
    def nest(levels: int, inner: Any) -> Any:
        for _ in range(levels):
            inner = [inner]
        return inner

    for levels in range(28, 36):
        for inner in (1, [], {}):
            for payload in ({"tool_name": "t", "params": nest(levels, inner)},
                            {"content": "c", "attachments": [
                                {"kind": "k", "mime_type": None, "size": None,
                                 "x": nest(levels, inner)}]}):
                kind = "tool_called" if "params" in payload else "message_received"
                assert_agrees(codec.encode({
                    "v": 1, "session_key": "s", "agent_id": "a", "timestamp": [1, 2],
                    "kind": kind, "payload": payload}))


def test_a_kind_with_validators_of_its_own_takes_the_long_way(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Such validators may take what the long way's decoder refuses (here undefined)."""
    monkeypatch.setitem(KINDS, "custom", {"x": lambda value, field: value})
    for value in ("text", cbor2.undefined, b"bytes"):
        data = cbor2.dumps({"v": 1, "session_key": "s", "agent_id": "a",
                            "timestamp": [1, 2], "kind": "custom",
                            "payload": {"x": value}}, canonical=True)
        assert _from_canonical_quickly(data) is None
        assert_agrees(data)


@settings(max_examples=100)
@given(events())
def test_an_event_made_quickly_is_the_event_its_constructor_makes(event: Event) -> None:
    quick = _from_canonical_quickly(event.canonical)
    assert quick is not None
    made = Event(quick.session_key, quick.agent_id, Hlc(*quick.timestamp), quick.kind,
                 quick.payload, quick.canonical, quick.id)
    assert type(quick) is Event and type(quick.timestamp) is Hlc
    assert [getattr(quick, f.name) for f in fields(Event)] == \
        [getattr(made, f.name) for f in fields(Event)]
    assert quick == made and repr(quick) == repr(made)
    with pytest.raises(FrozenInstanceError):
        quick.kind = "other"  # type: ignore[misc]


def test_a_name_taken_as_a_session_key_is_still_too_long_for_an_agent() -> None:
    """Names taken are kept by the limit they were checked with."""
    long = "a" * 300

    def content(session_key: str, agent_id: str) -> bytes:
        return codec.encode({"v": 1, "session_key": session_key, "agent_id": agent_id,
                             "timestamp": [1, 2], "kind": "session_ended",
                             "payload": {"reason": "done"}})

    assert Event.from_canonical(content(long, "a")).session_key == long
    assert_agrees(content("s", long))
    with pytest.raises(LimitExceeded):
        Event.from_canonical(content("s", long))


def test_the_names_kept_are_bounded() -> None:
    for n in range(quick_checks.NAMES_KEPT_MAX + 10):
        data = codec.encode({"v": 1, "session_key": f"s{n}", "agent_id": f"a{n}",
                             "timestamp": [1, 2], "kind": "session_ended",
                             "payload": {"reason": "done"}})
        assert _from_canonical_quickly(data) is not None
    assert 0 < len(quick_checks.NAMES) <= quick_checks.NAMES_KEPT_MAX
    assert 0 < len(quick_checks.SESSION_KEYS) <= quick_checks.NAMES_KEPT_MAX
