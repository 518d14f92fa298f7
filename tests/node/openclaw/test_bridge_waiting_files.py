"""A waiting session whose transcript changes under it: its file is read again only once
it changed (in place, its time put back, too), a waiting record replaced by a damaged
one ends the wait, and so do a file cut shorter than where it was read up to and a
waiting row deleted; rows appended after rows removed from a session's end are read."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crdt.log.store import EventStore
from tests.node.openclaw.waiting import (
    DRIFT_MS,
    GONE,
    KEY_A,
    A,
    Clock,
    one_pass,
    saved_cursor,
    waiting_bridge,
    write_a,
)
from tests.support.openclaw import (
    FakeGateway,
    database_path,
    iso_ms,
    turn_records,
    write_jsonl,
)

#: The paths ``opened`` watches, and each open of one seen (by Python's audit hook,
#: which once added stays for the process: it does nothing while none is watched).
_WATCHED: set[str] = set()
_OPENS: list[str] = []


def _count_open(event: str, args: tuple[Any, ...]) -> None:
    if (event == "open" and _WATCHED and isinstance(args[0], (str, os.PathLike))
            and os.fspath(args[0]) in _WATCHED):
        _OPENS.append(os.fspath(args[0]))


sys.addaudithook(_count_open)


@contextlib.contextmanager
def opened(path: Path) -> Iterator[list[str]]:
    """Each time ``path`` is opened within the block."""
    _WATCHED.add(os.fspath(path))
    _OPENS.clear()
    try:
        yield _OPENS
    finally:
        _WATCHED.clear()


def test_a_waiting_transcript_is_read_again_only_once_its_file_changes(
        tmp_path: Path) -> None:
    now_ms = int(time.time() * 1000)
    a = turn_records(A, [now_ms - 5000, now_ms + 3_600_000, now_ms - 4000])
    path = write_jsonl(tmp_path, KEY_A, A, a)
    told: list[str] = []
    with EventStore.open("memory:", clock_drift_max_ms=DRIFT_MS) as store:
        bridge, _sink, folder = waiting_bridge(tmp_path, store, told, Clock())
        try:
            assert len(one_pass(bridge).waiting) == 1
            one_pass(bridge)  # a look at it as waiting, which reads it
            cursor = saved_cursor(tmp_path, store)
            with opened(path) as opens:
                for _look in range(3):
                    one_pass(bridge, only_changed=False)
            assert opens == []  # unchanged: not read again
            assert saved_cursor(tmp_path, store) == cursor
            # The waiting line rewritten in place, its file's size, inode and
            # modification time kept: its change time tells, and it is read again.
            lines = path.read_bytes().split(b"\n")
            lines[2] = b"{" + b"x" * (len(lines[2]) - 1)
            info = path.stat()
            with path.open("r+b") as file:
                file.write(b"\n".join(lines))
            os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
            now = path.stat()
            assert (now.st_ino, now.st_size, now.st_mtime_ns) == (
                info.st_ino, info.st_size, info.st_mtime_ns)
            one_pass(bridge)
            assert sum("not JSON" in text for text in told) == 1
        finally:
            folder.close()


@pytest.mark.parametrize("kind", ["db", "jsonl"])
@pytest.mark.parametrize("after", ["due", "ahead", "nothing"])
def test_a_waiting_record_replaced_by_a_damaged_one_is_skipped_and_the_wait_ends(
        tmp_path: Path, kind: str, after: str) -> None:
    """The damaged record is named and skipped as any such; the record after it is tried
    at once (not when the one replaced was to be tried again), and, if it is ahead too,
    waits in its own name; with none after it, the session is not said gone."""
    now_ms = int(time.time() * 1000)
    then_ms = {"due": [now_ms - 4000], "ahead": [now_ms + 7_200_000], "nothing": []}[after]
    a = turn_records(A, [now_ms - 5000, now_ms + 3_600_000, *then_ms])
    write_a(tmp_path, kind, a)
    told: list[str] = []
    with EventStore.open("memory:", clock_drift_max_ms=DRIFT_MS) as store:
        bridge, _sink, folder = waiting_bridge(tmp_path, store, told, Clock())
        try:
            [waits] = one_pass(bridge).waiting
            if kind == "db":
                with sqlite3.connect(database_path(tmp_path)) as db:
                    db.execute("PRAGMA ignore_check_constraints = ON")
                    db.execute("UPDATE transcript_events SET event_json = '{not json', "
                               "event_zstd = NULL WHERE session_id = ? AND seq = 2", (A,))
                db.close()
                damaged, next_where = f"session {A}, seq 2: ", f"session {A}, seq 3: "
            else:
                path = tmp_path / "agents/main/sessions" / f"{A}.jsonl"
                lines = path.read_bytes().split(b"\n")
                at = len(lines[0]) + len(lines[1]) + 2
                lines[2] = b"{not json"
                path.write_bytes(b"\n".join(lines))
                damaged = f"{A}.jsonl, line at byte {at}: "
                next_where = f"{A}.jsonl, line at byte {at + len(lines[2]) + 1}: "
            tally = one_pass(bridge)  # before the record replaced was to be tried again
            [problem] = tally.problems
            assert damaged in problem and "not JSON" in problem
            assert not any("taken it now" in text or GONE in text for text in told)
            done = saved_cursor(tmp_path, store)
            if after != "ahead":
                assert tally.waiting == [] and tally.records == len(then_ms)
                end = len(a) if kind == "db" else path.stat().st_size
                assert done == {f"{'db' if kind == 'db' else 'jsonl'}:{A}": end}
            else:
                [anew] = tally.waiting
                assert next_where in anew and anew != waits
            said = len(told)
            one_pass(bridge)
            assert len(told) == said and saved_cursor(tmp_path, store) == done
        finally:
            folder.close()


@pytest.mark.parametrize("held", ["due", "ahead"])
def test_a_waiting_transcript_cut_shorter_is_read_from_its_start_and_waits_anew(
        tmp_path: Path, held: str) -> None:
    """Its file cut shorter than where it was read up to (replaced) is read from its
    start: the wait for the old record ends, said, and what the file holds is tried at
    once (not when the old record was to be tried again); a record ahead in it waits,
    named where it is now. Nothing names the old record as taken."""
    now_ms = int(time.time() * 1000)
    a = turn_records(A, [now_ms - 5000, now_ms - 4000, now_ms + 3_600_000])
    path = write_jsonl(tmp_path, KEY_A, A, a)
    cut_at = sum(len(json.dumps(record)) + 1 for record in a[:3])
    told: list[str] = []
    with EventStore.open("memory:", clock_drift_max_ms=DRIFT_MS) as store:
        clock = Clock()
        bridge, _sink, folder = waiting_bridge(tmp_path, store, told, clock)
        try:
            [waits] = one_pass(bridge).waiting
            old = f"{A}.jsonl, line at byte {cut_at}: "
            assert old in waits and saved_cursor(tmp_path, store) == {f"jsonl:{A}": cut_at}
            if held == "due":
                last = {"type": "message", "id": "000affff", "parentId": a[1]["id"],
                        "timestamp": iso_ms(now_ms - 3000),
                        "message": {"role": "user", "content": "t", "timestamp": 0}}
            else:
                last = {**a[3], "parentId": a[1]["id"]}
            # The header and first turn as they were, then a record after them; cut
            # shorter than where the file was read up to.
            rest = [a[0], a[1], last] if held == "due" else [a[0], last]
            path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in rest))
            size = path.stat().st_size
            assert size < cut_at
            tally = one_pass(bridge)  # before the old record was to be tried again
            [ended] = [text for text in told if "the wait ends" in text]
            assert ended.startswith(f"{path}, line at byte {cut_at}: ")
            assert ended.endswith("read again from line at byte 0")
            assert ended.count(str(path)) == 1
            # OpenClaw deleted that record: said, not counted with what a pass skipped.
            assert tally.problems == []
            if held == "due":
                assert tally.waiting == [] and tally.records == len(rest)
                assert saved_cursor(tmp_path, store) == {f"jsonl:{A}": size}
            else:
                at = len(json.dumps(a[0])) + 1
                [anew] = tally.waiting
                assert f"{A}.jsonl, line at byte {at}: " in anew
                assert saved_cursor(tmp_path, store) == {f"jsonl:{A}": at}
            said = len(told)
            clock.now_s += 3600
            one_pass(bridge, only_changed=False)
            assert len(told) == said  # said once; nothing taken, nothing new
            assert not any("taken it now" in text for text in told)
        finally:
            folder.close()


def test_a_waiting_row_deleted_lets_the_row_after_it_in_at_once(tmp_path: Path) -> None:
    """The row that waits deleted (not damaged), the row after it already due: the wait
    ends, said as the row's, and that row is taken at the next look (not when the
    deleted one was to be tried again); nothing names the deleted row as taken."""
    now_ms = int(time.time() * 1000)
    a = turn_records(A, [now_ms - 5000, now_ms + 3_600_000, now_ms - 4000])
    write_a(tmp_path, "db", a)
    told: list[str] = []
    with EventStore.open("memory:", clock_drift_max_ms=DRIFT_MS) as store:
        bridge, _sink, folder = waiting_bridge(tmp_path, store, told, Clock())
        try:
            [waits] = one_pass(bridge).waiting
            assert f"session {A}, seq 2: " in waits
            with sqlite3.connect(database_path(tmp_path)) as db:
                db.execute("DELETE FROM transcript_events WHERE session_id = ? AND seq = 2",
                           (A,))
            db.close()
            tally = one_pass(bridge)  # before the deleted row was to be tried again
            assert tally.waiting == []
            assert tally.records == 1  # seq 3
            assert saved_cursor(tmp_path, store) == {f"db:{A}": len(a)}
            assert not any("taken it now" in text or GONE in text for text in told)
            [ended] = [text for text in told if "the wait ends" in text]
            assert ended.startswith(f"{database_path(tmp_path)}, session {A}, seq 2: its "
                                    "row is gone (deleted)")
            assert ended.endswith("read on from seq 3")
            assert ended.count(str(database_path(tmp_path))) == 1
            # OpenClaw deleted that record: said, not counted with what a pass skipped.
            assert tally.problems == []
            said = len(told)
            one_pass(bridge, only_changed=False)
            assert len(told) == said
        finally:
            folder.close()


@pytest.mark.parametrize("kind", ["db", "jsonl"])
def test_a_waiting_record_removed_from_its_session_is_not_said_gone_with_it(
        tmp_path: Path, kind: str) -> None:
    """The waiting row deleted, the last of its session (its earlier rows still there),
    or the waiting transcript emptied (its file still there): the wait ends, said as
    what happened, not as the whole session gone from the store."""
    now_ms = int(time.time() * 1000)
    a = turn_records(A, [now_ms - 5000, now_ms + 3_600_000])
    write_a(tmp_path, kind, a)
    told: list[str] = []
    with EventStore.open("memory:", clock_drift_max_ms=DRIFT_MS) as store:
        bridge, _sink, folder = waiting_bridge(tmp_path, store, told, Clock())
        try:
            [waits] = one_pass(bridge).waiting
            cursor, stored = saved_cursor(tmp_path, store), dict(store.version)
            if kind == "db":
                assert f"session {A}, seq {len(a) - 1}: " in waits
                with sqlite3.connect(database_path(tmp_path)) as db:
                    db.execute("DELETE FROM transcript_events WHERE session_id = ? AND "
                               "seq = ?", (A, len(a) - 1))
                db.close()
                what = "its row is gone (deleted), the last of its session"
            else:
                (tmp_path / "agents/main/sessions" / f"{A}.jsonl").write_bytes(b"")
                what = "its transcript was emptied"
            tally = one_pass(bridge)
            [ended] = [text for text in told if "wait ends" in text or GONE in text]
            assert tally.waiting == [] and tally.problems == []  # said, not counted
            where = waits.split(": ")[0]
            assert ended.startswith(f"{where}: {what}") and "; the wait ends" in ended
            assert "gone from the store" not in ended
            assert saved_cursor(tmp_path, store) == cursor and dict(store.version) == stored
            said = len(told)
            one_pass(bridge, only_changed=False)
            assert len(told) == said
        finally:
            folder.close()


def test_a_waiting_transcript_cut_shorter_to_a_damaged_line_says_its_wait_ends(
        tmp_path: Path) -> None:
    """Cut shorter than where it was read up to, the file now begins with a line that
    does not read: that line is not the record that waited, so the wait's end is said
    as the cut's (the line is skipped and said as any such), not passed over."""
    now_ms = int(time.time() * 1000)
    a = turn_records(A, [now_ms - 5000, now_ms - 4000, now_ms + 3_600_000])
    path = write_jsonl(tmp_path, KEY_A, A, a)
    cut_at = sum(len(json.dumps(record)) + 1 for record in a[:3])
    told: list[str] = []
    with EventStore.open("memory:", clock_drift_max_ms=DRIFT_MS) as store:
        bridge, _sink, folder = waiting_bridge(tmp_path, store, told, Clock())
        try:
            [waits] = one_pass(bridge).waiting
            old = f"{A}.jsonl, line at byte {cut_at}: "
            assert old in waits
            path.write_bytes(b"{not json\n" + json.dumps(a[0]).encode() + b"\n")
            assert path.stat().st_size < cut_at
            tally = one_pass(bridge)
            [ended] = [text for text in told if "the wait ends" in text]
            [problem] = tally.problems  # the damaged line, not the wait's end
            assert f"{A}.jsonl, line at byte 0: " in problem and "not JSON" in problem
            assert old in ended and "cut short or replaced" in ended
            assert ended.endswith("read again from line at byte 0")
            assert tally.waiting == []
            assert saved_cursor(tmp_path, store) == {f"jsonl:{A}": path.stat().st_size}
        finally:
            folder.close()


