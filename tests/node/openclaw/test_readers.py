"""Reading an OpenClaw state folder: both layouts, damaged input, and never in OpenClaw's
way (no lock held between reads)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import BinaryIO

import pytest

from node.openclaw import jsonl
from node.openclaw.export import export
from node.openclaw.jsonl import AgentSessions
from node.openclaw.records import Transcript
from node.openclaw.source import Problem, Record
from node.openclaw.sqlite import ROWS_PER_READ, AgentDatabase
from node.openclaw.state import StateFolder, StateFolderError, check_state_folder
from tests.node.openclaw import transcript
from tests.node.openclaw.support import cli, imported, look_as_python_314
from tests.support.openclaw import (
    RECORDED,
    FakeGateway,
    RecordedGateway,
    database_path,
    write_jsonl,
)

SID, KEY = transcript.SESSION_ID, transcript.SESSION_KEY


def reader(state: Path) -> AgentDatabase:
    return AgentDatabase(database_path(state), "main", "openclaw-agent.sqlite")


def read_all(source: AgentDatabase | AgentSessions,
             cursor: dict[str, int]) -> tuple[list[Record], list[Problem]]:
    """Read until nothing new, moving the cursor as the bridge does; each problem once."""
    records: list[Record] = []
    problems: list[Problem] = []
    while True:
        items = list(source.read(cursor))
        moved = False
        for item in items:
            if isinstance(item, Record):
                records.append(item)
            elif item not in problems:
                problems.append(item)
            if item.entry is not None and cursor.get(item.entry) != item.after:
                cursor[item.entry] = item.after
                moved = True
        if not moved:
            return records, problems


def test_sqlite_rows_plain_and_zstd_come_back_as_written(tmp_path: Path) -> None:
    gateway = FakeGateway(tmp_path)
    gateway.open_session(KEY, SID)
    records = transcript.records()
    gateway.add(SID, records[:4])
    gateway.add(SID, records[4:], zstd=True)
    cursor: dict[str, int] = {}
    got, problems = read_all(reader(tmp_path), cursor)
    assert problems == []
    assert [r.value for r in got] == json.loads(json.dumps(records))
    assert {(r.session_key, r.session_id, r.agent_id) for r in got} == {(KEY, SID, "main")}
    assert cursor == {f"db:{SID}": len(records)}
    # From the cursor on, only what is new.
    gateway.add(SID, [{"type": "label", "id": "ffffffff", "parentId": None,
                       "timestamp": "2026-12-01T11:00:00.000Z", "targetId": "1", "label": "x"}])
    again, _ = read_all(reader(tmp_path), cursor)
    assert [r.value["id"] for r in again] == ["ffffffff"]


def test_many_rows_are_read_a_bounded_transaction_at_a_time(tmp_path: Path) -> None:
    gateway = FakeGateway(tmp_path)
    header = transcript.records()[0]
    label = {"type": "label", "id": "0", "parentId": None,
             "timestamp": "2026-12-01T11:00:00.000Z", "targetId": "1", "label": "x"}
    gateway.add(SID, [header] + [dict(label, id=f"{n:08x}") for n in range(ROWS_PER_READ + 7)])
    source = reader(tmp_path)
    first = list(source.read({}))
    assert len(first) == ROWS_PER_READ
    got, _ = read_all(source, {})
    assert len(got) == ROWS_PER_READ + 8


def test_a_reader_holds_no_lock_between_reads(tmp_path: Path) -> None:
    """After a read, OpenClaw can still write and even checkpoint its WAL completely,
    which a read transaction left open would prevent."""
    gateway = FakeGateway(tmp_path)
    gateway.add(SID, transcript.records()[:3])
    source = reader(tmp_path)
    assert source.changed()
    assert len(list(source.read({}))) == 3
    gateway.add(SID, transcript.records()[3:5])
    busy, _pages, _moved = gateway.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    assert busy == 0
    assert source.changed()  # the commit is seen
    assert not source.changed()
    gateway.add(SID, transcript.records()[5:6])  # nor does looking hold a lock
    assert gateway.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
    assert len(list(source.read({f"db:{SID}": 3}))) == 3


def test_a_zstd_row_that_does_not_decode_is_named_and_skipped(tmp_path: Path) -> None:
    gateway = FakeGateway(tmp_path)
    records = transcript.records()
    gateway.add(SID, records[:2])
    gateway.add_row(SID, 2, None, b"\x28\xb5\x2f\xfd not a frame")
    gateway.add_row(SID, 3, "{not json", None)
    gateway.add(SID, records[2:4])
    got, problems = read_all(reader(tmp_path), {})
    assert [r.value["id"] for r in got] == [r["id"] for r in records[:4]]
    assert [str(p).split(": ", 1)[0] for p in problems] == [
        f"openclaw-agent.sqlite, session {SID}, seq 2",
        f"openclaw-agent.sqlite, session {SID}, seq 3"]
    assert "does not decode as zstd" in problems[0].message
    assert "not JSON" in problems[1].message


def test_a_store_being_created_or_migrated_is_read_again_later(tmp_path: Path) -> None:
    path = database_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")  # OpenClaw has created the file, not yet its tables
    source = reader(tmp_path)
    [problem] = list(source.read({}))
    assert problem.entry is None
    assert "OpenClaw may be creating or migrating it" in str(problem)
    assert str(problem).startswith("openclaw-agent.sqlite: ")
    gateway = FakeGateway(tmp_path)  # now it has
    gateway.add(SID, transcript.records()[:2])
    assert len(list(source.read({}))) == 2


def test_an_unreadable_store_is_named(tmp_path: Path) -> None:
    path = database_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not a database file at all" * 100)
    [problem] = list(reader(tmp_path).read({}))
    assert problem.entry is None and "cannot read it" in problem.message


def test_jsonl_layout_with_a_damaged_line_and_one_still_being_written(tmp_path: Path) -> None:
    records = transcript.records()
    path = write_jsonl(tmp_path, KEY, SID, records[:3], tail=b"{broken\n")
    with path.open("ab") as file:
        file.write(b"".join(json.dumps(r).encode() + b"\n" for r in records[3:5]))
        file.write(json.dumps(records[5]).encode()[:20])  # the writer is mid-line
    source = AgentSessions(path.parent, "main", "sessions")
    cursor: dict[str, int] = {}
    got, problems = read_all(source, cursor)
    assert [r.value for r in got] == json.loads(json.dumps(records[:5]))
    assert {r.session_key for r in got} == {KEY}
    [broken, partial] = problems
    assert str(broken).startswith(f"sessions/{SID}.jsonl, line at byte ")
    assert "not JSON" in broken.message and broken.entry is not None
    assert "ends without a newline" in partial.message and partial.entry is None
    with path.open("ab") as file:  # the writer finishes the line
        file.write(json.dumps(records[5]).encode()[20:] + b"\n")
    got, problems = read_all(source, cursor)
    assert [r.value["id"] for r in got] == [records[5]["id"]] and problems == []


def test_a_jsonl_file_moved_away_while_read(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_jsonl(tmp_path, KEY, SID, transcript.records()[:2])
    source = AgentSessions(path.parent, "main", "sessions")
    real_open = jsonl.opened

    def archived_meanwhile(file: Path) -> BinaryIO:
        if file == path:  # `openclaw doctor --session-sqlite import` archives it
            raise FileNotFoundError(file)
        return real_open(file)

    monkeypatch.setattr(jsonl, "opened", archived_meanwhile)
    problems = list(source.read({}))
    assert len(problems) == 1 and isinstance(problems[0], Problem)
    assert "moved away" in problems[0].message and problems[0].entry is None
    monkeypatch.undo()
    path.unlink()  # gone for good, its entry left in sessions.json: nothing to read
    assert list(source.read({})) == []


def test_state_folder_checks(tmp_path: Path) -> None:
    with pytest.raises(StateFolderError, match="does not exist"):
        check_state_folder(tmp_path / "nope")
    (tmp_path / "file").write_text("")
    with pytest.raises(StateFolderError, match="is not a folder"):
        check_state_folder(tmp_path / "file")
    with pytest.raises(StateFolderError, match="holds no agents/ folder"):
        check_state_folder(tmp_path)
    FakeGateway(tmp_path, "main")
    write_jsonl(tmp_path, "k", "s", transcript.records()[:1], agent_id="other")
    state = StateFolder(check_state_folder(tmp_path))
    assert [(agent, type(source).__name__) for agent, source in state.sources() or []] == [
        ("main", "AgentDatabase"), ("other", "AgentSessions")]
    assert [agent for agent, _ in StateFolder(tmp_path, ["other"]).sources() or []] == [
        "other"]
    assert StateFolder(tmp_path / "nope").sources() == []  # no agents folder: no stores


#: A link whose target's name is longer than any file name may be: looking through it
#: fails with ENAMETOOLONG, which is neither "there" nor "not there".
UNREADABLE_LINK_TARGET = "x" * 300


@pytest.mark.parametrize("python_314", [False, True], ids=["3.11", "3.14"])
@pytest.mark.parametrize("which", ["state", "agents"])
def test_a_state_folder_that_cannot_be_looked_into_is_a_usage_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, which: str, python_314: bool) -> None:
    """Neither a traceback (3.11 to 3.13 raise) nor "does not exist" (3.14 says False):
    exit 2, naming the folder and why."""
    if python_314:
        look_as_python_314(monkeypatch)
    state = tmp_path / "state"
    if which == "state":
        state.symlink_to(UNREADABLE_LINK_TARGET)
    else:
        state.mkdir()
        (state / "agents").symlink_to(UNREADABLE_LINK_TARGET)
    for args in (["import"], ["export", KEY]):
        result = cli(*args, "--state-dir", str(state), "--data-dir", str(tmp_path / "data"))
        assert result.exit_code == 2, result.output
        shown = state if which == "state" else state / "agents"
        assert f"{shown} cannot be read (File name too long)" in result.output
        assert "does not exist" not in result.output and "Traceback" not in result.output


def test_an_export_tells_when_openclaws_store_cannot_be_looked_at(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whether OpenClaw's store holds the session already cannot be told: said so, not
    taken for "it does not" (as ``exists()`` would from Python 3.14 on)."""
    data, b = imported(tmp_path)
    (b / "agents" / "main").mkdir()
    (b / "agents" / "main" / "agent").symlink_to(UNREADABLE_LINK_TARGET)
    look_as_python_314(monkeypatch)
    result = cli("export", KEY, "--state-dir", str(b), "--data-dir", str(data))
    assert result.exit_code == 0, result.output
    assert (f"whether OpenClaw's store already holds session {SID} cannot be told "
            f"({b}/agents/main/agent/openclaw-agent.sqlite: File name too long)"
            ) in result.output


