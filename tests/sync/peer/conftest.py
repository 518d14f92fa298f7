"""Fixtures of the peer protocol tests: stores joined by a ``Mesh``, stores that sign, and
a catalogue of messages a peer must never get away with."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import cbor2
import pytest

from crdt import codec
from crdt.events import EVENT_BYTES_MAX
from crdt.log.store import EventStore
from crdt.signing import Signer
from sync.peer.limits import BATCH_EVENTS_MAX, MESSAGE_BYTES_MAX, ORIGINS_MAX
from tests.support.events import event
from tests.support.mesh import Mesh
from tests.sync.peer.support import KEYS

ORIGIN = "0123456789abcdef"


@pytest.fixture(scope="session")
def mesh() -> type[Mesh]:
    return Mesh


@pytest.fixture
def keyed() -> Iterator[Callable[[int], EventStore]]:
    """``keyed(n)``: an in-memory store that signs with key n."""
    opened: list[EventStore] = []

    def open_one(n: int) -> EventStore:
        store = EventStore.open("memory:", signer=Signer(KEYS[n], f"device {n}"))
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


# -- messages a peer must not get away with ---------------------------------------------

def _event_content(**change: Any) -> dict[str, Any]:
    content: dict[str, Any] = codec.decode(event().canonical)
    content.update(change)
    return content


def _events(*items: list[Any]) -> bytes:
    return codec.encode({"type": "events", "items": list(items)})


def _hello(**change: Any) -> bytes:
    raw: dict[str, Any] = {"type": "hello", "protocol": 1, "node": ORIGIN, "version": {}}
    raw.update(change)
    return codec.encode({k: v for k, v in raw.items() if v is not ...})


def bad_messages() -> dict[str, bytes]:
    """Messages that must each be refused as a PeerFault."""
    good = event().canonical
    big_text = "x" * 119_000
    big = [event(content=big_text + str(n)).canonical for n in range(9)]
    too_large_event = codec.encode(_event_content(
        payload={"content": "y" * (EVENT_BYTES_MAX + 10), "attachments": []}))
    many = {f"o{n}": 1 for n in range(ORIGINS_MAX + 1)}
    return {
        "empty": b"",
        "garbage": b"\xff\x00garbage",
        "not_a_map": codec.encode([1, 2]),
        "trailing_bytes": codec.encode({"type": "ack", "version": {}}) + b"\x00",
        "cbor_tag": b"\xc1\x00",
        "unknown_type": codec.encode({"type": "gossip"}),
        "missing_type": codec.encode({"version": {}}),
        "hello_missing_node": _hello(node=...),
        "hello_missing_version": _hello(version=...),
        "hello_about_not_a_map": _hello(about=3),
        "hello_about_software_empty": _hello(about={"software": "", "schema": 1}),
        "hello_about_schema_text": _hello(about={"software": "0.2.0", "schema": "1"}),
        "hello_protocol_2": _hello(protocol=2),
        "hello_protocol_text": _hello(protocol="1"),
        "hello_protocol_true": _hello(protocol=True),
        "hello_protocol_missing": _hello(protocol=...),
        "hello_node_empty": _hello(node=""),
        "hello_node_control_char": _hello(node="a\x00b"),
        "hello_node_too_long": _hello(node="n" * 65),
        "hello_seq_negative": _hello(version={ORIGIN: -1}),
        "hello_seq_float": _hello(version={ORIGIN: 1.0}),
        "hello_seq_bool": _hello(version={ORIGIN: True}),
        "hello_version_list": _hello(version=[[ORIGIN, 1]]),
        "hello_too_many_origins": _hello(version=many),
        "ack_missing_version": codec.encode({"type": "ack"}),
        "ack_version_not_map": codec.encode({"type": "ack", "version": 3}),
        "events_missing_items": codec.encode({"type": "events"}),
        "events_empty": _events(),
        "events_item_not_triple": _events([ORIGIN, 1]),
        "events_signature_short": _events([ORIGIN, 1, good, b"s" * 63]),
        "events_signature_text": _events([ORIGIN, 1, event().canonical, "s" * 64]),
        "events_item_of_five": _events([ORIGIN, 1, event().canonical, b"s" * 64, 1]),
        "events_seq_zero": _events([ORIGIN, 0, good]),
        "events_seq_decreasing": _events([ORIGIN, 2, good], [ORIGIN, 1, good]),
        "events_seq_repeated": _events([ORIGIN, 1, good], [ORIGIN, 1, good]),
        "events_origin_empty": _events(["", 1, good]),
        "events_event_not_bytes": _events([ORIGIN, 1, "event"]),
        "events_event_truncated": _events([ORIGIN, 1, good[:-1]]),
        # A kind or fields it does not know are a newer version's: kept. But a known
        # kind without its fields, or a kind that is no name, is malformed.
        "events_event_known_kind_without_its_field": _events(
            [ORIGIN, 1, good.replace(b"content", b"cantent")]),
        "events_event_kind_not_a_name": _events(
            [ORIGIN, 1, codec.encode(_event_content(kind=""))]),
        # The same content in a second encoding would be a second id for one event.
        "events_event_not_canonical": _events(
            [ORIGIN, 1, cbor2.dumps(dict(reversed(_event_content().items())))]),
        "events_event_extra_field": _events([ORIGIN, 1, codec.encode(_event_content(x=1))]),
        "events_event_bad_timestamp": _events(
            [ORIGIN, 1, codec.encode(_event_content(timestamp=[-1, 0]))]),
        "events_event_too_large": _events([ORIGIN, 1, too_large_event]),
        "events_bad_after_good": _events([ORIGIN, 1, good], [ORIGIN, 2, good[:-1]]),
        "events_too_many_items": _events(
            *([ORIGIN, n + 1, good] for n in range(BATCH_EVENTS_MAX + 1))),
        "events_too_many_bytes": _events(*([ORIGIN, n + 1, e] for n, e in enumerate(big))),
        "message_too_large": b"\x00" * (MESSAGE_BYTES_MAX + 1),
        "too_many_cbor_items": codec.encode(
            {"type": "events", "items": [[1, 1, 1, 1]] * 2_200}),
        # {"type": "events", "items": <an array header claiming 2**20 entries>}
        "huge_container_header": b"\xa2\x64type\x66events\x65items\x9a\x00\x10\x00\x00",
    }


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "bad_message" in metafunc.fixturenames:
        cases = bad_messages()
        metafunc.parametrize("bad_message", list(cases.values()), ids=list(cases))
