"""The wire format: round trips, canonical bytes, limits, and every refusal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from crdt import codec
from crdt.events import Event
from sync.errors import PeerFault, ProtocolMisuse, SyncError
from sync.peer import messages
from sync.peer.limits import BATCH_BYTES_MAX, BATCH_EVENTS_MAX, MESSAGE_BYTES_MAX, ORIGINS_MAX
from sync.peer.messages import About, Ack, Events, Hello, Item, encode, parse


def test_hello_round_trip_and_wire_form() -> None:
    hello = Hello(node="n1", version={"n1": 3, "n2": 300})
    data = encode(hello)
    assert parse(data) == hello
    assert codec.decode(data) == {"type": "hello", "protocol": 1, "node": "n1",
                                  "version": {"n1": 3, "n2": 300}}
    assert data == codec.encode(codec.decode(data))  # canonical


def test_hello_with_what_the_node_runs() -> None:
    hello = Hello(node="n1", version={}, about=About("0.2.0", 1))
    assert parse(encode(hello)) == hello
    assert codec.decode(encode(hello))["about"] == {"software": "0.2.0", "schema": 1}


def test_fields_of_a_newer_version_are_ignored() -> None:
    """A newer node may add fields to any message (and to ``about``); this one reads
    what it knows."""
    newer = {"type": "hello", "protocol": 1, "node": "n1", "version": {"n1": 2},
             "features": ["x"], "about": {"software": "0.9.0", "schema": 1, "os": "y"}}
    assert parse(codec.encode(newer)) == Hello("n1", {"n1": 2}, about=About("0.9.0", 1))
    assert parse(codec.encode({"type": "ack", "version": {}, "at": 5})) == Ack(version={})


def test_a_hello_without_about_has_exactly_the_fields_version_0_1_accepts() -> None:
    """Nodes of 0.1 refuse a field they do not know: a hello to them has none."""
    assert set(codec.decode(encode(Hello(node="n1", version={})))) == {
        "type", "protocol", "node", "version"}


def test_ack_round_trip() -> None:
    assert parse(encode(Ack(version={"a": 1}))) == Ack(version={"a": 1})
    assert parse(encode(Ack(version={}))) == Ack(version={})


def test_events_round_trip_keeps_items_and_ids(ev: Callable[..., Event]) -> None:
    items = (Item("a", 1, ev(content="x")), Item("a", 2, ev(content="y")),
             Item("b", 7, ev(content="z")))
    data = encode(Events(items))
    parsed = parse(data)
    assert isinstance(parsed, Events)
    assert [(i.origin, i.seq, i.event.id) for i in parsed.items] == \
        [(i.origin, i.seq, i.event.id) for i in items]
    assert codec.decode(data)["items"][0] == ["a", 1, items[0].event.canonical]


def test_a_seq_of_zero_in_a_version_means_nothing_yet() -> None:
    assert parse(encode(Ack(version={"a": 0}))) == Ack(version={"a": 0})


def test_every_refused_message_is_a_peer_fault(bad_message: bytes) -> None:
    with pytest.raises(PeerFault) as caught:
        parse(bad_message)
    assert isinstance(caught.value, SyncError)
    assert str(caught.value)


def test_the_errors_say_what_is_wrong() -> None:
    hello = codec.encode({"type": "hello", "protocol": 2, "node": "n", "version": {}})
    with pytest.raises(PeerFault, match="protocol 2 is not supported") as caught:
        parse(hello)
    assert caught.value.field == "hello.protocol"
    with pytest.raises(PeerFault, match="is required") as caught:
        parse(codec.encode({"type": "ack"}))
    assert caught.value.field == "ack.version"
    with pytest.raises(PeerFault, match="unknown message type 'gossip'"):
        parse(codec.encode({"type": "gossip"}))


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record any decoding of the message or of an event, which must not happen."""
    calls: list[str] = []
    real_decode = codec.decode

    def decode(data: bytes, **kwargs: Any) -> Any:
        calls.append("message")
        return real_decode(data, **kwargs)

    def from_canonical(data: bytes) -> Event:
        calls.append("event")
        raise AssertionError("an event was decoded")

    monkeypatch.setattr(messages.codec, "decode", decode)
    monkeypatch.setattr(Event, "from_canonical", staticmethod(from_canonical))
    return calls


def test_an_oversized_message_is_refused_before_decoding(no_decoding: list[str]) -> None:
    with pytest.raises(PeerFault, match="the limit is"):
        parse(b"\xa0" + b"\x00" * MESSAGE_BYTES_MAX)
    assert no_decoding == []


