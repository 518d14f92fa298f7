"""A file's tail mark (``cursor_room.TAIL_PREFIX``) is kept beside its offset only while
the cursor has room: one left out costs that file what tells it rewritten while no bridge
runs. That is said once a run per agent, at a save of a cursor that lacks marks for want
of room (left out by that save or an earlier run's), and not while every mark fits. A
cursor with marks keeps the shape the release before them reads."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

import node.openclaw.cursor_room as cursor_room
from crdt import codec
from crdt.log.cursors import read_cursor
from crdt.log.store import EventStore
from node.openclaw.bridge import Bridge
from node.openclaw.cursor_room import TAIL_PREFIX
from node.openclaw.file_marks import TAIL_BYTES, tail_mark
from node.openclaw.jsonl import AgentSessions
from node.openclaw.state import StateFolder, cursor_name
from tests.node.openclaw.support import cli
from tests.node.openclaw.waiting import CountingSink, one_pass, saved_cursor
from tests.support.openclaw import FakeGateway, turn_records, write_jsonl

#: The cursor's limit of entries in these tests: three sessions' offsets fill it.
SMALL = 3
#: What the line said of an agent whose marks do not all fit begins with.
SAID = "agent 'main' ("
NO_ROOM = "its cursor has no room left for the tail marks of some of its files"


def write_sessions(state: Path, count: int, turns: int = 2,
                   now_ms: int | None = None) -> list[str]:
    """``count`` JSONL sessions of agent ``main``, ``turns`` turns each (their times
    from ``now_ms``: the same again to append a turn)."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    ids = [f"{n:08d}-0000-4000-8000-000000000000" for n in range(count)]
    for n, session_id in enumerate(ids):
        write_jsonl(state, f"agent:main:s{n}", session_id,
                    turn_records(session_id, [now_ms - 9000 + t * 1000 for t in range(turns)]))
    return ids


@pytest.mark.parametrize(("sessions", "said"), [(SMALL - 2, False), (SMALL - 1, True),
                                                 (SMALL, True)])
def test_marks_left_out_for_want_of_room_are_said_once_a_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sessions: int, said: bool) -> None:
    """One session under a limit of ``SMALL`` entries keeps its mark: nothing said. Two
    have room for one mark, three for none: said, once, with the agent named, though the
    next passes of the same run (a ``watch``'s) leave them out again."""
    monkeypatch.setattr(cursor_room, "CURSOR_ENTRIES_MAX", SMALL)
    now_ms = int(time.time() * 1000)
    ids = write_sessions(tmp_path, sessions, now_ms=now_ms)
    told: list[str] = []
    with EventStore.open("memory:") as store:
        folder = StateFolder(tmp_path)
        bridge = Bridge(folder, CountingSink(store), told.append)
        try:
            assert one_pass(bridge).records == 3 * sessions
            write_sessions(tmp_path, sessions, 3, now_ms)  # each file grows: read on
            assert one_pass(bridge).records == sessions
        finally:
            folder.close()
        cursor = read_cursor(store, cursor_name(tmp_path.resolve(), "main")) or {}
        assert len(saved_cursor(tmp_path, store)) == len(ids)  # every offset, always
    marks = [entry for entry in cursor if entry.startswith(TAIL_PREFIX)]
    assert len(marks) == min(sessions, SMALL - sessions)
    lines = [line for line in told if NO_ROOM in line]
    assert len(lines) == said, told
    if said:
        assert lines[0].startswith(SAID) and f"{tmp_path}/agents/main" in lines[0]


