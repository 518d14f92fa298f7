"""What the tests of records waiting for the node's clock share: sessions A and B, a sink
that keeps the events each append asked for, the bridge's clock moved by the test, and a
bridge on an embedded store."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from crdt.events import Event
from crdt.log.cursors import read_cursor, save_cursor
from crdt.log.store import EventStore
from node.cli.openclaw_sink import EmbeddedSink
from node.openclaw.bridge import Bridge
from node.openclaw.cursor_room import unmarked
from node.openclaw.session_keys import keys_name
from node.openclaw.state import StateFolder, cursor_name
from node.openclaw.tally import Tally
from tests.support.openclaw import write_jsonl, write_sessions

#: The store's bound (``clock_drift_max_ms``) in these tests.
DRIFT_MS = 1000
A, KEY_A = "00000000-0000-4000-8000-00000000000a", "agent:main:explicit:a"
B, KEY_B = "ffffffff-0000-4000-8000-00000000000b", "agent:main:explicit:b"


class CountingSink(EmbeddedSink):
    """An embedded store that keeps the ids of the events of each append asked of it."""

    def __init__(self, store: EventStore) -> None:
        super().__init__(store)
        self.sent: list[list[bytes]] = []

    async def append(self, events: list[Event]) -> int:
        self.sent.append([event.id for event in events])
        return await super().append(events)


class Clock:
    """The bridge's monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def waiting_bridge(state: Path, store: EventStore, told: list[str],
                   clock: Clock) -> tuple[Bridge, CountingSink, StateFolder]:
    sink = CountingSink(store)
    folder = StateFolder(state)
    return Bridge(folder, sink, told.append, monotonic=clock), sink, folder


def widened(state: Path, store: EventStore, wide: EventStore) -> CountingSink:
    """A sink on ``wide``, standing for the node of ``store`` with its bound widened: it
    holds the agent's cursors as ``store`` does (a bridge reads on from a cursor the node
    holds otherwise, as it is)."""
    name = cursor_name(state.resolve(), "main")
    for saved in (name, keys_name(name)):
        save_cursor(wide, saved, read_cursor(store, saved) or {})
    return CountingSink(wide)


def saved_cursor(state: Path, store: EventStore) -> dict[str, int]:
    """Where the agent's sessions were read up to, as its saved cursor says: without its
    files' tail marks (``cursor_room.TAIL_PREFIX``), which go with their offsets."""
    return unmarked(read_cursor(store, cursor_name(state.resolve(), "main")) or {})


def one_pass(bridge: Bridge, only_changed: bool = True) -> Tally:
    return asyncio.run(bridge.run_pass(only_changed=only_changed))


def write_a(state: Path, kind: str, records: list[dict[str, Any]]) -> None:
    """Session A's ``records`` in the agent's SQLite store (``kind`` "db") or its JSONL."""
    if kind == "db":
        write_sessions(state, {(KEY_A, A): records})
    else:
        write_jsonl(state, KEY_A, A, records)


#: What the bridge says of a waiting session gone from its store.
GONE = "it no longer waits"
