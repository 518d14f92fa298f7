"""crdt.log.projection: a session's state is a pure function of its set of events.

The key property (DESIGN decision 6): applying a session's events one by one through
``Header.apply``, in any arrival order and with duplicates, gives exactly ``rebuild`` of
the set. Fields are checked against a naive reference fold over the sorted events.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable
from typing import Any

import cbor2
from hypothesis import given, settings
from hypothesis import strategies as st

from crdt.events import Event, parse_event
from crdt.log.projection import Header, Message, Projection, message_key, message_of, rebuild

MakeEvent = Callable[..., Event]  # the ``ev`` fixture of conftest.py
KEY = "s1"

# Few distinct values, so that timestamps collide and LWW fields are contested.
small_text = st.sampled_from(["a", "b", "ü 👋", ""])
json_value = st.one_of(st.integers(-3, 3), small_text, st.none(),
                       st.lists(st.integers(0, 2), max_size=2),
                       st.dictionaries(st.sampled_from(["x", "y"]), st.integers(0, 2), max_size=2))
payloads = {
    "session_started": st.fixed_dictionaries({"channel": st.sampled_from(["tg", "web"]),
                                              "peer_id": st.sampled_from(["u1", "u2"])}),
    "message_received": st.fixed_dictionaries({"content": small_text}),
    "message_sent": st.fixed_dictionaries({"content": small_text, "message_id": small_text}),
    "tool_called": st.fixed_dictionaries({"tool_name": small_text, "params": json_value}),
    "tool_result": st.fixed_dictionaries({"tool_name": small_text, "result": json_value,
                                          "success": st.booleans()}),
    "agent_response": st.fixed_dictionaries({"content": small_text, "model": small_text}),
    "session_ended": st.fixed_dictionaries({"reason": small_text}),
    "state_changed": st.fixed_dictionaries({"key": st.sampled_from(["k1", "k2", "k3"]),
                                            "value": json_value}),
}


@st.composite
def session_events(draw: st.DrawFn) -> Event:
    kind = draw(st.sampled_from(sorted(payloads)))
    event = parse_event({
        "agent_id": draw(st.sampled_from(["main", "other"])),
        "hlc": [draw(st.integers(1_000, 1_003)), draw(st.integers(0, 1))],
        "kind": {"type": kind, **draw(payloads[kind])}}, session_key=KEY)
    assert isinstance(event, Event)
    return event


@st.composite
def arrivals(draw: st.DrawFn) -> list[Event]:
    """A set of events in some arrival order, some of them arriving more than once."""
    events = draw(st.lists(session_events(), min_size=1, max_size=25))
    repeats = draw(st.lists(st.sampled_from(events), max_size=5))
    return draw(st.permutations(events + repeats))


def incremental(events: Iterable[Event]) -> tuple[Projection, list[Any]]:
    """What a store does: skip ids already held, apply the rest one at a time. Also
    returns ``last`` after every step."""
    header = Header(KEY)
    seen: set[bytes] = set()
    messages: list[Message] = []
    lasts = []
    for event in events:
        if event.id in seen:
            continue
        seen.add(event.id)
        message = header.apply(event)
        if message is not None:
            messages.append(message)
        lasts.append(header.last)
    return Projection(header, sorted(messages, key=lambda m: m.sort_key)), lasts


def unique_sorted(events: Iterable[Event]) -> list[Event]:
    return sorted({event.id: event for event in events}.values(), key=lambda e: e.sort_key)


def reference(events: Iterable[Event]) -> dict[str, Any]:
    """A naive fold over the sorted set: each later event simply overwrites."""
    ordered = unique_sorted(events)
    out: dict[str, Any] = {"channel": "unknown", "peer_id": "unknown", "state": "active",
                           "custom_state": {}, "message_count": 0}
    for event in ordered:
        if event.kind == "session_started":
            out.update(channel=event.payload["channel"], peer_id=event.payload["peer_id"],
                       state="active")
        elif event.kind == "session_ended":
            out["state"] = "ended"
        elif event.kind == "state_changed":
            out["custom_state"][event.payload["key"]] = event.payload["value"]
        elif event.kind == "message_received":
            out["message_count"] += 1
    out["custom_state"] = dict(sorted(out["custom_state"].items()))
    out["agent_id"] = ordered[-1].agent_id
    out["last_event_id"] = ordered[-1].id.hex()
    out["last_activity"] = ordered[-1].timestamp.rfc3339()
    out["event_count"] = len(ordered)
    out["message_ids"] = [e.id.hex() for e in ordered if message_of(e) is not None]
    return out


# -- the key property ---------------------------------------------------------------------


@settings(max_examples=200)
@given(arrivals())
def test_incremental_in_any_order_equals_rebuild_of_the_sorted_set(events: list[Event]) -> None:
    expected = rebuild(KEY, unique_sorted(events)).to_json()
    got, _ = incremental(events)
    assert got.to_json() == expected
    assert rebuild(KEY, events).to_json() == expected  # rebuild itself ignores order


@settings(max_examples=100)
@given(arrivals(), st.data())
def test_two_arrival_orders_give_identical_projections(events: list[Event],
                                                       data: st.DataObject) -> None:
    other_order = data.draw(st.permutations(events))
    assert incremental(events)[0].to_json() == incremental(other_order)[0].to_json()


@settings(max_examples=150)
@given(arrivals())
def test_fields_match_a_naive_fold_over_the_sorted_events(events: list[Event]) -> None:
    view = incremental(events)[0].to_json()
    model = reference(events)
    for name in ("channel", "peer_id", "state", "custom_state", "message_count",
                 "agent_id", "last_event_id", "last_activity", "event_count"):
        assert view[name] == model[name], name
    assert [m["id"] for m in view["messages"]] == model["message_ids"]


@settings(max_examples=100)
@given(arrivals())
def test_messages_are_deduplicated_and_in_timestamp_id_order(events: list[Event]) -> None:
    messages = incremental(events)[0].messages
    keys = [m.sort_key for m in messages]
    assert keys == sorted(set(keys))  # strictly increasing: no duplicates
    texts = [message_key(k) for k in keys]
    assert texts == sorted(texts)  # and the text keys sort the same way


@settings(max_examples=100)
@given(arrivals())
def test_last_activity_never_moves_backwards(events: list[Event]) -> None:
    _, lasts = incremental(events)
    assert all(a <= b for a, b in itertools.pairwise(lasts))
    assert lasts[-1] == max(e.sort_key for e in events)


@settings(max_examples=100)
@given(arrivals())
def test_header_survives_its_storage_form(events: list[Event]) -> None:
    header = incremental(events)[0].header
    stored = cbor2.loads(cbor2.dumps(header.to_cbor()))
    assert Header.from_cbor(stored) == header
    for message in incremental(events)[0].messages:
        assert Message.from_cbor(message.sort_key, message.to_cbor()) == message


sort_keys = st.tuples(st.integers(0, 10**15 - 1), st.integers(0, 2**32 - 1),
                     st.binary(min_size=32, max_size=32))


@given(sort_keys, sort_keys)
def test_message_keys_sort_like_sort_keys(a: Any, b: Any) -> None:
    assert (message_key(a) < message_key(b)) == (a < b)


# -- what each kind does -------------------------------------------------------------------


def test_what_each_kind_adds(ev: MakeEvent) -> None:
    events = [
        ev("session_started", 1, channel="tg", peer_id="u1"),
        ev("message_received", 2, content="in"),
        ev("message_sent", 3, content="out"),
        ev("tool_called", 4),
        ev("tool_result", 5, tool_name="calc", result={"b": [1, "é"], "a": None},
           success=False),
        ev("agent_response", 6, content="reply"),
        ev("state_changed", 7, key="mood", value={"x": 1}),
        ev("session_ended", 8, reason="bye"),
    ]
    view = rebuild(KEY, events).to_json()
    assert [(m["role"], m["content"]) for m in view["messages"]] == [
        ("inbound", "in"), ("outbound", "out"), ("tool", '{"a":null,"b":[1,"é"]}'),
        ("outbound", "reply")]
    tool = view["messages"][2]
    assert (tool["tool_name"], tool["success"]) == ("calc", False)
    assert "tool_name" not in view["messages"][0]
    assert view["message_count"] == 1  # messages received from the peer, as in the seed
    assert view["event_count"] == 8
    assert (view["channel"], view["peer_id"], view["state"]) == ("tg", "u1", "ended")
    assert view["custom_state"] == {"mood": {"x": 1}}
    assert view["last_event_id"] == events[-1].id.hex()
    assert view["last_activity"] == "1970-01-01T00:00:00.008Z"
    assert json.loads(json.dumps(view)) == view  # plain JSON


def test_an_empty_projection() -> None:
    view = rebuild(KEY, []).to_json()
    assert view["last_activity"] is None
    assert view["last_event_id"] is None
    assert (view["channel"], view["peer_id"], view["state"]) == ("unknown", "unknown", "active")
    assert view["messages"] == []


def test_equal_timestamps_are_ordered_by_id(ev: MakeEvent) -> None:
    a, b = ev(content="first?", ms=5), ev(content="second?", ms=5)
    low, high = sorted([a, b], key=lambda e: e.id)
    view = rebuild(KEY, [high, low]).to_json()
    assert [m["id"] for m in view["messages"]] == [low.id.hex(), high.id.hex()]


# -- the seed's defects, one test each ----------------------------------------------------


def test_seed_defect_longer_history_wins(ev: MakeEvent) -> None:
    """Seed: ``merge`` kept whichever projection had more messages, dropping the other's.
    Here projections never merge; their event sets do, and every message survives."""
    node_a = [ev(content=f"a{i}", ms=10 + i) for i in range(3)]
    node_b = [ev(content="b0", ms=11, agent="other")]
    merged = rebuild(KEY, node_a + node_b).to_json()
    assert [m["content"] for m in merged["messages"]] == ["a0", "a1", "b0", "a2"]
    assert merged["message_count"] == 4
    # Node a receiving b's events, and node b receiving a's, end in the same state.
    assert incremental(node_a + node_b)[0].to_json() == merged
    assert incremental(node_b + node_a)[0].to_json() == merged
    assert not hasattr(Projection, "merge")


def test_seed_defect_arrival_order_last_writer_wins(ev: MakeEvent) -> None:
    """Seed: ``apply`` set state and custom_state from whichever event arrived last, and
    ``merge`` copied every key of the other side. Here the newer event wins, whenever it
    arrives."""
    newer_value = ev("state_changed", 20, key="mood", value="happy")
    older_value = ev("state_changed", 10, key="mood", value="sad")
    ended = ev("session_ended", 30)
    older_start = ev("session_started", 5, channel="tg", peer_id="u1")
    newer_start = ev("session_started", 25, channel="web", peer_id="u2")
    header = Header(KEY)
    for event in (newer_value, older_value, ended, newer_start, older_start):
        header.apply(event)
    assert header.state_values() == {"mood": "happy"}
    assert header.state == "ended"  # the older session_started did not reopen it
    assert (header.channel, header.peer_id) == ("web", "u2")


def test_seed_defect_duplicate_messages(ev: MakeEvent) -> None:
    """Seed: appending an event twice pushed its message twice."""
    hello = ev(content="hello")
    view = rebuild(KEY, [hello, hello, hello]).to_json()
    assert [m["content"] for m in view["messages"]] == ["hello"]
    assert view["message_count"] == 1
    assert view["event_count"] == 1


def test_seed_defect_last_activity_moves_back(ev: MakeEvent) -> None:
    """Seed: ``last_activity = event.timestamp`` for every applied event, so a late
    event with an older timestamp moved it backwards."""
    header = Header(KEY)
    header.apply(ev(content="new", ms=2_000))
    header.apply(ev(content="late", ms=1_000))
    assert header.fields()["last_activity"] == "1970-01-01T00:00:02.000Z"
    assert header.fields()["agent_id"] == "main"
