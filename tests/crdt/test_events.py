"""crdt.events and crdt.keys: parsing, errors that name the field, limits, and any input
refused cleanly. The canonical bytes an id is the hash of: ``test_canonical_bytes``."""

from __future__ import annotations

import contextlib
import hashlib
import json
import unicodedata
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crdt import codec
from crdt.clock import Hlc
from crdt.errors import IdMismatch, InvalidInput, LimitExceeded, NotATime
from crdt.events import EVENT_BYTES_MAX, Draft, Event, parse_event
from crdt.keys import (
    NAME_BYTES_MAX,
    SESSION_KEY_BYTES_MAX,
    build_session_key,
    check_name,
    check_session_key,
)
from crdt.kinds import KINDS
from tests.crdt.support import STAMP, MakeEvent, body, nest


def refused(obj: Any, error: type[InvalidInput] = InvalidInput, *,
            session_key: str | None = "s1", where: str = "") -> InvalidInput:
    """Parse ``obj``; it must be refused with exactly ``error``."""
    with pytest.raises(InvalidInput) as caught:
        parse_event(obj, session_key=session_key, where=where)
    assert type(caught.value) is error, caught.value
    return caught.value


# -- the eight kinds ----------------------------------------------------------------------

KIND_EXAMPLES: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"type": "session_started", "channel": "telegram", "peer_id": "user456"},
     {"channel": "telegram", "peer_id": "user456"}),
    ({"type": "message_received", "content": "Hello, agent!",
      "attachments": [{"kind": "image", "mime_type": "image/png", "size": 10},
                      {"kind": "voice"}]},
     {"content": "Hello, agent!",
      "attachments": [{"kind": "image", "mime_type": "image/png", "size": 10},
                      {"kind": "voice", "mime_type": None, "size": None}]}),
    ({"type": "message_received", "content": "no attachments"},
     {"content": "no attachments", "attachments": []}),
    ({"type": "message_sent", "content": "Hi!", "message_id": "42"},
     {"content": "Hi!", "message_id": "42"}),
    ({"type": "tool_called", "tool_name": "search", "params": {"q": ["a", 1, 2.5, None]}},
     {"tool_name": "search", "params": {"q": ["a", 1, 2.5, None]}}),
    ({"type": "tool_result", "tool_name": "search", "result": "sunny", "success": False},
     {"tool_name": "search", "result": "sunny", "success": False}),
    ({"type": "agent_response", "content": "It is sunny.", "model": "m",
      "tokens": {"input": 3, "output": 4}},
     {"content": "It is sunny.", "model": "m", "tokens": {"input": 3, "output": 4}}),
    ({"type": "agent_response", "content": "x", "model": "m"},
     {"content": "x", "model": "m", "tokens": {}}),
    ({"type": "session_ended", "reason": "user left"}, {"reason": "user left"}),
    ({"type": "state_changed", "key": "mood", "value": {"level": 3, "tags": ["a"]}},
     {"key": "mood", "value": {"level": 3, "tags": ["a"]}}),
]


@pytest.mark.parametrize(("kind", "payload"), KIND_EXAMPLES,
                         ids=[f"{k['type']}-{i}" for i, (k, _) in enumerate(KIND_EXAMPLES)])
def test_each_kind_parses_with_its_fields(kind: dict[str, Any], payload: dict[str, Any]) -> None:
    event = parse_event({"agent_id": "main", "hlc": STAMP, "kind": kind}, session_key="s1")
    assert isinstance(event, Event)
    assert (event.session_key, event.agent_id, event.timestamp) == ("s1", "main", Hlc(*STAMP))
    assert event.kind == kind["type"]
    assert event.payload == payload
    assert event.to_json()["kind"] == {"type": kind["type"], **payload}


def test_all_eight_kinds_are_covered() -> None:
    assert {kind["type"] for kind, _ in KIND_EXAMPLES} == set(KINDS)
    assert len(KINDS) == 8


def test_without_timestamp_a_draft_comes_back_and_the_store_stamps_it() -> None:
    draft = parse_event({"agent_id": "main", "kind": {"type": "session_ended", "reason": "x"}},
                        session_key="s1")
    assert isinstance(draft, Draft)
    assert draft.timestamp is None
    event = draft.seal(Hlc(5, 6))
    assert event.timestamp == Hlc(5, 6)
    with pytest.raises(ValueError):
        draft.seal()


def test_session_key_may_come_from_the_body_alone() -> None:
    event = parse_event({**body(), "session_key": "from-body"})
    assert isinstance(event, Event)
    assert event.session_key == "from-body"