@pytest.mark.parametrize("waits", [True, False])
def test_rows_appended_after_a_sessions_end_was_removed_are_read(
        tmp_path: Path, waits: bool) -> None:
    """OpenClaw numbers a session's next row after its last one: rows removed from its
    end (a rewrite of it, or the waiting row and the one before it deleted) give their
    seqs again. The rows appended then are read, though before where it was read up to."""
    now_ms = int(time.time() * 1000)
    a = turn_records(A, [now_ms - 5000, now_ms - 4000,
                         now_ms + 3_600_000 if waits else now_ms - 3000])
    gateway = FakeGateway(tmp_path)
    gateway.open_session(KEY_A, A)
    gateway.add(A, a)
    told: list[str] = []
    with EventStore.open("memory:", clock_drift_max_ms=DRIFT_MS) as store:
        bridge, _sink, folder = waiting_bridge(tmp_path, store, told, Clock())
        try:
            assert len(one_pass(bridge).waiting) == int(waits)
            assert saved_cursor(tmp_path, store) == {f"db:{A}": len(a) - int(waits)}
            gateway.db.execute("DELETE FROM transcript_events WHERE session_id = ? AND "
                               "seq >= ?", (A, len(a) - 2))
            one_pass(bridge)
            assert saved_cursor(tmp_path, store) == {f"db:{A}": len(a) - 2}
            later = {"type": "message", "id": "000affff", "parentId": a[1]["id"],
                     "timestamp": iso_ms(now_ms - 2000),
                     "message": {"role": "user", "content": "again", "timestamp": 0}}
            gateway.add(A, [later])  # seq len(a) - 2 again
            tally = one_pass(bridge)
            assert tally.records == 1 and tally.waiting == [] and tally.problems == []
            assert saved_cursor(tmp_path, store) == {f"db:{A}": len(a) - 1}
        finally:
            folder.close()
            gateway.close()


