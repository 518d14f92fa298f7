"""A ``.jsonl`` the keys remember nothing of (its key named by ``sessions.json`` from its
start) rewritten in place, over HTTP into a node process, by one bridge that follows it:
as long as where it was read up to or longer, it is read again from its start, not on
from its old offset (``node.openclaw.file_marks.Seen``); the records read before are
answered as already stored, the new ones go in, and nothing is read twice after. Also
into an embedded store, rewritten while a step stores, seen rewritten by a step whose
append then fails, or rewritten with a new turn that waits for the node's clock."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from crdt.events import Event
from crdt.log.cursors import read_cursor
from crdt.log.store import EventStore
from node.cli.openclaw_sink import EmbeddedSink, HttpSink
from node.client.api import Client, ClientError
from node.openclaw.bridge import Bridge
from node.openclaw.file_marks import TAIL_BYTES, tail_mark
from node.openclaw.session_names import session_key_for
from node.openclaw.state import StateFolder, cursor_name
from node.openclaw.tally import Tally
from tests.node.openclaw.keyed import SESSION_A, T0_MS, events_by_session, lines, records
from tests.node.openclaw.waiting import DRIFT_MS, KEY_A, A, Clock, one_pass, waiting_bridge
from tests.support.openclaw import turn_records, write_jsonl
from tests.support.processes import NodeProcess

#: A later start for a rewritten transcript: its lines as long as the first one's.
LATER_MS = T0_MS + 7000


def in_place(path: Path, data: bytes) -> None:
    """``path`` rewritten with ``data`` (the same inode), its stamp no longer the one a
    read took: a change the next look sees."""
    before = path.stat()
    with path.open("r+b") as file:
        file.truncate(0)
        file.write(data)
    after = path.stat()
    assert after.st_ino == before.st_ino
    assert (after.st_mtime_ns, after.st_ctime_ns) != (before.st_mtime_ns, before.st_ctime_ns)


async def passes(state: Path, node: NodeProcess, rewrite: bytes,
                 written: list[dict[str, object]] | None = None) -> tuple[Tally, Tally, int]:
    """Session A (``written``, else a header and two turns) imported, its file rewritten
    as ``rewrite``, then two more passes of the same bridge; their tallies, and the
    events the node then holds of the session."""
    path = write_jsonl(state, KEY_A, A, records(A, 2) if written is None else written)
    folder = StateFolder(state)
    try:
        async with Client(node.url) as client:
            sink = HttpSink(client)
            bridge = Bridge(folder, sink)
            first = await bridge.run_pass(only_changed=True)
            assert (first.records, first.created, first.problems) == (3, 3, [])
            in_place(path, rewrite)
            after = await bridge.run_pass(only_changed=True)
            again = await bridge.run_pass(only_changed=False)
            events, _forgotten = await sink.events(session_key_for("main", KEY_A))
    finally:
        folder.close()
    return after, again, len(events)


@pytest.mark.parametrize("kept", [0, 2], ids=["all-new", "first-two-kept"])
def test_a_file_rewritten_longer_is_read_again_from_its_start(tmp_path: Path,
                                                              kept: int) -> None:
    """Rewritten longer: with other first lines, or keeping its first two records (the
    header too) and other ones after them; each record of it read once, those kept
    already stored."""
    written = records(A, 2)[:kept] + records(A, 5, LATER_MS)[kept:]
    assert len(lines(written)) > len(lines(records(A, 2)))
    with NodeProcess(tmp_path) as node:
        after, again, held = asyncio.run(passes(tmp_path / "state", node, lines(written)))
    assert (after.records, after.created, after.problems) == (6, 6 - kept, [])
    assert (again.records, again.events) == (0, 0)
    assert held == 3 + 6 - kept


@pytest.mark.parametrize("kept", [0, 1], ids=["all-new", "header-kept"])
def test_a_file_rewritten_at_the_same_length_is_read_again(tmp_path: Path,
                                                           kept: int) -> None:
    """Rewritten at the very same length, never to change size again: read again from
    its start once, as soon as it changed."""
    written = records(A, 2)[:kept] + records(A, 2, LATER_MS)[kept:]
    assert len(lines(written)) == len(lines(records(A, 2)))
    with NodeProcess(tmp_path) as node:
        after, again, held = asyncio.run(passes(tmp_path / "state", node, lines(written)))
    assert (after.records, after.created, after.problems) == (3, 3 - kept, [])
    assert (again.records, again.events) == (0, 0)
    assert held == 3 + 3 - kept


def test_a_file_only_touched_or_grown_is_read_on(tmp_path: Path) -> None:
    """Its times changed with the same bytes, then records appended: not taken for
    rewritten; only the new records are read."""
    written = records(A, 4)
    with NodeProcess(tmp_path) as node:
        path = tmp_path / "state" / "agents" / "main" / "sessions" / f"{A}.jsonl"

        async def touched_then_grown() -> tuple[Tally, Tally]:
            write_jsonl(tmp_path / "state", KEY_A, A, records(A, 2))
            folder = StateFolder(tmp_path / "state")
            try:
                async with Client(node.url) as client:
                    bridge = Bridge(folder, HttpSink(client))
                    await bridge.run_pass(only_changed=True)
                    os.utime(path, ns=(T0_MS * 10**6, T0_MS * 10**6))
                    touched = await bridge.run_pass(only_changed=True)
                    in_place(path, lines(written))
                    return touched, await bridge.run_pass(only_changed=True)
            finally:
                folder.close()

        touched, grown = asyncio.run(touched_then_grown())
    assert (touched.records, touched.problems) == (0, [])
    assert (grown.records, grown.created, grown.problems) == (2, 2, [])


@pytest.mark.parametrize("before", [0, 1], ids=["within", "beyond"])
def test_only_bytes_within_tail_bytes_before_the_offset_tell_a_rewrite(
        tmp_path: Path, before: int) -> None:
    """Rewritten at the same length, its header kept, one byte of a turn changed: the
    first of the ``TAIL_BYTES`` before where it was read up to, read again from its
    start (the turn maps to new events); the byte before them, not seen (as README's
    limits say): nothing read, the turn as it was imported."""
    written = records(A, 2)
    long = written[1]["message"]
    assert isinstance(long, dict)
    long["content"] = "x" * (2 * TAIL_BYTES)
    data = lines(written)
    at = len(data) - TAIL_BYTES - before
    assert data[at:at + 1] == b"x"  # inside the long turn's text
    rewrite = data[:at] + b"y" + data[at + 1:]
    with NodeProcess(tmp_path) as node:
        after, again, held = asyncio.run(passes(tmp_path / "state", node, rewrite, written))
    if before == 0:
        assert (after.records, after.created, after.problems) == (3, 1, [])
        assert held == 3 + 1
    else:
        assert (after.records, after.problems) == (0, [])
        assert held == 3
    assert (again.records, again.events) == (0, 0)


class RewritingSink(EmbeddedSink):
    """An embedded store at whose next save of a main cursor, once ``rewrite`` is set,
    ``path`` is rewritten in place with it: a rewrite while a step stores."""

    path: Path
    rewrite: bytes | None = None

    async def save_cursor(self, name: str, cursor: dict[str, int]) -> None:
        await super().save_cursor(name, cursor)
        if self.rewrite is not None and not name.endswith(":keys"):
            in_place(self.path, self.rewrite)
            self.rewrite = None


def test_a_file_rewritten_while_a_step_stores_is_read_again(tmp_path: Path) -> None:
    """A turn appended, and the file rewritten (its header kept, other turns, two more)
    while the step that read that turn saves its cursor: the next step reads the file
    again from its start, though its cursor moved (what was seen is where that read
    ended)."""
    with EventStore.open("memory:") as store:
        sink = RewritingSink(store)
        sink.path = write_jsonl(tmp_path, KEY_A, A, records(A, 2))
        bridge = Bridge(StateFolder(tmp_path), sink)
        assert one_pass(bridge, only_changed=False).records == 3
        write_jsonl(tmp_path, KEY_A, A, records(A, 3))
        sink.rewrite = lines(records(A, 1) + records(A, 6, LATER_MS)[1:])
        one_pass(bridge)
        assert sink.rewrite is None
        assert one_pass(bridge, only_changed=False).records == 0
        # The 4 records read before, and the 6 turns of the rewrite.
        assert events_by_session(store)[SESSION_A] == 4 + 6


class UnreachableOnce(EmbeddedSink):
    """An embedded store whose next append, once ``fail`` is set, finds no node (as
    ``watch`` then tries again, with the same bridge)."""

    fail = False

    async def append(self, events: list[Event]) -> int:
        if self.fail:
            self.fail = False
            raise ClientError("the node could not be reached", status=None)
        return await super().append(events)


def test_a_rewrite_seen_by_a_step_whose_append_fails_is_read_again(tmp_path: Path) -> None:
    """Seen rewritten (its header kept), but the node unreachable at that step's append:
    the next pass reads the file from its start again, not on from the old offset."""
    with EventStore.open("memory:") as store:
        path = write_jsonl(tmp_path, KEY_A, A, records(A, 3))
        sink = UnreachableOnce(store)
        bridge = Bridge(StateFolder(tmp_path), sink)
        assert one_pass(bridge, only_changed=False).records == 4
        in_place(path, lines(records(A, 1) + records(A, 6, LATER_MS)[1:]))
        sink.fail = True
        with pytest.raises(ClientError, match="could not be reached"):
            one_pass(bridge)
        assert one_pass(bridge).records == 2 + 6
        assert one_pass(bridge, only_changed=False).records == 0
        assert events_by_session(store)[SESSION_A] == 4 + 6


class Stop(Exception):
    pass


def test_watch_remembers_at_its_first_pass_a_file_it_finds_nothing_new_in(
        tmp_path: Path) -> None:
    """Imported by another command, then followed by ``watch``: its first pass reads
    nothing of the file but remembers what it saw, so a rewrite at the same length
    (header kept) after it is read again from its start at the next pass."""
    with EventStore.open("memory:") as store:
        path = write_jsonl(tmp_path, KEY_A, A, records(A, 2))
        assert one_pass(Bridge(StateFolder(tmp_path), EmbeddedSink(store))).records == 3
        # The header and first turn kept, the second another, as long.
        rewrite = lines(records(A, 1) + records(A, 2, LATER_MS)[2:])
        assert len(rewrite) == path.stat().st_size
        tallies: list[Tally] = []

        def on_pass(tally: Tally) -> None:
            tallies.append(tally)
            if len(tallies) == 1:
                in_place(path, rewrite)
            else:
                raise Stop

        with pytest.raises(Stop):
            asyncio.run(Bridge(StateFolder(tmp_path), EmbeddedSink(store)).watch(0, on_pass))
    assert [(tally.records, tally.created) for tally in tallies] == [(0, 0), (3, 1)]


def test_a_rewrite_whose_new_turn_waits_is_read_again_only_once(tmp_path: Path) -> None:
    """Rewritten at the same length (its header kept, a turn's text changed), a turn
    ahead of the node's clock appended: read again from its start once; what it stored
    up to that turn moved the cursor into the rewrite, so the looks after it read only
    the turn that waits, not the whole file again."""
    now_ms = int(time.time() * 1000)
    written = turn_records(A, [now_ms - 9000, now_ms - 8000])
    path = write_jsonl(tmp_path, KEY_A, A, written)
    clock = Clock()
    with EventStore.open("memory:", clock_drift_max_ms=DRIFT_MS) as store:
        bridge, _sink, folder = waiting_bridge(tmp_path, store, [], clock)
        try:
            assert one_pass(bridge, only_changed=False).records == 3
            rewrite = turn_records(A, [now_ms - 9000, now_ms - 8000, now_ms + 3_600_000])
            rewrite[2]["message"]["content"] = "turn 9"
            in_place(path, lines(rewrite))
            looks: list[int] = []
            for _look in range(3):
                clock.now_s += 3600  # the waiting turn's time to be tried again
                looks.append(one_pass(bridge, only_changed=False).records)
        finally:
            folder.close()
        assert looks == [3, 0, 0]
        # The 3 records read before, and the changed turn; the new one waits.
        assert events_by_session(store)[SESSION_A] == 3 + 1


def test_a_rewrite_before_a_waiting_turn_is_read_again(tmp_path: Path) -> None:
    """A new turn ahead of the node's clock, so the cursor stays where its read began;
    then the bytes before it rewritten at the same length (its header kept, a turn's text
    changed): what was seen where that read began tells it, and the file is read again
    from its start."""
    now_ms = int(time.time() * 1000)
    times = [now_ms - 9000, now_ms - 8000]
    path = write_jsonl(tmp_path, KEY_A, A, turn_records(A, times))
    clock = Clock()
    with EventStore.open("memory:", clock_drift_max_ms=DRIFT_MS) as store:
        bridge, _sink, folder = waiting_bridge(tmp_path, store, [], clock)
        try:
            assert one_pass(bridge, only_changed=False).records == 3
            waiting = turn_records(A, [*times, now_ms + 3_600_000])
            write_jsonl(tmp_path, KEY_A, A, waiting)
            assert one_pass(bridge).records == 0  # the new turn waits
            waiting[2]["message"]["content"] = "turn 9"
            in_place(path, lines(waiting))
            clock.now_s += 3600  # the waiting turn's time to be tried again
            assert one_pass(bridge).records == 3
        finally:
            folder.close()
        # The 3 records read before, and the changed turn; the new one waits.
        assert events_by_session(store)[SESSION_A] == 3 + 1


def test_the_mark_saved_is_of_the_tail_bytes_before_the_offset(tmp_path: Path) -> None:
    """The tail mark the cursor keeps is ``tail_mark`` of the ``TAIL_BYTES`` before the
    file's offset, whether the record that ends there ends past them into the read (a
    file over ``TAIL_BYTES`` read from its start) or within them (a turn read on from an
    offset, the bytes before that offset taken in): so the next import, a first look that
    compares it, reads nothing again. A wrong mark would read the file again from its
    start at every run."""
    written = records(A, 60)
    path = write_jsonl(tmp_path, KEY_A, A, written[:-1])
    assert path.stat().st_size > 2 * TAIL_BYTES
    name = cursor_name(tmp_path.resolve(), "main")
    with EventStore.open("memory:") as store:
        for step, read in ((written[:-1], len(written) - 1), (written, 1), (written, 0)):
            write_jsonl(tmp_path, KEY_A, A, step)  # the last turn appended at the second
            folder = StateFolder(tmp_path)
            try:
                assert one_pass(Bridge(folder, EmbeddedSink(store))).records == read
            finally:
                folder.close()
            data = path.read_bytes()
            assert read_cursor(store, name) == {
                f"jsonl:{A}": len(data), f"tail:jsonl:{A}": tail_mark(data[-TAIL_BYTES:])}


def test_a_mark_that_moved_alone_is_saved(tmp_path: Path) -> None:
    """Rewritten at the same length while no bridge ran, then again: each import reads it
    again from its start up to its old offset, so only its tail mark moves, and that new
    mark is saved. Without it the file would have no mark, and the second rewrite would
    go unseen, its records skipped."""
    path = write_jsonl(tmp_path, KEY_A, A, records(A, 2))
    name = cursor_name(tmp_path.resolve(), "main")
    with EventStore.open("memory:") as store:
        for start in (None, LATER_MS, LATER_MS + 2000):
            if start is not None:
                rewrite = lines(records(A, 2, start))
                assert len(rewrite) == path.stat().st_size
                in_place(path, rewrite)
            folder = StateFolder(tmp_path)
            try:
                assert one_pass(Bridge(folder, EmbeddedSink(store))).records == 3
            finally:
                folder.close()
            data = path.read_bytes()
            assert read_cursor(store, name) == {
                f"jsonl:{A}": len(data), f"tail:jsonl:{A}": tail_mark(data[-TAIL_BYTES:])}
