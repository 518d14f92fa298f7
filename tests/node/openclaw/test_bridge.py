"""One import pass into an embedded store: cursors, re-imports, damaged records."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from crdt.log.cursors import read_cursor, save_cursor
from crdt.log.projection import rebuild
from crdt.log.store import EventStore
from node.cli.openclaw_sink import EmbeddedSink
from node.openclaw import sqlite
from node.openclaw.bridge import Bridge
from node.openclaw.records import records_for
from node.openclaw.session_names import session_key_for
from node.openclaw.state import StateFolder, cursor_name
from node.openclaw.tally import Tally
from tests.node.openclaw import transcript
from tests.node.openclaw.support import DATA, cli, from_sqlite, look_as_python_314
from tests.support.openclaw import FakeGateway, turn_records, write_jsonl

SID, KEY = transcript.SESSION_ID, transcript.SESSION_KEY
COPY = "d6122d99-743c-43ec-ae7b-5cc2965385df"  # the session id sessions.rewind gave rich's copy


def run(state: Path, store: EventStore) -> tuple[Tally, list[str]]:
    told: list[str] = []
    folder = StateFolder(state)
    try:
        tally = asyncio.run(Bridge(folder, EmbeddedSink(store), told.append).run_pass())
    finally:
        folder.close()
    return tally, told


def test_import_twice_imports_nothing_new(tmp_path: Path) -> None:
    gateway = FakeGateway(tmp_path)
    gateway.open_session(KEY, SID)
    records = transcript.records()
    gateway.add(SID, records[:6])
    gateway.add(SID, records[6:], zstd=True)
    with EventStore.open("memory:") as store:
        first, told = run(tmp_path, store)
        assert told == [] and first.records == len(records)
        assert first.created == first.events > len(records)
        events = store.get_events(session_key_for("main", KEY))
        assert len(events) == first.events
        assert records_for(e.event for e in events) == json.loads(json.dumps(records))
        second, _ = run(tmp_path, store)
        assert (second.records, second.events) == (0, 0)
        assert read_cursor(store, cursor_name(tmp_path.resolve(), "main")) == {
            f"db:{SID}": len(records)}


def test_a_crash_before_the_cursor_was_saved_stores_nothing_twice(tmp_path: Path) -> None:
    FakeGateway(tmp_path).add(SID, transcript.records())
    with EventStore.open("memory:") as store:
        first, _ = run(tmp_path, store)
        head = store.head
        save_cursor(store, cursor_name(tmp_path.resolve(), "main"), {})  # as if lost
        again, _ = run(tmp_path, store)
        assert again.records == first.records and again.events == first.events
        assert again.created == 0 and store.head == head


def test_the_same_records_on_two_devices_are_the_same_events(tmp_path: Path) -> None:
    """One transcript in the SQLite store on device A, and copied as JSONL to B."""
    records = transcript.records()
    FakeGateway(tmp_path / "a").open_session(KEY, SID)
    FakeGateway(tmp_path / "a").add(SID, records, zstd=True)
    write_jsonl(tmp_path / "b", KEY, SID, records)
    with EventStore.open("memory:") as a, EventStore.open("memory:") as b:
        run(tmp_path / "a", a)
        run(tmp_path / "b", b)
        key = session_key_for("main", KEY)
        assert [e.event.id for e in a.get_events(key)] == [e.event.id for e in b.get_events(key)]


def test_damaged_records_are_named_and_the_rest_imported(tmp_path: Path) -> None:
    records = transcript.records()
    gateway = FakeGateway(tmp_path)
    gateway.open_session(KEY, SID)
    gateway.add(SID, records[:3])
    gateway.add_row(SID, 3, None, b"garbage")
    gateway.add(SID, records[3:])
    unknown = {"type": "hologram", "id": "77777777", "parentId": None,
               "timestamp": "2026-12-01T12:00:00.000Z", "beam": 1}
    future = {**records[0], "id": "old-1", "version": 99}  # a newer transcript version
    write_jsonl(tmp_path, "agent:main:old", "old-1", [future, records[1], unknown],
                tail=b'{"type": "message", "id": "cut')
    with EventStore.open("memory:") as store:
        tally, told = run(tmp_path, store)
        assert tally.records == len(records) + 3
        assert len(tally.problems) == 2 and set(tally.problems + tally.warnings) == set(told)
        assert "seq 3: event_zstd does not decode as zstd" in tally.problems[0]
        assert "old-1.jsonl, line at byte" in tally.problems[1]
        assert "ends without a newline" in tally.problems[1]
        [newer, warning] = tally.warnings
        assert "old-1.jsonl, line at byte 0: " in newer and "transcript version 99" in newer
        assert "old-1.jsonl" in warning and "'hologram'" in warning
        assert len(store.get_events(session_key_for("main", KEY))) > len(records)
        # Nothing is read twice, and the damaged row is not retried.
        again, _ = run(tmp_path, store)
        assert again.records == 0 and [p for p in again.problems if "seq 3" in p] == []


def test_a_transcript_no_index_names_takes_a_key_of_its_session_id(tmp_path: Path) -> None:
    records = transcript.records()[:4]
    path = write_jsonl(tmp_path, KEY, SID, records)
    (path.parent / "sessions.json").unlink()  # the .jsonl copied alone
    with EventStore.open("memory:") as store:
        tally, told = run(tmp_path, store)
        assert tally.records == 4 and told == []
        alone = store.get_events(f"agent:main:{SID}")
        assert records_for(e.event for e in alone) == json.loads(json.dumps(records))
        assert [s.session_key for s in store.list_sessions()] == [f"agent:main:{SID}"]


def _import_rich(tmp_path: Path, store: EventStore) -> None:
    """The recorded ``rich`` store, imported as ``clawsync openclaw import`` does."""
    agent = tmp_path / "agents" / "main" / "agent"
    agent.mkdir(parents=True)
    shutil.copy(DATA / "rich" / "openclaw-agent.sqlite", agent / "openclaw-agent.sqlite")
    tally, told = run(tmp_path, store)
    assert told == [] and tally.problems == []


def test_a_rewinds_copy_reads_once_and_exports_equal(tmp_path: Path) -> None:
    """``sessions.rewind`` copied r1, record ids included, under a new session id of the
    same key: the projection shows the conversation once, r1 stays the peer, and each
    session id exports back equal to its source."""
    sources = {ref.session_id: records
               for ref, records in from_sqlite(DATA / "rich" / "openclaw-agent.sqlite")}
    with EventStore.open("memory:") as store:
        _import_rich(tmp_path, store)
        key = session_key_for("main", "agent:main:explicit:r1")
        events = [e.event for e in store.get_events(key)]
        view = rebuild(key, events)
        seen = [(m.sort_key[:2], m.role, m.content) for m in view.messages]
        assert len(seen) == len(set(seen)) == 16
        assert view.header.peer_id == "r1"
        users = [r for r in sources["r1"] if r["type"] == "message"
                 and r["message"]["role"] == "user"]
        assert view.header.message_count == len(users) == 7
        for session_id in ("r1", COPY):
            assert records_for(events, session_id) == sources[session_id]


def test_a_rewinds_copy_read_in_small_pieces_maps_the_same(tmp_path: Path,
                                                          monkeypatch: Any) -> None:
    """Read a few rows at a time (the copy spans reads, and the cursor is saved between
    them, as across a restart), the events are the same."""
    with EventStore.open("memory:") as whole:
        _import_rich(tmp_path / "whole", whole)
        key = session_key_for("main", "agent:main:explicit:r1")
        expected = sorted(e.event.id for e in whole.get_events(key))
    monkeypatch.setattr(sqlite, "ROWS_PER_READ", 3)
    with EventStore.open("memory:") as pieces:
        _import_rich(tmp_path / "pieces", pieces)
        assert sorted(e.event.id for e in pieces.get_events(key)) == expected
        kept = read_cursor(pieces, cursor_name((tmp_path / "pieces").resolve(), "main"))
        assert kept is not None and kept[f"copy:db:{COPY}"] == 1796283647793  # its header


#: A name longer than a file system takes (255 bytes): a link to it fails every look
#: through it with an OSError (ENAMETOOLONG), as another user's closed folder fails with
#: PermissionError; root looks into a folder whatever its mode, so the tests use this.
TOO_LONG = "x" * 300


@pytest.mark.parametrize("python", ["this", "3.14"])
def test_an_agent_folder_that_cannot_be_read_is_skipped_and_the_others_imported(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, python: str) -> None:
    """Named, also where ``Path.exists`` and ``Path.is_dir`` say False for a folder that
    cannot be looked into (Python 3.14 on), rather than taken for an agent without
    stores."""
    if python == "3.14":
        look_as_python_314(monkeypatch)
    records = transcript.records()
    FakeGateway(tmp_path, "a").add(SID, records)
    broken = tmp_path / "agents" / "b"
    broken.mkdir()
    (broken / "agent").symlink_to(TOO_LONG)
    told: list[str] = []
    with EventStore.open("memory:") as store:
        folder = StateFolder(tmp_path)
        bridge = Bridge(folder, EmbeddedSink(store), told.append)
        try:
            first = asyncio.run(bridge.run_pass(only_changed=True))
            assert first.records == len(records)
            [problem] = first.problems
            assert problem.startswith(f"{tmp_path}/agents/b: cannot be read (File name too "
                                      "long); this agent's stores are skipped")
            assert told == [problem]
            # Said once: the following looks say nothing of it.
            for _look in range(2):
                assert asyncio.run(bridge.run_pass(only_changed=True)) == Tally()
            assert told == [problem]
            # Mended: said, and read.
            (broken / "agent").unlink()
            FakeGateway(tmp_path, "b").add(SID, records[:3])
            mended = asyncio.run(bridge.run_pass(only_changed=True))
            assert mended.records == 3 and mended.problems == []
            assert told[1:] == [f"{tmp_path}/agents/b: can be read again; its stores are read"]
            # Broken again (its sessions folder, now): said again.
            (broken / "sessions").symlink_to(TOO_LONG)
            again = asyncio.run(bridge.run_pass(only_changed=True))
            assert again.problems == [problem] and told[2:] == [problem]
        finally:
            folder.close()
        assert len(store.list_sessions()) == 2  # a's and b's


def test_an_agent_folder_read_again_before_it_holds_a_store_is_said_read_once_it_does(
        tmp_path: Path) -> None:
    """Readable again with no store yet: nothing said then; once a store appears, it is
    said read (the last word of it is no longer that it is skipped). Removed, it is
    forgotten: unreadable anew, it is named again."""
    FakeGateway(tmp_path, "a").add(SID, transcript.records())
    broken = tmp_path / "agents" / "b"
    broken.symlink_to(TOO_LONG)
    told: list[str] = []
    unreadable = f"{tmp_path}/agents/b: cannot be read (File name too long)"
    with EventStore.open("memory:") as store:
        folder = StateFolder(tmp_path)
        bridge = Bridge(folder, EmbeddedSink(store), told.append)
        try:
            asyncio.run(bridge.run_pass(only_changed=True))
            assert len(told) == 1 and told[0].startswith(unreadable)
            broken.unlink()
            broken.mkdir()
            assert asyncio.run(bridge.run_pass(only_changed=True)) == Tally()
            assert len(told) == 1
            FakeGateway(tmp_path, "b").add(SID, transcript.records()[:3])
            assert asyncio.run(bridge.run_pass(only_changed=True)).records == 3
            assert told[1:] == [f"{tmp_path}/agents/b: can be read again; its stores are read"]
            # Unreadable, then removed, then unreadable again: named twice.
            shutil.rmtree(broken)
            broken.symlink_to(TOO_LONG)
            asyncio.run(bridge.run_pass(only_changed=True))
            broken.unlink()
            asyncio.run(bridge.run_pass(only_changed=True))
            broken.symlink_to(TOO_LONG)
            asyncio.run(bridge.run_pass(only_changed=True))
            assert [text.startswith(unreadable) for text in told[2:]] == [True, True]
        finally:
            folder.close()


@pytest.mark.parametrize("python", ["this", "3.14"])
def test_an_agent_asked_for_whose_folder_cannot_be_read_is_named_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, python: str) -> None:
    """``import --agent b``, b's folder there but not to be looked into: the import
    names it unreadable and fails, rather than saying there is no agent b."""
    if python == "3.14":
        look_as_python_314(monkeypatch)
    FakeGateway(tmp_path, "a").add(SID, transcript.records())
    (tmp_path / "agents" / "b").symlink_to(TOO_LONG)
    result = cli("import", "--state-dir", str(tmp_path), "--agent", "b",
                 "--data-dir", str(tmp_path / "data"))
    assert result.exit_code != 0 and "no agent" not in result.output
    assert f"{tmp_path}/agents/b: cannot be read (File name too long)" in result.output


def test_watch_sees_a_transcript_in_a_subfolder_grow(tmp_path: Path) -> None:
    """A transcript the index places in a subfolder (``sub/one.jsonl``) grows: nothing
    of the folder's own entries changes, yet ``watch`` reads its new records."""
    now_ms = int(time.time() * 1000)
    sessions = tmp_path / "agents" / "main" / "sessions"
    (sessions / "sub").mkdir(parents=True)
    records = turn_records(SID, [now_ms - 5000, now_ms - 4000])
    path = sessions / "sub" / "one.jsonl"
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in records[:2]))
    (sessions / "sessions.json").write_text(
        json.dumps({KEY: {"sessionId": SID, "sessionFile": "sub/one.jsonl"}}))
    with EventStore.open("memory:") as store:
        folder = StateFolder(tmp_path)
        bridge = Bridge(folder, EmbeddedSink(store))
        try:
            assert asyncio.run(bridge.run_pass(only_changed=True)).records == 2
            asyncio.run(bridge.run_pass(only_changed=True))
            assert asyncio.run(bridge.run_pass(only_changed=True)) == Tally()
            with path.open("ab") as file:
                file.write(json.dumps(records[2]).encode() + b"\n")
            seen = asyncio.run(bridge.run_pass(only_changed=True))
            assert seen.records == 1 and seen.created > 0
        finally:
            folder.close()