def test_import_says_it_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``clawsync openclaw import`` says it among its lines, and goes through (exit 0)."""
    monkeypatch.setattr(cursor_room, "CURSOR_ENTRIES_MAX", SMALL)
    state = tmp_path / "state"
    write_sessions(state, SMALL)
    result = cli("import", "--state-dir", str(state), "--data-dir", str(tmp_path / "data"))
    assert result.exit_code == 0, result.output
    assert result.output.count(NO_ROOM) == 1, result.output


def test_each_import_that_saves_a_cursor_still_lacking_marks_says_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Agent ``main`` with a SQLite session and two files: its three offsets fill the
    cursor, and neither file's mark fits. The next ``import`` reads only the SQLite
    session's new row: it saves a cursor that still lacks the files' marks, and says so
    again (a user who missed it once hears it at each run that saves), once; a run that
    saves nothing says nothing."""
    monkeypatch.setattr(cursor_room, "CURSOR_ENTRIES_MAX", SMALL)
    state, data = tmp_path / "state", tmp_path / "data"
    session_id = "dddddddd-0000-4000-8000-000000000000"
    rows = turn_records(session_id, [int(time.time() * 1000) - 9000 + n * 1000
                                     for n in range(3)])
    gateway = FakeGateway(state)
    try:
        gateway.open_session("agent:main:db", session_id)
        gateway.add(session_id, rows[:-1])
        write_sessions(state, SMALL - 1)
        args = ("import", "--state-dir", str(state), "--data-dir", str(data))
        said = []
        for run in range(3):
            if run == 1:  # the second reads the SQLite session's new row alone
                gateway.add(session_id, rows[-1:])
            result = cli(*args)
            assert result.exit_code == 0, result.output
            said.append(result.output.count(NO_ROOM))
    finally:
        gateway.close()
    with EventStore.open(data) as store:
        cursor = read_cursor(store, cursor_name(state.resolve(), "main")) or {}
    assert len(cursor) == SMALL and f"db:{session_id}" in cursor  # offsets, no mark
    assert said == [1, 1, 0]


@pytest.mark.parametrize("limit", ["entries", "bytes"])
def test_a_marked_cursor_keeps_the_shape_the_release_before_reads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: str) -> None:
    """README: the release before files had tail marks (9b727794) reads a cursor with
    them as ever, takes them for entries of sessions gone and drops them at its next
    save. Its parse is not run here (its modules have the names of this release's, so
    they cannot be loaded beside them, and a test must not need the repository's
    history): this tests the shape it relies on, in a cursor a bridge saved with room for
    one mark of three. Its reader reads each session from ``cursor.get(entry)``, the
    offsets, which are as without marks; its ``gone_entries`` takes an entry not ``db:``
    (after ``copy:`` taken off) for a JSONL session, and drops one the folder does not
    hold, as no mark is a session's entry; and its ``room_over`` counts every entry,
    so the cursor with its marks is under the limits (entries, encoded bytes): it is
    never stopped as over them."""
    ids = write_sessions(tmp_path, SMALL)
    offsets = {f"jsonl:{sid}": (tmp_path / "agents/main/sessions" / f"{sid}.jsonl")
               .stat().st_size for sid in ids}
    if limit == "entries":
        monkeypatch.setattr(cursor_room, "CURSOR_ENTRIES_MAX", SMALL + 1)
    else:  # room for one mark: its entry's bytes, and its value's (5 bytes of CBOR)
        one_mark = len(codec.encode_fast(f"{TAIL_PREFIX}jsonl:{ids[0]}")) + 5
        monkeypatch.setattr(cursor_room, "CURSOR_BYTES_MAX",
                            len(codec.encode_fast(offsets)) + one_mark)
    told: list[str] = []
    with EventStore.open("memory:") as store:
        folder = StateFolder(tmp_path)
        try:
            assert one_pass(Bridge(folder, CountingSink(store), told.append)).records == 9
            cursor = read_cursor(store, cursor_name(tmp_path.resolve(), "main")) or {}
            sessions = AgentSessions(tmp_path / "agents/main/sessions", "main", "main")
            present = sessions.sessions()
        finally:
            folder.close()
    marks = {entry for entry in cursor if entry.startswith(TAIL_PREFIX)}
    assert len(marks) == 1 and any(NO_ROOM in line for line in told)
    assert {entry: at for entry, at in cursor.items() if entry not in marks} == offsets
    assert present == set(offsets)
    for mark in marks:  # a JSONL session's entry, to the release before, of no file
        assert not mark.startswith("db:") and mark.removeprefix("copy:") == mark
        assert mark not in present
    assert len(cursor) <= cursor_room.CURSOR_ENTRIES_MAX
    assert len(codec.encode_fast(cursor)) <= cursor_room.CURSOR_BYTES_MAX


