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
from prometheus_client.parser import text_string_to_metric_families

from crdt.log.cursors import CURSOR_ENTRIES_MAX
from node.openclaw.cursor_room import unmarked
from node.openclaw.session_keys import SESSION_KEYS_MAX, keys_name
from node.openclaw.session_names import session_key_for
from node.openclaw.state import cursor_name
from tests.support.openclaw import replaced_anew, turn_records, write_jsonl
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


def record_ids(node: NodeProcess, key: str) -> set[str]:
    """The ids of the records whose events the node holds under OpenClaw's ``key``."""
    events = node.get(f"/v1/sessions/{quote(session_key_for('main', key), safe='')}"
                      "/events?limit=1000")["events"]
    return {event["kind"]["openclaw"]["record"]["id"] for event in events}


def cursors_saved(node: NodeProcess) -> float:
    """How many cursors ``node`` was sent so far (``PUT /v1/cursors/{name}``, its
    ``/metrics``)."""
    with urllib.request.urlopen(node.url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == "clawsync_http_requests_total"
               and sample.labels.get("route") == "/v1/cursors/{name}"
               and sample.labels.get("method") == "PUT")


def unnamed_file(tmp_path: Path, count: int, first: int
                 ) -> tuple[Path, list[dict[str, Any]], bytes]:
    """An agent's state folder whose index does not name OLD's file yet, and the file
    holding the first ``first`` of ``count`` turns' records, a second apart: the folder,
    every record, and the bytes written."""
    state = tmp_path / "openclaw"
    folder = state / "agents" / "main" / "sessions"
    folder.mkdir(parents=True)
    now_ms = int(time.time() * 1000)
    written = turn_records(OLD, [now_ms - 9000 + 1000 * at for at in range(count)])
    data = b"".join(json.dumps(record).encode() + b"\n" for record in written[:first])
    (folder / f"{OLD}.jsonl").write_bytes(data)
    return state, written, data


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
    assert set(unmarked(cursor)) == {f"jsonl:{OLD}", f"jsonl:{NEW}"}
    kept = {} if dropped == "cursor reset" else {  # the old one's entry, and its tail mark
        entry: at for entry, at in cursor.items() if entry.endswith(NEW)}
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


@pytest.mark.parametrize("reset_unnamed", [False, True])
def test_a_file_read_before_its_index_named_it_read_again_stores_nothing(
        node: NodeProcess, tmp_path: Path, reset_unnamed: bool) -> None:
    """OpenClaw wrote the file before naming it in ``sessions.json``: its first records
    went under its session id, the rest under the key, also when the cursor was reset
    before it was named. Read again from its start (the cursor reset), each goes where it
    went: nothing is stored twice."""
    state, written, _first = unnamed_file(tmp_path, 3, 2)
    imported(node, state)
    path = f"/v1/cursors/{quote(cursor_name(state.resolve(), 'main'), safe='')}"
    if reset_unnamed:
        put_cursor(node, path, {})
    write_jsonl(state, KEY, OLD, written)  # named now, and two records more
    imported(node, state)
    stored = sessions(node)
    assert sorted(stored) == sorted([session_key_for("main", OLD), session_key_for("main", KEY)])
    assert not record_ids(node, KEY) & record_ids(node, OLD)  # none stored twice
    put_cursor(node, path, {})
    said = imported(node, state)
    assert f"{len(written)} records read: 0 new events" in said
    assert sessions(node) == stored


def test_a_file_replaced_by_a_shorter_one_goes_under_the_key_its_index_names(
        node: NodeProcess, tmp_path: Path) -> None:
    """Its key applied from a byte of the file before it, read under its id up to there:
    the shorter file is read from its start, and every record of it goes under the key
    the index names, none under the session id."""
    state, written, _first = unnamed_file(tmp_path, 3, 3)
    imported(node, state)
    write_jsonl(state, KEY, OLD, written)  # named now, a record more
    imported(node, state)
    under_id = record_ids(node, OLD)
    replaced = [{**record, "id": f"new{n}"} for n, record in enumerate(written[1:3])]
    replaced_anew(write_jsonl(state, KEY, OLD, replaced))
    assert "2 records read: 2 new events" in imported(node, state)
    assert record_ids(node, OLD) == under_id
    assert {"new0", "new1"} <= record_ids(node, KEY)