@pytest.mark.parametrize("scenario", sorted(p.name for p in RECORDED.iterdir() if p.is_dir()))
def test_a_recorded_openclaw_store_and_its_older_layout_read_the_same(
        tmp_path: Path, scenario: str) -> None:
    RecordedGateway(tmp_path, scenario).replay(10_000)
    rows = json.loads((RECORDED / scenario / "rows.json").read_text())
    written = {row["session_id"] for row in rows["transcript_events"]}
    keys = {w["session_id"]: w["session_key"] for w in rows["session_windows"]
            if w["session_id"] in written}
    from_db, problems = read_all(reader(tmp_path), {})
    assert problems == []
    assert [(r.session_id, r.value) for r in from_db] == [
        (row["session_id"], row["record"]) for row in rows["transcript_events"]]
    assert {r.session_id: r.session_key for r in from_db} == keys
    legacy = AgentSessions(RECORDED / scenario / "legacy", "main", "sessions")
    from_jsonl, problems = read_all(legacy, {})
    assert problems == []
    exported = {r.session_id for r in from_jsonl}
    assert [(r.session_id, r.value) for r in from_jsonl] == [
        (r.session_id, r.value) for r in from_db if r.session_id in exported]
    assert {r.session_id: r.session_key for r in from_jsonl} == {
        sid: key for sid, key in keys.items() if sid in exported}


