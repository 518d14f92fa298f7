"""A session OpenClaw rewrites (rows deleted from a seq on, or all, and new ones inserted
from there in the same commit) shorter than what was read is read again from its first
row: the records read before are answered as already stored, and the new ones go in,
below the old cursor too. Stores with OpenClaw 2026.9.6's rewrite generations and stores
without them (an older layout) are read alike; a session moved to cold storage and back
is not read again, nor is one rewritten at the very seqs read (a known limit)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crdt.log.store import EventStore
from node.openclaw.bridge import Bridge
from tests.node.openclaw.waiting import (
    DRIFT_MS,
    KEY_A,
    A,
    Clock,
    CountingSink,
    one_pass,
    saved_cursor,
    waiting_bridge,
)
from tests.support.openclaw import FakeGateway, iso_ms, turn_records

ENTRY = f"db:{A}"


def message(record_id: str, parent: str, ms: int, text: str) -> dict[str, Any]:
    return {"type": "message", "id": record_id, "parentId": parent, "timestamp": iso_ms(ms),
            "message": {"role": "user", "content": text, "timestamp": ms}}


def record_ids(sink: CountingSink) -> set[str]:
    """The ids of the records the node holds events of, in session A."""
    events, _forgotten = asyncio.run(sink.events(KEY_A))
    return {event.payload["openclaw"]["record"]["id"] for event in events
            if "record" in event.payload.get("openclaw", {})}


def event_count(sink: CountingSink) -> int:
    return len(asyncio.run(sink.events(KEY_A))[0])


@pytest.fixture
def imported(tmp_path: Path, request: pytest.FixtureRequest
             ) -> Iterator[tuple[FakeGateway, Bridge, CountingSink, list[dict[str, Any]]]]:
    """Session A's four rows (a header and three turns) imported, the cursor at seq 4; the
    store with rewrite generations if the test's parameter ``rewrites`` says so."""
    now_ms = int(time.time() * 1000)
    rows = turn_records(A, [now_ms - 9000, now_ms - 8000, now_ms - 7000])
    gateway = FakeGateway(tmp_path, rewrites=request.node.callspec.params["rewrites"])
    gateway.open_session(KEY_A, A)
    gateway.add(A, rows)
    with EventStore.open("memory:", clock_drift_max_ms=DRIFT_MS) as store:
        bridge, sink, folder = waiting_bridge(tmp_path, store, [], Clock())
        try:
            assert one_pass(bridge).records == len(rows)
            assert saved_cursor(tmp_path, store)[ENTRY] == len(rows)
            yield gateway, bridge, sink, rows
        finally:
            folder.close()
            gateway.close()


@pytest.mark.parametrize("rewrites", [True, False])
def test_a_suffix_rewritten_shorter_is_read_again_and_on(
        tmp_path: Path, rewrites: bool,
        imported: tuple[FakeGateway, Bridge, CountingSink, list[dict[str, Any]]]) -> None:
    """Rows from seq 2 deleted and one new record inserted at seq 2 in one commit: the new
    record is read (below the old cursor), the ones before it are already stored, and a
    row appended later, whose parent is the new record, follows it."""
    gateway, bridge, sink, rows = imported
    now_ms = int(time.time() * 1000)
    stored = event_count(sink)
    new = message("0000aaaa", rows[1]["id"], now_ms - 5000, "rewritten")
    gateway.rewrite(A, 2, [new])
    tally = one_pass(bridge)
    assert tally.created == 1 and tally.events == 3  # seqs 0 and 1: already stored
    assert tally.problems == [] and tally.waiting == []
    assert new["id"] in record_ids(sink) and event_count(sink) == stored + 1
    assert saved_cursor(tmp_path, sink.store)[ENTRY] == 3
    later = message("0000bbbb", new["id"], now_ms - 4000, "after")
    gateway.add(A, [later])
    tally = one_pass(bridge)
    assert (tally.records, tally.created) == (1, 1)
    assert later["id"] in record_ids(sink)
    assert saved_cursor(tmp_path, sink.store)[ENTRY] == 4


@pytest.mark.parametrize("rewrites", [True, False])
def test_a_transcript_replaced_whole_shorter_is_read_again(
        tmp_path: Path, rewrites: bool,
        imported: tuple[FakeGateway, Bridge, CountingSink, list[dict[str, Any]]]) -> None:
    """All rows deleted and fewer new ones inserted from seq 0 in one commit: all of it is
    read."""
    gateway, bridge, sink, rows = imported
    length = 2
    now_ms = int(time.time() * 1000)
    new = [rows[0]] + [message(f"0000c{n:03x}", rows[0]["id"] if n == 0 else f"0000c{n - 1:03x}",
                               now_ms - 5000 + n, f"replaced {n}") for n in range(length - 1)]
    gateway.rewrite(A, 0, new)
    tally = one_pass(bridge)
    assert tally.records == length and tally.created == length - 1  # the header: stored
    assert {record["id"] for record in new} <= record_ids(sink)
    assert saved_cursor(tmp_path, sink.store)[ENTRY] == length


