"""A transcript file its index no longer names (after ``/new``: the key names the new
session) read again from its start goes under the key it was read under before, not
under its session id: ``clawsync openclaw import`` against a real node, its cursor reset
or the file's entry dropped between two imports, stores no second conversation."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from node.openclaw.mapping import session_key_for
from node.openclaw.session_keys import keys_name
from node.openclaw.state import cursor_name
from tests.support.openclaw import turn_records, write_jsonl
from tests.support.processes import NodeProcess, run_cli

pytestmark = pytest.mark.integration

KEY = "agent:main:main"
OLD, NEW = "0a1b2c3d-old-session", "4e5f6a7b-new-session"


def records(session_id: str) -> list[dict[str, Any]]:
    now_ms = int(time.time() * 1000)
    return turn_records(session_id, [now_ms - 9000, now_ms - 8000])


def imported(node: NodeProcess, state: Path) -> str:
    done = run_cli(node, "openclaw", "import", "--state-dir", str(state))
    assert done.returncode == 0, done.stderr
    return done.stderr


def put_cursor(node: NodeProcess, path: str, cursor: dict[str, int]) -> None:
    """Save a cursor, as a user resetting it would (the test node has no token)."""
    request = urllib.request.Request(node.url + path, json.dumps({"cursor": cursor}).encode(),
                                     {"Content-Type": "application/json"}, method="PUT")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def sessions(node: NodeProcess) -> dict[str, int]:
    """The node's sessions, each with how many events it holds."""
    rows = node.get("/v1/sessions?limit=1000")["sessions"]
    return {row["session_key"]: len(node.get(
        f"/v1/sessions/{quote(row['session_key'], safe='')}/events?limit=1000")["events"])
        for row in rows}


@pytest.mark.parametrize("dropped", ["cursor reset", "entry dropped"])
def test_a_file_no_longer_named_read_again_lands_in_its_session(
        node: NodeProcess, tmp_path: Path, dropped: str) -> None:
    state = tmp_path / "openclaw"
    write_jsonl(state, KEY, OLD, records(OLD))
    imported(node, state)
    write_jsonl(state, KEY, NEW, records(NEW))  # /new: the key names the new session now
    imported(node, state)
    stored = sessions(node)
    assert list(stored) == [session_key_for("main", KEY)]
    path = f"/v1/cursors/{quote(cursor_name(state.resolve(), 'main'), safe='')}"
    cursor = node.get(path)["cursor"]
    assert set(cursor) == {f"jsonl:{OLD}", f"jsonl:{NEW}"}
    kept = {} if dropped == "cursor reset" else {f"jsonl:{NEW}": cursor[f"jsonl:{NEW}"]}
    put_cursor(node, path, kept)
    said = imported(node, state)
    read = len(records(OLD)) + (len(records(NEW)) if dropped == "cursor reset" else 0)
    assert f"{read} records read: 0 new events" in said
    assert sessions(node) == stored
    assert node.get(path)["cursor"] == cursor


def test_the_keys_are_kept_beside_the_cursor(node: NodeProcess, tmp_path: Path) -> None:
    state = tmp_path / "openclaw"
    write_jsonl(state, KEY, OLD, records(OLD))
    imported(node, state)
    name = keys_name(cursor_name(state.resolve(), "main"))
    assert node.get(f"/v1/cursors/{quote(name, safe='')}")["cursor"] == {
        f"{len(OLD)}:{OLD}:{KEY}": 0}


def test_a_file_read_before_its_index_named_it_read_again_stores_nothing(
        node: NodeProcess, tmp_path: Path) -> None:
    """OpenClaw wrote the file before naming it in ``sessions.json``: its first records
    went under its session id, the rest under the key. Read again from its start (the
    cursor reset), each goes where it went: nothing is stored twice."""
    state = tmp_path / "openclaw"
    folder = state / "agents" / "main" / "sessions"
    folder.mkdir(parents=True)
    now_ms = int(time.time() * 1000)
    written = turn_records(OLD, [now_ms - 9000, now_ms - 8000, now_ms - 7000])
    (folder / f"{OLD}.jsonl").write_bytes(
        b"".join(json.dumps(record).encode() + b"\n" for record in written[:2]))
    imported(node, state)
    write_jsonl(state, KEY, OLD, written)  # named now, and two records more
    imported(node, state)
    stored = sessions(node)
    assert sorted(stored) == sorted([session_key_for("main", OLD), session_key_for("main", KEY)])
    path = f"/v1/cursors/{quote(cursor_name(state.resolve(), 'main'), safe='')}"
    put_cursor(node, path, {})
    said = imported(node, state)
    assert f"{len(written)} records read: 0 new events" in said
    assert sessions(node) == stored
