"""What the tests of the keys an agent's ``.jsonl`` files were read under share
(``node.openclaw.session_keys``): session A's turns and their lines, the keys saved
without the files' entries, the events by session, and the bytes this thread read."""

from __future__ import annotations

import json
from pathlib import Path

from crdt.log.cursors import read_cursor
from crdt.log.store import EventStore
from node.openclaw.key_entries import file_of
from node.openclaw.session_names import session_key_for
from tests.node.openclaw.waiting import KEY_A
from tests.support.openclaw import turn_records

#: OpenClaw's session of KEY_A, as the node holds it.
SESSION_A = session_key_for("main", KEY_A)
#: When the records of ``records`` begin.
T0_MS = 1_700_000_000_000


def records(session_id: str, count: int = 2, first_ms: int = T0_MS) -> list[dict[str, object]]:
    """A header and ``count`` turns, a second apart from ``first_ms``."""
    return turn_records(session_id, [first_ms + n * 1000 for n in range(count)])


def lines(written: list[dict[str, object]]) -> bytes:
    return b"".join(json.dumps(record).encode() + b"\n" for record in written)


def byte_entries(store: EventStore, name: str) -> dict[str, int] | None:
    """The keys saved under ``name``, without the entries naming the file of a byte."""
    saved = read_cursor(store, name)
    return None if saved is None else {entry: order for entry, order in saved.items()
                                       if file_of(entry) is None}


def events_by_session(store: EventStore) -> dict[str, int]:
    counts: dict[str, int] = {}
    for stored in store.events_after(0, 10_000):
        counts[stored.event.session_key] = counts.get(stored.event.session_key, 0) + 1
    return counts


def bytes_read() -> int:
    """What this thread read so far, of any file (Linux's count of its reads' bytes)."""
    counts = Path("/proc/thread-self/io").read_text().split()
    return int(counts[counts.index("rchar:") + 1])