# -- errors name the field ----------------------------------------------------------------


@pytest.mark.parametrize(("obj", "field"), [
    (body(content=None), "kind.content"),
    ({**body(), "kind": {"type": "message_received"}}, "kind.content"),
    ({**body(), "kind": {"type": "session_started", "channel": "tg"}}, "kind.peer_id"),
    ({"hlc": STAMP, "kind": body()["kind"]}, "agent_id"),
    ({"agent_id": "main", "hlc": STAMP}, "kind"),
], ids=["null-content", "no-content", "no-peer-id", "no-agent", "no-kind"])
def test_missing_field(obj: dict[str, Any], field: str) -> None:
    error = refused(obj)
    assert error.field == field
    assert "required" in str(error) or "string" in str(error)


def test_missing_session_key() -> None:
    assert refused(body(), session_key=None).field == "session_key"


@pytest.mark.parametrize(("obj", "field"), [
    (body(content=5), "kind.content"),
    (body(content=["x"]), "kind.content"),
    (body("message_sent", message_id=7), "kind.message_id"),
    (body("tool_result", success="yes"), "kind.success"),
    (body("tool_result", success=1), "kind.success"),
    (body(attachments={}), "kind.attachments"),
    (body(attachments=["x"]), "kind.attachments[0]"),
    (body(attachments=[{"kind": 1}]), "kind.attachments[0].kind"),
    (body(attachments=[{"kind": "a", "size": -1}]), "kind.attachments[0].size"),
    (body(attachments=[{"kind": "a", "size": True}]), "kind.attachments[0].size"),
    (body("agent_response", tokens=[]), "kind.tokens"),
    (body("agent_response", tokens={"input": -1}), "kind.tokens.input"),
    (body("agent_response", tokens={"input": 1.5}), "kind.tokens.input"),
    (body("state_changed", key=""), "kind.key"),
    (body("state_changed", key=3), "kind.key"),
    ({**body(), "agent_id": 3}, "agent_id"),
    ({**body(), "agent_id": ""}, "agent_id"),
    ({**body(), "agent_id": "a\nb"}, "agent_id"),
    ({**body(), "kind": "message_received"}, "kind"),
    ({**body(), "hlc": [1, 2, 3]}, "hlc"),
    ({**body(), "hlc": [-1, 0]}, "hlc"),
    ({**body(), "hlc": [1.5, 0]}, "hlc"),
    ({**body(), "timestamp": True}, "timestamp"),
    ({**body(), "timestamp": 1.5}, "timestamp"),
    ({**body(), "id": "xyz"}, "id"),
    ({**body(), "id": "ab" * 31}, "id"),
    ({**body(), "id": 5}, "id"),
])
def test_wrong_type_names_the_field(obj: dict[str, Any], field: str) -> None:
    assert refused(obj).field == field


def test_a_timestamp_shaped_as_no_time_names_the_field() -> None:
    """Its own kind of refusal, so that whoever takes integer milliseconds too can say so."""
    assert refused({**body(), "timestamp": "yesterday"}, NotATime).field == "timestamp"


def test_a_bad_extra_field_in_kind_is_named() -> None:
    """Fields this version does not know are kept (``tests/crdt/test_kinds.py``), but
    only with a name and a JSON value."""
    assert refused(body(**{"": 1})).field == "kind field name"
    assert refused(body(**{"a\x00b": 1})).field == "kind field name"
    assert refused(body(colour=float("nan"))).field == "kind.colour"
    assert refused(body(attachments=[{"kind": "a", "colour": [float("inf")]}])).field \
        == "kind.attachments[0].colour[0]"


def test_unknown_type_is_named() -> None:
    error = refused({**body(), "kind": {"type": "message_deleted", "content": "x"}})
    assert error.field == "kind.type"
    assert "message_deleted" in str(error)
    assert refused({**body(), "kind": {"content": "x"}}).field == "kind.type"


@pytest.mark.parametrize("kind_type", [[], {}, ["message_received"]], ids=["list", "obj", "l1"])
def test_unhashable_type_is_invalid_input(kind_type: Any) -> None:
    assert refused({**body(), "kind": {"type": kind_type}}).field == "kind.type"


def test_unknown_top_level_field_is_named() -> None:
    error = refused({**body(), "colour": "red"})
    assert "'colour'" in str(error)
    error = refused({**body(), "colour": "red"}, where="events[3]")
    assert error.field == "events[3]"


def test_where_prefixes_every_field() -> None:
    assert refused(body(content=5), where="events[3]").field == "events[3].kind.content"
    assert refused({**body(), "session_key": "s2"}, where="events[3]").field == \
        "events[3].session_key"