@pytest.mark.parametrize("rewrites", [True, False])
def test_a_suffix_rewritten_at_the_same_seqs_is_not_read(
        tmp_path: Path, rewrites: bool,
        imported: tuple[FakeGateway, Bridge, CountingSink, list[dict[str, Any]]]) -> None:
    """The last row replaced by another at its seq, as long as before (OpenClaw edits an
    assistant reply in place so): not seen, a known limit; the record read before stays,
    and rows appended later are read on from the cursor."""
    gateway, bridge, sink, rows = imported
    now_ms = int(time.time() * 1000)
    stored = event_count(sink)
    new = message("0000dddd", rows[2]["id"], now_ms - 5000, "same seq")
    gateway.rewrite(A, 3, [new])
    assert one_pass(bridge).records == 0
    assert new["id"] not in record_ids(sink) and rows[3]["id"] in record_ids(sink)
    assert event_count(sink) == stored
    later = message("0000dddf", new["id"], now_ms - 4000, "after")
    gateway.add(A, [later])
    assert one_pass(bridge).records == 1
    assert saved_cursor(tmp_path, sink.store)[ENTRY] == len(rows) + 1


@pytest.mark.parametrize("rewrites", [True])
def test_a_session_moved_to_cold_storage_and_back_is_not_read_again(
        tmp_path: Path, rewrites: bool,
        imported: tuple[FakeGateway, Bridge, CountingSink, list[dict[str, Any]]]) -> None:
    """Cold storage moves all of a session's rows out and puts them back with their seqs:
    its cursor stays, and only a row appended then is read; whereas a session emptied by
    a replace and written again from seq 0, shorter, is read from there."""
    gateway, bridge, sink, rows = imported
    now_ms = int(time.time() * 1000)
    cursor = saved_cursor(tmp_path, sink.store)
    assert set(cursor) == {ENTRY}
    cold = gateway.archive_cold(A)
    assert one_pass(bridge).records == 0
    gateway.restore_cold(A, cold)
    assert one_pass(bridge).records == 0
    assert saved_cursor(tmp_path, sink.store) == cursor
    gateway.add(A, [message("0000eeee", rows[-1]["id"], now_ms - 5000, "warm again")])
    assert one_pass(bridge).records == 1
    gateway.rewrite(A, 0, [])  # emptied (a replace with nothing)
    assert one_pass(bridge).records == 0
    new = [rows[0], message("0000f000", rows[0]["id"], now_ms - 4000, "anew")]
    gateway.add(A, new)  # seq 0 on, shorter than where it was read up to
    tally = one_pass(bridge)
    assert tally.records == len(new) and tally.created == len(new) - 1
    assert saved_cursor(tmp_path, sink.store)[ENTRY] == len(new)


def test_a_waiting_session_rewritten_shorter_ends_its_wait_without_a_problem(
        tmp_path: Path) -> None:
    """A session waiting (a record ahead of the node's clock at seq 4) rewritten from seq 2
    with one record: the waiting row is gone from OpenClaw's store, so the wait ends, said
    but not counted as a problem, and the session is read again from its first row."""
    now_ms = int(time.time() * 1000)
    rows = turn_records(A, [now_ms - 9000, now_ms - 8000, now_ms - 7000])
    gateway = FakeGateway(tmp_path)
    gateway.open_session(KEY_A, A)
    gateway.add(A, rows)
    told: list[str] = []
    with EventStore.open("memory:", clock_drift_max_ms=DRIFT_MS) as store:
        bridge, sink, folder = waiting_bridge(tmp_path, store, told, Clock())
        try:
            assert one_pass(bridge).records == len(rows)
            gateway.add(A, [message("0000f000", rows[-1]["id"], now_ms + 600_000, "ahead")])
            assert len(one_pass(bridge).waiting) == 1
            told.clear()
            new = message("0000f001", rows[1]["id"], now_ms - 5000, "rewritten")
            gateway.rewrite(A, 2, [new])
            tally = one_pass(bridge)
            assert tally.problems == [] and tally.waiting == []
            ended = [text for text in told if "the wait ends" in text]
            assert len(ended) == 1 and ended[0].endswith(
                f", session {A}, seq 4: its session got shorter (OpenClaw rewrote or cut "
                "it) and the row is gone; the wait ends, and the session is read again "
                "from its first row")
            assert new["id"] in record_ids(sink)
            assert saved_cursor(tmp_path, store)[ENTRY] == 3
        finally:
            folder.close()
            gateway.close()