def test_jsonl_is_read_in_bounded_pieces_and_an_oversized_line_skipped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import node.openclaw.jsonl as jsonl
    monkeypatch.setattr(jsonl, "BYTES_PER_READ", 300)
    monkeypatch.setattr(jsonl, "RECORD_BYTES_MAX", 1000)
    records = transcript.records()
    huge = {"type": "custom", "id": "99999999", "parentId": None,
            "timestamp": "2026-12-01T12:00:00.000Z", "customType": "x", "data": "y" * 2000}
    path = write_jsonl(tmp_path, KEY, SID, [*records[:6], huge, *records[6:8]])
    source = AgentSessions(path.parent, "main", "sessions")
    first = list(source.read({}))
    assert len(first) < 6  # a piece, not the whole file
    got, problems = read_all(source, {})
    assert [r.value["id"] for r in got] == [r["id"] for r in records[:6] + records[6:8]]
    [problem] = problems
    assert "is longer than 1000 bytes; skipped" in problem.message


def test_a_store_replaced_by_a_new_file_is_reopened(tmp_path: Path) -> None:
    FakeGateway(tmp_path).add(SID, transcript.records()[:3])
    source = reader(tmp_path)
    assert source.changed() and len(list(source.read({}))) == 3
    path = database_path(tmp_path)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    assert source.changed()
    [problem] = list(source.read({}))
    assert "is gone" in problem.message and problem.entry is None
    FakeGateway(tmp_path).add("other", transcript.records()[:2])  # a new file
    assert source.changed()
    assert [r.session_id for r in source.read({}) if isinstance(r, Record)] == ["other"] * 2


