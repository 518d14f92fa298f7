"""crdt.automerge.document: two nodes that learn the same events in any order and
batches build the same document as one that learns them at once, merged or not."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from crdt.automerge.document import SessionDoc
from tests.crdt.automerge.session_docs import (
    ACTOR_A,
    ACTOR_B,
    ACTOR_C,
    JSON,
    fields,
    merged,
    message,
)

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