def test_a_file_only_cut_shorter_keeps_what_was_read_of_it_under_its_id(
        node: NodeProcess, tmp_path: Path) -> None:
    """Read under its id, then named and grown, then its end cut (the same file, shorter
    than its offset): read again from its start, its first records go under the id as
    they did, and nothing is stored a second time under the key."""
    state, written, first = unnamed_file(tmp_path, 2, 2)
    imported(node, state)
    path = write_jsonl(state, KEY, OLD, written)  # named now, a record more
    imported(node, state)
    before = sessions(node)
    inode = path.stat().st_ino
    with path.open("r+b") as file:
        file.truncate(len(first))
    assert path.stat().st_ino == inode
    said = imported(node, state)
    assert "2 records read: 0 new events, 2 already stored" in said, said
    assert sessions(node) == before


def test_a_file_rewritten_shorter_in_place_goes_under_the_key_its_index_names(
        node: NodeProcess, tmp_path: Path) -> None:
    """Read under its id up to a byte, then named and grown, then rewritten in place
    with other records, shorter (the same device and inode, but not only cut: its first
    record changed): read from its start as another file, every record of it under the
    key its index names, none taken for what was read under the id."""
    state, written, _first = unnamed_file(tmp_path, 2, 2)
    imported(node, state)
    path = write_jsonl(state, KEY, OLD, written)  # named now, a record more
    imported(node, state)
    under_id = record_ids(node, OLD)
    inode = path.stat().st_ino
    replaced = [{**record, "id": f"new{n}"} for n, record in enumerate(written[1:3])]
    data = b"".join(json.dumps(record).encode() + b"\n" for record in replaced)
    assert len(data) < path.stat().st_size
    with path.open("r+b") as file:
        file.write(data)
        file.truncate()
    assert path.stat().st_ino == inode
    said = imported(node, state)
    assert "2 records read: 2 new events" in said, said
    assert record_ids(node, OLD) == under_id
    assert {"new0", "new1"} <= record_ids(node, KEY)


def test_at_the_entry_limit_a_file_entry_goes_before_any_key(
        node: NodeProcess, tmp_path: Path) -> None:
    """Every key remembered has a byte (``SESSION_KEYS_MAX`` of them: the node's
    ``CURSOR_ENTRIES_MAX`` entries), and the file of the last one read gives one entry
    more: what is dropped is that file's entry, not the key learnt first."""
    state, written, _first = unnamed_file(tmp_path, 2, 2)
    name = keys_name(cursor_name(state.resolve(), "main"))
    older = SESSION_KEYS_MAX - 1
    cursor: dict[str, int] = {}
    for n in range(older):
        session_id = f"k{n}"
        cursor[f"{len(session_id)}:{session_id}:agent:main:{session_id}"] = n
        cursor[f"10+{len(session_id)}:{session_id}"] = n
    assert len(cursor) + 2 == CURSOR_ENTRIES_MAX
    put_cursor(node, f"/v1/cursors/{quote(name, safe='')}", cursor)
    imported(node, state)  # read under its id: a mark and its file
    write_jsonl(state, KEY, OLD, written)  # named now: a key, a byte, a file
    imported(node, state)
    saved = node.get(f"/v1/cursors/{quote(name, safe='')}")["cursor"]
    assert len(saved) <= CURSOR_ENTRIES_MAX
    assert {entry: order for entry, order in saved.items() if entry in cursor} == cursor
    assert f"{len(OLD)}:{OLD}:{KEY}" in saved
    assert not [entry for entry in saved if "@" in entry.partition(":")[0]]


def test_at_the_entry_limit_an_import_with_nothing_new_sends_no_keys(
        node: NodeProcess, tmp_path: Path) -> None:
    """The keys at the node's entry limit, the file of the last session read left out
    for room: the next run reads that file again (a new process, which did not leave it
    out), and the keys it would save are those the node holds: no cursor is sent."""
    state, written, _first = unnamed_file(tmp_path, 2, 2)
    name = keys_name(cursor_name(state.resolve(), "main"))
    cursor: dict[str, int] = {}
    for n in range(SESSION_KEYS_MAX - 1):
        session_id = f"k{n}"
        cursor[f"{len(session_id)}:{session_id}:agent:main:{session_id}"] = n
        cursor[f"10+{len(session_id)}:{session_id}"] = n
    put_cursor(node, f"/v1/cursors/{quote(name, safe='')}", cursor)
    imported(node, state)
    write_jsonl(state, KEY, OLD, written)  # named now: a key, a byte, a file left out
    imported(node, state)
    saved = node.get(f"/v1/cursors/{quote(name, safe='')}")["cursor"]
    assert f"{len(OLD)}:{OLD}:{KEY}" in saved and len(saved) == CURSOR_ENTRIES_MAX
    sent = cursors_saved(node)
    said = imported(node, state)
    assert "0 records read" in said or "0 new events" in said, said
    assert cursors_saved(node) == sent
    assert node.get(f"/v1/cursors/{quote(name, safe='')}")["cursor"] == saved