def test_body_session_key_must_match_the_url() -> None:
    error = refused({**body(), "session_key": "s2"}, session_key="s1")
    assert error.field == "session_key"
    assert "URL" in str(error)


def test_hlc_and_timestamp_must_agree() -> None:
    error = refused({**body(), "hlc": [1_000, 0], "timestamp": "1970-01-01T00:00:02Z"})
    assert error.field == "timestamp"
    error = refused({**body(), "hlc": [1_000, 0], "timestamp": 999})
    assert error.field == "timestamp"
    agreed = parse_event({**body(), "hlc": [1_000, 7], "timestamp": "1970-01-01T00:00:01Z"},
                         session_key="s1")
    assert isinstance(agreed, Event)
    assert agreed.timestamp == Hlc(1_000, 7)  # hlc is exact; timestamp only checked


def test_integer_milliseconds_are_a_timestamp() -> None:
    event = parse_event({"agent_id": "a", "timestamp": 1_234, "kind": body()["kind"]},
                        session_key="s1")
    assert isinstance(event, Event)
    assert event.timestamp == Hlc(1_234, 0)


def test_claimed_id_is_checked(ev: MakeEvent) -> None:
    good = ev("message_received", *STAMP, content="hello", agent="main")
    same = parse_event({**body(content="hello"), "id": good.id.hex()}, session_key="s1")
    assert isinstance(same, Event)
    assert same.id == good.id
    assert parse_event({**body(content="hello"), "id": good.id.hex().upper()},
                       session_key="s1") == good
    error = refused({**body(content="tampered"), "id": good.id.hex()}, IdMismatch)
    assert error.field == "id"
    assert hashlib.blake2b(good.canonical, digest_size=32).hexdigest() == good.id.hex()


def test_id_without_timestamp_is_refused(ev: MakeEvent) -> None:
    good = ev()
    obj = {"agent_id": "main", "kind": body()["kind"], "id": good.id.hex()}
    error = refused(obj)
    assert error.field == "id"
    assert "timestamp" in str(error)


def test_lone_surrogate_is_refused() -> None:
    text = json.loads('"bad \\ud800 text"')
    assert refused(body(content=text)).field == "kind.content"
    assert refused(body("tool_called", params={"k": text})).field == "kind.params.k"
    assert refused(body("tool_called", params={text: 1})).field == "kind.params"
    assert refused({**body(), "agent_id": text}).field == "agent_id"
    assert refused(body(), session_key=text).field == "session_key"


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_infinity_are_refused(number: float) -> None:
    assert refused(body("tool_called", params={"x": [number]})).field == "kind.params.x[0]"
    assert refused(body("state_changed", value=number)).field == "kind.value"


@pytest.mark.parametrize("number", [2**64, -(2**63) - 1, 10**30])
def test_integers_beyond_64_bits_are_refused(number: int) -> None:
    assert refused(body("tool_result", result={"n": number})).field == "kind.result.n"


@pytest.mark.parametrize("number", [2**64 - 1, -(2**63)])
def test_64_bit_extremes_are_accepted(number: int) -> None:
    event = parse_event(body("tool_result", result={"n": number}), session_key="s1")
    assert isinstance(event, Event)
    assert event.payload["result"] == {"n": number}


def test_nesting_too_deep_is_a_limit() -> None:
    error = refused(body("tool_called", params=nest(codec.DEPTH_MAX + 1)), LimitExceeded)
    assert error.field is not None
    assert error.field.startswith("kind.params")


def test_event_over_the_size_limit_is_a_limit() -> None:
    error = refused(body(content="x" * EVENT_BYTES_MAX), LimitExceeded)
    assert str(EVENT_BYTES_MAX) in str(error)
    # Just under the limit passes; the unstamped draft is measured with the widest stamp.
    fits = parse_event(body(content="x" * (EVENT_BYTES_MAX - 300)), session_key="s1")
    assert isinstance(fits, Event)
    assert len(fits.canonical) <= EVENT_BYTES_MAX


def test_oversized_draft_is_refused_before_it_is_stamped() -> None:
    obj = {"agent_id": "main", "kind": {"type": "message_received",
                                        "content": "x" * EVENT_BYTES_MAX}}
    refused(obj, LimitExceeded)


def test_integral_floats_become_integers() -> None:
    event = parse_event(body("state_changed", value={"a": 1.0, "b": [2.0, -0.0], "c": 0.25}),
                        session_key="s1")
    assert isinstance(event, Event)
    value = event.payload["value"]
    assert value == {"a": 1, "b": [2, 0], "c": 0.25}
    assert [type(v) for v in (value["a"], *value["b"], value["c"])] == [int, int, int, float]


