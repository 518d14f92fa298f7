"""Fixtures of the sync tests: events, real stores, an in-memory mesh of ``PeerSync``
machines, and a catalogue of messages a peer must never get away with."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cbor2
import pytest

from crdt import codec
from crdt.events import EVENT_BYTES_MAX, Event, parse_event
from crdt.log.store import EventStore
from sync.peer.config import SyncConfig
from sync.peer.machine import PeerSync
from sync.peer.messages import BATCH_EVENTS_MAX, MESSAGE_BYTES_MAX, ORIGINS_MAX

ORIGIN = "0123456789abcdef"


def make_event(session: str = "s1", content: str = "hello", ms: int = 1_000,
               counter: int = 0, *, kind: str = "message_received") -> Event:
    """A sealed event with a given timestamp (so tests can choose the order)."""
    body: dict[str, Any] = {"type": kind, "content": content}
    if kind == "message_sent":
        body["message_id"] = f"m-{content}"
    event = parse_event({"agent_id": "main", "hlc": [ms, counter], "kind": body},
                        session_key=session)
    assert isinstance(event, Event)
    return event


@pytest.fixture(scope="session")
def ev() -> Callable[..., Event]:
    """``ev(session, content, ms, counter, kind=...)`` builds a sealed event."""
    return make_event


@pytest.fixture
def open_store(tmp_path: Path) -> Iterator[Callable[[str], EventStore]]:
    """``open_store(name)`` opens a real EventStore in ``tmp_path / name``; all are
    closed after the test."""
    opened: list[EventStore] = []

    def open_one(name: str) -> EventStore:
        store = EventStore.open(tmp_path / name)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


def all_ids(store: EventStore) -> list[bytes]:
    """Ids of every event the store holds, in position order."""
    ids: list[bytes] = []
    while batch := store.events_after(len(ids), 1_000):
        ids.extend(stored.event.id for stored in batch)
    return ids


def snapshot(store: EventStore) -> tuple[set[bytes], dict[str, int], dict[str, Any]]:
    """What must be equal on converged nodes: event ids, version vector, projections."""
    ids = all_ids(store)
    assert len(ids) == len(set(ids)) == store.head, "an event is stored twice"
    keys: list[str] = []
    while refs := store.list_sessions(len(keys), 1_000):
        keys.extend(ref.session_key for ref in refs)
    projections = {key: store.get_projection(key).to_json() for key in keys}
    return set(ids), store.version, projections


class Mesh:
    """Nodes joined pairwise by ``PeerSync`` machines; messages wait in one queue.

    ``machines[i, j]`` is node i's machine for peer j; what it returns goes to
    ``machines[j, i]``. Nothing is delivered unless a test says so.
    """

    def __init__(self, stores: list[EventStore], *, config: SyncConfig | None = None,
                 seed: int = 0, now: float = 0.0,
                 links: list[tuple[int, int]] | None = None) -> None:
        self.stores = stores
        self.config = config or SyncConfig()
        self.now = now
        pairs = links or [(i, j) for i in range(len(stores)) for j in range(i + 1, len(stores))]
        self.machines: dict[tuple[int, int], PeerSync] = {}
        for i, j in pairs:
            for a, b in ((i, j), (j, i)):
                self.machines[a, b] = PeerSync(
                    stores[a], f"node{b}", now=now, config=self.config,
                    rng=random.Random(seed * 1_000 + a * 31 + b))
        self.queue: list[tuple[int, int, bytes]] = []  # (to, from, data)
        self.delivered: list[tuple[int, int, bytes]] = []

    def restart(self, node: int, peer: int) -> None:
        """Replace a machine by a new one resuming from its checkpoint, as after a
        restart of the node, and start it."""
        old = self.machines[node, peer]
        self.machines[node, peer] = PeerSync(
            self.stores[node], old.peer, now=self.now, config=self.config,
            rng=random.Random(self.now), checkpoint=old.checkpoint)
        self.post(node, peer, self.machines[node, peer].start(self.now))

    def post(self, sender: int, receiver: int, out: list[bytes]) -> None:
        self.queue.extend((receiver, sender, data) for data in out)

    def start(self) -> None:
        for (i, j), machine in self.machines.items():
            self.post(i, j, machine.start(self.now))

    def deliver(self, index: int = 0) -> None:
        """Deliver one queued message. New events it brings are pushed on to the node's
        other peers, as the node does."""
        to, sender, data = self.queue.pop(index)
        self.delivered.append((to, sender, data))
        head = self.stores[to].head
        self.post(to, sender, self.machines[to, sender].receive(data, self.now))
        if self.stores[to].head != head:
            for (i, j), machine in self.machines.items():
                if i == to and j != sender:
                    self.post(i, j, machine.local_appended(self.now))

    def settle(self, steps_max: int = 100_000) -> int:
        """Deliver in order until nothing is left; returns the number delivered."""
        steps = 0
        while self.queue:
            self.deliver(0)
            steps += 1
            assert steps <= steps_max, "the machines never settle"
        return steps

    def append(self, node: int, *events: Event) -> None:
        """Append on one node and let its machines push."""
        self.stores[node].append_batch(events)
        self.appended(node)

    def appended(self, node: int) -> None:
        for (i, j), machine in self.machines.items():
            if i == node:
                self.post(i, j, machine.local_appended(self.now))

    def tick(self, dt: float) -> None:
        """Advance time; machines whose link is down start again once due."""
        self.now += dt
        for (i, j), machine in self.machines.items():
            if not machine.status()["up"]:
                if self.now >= machine.wakeup_at:
                    self.post(i, j, machine.start(self.now))
            else:
                self.post(i, j, machine.tick(self.now))

    def converge(self, rounds_max: int = 20) -> None:
        """Deliver reliably, with ticks past every timeout, until a whole round moves
        no event."""
        self.settle()
        step = self.config.ack_timeout_s + self.config.pull_interval_s
        for _ in range(rounds_max):
            sent = sum(m.counters.events_sent for m in self.machines.values())
            self.tick(step)
            self.settle()
            moved = sent != sum(m.counters.events_sent for m in self.machines.values())
            if not moved and all(m.status()["up"] for m in self.machines.values()):
                return
        raise AssertionError("still sending events after every round")

    def assert_converged(self) -> None:
        first, *rest = (snapshot(store) for store in self.stores)
        for other in rest:
            assert other[0] == first[0]  # same events
            assert other[1] == first[1]  # same version vectors
            assert other[2] == first[2]  # same projections


@pytest.fixture(scope="session")
def mesh() -> type[Mesh]:
    return Mesh


# -- messages a peer must not get away with ---------------------------------------------

def _event_content(**change: Any) -> dict[str, Any]:
    content: dict[str, Any] = codec.decode(make_event().canonical)
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
    good = make_event().canonical
    big_text = "x" * 119_000
    big = [make_event(content=big_text + str(n)).canonical for n in range(9)]
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
        "hello_extra_field": _hello(extra=1),
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
        "events_seq_zero": _events([ORIGIN, 0, good]),
        "events_seq_decreasing": _events([ORIGIN, 2, good], [ORIGIN, 1, good]),
        "events_seq_repeated": _events([ORIGIN, 1, good], [ORIGIN, 1, good]),
        "events_origin_empty": _events(["", 1, good]),
        "events_event_not_bytes": _events([ORIGIN, 1, "event"]),
        "events_event_truncated": _events([ORIGIN, 1, good[:-1]]),
        "events_event_unknown_kind": _events(
            [ORIGIN, 1, good.replace(b"message_received", b"message_receivex")]),
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
            {"type": "events", "items": [[1, 1, 1, 1]] * 2_100}),
        # {"type": "events", "items": <an array header claiming 2**20 entries>}
        "huge_container_header": b"\xa2\x64type\x66events\x65items\x9a\x00\x10\x00\x00",
    }


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "bad_message" in metafunc.fixturenames:
        cases = bad_messages()
        metafunc.parametrize("bad_message", list(cases.values()), ids=list(cases))
