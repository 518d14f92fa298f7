"""``clawsync openclaw import`` and ``watch`` meeting a record dated ahead of the node's
clock (the gateway's clock fast): never skipped, the cursor never past it, the rest
imported, and the record taken once the node's clock has caught up."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from node.openclaw.state import cursor_name
from tests.support.cluster import all_events, wait_until
from tests.support.openclaw import cursor_read_to, iso_ms, turn_records, watching, write_sessions
from tests.support.processes import NodeProcess, run_cli

pytestmark = pytest.mark.integration

#: The node's bound (``[limits] clock_drift_max_ms``), small so that the test's record
#: dated ahead is taken within seconds.
DRIFT_MS = 1000
#: How far ahead of the clock the record is dated: the node takes it about this less
#: DRIFT_MS later, after the import and the watch's first look have met it.
AHEAD_MS = 15_000
SID, KEY = "5a5a5a5a-0000-4000-8000-000000000001", "agent:main:explicit:fast"
OTHER_SID, OTHER_KEY = "5a5a5a5a-0000-4000-8000-000000000002", "agent:main:explicit:other"


def record_ids(node: NodeProcess) -> set[str]:
    return {e["kind"].get("openclaw", {}).get("record", {}).get("id")
            for e in all_events(node)} - {None}


def test_a_record_dated_ahead_of_the_node_waits_and_is_never_lost(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text(f"[limits]\nclock_drift_max_ms = {DRIFT_MS}\n")
    state = tmp_path / "openclaw"
    ahead = f"{state}/agents/main/agent/openclaw-agent.sqlite, session {SID}, seq 3"

    with NodeProcess(tmp_path, extra_args=["--config", str(config)]) as node:
        # Written once the node runs: its start, however slow, eats none of AHEAD_MS.
        now_ms = int(time.time() * 1000)
        # Session "fast": two turns, one from a clock ahead, and one after it.
        fast = turn_records(SID, [now_ms - 3000, now_ms - 2000, now_ms + AHEAD_MS, now_ms - 1000])
        other = turn_records(OTHER_SID, [now_ms - 3000, now_ms - 2000])
        write_sessions(state, {(KEY, SID): fast, (OTHER_KEY, OTHER_SID): other})
        waiting = {r["id"] for r in fast[3:]}
        done = run_cli(node, "openclaw", "import", "--state-dir", str(state))
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        assert f"{ahead}: dated {iso_ms(now_ms + AHEAD_MS)}" in done.stderr
        assert f"which takes events at most {DRIFT_MS} ms ahead" in done.stderr
        assert "1 record is dated ahead of the node's clock (named above)" in done.stderr
        # What came before it, and the other session, are imported; it is not lost:
        # the cursor stays before it.
        held = record_ids(node)
        assert held >= {r["id"] for r in fast[:3] + other}
        assert not held & waiting
        name = cursor_name(state, "main")
        cursor = node.get(f"/v1/cursors/{quote(name, safe='')}")["cursor"]
        assert [after for entry, after in cursor.items() if entry.endswith(SID)] == [3]

        with watching(node, state) as (watch, said):
            said.wait_for(f"{ahead}: dated")
            assert watch.poll() is None  # it keeps watching
            said.wait_for(f"{ahead}: the node has taken it now", AHEAD_MS / 1000 + 30)
            wait_until(lambda: record_ids(node) >= waiting, 30, "the waiting records")
            wait_until(lambda: cursor_read_to(node, state, {SID: len(fast)}), 30,
                       "the cursor past them")
        assert sum(f"{ahead}: dated" in line for line in said.seen) == 1  # said once
        again = run_cli(node, "openclaw", "import", "--state-dir", str(state))
        assert again.returncode == 0 and "0 records read" in again.stderr, again.stderr


def test_a_wait_that_ends_is_said_and_not_counted_as_what_was_skipped(tmp_path: Path
                                                                     ) -> None:
    """``watch``: a waiting row deleted, with a row after it (read on from there) or as
    the last of its session: the wait's end is named once, its file once, and not counted
    in the pass's summary with what was skipped (OpenClaw deleted the row: nothing for
    the user to mend), as a session read again because it got shorter is not."""
    config = tmp_path / "node.toml"
    config.write_text(f"[limits]\nclock_drift_max_ms = {DRIFT_MS}\n")
    state = tmp_path / "openclaw"
    store = f"{state}/agents/main/agent/openclaw-agent.sqlite"
    with NodeProcess(tmp_path, extra_args=["--config", str(config)]) as node:
        now_ms = int(time.time() * 1000)
        hour_ms = 3_600_000
        fast = turn_records(SID, [now_ms - 3000, now_ms + hour_ms, now_ms - 1000])
        other = turn_records(OTHER_SID, [now_ms - 3000, now_ms + hour_ms])
        write_sessions(state, {(KEY, SID): fast, (OTHER_KEY, OTHER_SID): other})
        with watching(node, state) as (watch, said):
            said.wait_for(f"{store}, session {SID}, seq 2: dated")
            said.wait_for(f"{store}, session {OTHER_SID}, seq 2: dated")
            said.wait_for("2 records waiting for the node's clock")  # the pass has ended
            with contextlib.closing(sqlite3.connect(store)) as db, db:
                db.execute("DELETE FROM transcript_events WHERE session_id = ? AND seq = 2",
                           (SID,))
            ended = said.wait_for("the wait ends")
            assert ended == (f"{store}, session {SID}, seq 2: its row is gone (deleted); "
                             "the wait ends, and its session is read on from seq 3")
            summary = said.wait_for("1 record read:")
            # The other session's record still waits, and is counted.
            assert summary.endswith("1 record read: 1 new event, 0 already stored, "
                                    "0 records or files skipped, 1 record waiting for "
                                    "the node's clock"), summary
            with contextlib.closing(sqlite3.connect(store)) as db, db:
                db.execute("DELETE FROM transcript_events WHERE session_id = ? AND seq = 2",
                           (OTHER_SID,))
            ended = said.wait_for("the wait ends")
            assert ended.startswith(f"{store}, session {OTHER_SID}, seq 2: its row is gone "
                                    "(deleted), the last of its session")
            assert ended.count(store) == 1
            # A pass that reads or skips nothing prints no summary: a row appended after
            # it is read by that pass or the next, whose summary skips nothing either.
            with contextlib.closing(sqlite3.connect(store)) as db, db:
                db.execute("INSERT INTO transcript_events (session_id, seq, event_json, "
                           "created_at) VALUES (?, 4, ?, 0)",
                           (SID, json.dumps({**fast[3], "id": "0000beef"})))
            summary = said.wait_for("1 record read:")
            assert summary.endswith("1 record read: 1 new event, 0 already stored, "
                                    "0 records or files skipped"), summary
            assert not any("1 record or file skipped" in line for line in said.seen)
            assert watch.poll() is None  # it keeps watching