def test_output_can_be_posted_back(ev: MakeEvent) -> None:
    event = ev("tool_result", 5, 6)
    again = parse_event({**event.to_json(), "position": 3, "origin": "n1", "seq": 9},
                        session_key="s1")
    assert again == event


# -- the seed's JSON form -----------------------------------------------------------------


def test_seed_json_export_is_accepted() -> None:
    """serde's form of the seed's ``SessionEvent``: kind tagged by ``type``, chrono's RFC 3339
    with nanoseconds, and the seed's id (an array of 32 bytes of a hash of a Rust debug
    string, which no other program can reproduce): it is ignored, the id recomputed."""
    seed_id = list(range(200, 232))
    exported = json.loads(json.dumps({
        "id": seed_id,
        "session_key": "agent:main:telegram:bot123:dm:user456",
        "agent_id": "default",
        "timestamp": "2024-05-01T10:20:30.123456789Z",
        "kind": {"type": "message_received", "content": "Hello, agent!", "attachments": []},
    }))
    event = parse_event(exported)
    assert isinstance(event, Event)
    assert event.timestamp == Hlc(1_714_558_830_123, 456_789)
    assert event.session_key == "agent:main:telegram:bot123:dm:user456"
    assert event.id != bytes(seed_id)
    assert event.id == hashlib.blake2b(event.canonical, digest_size=32).digest()
    assert event.to_json()["hlc"] == [1_714_558_830_123, 456_789]


def test_seed_nanosecond_order_survives_import() -> None:
    first, second = (parse_event({
        "agent_id": "a", "timestamp": f"2024-05-01T10:20:30.123456{n}Z",
        "kind": {"type": "session_ended", "reason": "x"}}, session_key="s") for n in (788, 789))
    assert isinstance(first, Event)
    assert isinstance(second, Event)
    assert first.timestamp < second.timestamp


# -- session keys (crdt.keys) ---------------------------------------------------------------


def test_build_session_key_is_the_seed_format() -> None:
    assert build_session_key("main", "telegram", "bot123", "dm", "user456") == \
        "agent:main:telegram:bot123:dm:user456"
    for peer_type in ("dm", "group", "channel", "thread"):
        assert build_session_key("a", "c", "b", peer_type, "p").endswith(f":{peer_type}:p")