def test_a_huge_container_is_refused_before_decoding(no_decoding: list[str]) -> None:
    data = b"\xa2\x64type\x66events\x65items\x9a\x00\x10\x00\x00"
    with pytest.raises(PeerFault, match="container"):
        parse(data)
    many_small = codec.encode({"type": "events", "items": [[1, 2, 3, 4]] * 2_200})
    with pytest.raises(PeerFault, match="CBOR items"):
        parse(many_small)
    assert no_decoding == []


def test_too_many_items_are_refused_before_any_event_is_decoded(
        ev: Callable[..., Event], no_decoding: list[str]) -> None:
    good = ev().canonical
    data = codec.encode({"type": "events", "items": [["o", n + 1, good]
                                                     for n in range(BATCH_EVENTS_MAX + 1)]})
    with pytest.raises(PeerFault, match=f"the limit is {BATCH_EVENTS_MAX}"):
        parse(data)
    assert "event" not in no_decoding


def test_too_many_bytes_are_refused_before_any_event_is_decoded(
        ev: Callable[..., Event], no_decoding: list[str]) -> None:
    events = [ev(content="x" * 120_000 + str(n)).canonical for n in range(9)]
    assert sum(map(len, events)) > BATCH_BYTES_MAX
    data = codec.encode({"type": "events", "items": [["o", n + 1, e]
                                                     for n, e in enumerate(events)]})
    with pytest.raises(PeerFault, match=f"over {BATCH_BYTES_MAX}"):
        parse(data)
    assert "event" not in no_decoding


def test_a_full_batch_of_the_largest_events_is_accepted(ev: Callable[..., Event]) -> None:
    event = ev(content="x" * 120_000)
    count = BATCH_BYTES_MAX // len(event.canonical)
    batch = Events(tuple(Item("o" * 64, n + 1, event) for n in range(count)))
    assert len(encode(batch)) <= MESSAGE_BYTES_MAX
    assert len(parse(encode(batch)).items) == count  # type: ignore[union-attr]


def test_a_full_batch_of_small_events_and_a_full_hello_are_accepted(
        ev: Callable[..., Event]) -> None:
    event = ev()
    batch = Events(tuple(Item("o" * 64, 2**62 + n, event) for n in range(BATCH_EVENTS_MAX)))
    assert len(parse(encode(batch)).items) == BATCH_EVENTS_MAX  # type: ignore[union-attr]
    version = {f"{n:064d}": 2**62 for n in range(ORIGINS_MAX)}
    hello = Hello(node="n" * 64, version=version)
    assert parse(encode(hello)) == hello


def test_we_refuse_to_build_what_a_peer_would_refuse(ev: Callable[..., Event]) -> None:
    event = ev()
    with pytest.raises(ProtocolMisuse):
        encode(Events(()))
    with pytest.raises(ProtocolMisuse):
        encode(Events(tuple(Item("o", n + 1, event) for n in range(BATCH_EVENTS_MAX + 1))))
    big = ev(content="x" * 120_000)
    with pytest.raises(ProtocolMisuse):
        encode(Events(tuple(Item("o", n + 1, big) for n in range(9))))
    too_many = {f"o{n}": 1 for n in range(ORIGINS_MAX + 1)}
    with pytest.raises(ProtocolMisuse):
        encode(Hello(node="n", version=too_many))
    with pytest.raises(ProtocolMisuse):
        encode(Ack(version=too_many))


def test_a_batch_built_with_a_list_of_items_is_checked_as_its_tuple_is(
        ev: Callable[..., Event]) -> None:
    event, big = ev(), ev(content="x" * 120_000)
    items = [Item("o", n + 1, event) for n in range(3)]
    assert encode(Events(items)) == encode(Events(tuple(items)))  # type: ignore[arg-type]
    too_many = [Item("o", n + 1, event) for n in range(BATCH_EVENTS_MAX + 1)]
    too_big = [Item("o", n + 1, big) for n in range(9)]
    for wrong in (too_many, too_big, []):
        with pytest.raises(ProtocolMisuse):
            encode(Events(wrong))  # type: ignore[arg-type]


@pytest.mark.parametrize("raw", [
    {"type": "x" * 1_000_000},
    {"type": "hello", "protocol": ["p" * 1_000] * 500, "node": "n", "version": {}},
    {"type": "ack", "version": {"o" * 1_000_000: -1}},
])
def test_a_fault_quotes_at_most_a_bounded_part_of_the_message(raw: dict[str, Any]) -> None:
    """A fault is logged and told to the peer: what it quotes of a message of a megabyte
    stays short."""
    with pytest.raises(PeerFault) as refused:
        messages.parse(codec.encode(raw))
    assert len(str(refused.value)) <= 2 * 256 + 2