@pytest.mark.parametrize("how", ["in place", "replaced"])
def test_watch_sees_sessions_json_rewritten_at_its_size_with_its_time_put_back(
        tmp_path: Path, how: str) -> None:
    """``sessions.json`` comes to name another file for a session, the only change in
    the folder, its size and modification time as they were (a restore, a sync tool):
    its change time (or inode) tells, and ``watch`` reads the file it names now."""
    now_ms = int(time.time() * 1000)
    sessions = tmp_path / "agents" / "main" / "sessions"
    (sessions / "sub").mkdir(parents=True)
    one, two = turn_records(SID, [now_ms - 5000]), turn_records(SID, [now_ms - 5000,
                                                                      now_ms - 4000])
    for name, records in (("one", one), ("two", two)):
        (sessions / "sub" / f"{name}.jsonl").write_bytes(
            b"".join(json.dumps(r).encode() + b"\n" for r in records))
    index = sessions / "sessions.json"
    index.write_text(json.dumps({KEY: {"sessionId": SID, "sessionFile": "sub/one.jsonl"}}))
    with EventStore.open("memory:") as store:
        folder = StateFolder(tmp_path)
        bridge = Bridge(folder, EmbeddedSink(store))
        try:
            assert asyncio.run(bridge.run_pass(only_changed=True)).records == len(one)
            assert asyncio.run(bridge.run_pass(only_changed=True)) == Tally()
            info = index.stat()
            text = index.read_bytes().replace(b"sub/one.jsonl", b"sub/two.jsonl")
            if how == "in place":
                with index.open("r+b") as file:
                    file.write(text)
                os.utime(index, ns=(info.st_atime_ns, info.st_mtime_ns))
            else:
                new = sessions / "sessions.json.new"
                new.write_bytes(text)
                os.utime(new, ns=(info.st_atime_ns, info.st_mtime_ns))
                new.replace(index)
            now = index.stat()
            assert (now.st_size, now.st_mtime_ns) == (info.st_size, info.st_mtime_ns)
            seen = asyncio.run(bridge.run_pass(only_changed=True))
            assert seen.records == len(two) and seen.created > 0  # its second turn
        finally:
            folder.close()
        assert records_for(e.event for e in store.get_events(
            session_key_for("main", KEY))) == two