@pytest.mark.parametrize(("args", "field"), [
    (("main", "telegram", "bot", "pm", "u"), "peer_type"),
    (("ma:in", "telegram", "bot", "dm", "u"), "agent_id"),
    (("main", "tele:gram", "bot", "dm", "u"), "channel"),
    (("main", "telegram", "b:ot", "dm", "u"), "account_id"),
    (("main", "telegram", "bot", "dm", "u:1"), "peer_id"),
    (("", "telegram", "bot", "dm", "u"), "agent_id"),
    (("main", "tele\x00gram", "bot", "dm", "u"), "channel"),
])
def test_build_session_key_refuses_bad_parts(args: tuple[str, ...], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        build_session_key(*args)
    assert caught.value.field == field


def test_session_key_limits() -> None:
    assert check_session_key("k" * SESSION_KEY_BYTES_MAX) == "k" * SESSION_KEY_BYTES_MAX
    with pytest.raises(LimitExceeded):
        check_session_key("k" * (SESSION_KEY_BYTES_MAX + 1))
    with pytest.raises(LimitExceeded):  # bytes, not characters
        check_session_key("é" * (SESSION_KEY_BYTES_MAX // 2 + 1))
    with pytest.raises(LimitExceeded):
        build_session_key("a" * 250, "b" * 250, "c", "dm", "d" * 10)
    for bad in ("", "a\x1fb", "tab\there", "new\nline", "\x7f", 5, None):
        with pytest.raises(InvalidInput) as caught:
            check_session_key(bad)
        assert caught.value.field == "session_key"


def test_name_limits() -> None:
    assert check_name("n" * NAME_BYTES_MAX, "agent_id") == "n" * NAME_BYTES_MAX
    with pytest.raises(LimitExceeded) as caught:
        check_name("n" * (NAME_BYTES_MAX + 1), "agent_id")
    assert caught.value.field == "agent_id"
    assert check_name("ünïcødé 👋", "x") == "ünïcødé 👋"


def test_names_refuse_exactly_the_control_characters() -> None:
    """Unicode category Cc, every code point of it and nothing else."""
    for point in range(0x110000):
        if 0xD800 <= point <= 0xDFFF:
            continue  # lone surrogates: refused for another reason
        char = chr(point)
        control = unicodedata.category(char) == "Cc"
        try:
            check_name(f"a{char}b", "x")
            assert not control, hex(point)
        except InvalidInput as error:
            assert control and "control" in error.reason, hex(point)


def test_session_keys_refused_in_events_too() -> None:
    assert refused(body(), session_key="k" * (SESSION_KEY_BYTES_MAX + 1),
                   error=LimitExceeded).field == "session_key"
    assert refused(body(), session_key="a\x1fb").field == "session_key"


# -- any input: an event or InvalidInput, never another exception --------------------------

anything = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8),
              st.binary(max_size=4), st.sampled_from(sorted(KINDS)),
              st.just("2024-01-01T12:00:00Z"), st.just(2**64)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6)
field_names = st.sampled_from(["type", "content", "attachments", "message_id", "tool_name",
                               "params", "result", "success", "model", "tokens", "reason",
                               "key", "value", "channel", "peer_id", "kind", "size",
                               "mime_type"])
kind_like = st.builds(lambda kind, fields: {"type": kind, **fields},
                      st.one_of(st.sampled_from(sorted(KINDS)), anything),
                      st.dictionaries(field_names, anything, max_size=5))
event_like = st.fixed_dictionaries({}, optional={
    "session_key": st.one_of(st.just("s1"), anything), "agent_id": anything,
    "timestamp": anything, "hlc": st.one_of(anything, st.lists(st.integers(), max_size=3)),
    "id": anything, "kind": st.one_of(kind_like, anything),
    "seq": anything})


@settings(max_examples=300)
@given(event_like, st.sampled_from([None, "s1"]))
def test_parse_event_returns_or_raises_invalid_input(obj: dict[str, Any],
                                                     session_key: str | None) -> None:
    try:
        parse_event(obj, session_key=session_key, where="events[0]")
    except InvalidInput as error:
        assert error.field is None or error.field.startswith("events[0]")


@settings(max_examples=300)
@given(st.fixed_dictionaries({
    "v": st.one_of(st.just(1), anything), "session_key": st.one_of(st.just("s"), anything),
    "agent_id": st.one_of(st.just("a"), anything),
    "timestamp": st.one_of(st.just([1, 2]), anything),
    "kind": st.one_of(st.sampled_from(sorted(KINDS)), anything),
    "payload": st.one_of(kind_like, anything)}))
def test_from_canonical_returns_or_raises_invalid_input(content: dict[str, Any]) -> None:
    try:
        data = codec.encode(content)
    except Exception:  # not encodable at all (cbor2 limits): nothing to send
        return
    with contextlib.suppress(InvalidInput):
        Event.from_canonical(data)


_NAMES = st.text(st.characters(codec="utf-8", categories=("L", "N", "P")), min_size=1,
                 max_size=20)
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=30)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=8)


@settings(max_examples=200)
@given(kind=_NAMES, agent_id=_NAMES, session_key=_NAMES,
       payload=st.dictionaries(st.text(max_size=12), _VALUES, max_size=5))
def test_a_draft_seals_to_the_canonical_encoding_of_its_content(
        kind: str, agent_id: str, session_key: str, payload: dict[str, Any]) -> None:
    """The draft's bytes are put together by hand around the payload: they must be
    cbor2's canonical encoding of the whole content, whatever the fields hold."""
    event = Draft(session_key, agent_id, kind, payload).seal(Hlc(*STAMP))
    assert event.canonical == codec.encode({
        "v": 1, "kind": kind, "payload": payload, "agent_id": agent_id,
        "timestamp": STAMP, "session_key": session_key})


@pytest.mark.parametrize("stamp", [-5, 253402300800000])
def test_integer_milliseconds_out_of_range_are_named_as_milliseconds(stamp: int) -> None:
    raw = {"agent_id": "main", "timestamp": stamp,
           "kind": {"type": "session_ended", "reason": "x"}}
    with pytest.raises(InvalidInput, match=r"^timestamp: integer milliseconds must be from 0 to "
                                           r"253402300799999$") as error:
        parse_event(raw, session_key="s1")
    assert error.value.field == "timestamp"


def test_integer_milliseconds_in_range_are_the_timestamp() -> None:
    event = parse_event({"agent_id": "main", "timestamp": 253402300799999,
                         "kind": {"type": "session_ended", "reason": "x"}}, session_key="s1")
    assert isinstance(event, Event) and event.timestamp == Hlc(253402300799999, 0)