@pytest.mark.parametrize("kind", ["db", "jsonl"])
@pytest.mark.parametrize("held", ["due", "ahead"])
def test_a_waiting_record_replaced_by_another_ends_the_wait(
        tmp_path: Path, kind: str, held: str) -> None:
    """The waiting record rewritten in place as a different record that reads (OpenClaw
    rewrites a session's end at the same seqs): the first record read is not the one that
    waited. The wait ends, said and counted once; the new record is tried at once (not
    when the old one was to be tried again) and, ahead too, waits in its own name."""
    now_ms = int(time.time() * 1000)
    a = turn_records(A, [now_ms - 5000, now_ms + 3_600_000])
    write_a(tmp_path, kind, a)
    told: list[str] = []
    with EventStore.open("memory:", clock_drift_max_ms=DRIFT_MS) as store:
        bridge, _sink, folder = waiting_bridge(tmp_path, store, told, Clock())
        try:
            [waits] = one_pass(bridge).waiting
            when = now_ms - 4000 if held == "due" else now_ms + 7_200_000
            other = {**a[2], "id": "000affff", "timestamp": iso_ms(when),
                     "message": {"role": "user", "content": "instead", "timestamp": when}}
            if kind == "db":
                with contextlib.closing(sqlite3.connect(database_path(tmp_path))) as db, db:
                    db.execute("UPDATE transcript_events SET event_json = ? WHERE "
                               "session_id = ? AND seq = 2", (json.dumps(other), A))
                entry, end = f"db:{A}", len(a)
            else:
                path = write_jsonl(tmp_path, KEY_A, A, [*a[:2], other])
                entry, end = f"jsonl:{A}", path.stat().st_size
            tally = one_pass(bridge)  # before the old record was to be tried again
            [ended] = [text for text in told if "the wait ends" in text]
            assert ended.startswith(waits.split(": ")[0] + ": ")
            assert tally.problems == []  # OpenClaw replaced it: said, not counted
            assert not any("taken it now" in text for text in told)
            if held == "due":
                assert tally.waiting == [] and tally.records == 1
                assert saved_cursor(tmp_path, store)[entry] == end
            else:
                [anew] = tally.waiting
                assert anew != waits and iso_ms(when) in anew
            said = len(told)
            one_pass(bridge, only_changed=False)
            assert len(told) == said
        finally:
            folder.close()
