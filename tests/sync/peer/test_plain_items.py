"""parse's quick reading of an events message against the strict decoder's: same
batches taken, the same faults named, over batches framed canonically and otherwise."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crdt.events import Event
from sync.errors import PeerFault
from sync.peer import messages
from sync.peer.limits import MESSAGE_BYTES_MAX
from sync.peer.messages import Events, Item, encode, parse
from sync.peer.plain_items import plain_items
from tests.crdt.cbor_variants import mutated, variant
from tests.support.events import event

ORIGINS = ["0123456789abcdef", "fedcba9876543210", "é" * 8]
# Events whose lengths take each width of head the reading sees: up to 255 bytes, more.
EVENTS = [event(ms=1_000 + n, content=f"message {n}") for n in range(6)] + [
    event(ms=2_000, content="x" * 300), event(ms=3_000, content="y" * 70_000)]
SIGNATURE = bytes(range(64))


def outcome(work: Any, data: bytes) -> Any:
    try:
        return work(data)
    except PeerFault as fault:
        return (str(fault), fault.field)


def strictly(data: bytes) -> Any:
    """``parse`` as it was: the pre-scan and the strict decoder read every message."""
    if len(data) > MESSAGE_BYTES_MAX:
        return parse(data)
    return messages._parse_strictly(data)


@st.composite
def batches(draw: Any) -> dict[str, Any]:
    """The raw map of an events message: mostly valid, sometimes not."""
    items = []
    for _ in range(draw(st.integers(1, 6))):
        origin = draw(st.sampled_from(ORIGINS))
        seq = draw(st.integers(1, 4) | st.sampled_from([0, 23, 24, 255, 256, 2**63 - 1,
                                                        2**63]))
        data: Any = draw(st.sampled_from(EVENTS)).canonical
        if draw(st.integers(0, 9)) == 0:
            data = draw(st.sampled_from([b"\xa0", data[:-1], {"id": b""}, "text"]))
        item = [origin, seq, data]
        if draw(st.booleans()):
            item.append(draw(st.sampled_from([SIGNATURE, SIGNATURE[:63], "s"])))
        items.append(item)
    items.sort(key=lambda item: item[1] if draw(st.integers(0, 4)) else 0)
    raw: dict[str, Any] = {"type": "events", "items": items}
    extra = draw(st.sampled_from([{}, {}, {"proofs": []}, {"x": 1}, {"type": "ack"}]))
    return raw | extra


_RNGS = st.integers(0, 2**32).map(random.Random)


def assert_agrees(data: bytes) -> None:
    assert outcome(parse, data) == outcome(strictly, data)


@settings(max_examples=500)
@given(batches(), _RNGS)
def test_events_messages_get_the_strict_decoders_verdict(raw: dict[str, Any],
                                                         rng: random.Random) -> None:
    assert_agrees(variant(rng, raw))


@settings(max_examples=300)
@given(batches(), _RNGS)
def test_damaged_events_messages_get_the_strict_decoders_verdict(
        raw: dict[str, Any], rng: random.Random) -> None:
    data = messages.codec.encode(raw)
    assert_agrees(mutated(rng, data))


@settings(max_examples=100)
@given(st.lists(st.tuples(st.sampled_from(EVENTS), st.booleans()), min_size=1, max_size=6))
def test_a_batch_we_encode_is_read_quickly(chosen: list[tuple[Event, bool]]) -> None:
    items = tuple(Item(ORIGINS[seq % 2], seq, chosen_event, SIGNATURE if signed else None)
                  for seq, (chosen_event, signed) in enumerate(chosen, 1))
    data = encode(Events(items))
    assert plain_items(data) is not None
    assert parse(data) == strictly(data) == Events(items)


@pytest.mark.parametrize("wrap", [bytearray, memoryview], ids=["bytearray", "memoryview"])
def test_a_message_not_held_in_bytes_is_read_the_strict_way(wrap: Any) -> None:
    data = encode(Events(tuple(Item(ORIGINS[0], n, e) for n, e in enumerate(EVENTS, 1))))
    assert parse(wrap(data)) == parse(data)