def test_a_damaged_sessions_json_holds_its_transcripts_back(tmp_path: Path) -> None:
    """Read while sessions.json is damaged (being rewritten), a transcript would land
    under a key made of its session id, for good (the cursor moves on): it waits for an
    index that reads, and then comes under OpenClaw's key."""
    path = write_jsonl(tmp_path, KEY, SID, transcript.records()[:3])
    index = path.parent / "sessions.json"
    whole = index.read_bytes()
    index.write_bytes(whole[:len(whole) // 2])
    source = AgentSessions(path.parent, "main", "sessions")
    cursor: dict[str, int] = {}
    got, problems = read_all(source, cursor)
    assert got == [] and cursor == {}
    [problem] = problems
    assert str(problem).startswith("sessions/sessions.json: cannot be read")
    assert problem.entry is None and "read again on the next pass" in problem.message
    index.write_bytes(whole)
    got, problems = read_all(source, cursor)
    assert problems == [] and [r.session_key for r in got] == [KEY] * 3


def exported(state: Path, key: str, session_id: str, records: list[dict[str, object]],
             session_file: str | None = None) -> Path:
    """``records`` under ``key`` and ``session_id`` as ``export`` writes them, into the
    file ``session_file`` if the key's entry names one already (older OpenClaw's forum
    topic); the agent's sessions folder."""
    sessions = state / "agents" / "main" / "sessions"
    records = [{**records[0], "id": session_id}, *records[1:]]
    if session_file is not None:  # its header there, as OpenClaw began it
        sessions.mkdir(parents=True, exist_ok=True)
        (sessions / session_file).write_text(json.dumps(records[0]) + "\n")
        index = json.loads((sessions / "sessions.json").read_text()) \
            if (sessions / "sessions.json").exists() else {}
        index[key] = {"sessionId": session_id, "updatedAt": 1,
                      "sessionFile": str(sessions / session_file)}
        (sessions / "sessions.json").write_text(json.dumps(index))
    export(state, Transcript("main", key, session_id, records), "main", 2)
    return sessions


def test_exported_files_are_read_once_under_their_entries(tmp_path: Path) -> None:
    """A session id with spaces around it is written to '<trimmed>.jsonl', a forum
    topic's into '<id>-topic-<n>.jsonl': each file is the entry's, read once under its
    key and id, not a second time as a session of its own."""
    records = transcript.records()[:3]
    topic_key = "agent:main:telegram:group:-1001:topic:42"
    exported(tmp_path, KEY, "\u3000s1 ", records)
    sessions = exported(tmp_path, topic_key, SID, records, f"{SID}-topic-42.jsonl")
    assert sorted(path.name for path in sessions.iterdir()) \
        == [f"{SID}-topic-42.jsonl", "s1.jsonl", "sessions.json"]
    got, problems = read_all(AgentSessions(sessions, "main", "sessions"), {})
    assert problems == []
    assert sorted((r.session_key, r.session_id, r.value["id"]) for r in got) == sorted(
        (key, session_id, record_id) for key, session_id in
        [(KEY, "\u3000s1 "), (topic_key, SID)]
        for record_id in [session_id, *(r["id"] for r in records[1:])])


def test_cursors_of_an_earlier_reading_neither_read_again_nor_skip(tmp_path: Path) -> None:
    """Read before, an exported file moved both its entry's cursor and its own name's
    ('jsonl:s1', 'jsonl:<id>-topic-42'): the entry's goes on where it was, the other is
    left; a record written since is read, once."""
    records = transcript.records()[:4]
    sessions = exported(tmp_path, KEY, " s1 ", records[:3])
    size = (sessions / "s1.jsonl").stat().st_size
    cursor = {"jsonl: s1 ": size, "jsonl:s1": size}
    source = AgentSessions(sessions, "main", "sessions")
    assert read_all(source, cursor) == ([], [])
    with (sessions / "s1.jsonl").open("ab") as file:
        file.write(json.dumps(records[3]).encode() + b"\n")
    got, _ = read_all(source, cursor)
    assert [(r.session_key, r.session_id, r.value["id"]) for r in got] \
        == [(KEY, " s1 ", records[3]["id"])]
    assert cursor["jsonl:s1"] == size  # the earlier reading's, no longer moved


def test_a_file_no_entry_names_is_still_its_own_session(tmp_path: Path) -> None:
    """Beside entries naming their files, one no entry names is read under its name;
    one named like an entry's session id whose entry names another file is not (its
    cursor is the entry's; OpenClaw archives it unread)."""
    records = transcript.records()[:2]
    sessions = exported(tmp_path, KEY, "s1", records, "renamed.jsonl")
    (sessions / "loose.jsonl").write_bytes((sessions / "renamed.jsonl").read_bytes())
    (sessions / "s1.jsonl").write_bytes(b'{"type": "session", "id": "stale"}\n')
    got, _ = read_all(AgentSessions(sessions, "main", "sessions"), {})
    assert sorted({(r.session_key, r.session_id) for r in got}, key=str) \
        == [("agent:main:explicit:s1", "s1"), (None, "loose")]
    assert "stale" not in {r.value["id"] for r in got}


def lines_at(path: Path, records: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in records))


def tagged(session_id: str, tag: str) -> list[dict[str, object]]:
    """A header for ``session_id`` and two records, the first of them ``tag``'s."""
    records = transcript.records()[:3]
    return [{**records[0], "id": session_id}, {**records[1], "id": tag}, records[2]]


@pytest.mark.parametrize("session_file, read", [
    # OpenClaw's resolvePathWithinSessionsDir refuses these: it reads '<id>.jsonl'.
    pytest.param("../escape.jsonl", "in-s1-file", id="leading-out"),
    pytest.param("{outside}", "in-s1-file", id="absolute-elsewhere"),
    pytest.param("sub/../../escape.jsonl", "in-s1-file", id="out-through-a-subfolder"),
    # Within the folder but not there: OpenClaw reads nothing for that entry.
    pytest.param("gone.jsonl", None, id="not-there"),
    # Within the folder, in a subfolder: read.
    pytest.param("sub/t.jsonl", "in-sub-file", id="subfolder"),
    # Written where the state folder was before: the same path in this folder.
    pytest.param("/old/home/agents/main/sessions/sub/t.jsonl", "in-sub-file",
                 id="folder-moved"),
])
def test_an_entry_is_read_from_the_file_openclaw_reads_for_it(
        tmp_path: Path, session_file: str, read: str | None) -> None:
    sessions = tmp_path / "agents" / "main" / "sessions"
    lines_at(sessions / "s1.jsonl", tagged("s1", "in-s1-file"))
    outside = sessions.parent / "escape.jsonl"
    lines_at(outside, tagged("s1", "in-outside-file"))
    lines_at(sessions / "sub" / "t.jsonl", tagged("s1", "in-sub-file"))
    (sessions / "sessions.json").write_text(json.dumps({KEY: {
        "sessionId": "s1", "updatedAt": 1,
        "sessionFile": session_file.format(outside=outside)}}))
    got, problems = read_all(AgentSessions(sessions, "main", "sessions"), {})
    assert problems == []
    assert [r.value["id"] for r in got if r.value["id"].startswith("in-")] \
        == ([read] if read else [])
    assert {(r.session_key, r.session_id) for r in got} <= {(KEY, "s1")}


def test_a_cursor_of_another_file_is_not_read_from(tmp_path: Path) -> None:
    """Read before from '<id>.jsonl' (its cursor 'jsonl:<id>'), the entry now names a
    forum topic's file: that file is read from its start, not from the other file's
    offset, which would skip its records or begin in the middle of a line."""
    sessions = tmp_path / "agents" / "main" / "sessions"
    records = tagged(SID, "in-topic-file")
    lines_at(sessions / f"{SID}.jsonl", [{**records[0], "stale": "x" * 7}])
    topic = f"{SID}-topic-42.jsonl"
    lines_at(sessions / topic, records)
    (sessions / "sessions.json").write_text(json.dumps({KEY: {
        "sessionId": SID, "updatedAt": 1, "sessionFile": topic}}))
    cursor = {"jsonl:" + SID: (sessions / f"{SID}.jsonl").stat().st_size}
    got, problems = read_all(AgentSessions(sessions, "main", "sessions"), cursor)
    assert problems == []
    assert [r.value["id"] for r in got] == [r["id"] for r in records]
    assert cursor["jsonl:" + SID] == (sessions / f"{SID}.jsonl").stat().st_size