def test_a_mark_equal_to_the_one_kept_is_saved_with_its_files_new_offset(
        tmp_path: Path) -> None:
    """A file that grew by a record as long as the bytes a mark takes in, the same as the
    record before it, has the same mark at its new offset as at its old one: saved with
    the new offset all the same, not taken for unchanged and dropped with the old."""
    sid = "00000000-0000-4000-8000-000000000000"
    head = turn_records(sid, [int(time.time() * 1000)])
    same: dict[str, Any] = {"type": "custom", "id": "0000aaaa", "parentId": head[-1]["id"],
                            "timestamp": head[-1]["timestamp"], "customType": "pad",
                            "data": ""}
    same["data"] = "x" * (TAIL_BYTES - len(json.dumps(same)) - 1)  # the line is the mark's
    with EventStore.open("memory:") as store:
        folder = StateFolder(tmp_path)
        try:
            bridge = Bridge(folder, CountingSink(store))
            marks = []
            for records in ([*head, same], [*head, same, same]):
                path = write_jsonl(tmp_path, "agent:main:s", sid, records)
                one_pass(bridge)
                cursor = read_cursor(store, cursor_name(tmp_path.resolve(), "main")) or {}
                assert cursor[f"jsonl:{sid}"] == path.stat().st_size
                marks.append(cursor.get(f"{TAIL_PREFIX}jsonl:{sid}"))
        finally:
            folder.close()
    assert marks[0] is not None and marks == [marks[0]] * 2


def test_a_file_whose_entry_is_too_long_for_the_prefix_keeps_its_mark(tmp_path: Path) -> None:
    """A session id of 246 bytes: its file's entry (``jsonl:<id>``, 252 bytes) and
    ``tail:`` are over an entry's 256 bytes (``crdt.keys.NAME_BYTES_MAX``). Its mark is
    kept all the same, under a short entry of its own (``cursor_room.tail_entry``): the
    file rewritten in place at the same length while no bridge ran is read again at the
    next import, not passed over. The mark goes with its session: kept while the file
    is there, dropped once it is gone."""
    session_id = "00000000-" + "l" * 237
    entry = f"jsonl:{session_id}"
    assert len(entry.encode()) == 252
    folder = tmp_path / "agents" / "main" / "sessions"
    first_ms = int(time.time() * 1000) - 60_000
    path = write_jsonl(tmp_path, "agent:main:long", session_id,
                       turn_records(session_id, [first_ms, first_ms + 1000]))
    # Other records, the same length, written over the file's own bytes.
    rewrite = b"".join(json.dumps(record).encode() + b"\n" for record in
                       turn_records(session_id, [first_ms + 7000, first_ms + 8000]))
    assert len(rewrite) == path.stat().st_size != 0 and rewrite != path.read_bytes()
    name = cursor_name(tmp_path.resolve(), "main")
    read, cursors = [], []
    with EventStore.open("memory:") as store:
        for run in range(4):
            if run == 1:  # rewritten while no bridge runs
                with path.open("r+b") as file:
                    file.write(rewrite)
            if run == 3:  # deleted: out of the index, its file gone
                (folder / "sessions.json").write_text("{}")
                path.unlink()
            state = StateFolder(tmp_path)
            try:
                read.append(one_pass(Bridge(state, CountingSink(store))).records)
            finally:
                state.close()
            cursors.append(read_cursor(store, name) or {})
    assert read == [3, 3, 0, 0]  # the rewrite read again from its start, once
    mark = cursor_room.tail_entry(entry)
    assert len(mark.encode()) <= 256
    assert cursors[1] == cursors[2] == {entry: len(rewrite), mark: tail_mark(rewrite)}
    assert set(cursors[0]) == {entry, mark} and cursors[3] == {}
