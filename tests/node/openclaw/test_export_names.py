"""``clawsync openclaw export`` writes only where OpenClaw keeps its sessions: the agent
id and the session id, which any device of the cluster may have written into events,
become a folder and a file name only if they are names OpenClaw makes, and a symbolic
link out of ``agents/`` is not followed. A refused transcript writes nothing, anywhere."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from crdt.events import parse_event
from crdt.log.store import EventStore
from node.main import main
from node.openclaw.export import (
    AGENT_ID_CHARS_MAX,
    FILE_NAME_BYTES_MAX,
    SESSION_ID_CHARS_MAX,
    SHOWN_CHARS_MAX,
    ExportRefused,
    export,
    transcript_bytes,
)
from node.openclaw.mapping import SessionRef, events_for, session_key_for
from node.openclaw.records import Transcript, transcripts_for
from tests.node.openclaw import transcript

KEY = transcript.SESSION_KEY


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, ["openclaw", *args], catch_exceptions=False)


def stored(data: Path, agent_id: str, session_id: str) -> str:
    """A transcript's events, as OpenClaw's import would make them but for its ids,
    written into the data folder ``data`` (as a device of the cluster may write them);
    the clawsync session key they are under."""
    records = transcript.records()[:3]
    records[0] = {**records[0], "id": session_id}
    with EventStore.open(data) as store:
        for record in records:
            for event in events_for(record, SessionRef(agent_id, KEY, session_id)).events:
                store.append(event)
    return session_key_for(agent_id, KEY)


def files_under(folder: Path) -> set[Path]:
    return {Path(root) / name for root, folders, names in os.walk(folder)
            for name in [*folders, *names]}


def nothing_written(tmp_path: Path, before: set[Path], data: Path, state: Path) -> None:
    """No file appeared under ``tmp_path`` since ``before`` but the node's own in
    ``data``: none outside, none in the state folder's ``agents``."""
    assert {path for path in files_under(tmp_path) - before
            if not path.is_relative_to(data)} == set()
    assert list((tmp_path / "outside").iterdir()) == []
    assert list((state / "agents").iterdir()) == []


def a_transcript(agent_id: str = "main", session_id: str = transcript.SESSION_ID
                 ) -> Transcript:
    records = transcript.records()
    records[0] = {**records[0], "id": session_id}
    events = [event for record in records
              for event in events_for(record, SessionRef("main", KEY, "s")).events]
    (made,) = transcripts_for(events)
    return Transcript(agent_id, KEY, session_id, made.records)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """An OpenClaw state folder with an agents/ folder, and beside it (in ``tmp_path``)
    a folder ``outside`` an escape would write into."""
    (tmp_path / "state" / "agents").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    return tmp_path / "state"


ESCAPING_SESSION_IDS = [
    pytest.param("../../../../outside/x", id="up-and-out"),
    pytest.param("../x", id="up-one"),
    pytest.param("a/b", id="slash"),
    pytest.param("a\\b", id="backslash"),
    pytest.param("..", id="dotdot"),
    pytest.param(".", id="dot"),
    pytest.param(".hidden", id="dot-first"),
    pytest.param("", id="empty"),
    pytest.param("a\x00b", id="nul"),
    pytest.param("a\x1b]0;owned\x07", id="escape-sequence"),
    pytest.param("a\nb", id="newline"),
    # Trimmed as JavaScript trims, not as Python's strip: these stay, and are refused.
    pytest.param("\x85s1", id="next-line-first"),
    pytest.param("\u180es1", id="mongolian-vowel-separator-first"),
    pytest.param(" \u3000\n", id="only-spaces"),
    pytest.param("s 1", id="space"),
    pytest.param("s1\u202e", id="bidi-override"),
    pytest.param("e\u0301", id="not-nfc"),
    pytest.param("s\ud800", id="lone-surrogate"),
    pytest.param("x" * (SESSION_ID_CHARS_MAX + 1), id="too-many-characters"),
    # Within the characters, beyond the bytes: 3 bytes each.
    pytest.param("\u4e2d" * ((FILE_NAME_BYTES_MAX - len(".jsonl")) // 3 + 1),
                 id="too-many-bytes"),
    # OpenClaw's compaction checkpoints: ``validateSessionId`` refuses their names, in
    # either case; its listing of transcripts leaves out any uuid's shape (version 7).
    pytest.param("s1.checkpoint.0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0", id="checkpoint"),
    pytest.param("s1.CHECKPOINT.0F1E2D3C-4B5A-1968-B776-A5B4C3D2E1F0",
                 id="checkpoint-upper-case"),
    pytest.param("s1.checkpoint.0f1e2d3c-4b5a-7968-8776-a5b4c3d2e1f0",
                 id="checkpoint-of-uuid-7"),
]


@pytest.mark.parametrize("session_id", ESCAPING_SESSION_IDS)
def test_a_session_id_that_is_not_a_plain_name_writes_nothing(
        tmp_path: Path, state: Path, session_id: str) -> None:
    before = files_under(tmp_path)
    with pytest.raises(ExportRefused, match="is not one OpenClaw makes") as refused:
        export(state, a_transcript(session_id=session_id), "main", 1)
    assert "nothing was written" in str(refused.value)
    assert files_under(tmp_path) == before


def test_an_absolute_session_id_writes_nothing(tmp_path: Path, state: Path) -> None:
    before = files_under(tmp_path)
    with pytest.raises(ExportRefused, match="is not one OpenClaw makes"):
        export(state, a_transcript(session_id=str(tmp_path / "outside" / "x")), "main", 1)
    assert files_under(tmp_path) == before


@pytest.mark.parametrize("agent_id", [
    "..", ".", "../../outside", "a/b", "a\\b", "", "-main", "_main", "main agent", "m.a",
    "\u212a", "\u00e9", "x" * (AGENT_ID_CHARS_MAX + 1),
    # OpenClaw lowers an agent id for its folder's name: an upper-case one is no folder
    # it writes.
    "Work_2-b", "MAIN"])
def test_an_agent_id_that_is_not_a_plain_name_writes_nothing(
        tmp_path: Path, state: Path, agent_id: str) -> None:
    before = files_under(tmp_path)
    with pytest.raises(ExportRefused, match=r"^agent id .* is not one OpenClaw makes") \
            as refused:
        export(state, a_transcript(agent_id=agent_id), agent_id, 1)
    assert "OpenClaw names agent folders in lower case" in str(refused.value)
    assert files_under(tmp_path) == before


@pytest.mark.parametrize(("agent_id", "session_id"), [
    ("main", transcript.SESSION_ID),
    ("work_2-b", "s1"),
    ("main", "s1.checkpoint.x"),  # no uuid: not a compaction checkpoint's name
    ("x" * AGENT_ID_CHARS_MAX, "x" * SESSION_ID_CHARS_MAX),
    ("main", "\u00e9t\u00e9.2026_12-01"),  # letters of any script, NFC
    ("main", "\u0915\u093f"),  # a mark after the first character
    # The longest name in bytes: its temporary name (``.<name>.`` and random characters)
    # is cut to fit too.
    ("main", "\u4e2d" * ((FILE_NAME_BYTES_MAX - len(".jsonl")) // 3)),
])
def test_names_openclaw_makes_are_written(state: Path, agent_id: str, session_id: str) -> None:
    written = export(state, a_transcript(agent_id, session_id), agent_id, 1)
    assert written.path == state / "agents" / agent_id / "sessions" / f"{session_id}.jsonl"
    assert written.path.is_file()


@pytest.mark.parametrize("link", ["agents/main", "agents/main/sessions"])
def test_a_folder_linked_out_of_agents_is_not_written_into(
        tmp_path: Path, state: Path, link: str) -> None:
    """The names are fine, but a symbolic link leads elsewhere: not followed."""
    (state / link).parent.mkdir(parents=True, exist_ok=True)
    (state / link).symlink_to(tmp_path / "outside", target_is_directory=True)
    before = files_under(tmp_path)
    with pytest.raises(ExportRefused, match="through a symbolic link; nothing was written"):
        export(state, a_transcript(), "main", 1)
    assert files_under(tmp_path) == before
    assert list((tmp_path / "outside").iterdir()) == []


@pytest.mark.parametrize("name", ["sessions.json", f"{transcript.SESSION_ID}.jsonl"])
def test_a_file_linked_out_of_agents_is_neither_read_nor_written(
        tmp_path: Path, state: Path, name: str) -> None:
    """The folder is inside, but the index or the transcript is a link to a file
    outside: the index would be read and merged into, the transcript read and replaced;
    neither is, and the file outside stays as it was."""
    sessions = state / "agents" / "main" / "sessions"
    sessions.mkdir(parents=True)
    target = tmp_path / "outside" / "file"
    if name == "sessions.json":
        target.write_text(json.dumps({"someone:else": {"sessionId": "other"}}))
    else:  # the transcript's beginning: an export would continue it
        target.write_bytes(transcript_bytes(a_transcript().records[:2]))
    held = target.read_bytes()
    (sessions / name).symlink_to(target)
    before = files_under(tmp_path)
    with pytest.raises(ExportRefused, match="through a symbolic link; nothing was written"):
        export(state, a_transcript(), "main", 1)
    assert files_under(tmp_path) == before
    assert (sessions / name).is_symlink() and target.read_bytes() == held


def test_a_loop_of_links_is_refused(tmp_path: Path, state: Path) -> None:
    """agents/main linked to itself: Python 3.11's resolve() raises a RuntimeError,
    which must be a refusal like the others, not a traceback."""
    (state / "agents" / "main").symlink_to(state / "agents" / "main")
    before = files_under(tmp_path)
    with pytest.raises(ExportRefused, match="symbolic link loop; nothing was written"):
        export(state, a_transcript(), "main", 1)
    assert files_under(tmp_path) == before
    data = tmp_path / "data"
    session = stored(data, "main", "s1")
    result = cli("export", session, "--state-dir", str(state), "--data-dir", str(data))
    assert result.exit_code == 2, result.output
    assert "symbolic link loop; nothing was written" in result.output
    assert (state / "agents" / "main").is_symlink()


def test_a_state_folder_reached_through_a_link_is_written(tmp_path: Path, state: Path) -> None:
    """A link to the state folder itself (~/.openclaw on another disk) is no escape."""
    (tmp_path / "linked").symlink_to(state, target_is_directory=True)
    written = export(tmp_path / "linked", a_transcript(), "main", 1)
    assert (state / "agents" / "main" / "sessions" / written.path.name).is_file()


def test_the_cli_refuses_a_session_id_made_to_escape(tmp_path: Path, state: Path) -> None:
    """Through the command, from events in a data folder: exit 2, the id named escaped
    (it holds a terminal escape sequence), nothing written in the state folder nor
    where the id leads."""
    data = tmp_path / "data"
    hostile = "../../../../outside/x\x1b]0;owned\x07"
    session = stored(data, "main", hostile)
    before = files_under(tmp_path)
    result = cli("export", session, "--state-dir", str(state), "--data-dir", str(data))
    assert result.exit_code == 2, result.output
    assert "session id '../../../../outside/x\\x1b]0;owned\\x07' is not one OpenClaw " \
        "makes" in result.output
    assert "\x1b" not in result.output and "Traceback" not in result.output
    nothing_written(tmp_path, before, data, state)


def test_the_cli_refuses_an_agent_id_made_to_escape(tmp_path: Path, state: Path) -> None:
    data = tmp_path / "data"
    agent = "../../outside/" + "a" * (2 * SHOWN_CHARS_MAX)
    session = stored(data, agent, "s1")
    before = files_under(tmp_path)
    result = cli("export", session, "--state-dir", str(state), "--data-dir", str(data))
    assert result.exit_code == 2, result.output
    # Named, cut short: the whole id may be far longer than a line.
    assert f"agent id {agent[:SHOWN_CHARS_MAX]!r}... ({len(agent)} characters) is not " \
        "one OpenClaw makes" in result.output
    nothing_written(tmp_path, before, data, state)


def test_the_cli_still_exports_a_plain_session_beside_them(tmp_path: Path, state: Path) -> None:
    """Refusing one session's transcript leaves the others exportable."""
    data = tmp_path / "data"
    stored(data, "main", "../x")
    session = stored(data, "main", "s2")
    result = cli("export", session, "--state-dir", str(state), "--data-dir", str(data),
                 "--session-id", "s2")
    assert result.exit_code == 0, result.output
    index = json.loads((state / "agents" / "main" / "sessions" / "sessions.json").read_text())
    assert index[KEY]["sessionId"] == "s2"


@pytest.mark.parametrize("session_id", [None, 5, ["s1"]], ids=["missing", "number", "list"])
def test_events_whose_session_id_is_not_text_are_not_a_transcript(
        tmp_path: Path, state: Path, session_id: object) -> None:
    """OpenClaw's import always names the session id as text: without one, read as text,
    the events were exported as a session named 'None' (or '5'), and were named so when
    the session id asked for was not there."""
    data = tmp_path / "data"
    stored_with_session_id(data, session_id)
    for asked in ([], ["--session-id", "x"], ["--session-id", str(session_id)]):
        result = cli("export", KEY, "--state-dir", str(state), "--data-dir", str(data),
                     *asked)
        assert result.exit_code == 1, (asked, result.output)
        assert f"session {session_key_for('main', KEY)!r} holds no OpenClaw records" \
            in result.output
    assert list((state / "agents").iterdir()) == []


def test_a_number_as_session_id_does_not_date_a_text_one(tmp_path: Path, state: Path) -> None:
    """Events naming the session id 5 (a number), later than those of the real session
    '5': the index's updatedAt is the real session's latest event, not theirs."""
    data = tmp_path / "data"
    stored(data, "main", "5")
    later_ms = 10 ** 6
    stored_with_session_id(data, 5, later_ms)
    result = cli("export", KEY, "--state-dir", str(state), "--data-dir", str(data))
    assert result.exit_code == 0, result.output
    index = json.loads((state / "agents" / "main" / "sessions" / "sessions.json").read_text())
    assert index[KEY]["sessionId"] == "5"
    assert index[KEY]["updatedAt"] == max(
        event.timestamp.ms for record in transcript.records()[:3]
        for event in events_for(record, SessionRef("main", KEY, "5")).events)


def stored_with_session_id(data: Path, session_id: object, later_ms: int = 0) -> None:
    """A transcript's events whose ``openclaw.session_id`` is ``session_id`` (left out
    if None), ``later_ms`` after the transcript's own times, into the data folder."""
    with EventStore.open(data) as store:
        for record in transcript.records()[:3]:
            for event in events_for(record, SessionRef("main", KEY, "s1")).events:
                extra = {**event.payload["openclaw"], "session_id": session_id}
                if session_id is None:
                    del extra["session_id"]
                store.append(parse_event({
                    "agent_id": event.agent_id, "hlc": [event.timestamp.ms + later_ms, 0],
                    "kind": {"type": event.kind, **event.payload, "openclaw": extra}},
                    session_key=event.session_key))


def test_a_session_id_another_key_maps_to_is_not_written_over(state: Path) -> None:
    """Events under another key (any device may write them) carrying a session id the
    index gives to a key already would write over that key's transcript: refused, with
    both keys named escaped, and nothing written."""
    victim = a_transcript()
    export(state, Transcript("main", KEY, victim.session_id, victim.records[:2]), "main", 1)
    sessions = state / "agents" / "main" / "sessions"
    before = {path: path.read_bytes() for path in files_under(state)
              if path.is_file()}
    other_key = "agent:main:evil\x1b]0;x\x07"
    with pytest.raises(ExportRefused) as refused:
        export(state, Transcript("main", other_key, victim.session_id, victim.records),
               "main", 2)
    assert repr(KEY) in str(refused.value) and "\\x1b]0;x\\x07" in str(refused.value)
    assert "\x1b" not in str(refused.value) and "nothing was written" in str(refused.value)
    assert {path: path.read_bytes() for path in files_under(state)
            if path.is_file()} == before
    assert list(json.loads((sessions / "sessions.json").read_text())) == [KEY]


TRIMMED_SESSION_IDS = [
    pytest.param(" s1 ", id="spaces"),
    pytest.param("\u3000\ufeffs1\u2028\t", id="ideographic-space-bom-line-separator-tab"),
    pytest.param("\u00a0s1\u202f", id="no-break-spaces"),
]


@pytest.mark.parametrize("session_id", TRIMMED_SESSION_IDS)
def test_a_session_id_with_spaces_around_is_written_where_openclaw_reads_it(
        state: Path, session_id: str) -> None:
    """OpenClaw's ``validateSessionId`` trims (JavaScript's trim) before its checks and
    reads ``<trimmed>.jsonl``; its import keeps the index's ``sessionId`` as it is, as
    the session's id in its store: so the file is named trimmed, the index and header
    name the id as the events do."""
    written = export(state, a_transcript(session_id=session_id), "main", 1)
    sessions = state / "agents" / "main" / "sessions"
    assert written.path == sessions / "s1.jsonl" and not written.unchanged
    index = json.loads((sessions / "sessions.json").read_text())
    assert index[KEY]["sessionId"] == session_id
    assert index[KEY]["sessionFile"] == str(sessions / "s1.jsonl")
    header = json.loads(written.path.read_bytes().split(b"\n")[0])
    assert header["id"] == session_id
    assert sorted(path.name for path in sessions.iterdir()) == ["s1.jsonl", "sessions.json"]


def test_the_cli_exports_a_session_id_with_spaces_around(tmp_path: Path, state: Path) -> None:
    data = tmp_path / "data"
    session = stored(data, "main", "\u3000s1 ")
    result = cli("export", session, "--state-dir", str(state), "--data-dir", str(data))
    assert result.exit_code == 0, result.output
    sessions = state / "agents" / "main" / "sessions"
    assert (sessions / "s1.jsonl").is_file()
    assert json.loads((sessions / "sessions.json").read_text())[KEY]["sessionId"] \
        == "\u3000s1 "


def test_a_session_id_another_key_maps_to_once_trimmed_is_not_written_over(
        state: Path) -> None:
    """' s1 ' and 's1' are one file to OpenClaw: another key's 's1' is not written over
    by events naming ' s1 '."""
    victim = a_transcript(session_id="s1")
    export(state, Transcript("main", "agent:main:other", "s1", victim.records[:2]), "main", 1)
    before = {path: path.read_bytes() for path in files_under(state) if path.is_file()}
    with pytest.raises(ExportRefused, match="'agent:main:other' to session 's1' already"):
        export(state, a_transcript(session_id=" s1 "), "main", 2)
    assert {path: path.read_bytes() for path in files_under(state) if path.is_file()} \
        == before


def index_of(state: Path, entries: dict[str, dict[str, object]]) -> dict[Path, bytes]:
    """A hand-written ``sessions.json`` holding ``entries``, and a transcript 's2.jsonl'
    beside it; the files under ``state`` as they are then."""
    sessions = state / "agents" / "main" / "sessions"
    sessions.mkdir(parents=True)
    (sessions / "s2.jsonl").write_bytes(transcript_bytes(a_transcript(session_id="s2").records))
    (sessions / "sessions.json").write_text(json.dumps(entries))
    return {path: path.read_bytes() for path in files_under(state) if path.is_file()}


OTHER_KEY = "agent:main:evil\x1b]0;x\x07"


@pytest.mark.parametrize("session_file", [
    pytest.param("{sessions}/s1.jsonl", id="absolute"),
    pytest.param("s1.jsonl", id="relative"),
    pytest.param(" {sessions}/s1.jsonl\n", id="spaces-around"),
    # OpenClaw's import also reads a file of the folder with the path's last name.
    pytest.param("/elsewhere/agents/main/sessions/s1.jsonl", id="moved"),
    pytest.param("{sessions}/link.jsonl", id="a-link-to-it"),
])
def test_another_keys_session_file_naming_the_transcript_is_refused(
        state: Path, session_file: str) -> None:
    """OpenClaw's import reads the file an entry's ``sessionFile`` names and gives it the
    entry's session id: another key naming the transcript would import what export
    writes there as that key's session. Refused, both keys named escaped, nothing
    written."""
    sessions = state / "agents" / "main" / "sessions"
    before = index_of(state, {OTHER_KEY: {
        "sessionId": "s2", "updatedAt": 1,
        "sessionFile": session_file.format(sessions=sessions)}})
    if "link" in session_file:
        (sessions / "link.jsonl").symlink_to("s1.jsonl")
        before = {path: path.read_bytes() for path in files_under(state) if path.is_file()}
    with pytest.raises(ExportRefused) as refused:
        export(state, a_transcript(session_id="s1"), "main", 2)
    message = str(refused.value)
    assert "'agent:main:evil\\x1b]0;x\\x07' (session 's2') to the file 's1.jsonl'" \
        in message, message
    assert repr(KEY) in message and "nothing was written" in message
    assert "\x1b" not in message
    assert {path: path.read_bytes() for path in files_under(state) if path.is_file()} \
        == before
    assert not (sessions / "s1.jsonl").exists()


def test_the_keys_own_session_file_naming_another_transcript_is_refused(state: Path) -> None:
    """The key's entry names another file that is there: OpenClaw reads that one as the
    session until now; rewriting the entry would leave it unnamed (its import archives
    it unread)."""
    sessions = state / "agents" / "main" / "sessions"
    before = index_of(state, {KEY: {"sessionId": "s1", "updatedAt": 1,
                                    "sessionFile": str(sessions / "s2.jsonl")}})
    with pytest.raises(ExportRefused) as refused:
        export(state, a_transcript(session_id="s1"), "main", 2)
    assert "to the file 's2.jsonl' through its sessionFile" in str(refused.value)
    assert "nothing was written" in str(refused.value)
    assert {path: path.read_bytes() for path in files_under(state) if path.is_file()} \
        == before


def test_the_cli_refuses_a_session_file_naming_the_transcript(
        tmp_path: Path, state: Path) -> None:
    data = tmp_path / "data"
    session = stored(data, "main", "s1")
    sessions = state / "agents" / "main" / "sessions"
    before = index_of(state, {OTHER_KEY: {"sessionId": "s2", "updatedAt": 1,
                                          "sessionFile": str(sessions / "s1.jsonl")}})
    result = cli("export", session, "--state-dir", str(state), "--data-dir", str(data))
    assert result.exit_code == 2, result.output
    assert "'agent:main:evil\\x1b]0;x\\x07' (session 's2') to the file 's1.jsonl'" \
        in result.output
    assert "\x1b" not in result.output and "Traceback" not in result.output
    assert {path: path.read_bytes() for path in files_under(state) if path.is_file()} \
        == before


@pytest.mark.parametrize("session_file", [
    pytest.param("/old/place/agents/main/sessions/s1.jsonl", id="folder-moved"),
    pytest.param("sqlite:main:s2", id="in-openclaws-store"),
    pytest.param("{sessions}/s3.jsonl", id="a-file-not-there"),
])
def test_session_files_that_name_no_other_transcript_are_written_beside(
        state: Path, session_file: str) -> None:
    """The key's own entry naming its transcript where the folder was before, an entry
    whose transcript is in OpenClaw's store, a file that is not there: exported."""
    sessions = state / "agents" / "main" / "sessions"
    key = KEY if "s1" in session_file or "s3" in session_file else OTHER_KEY
    index_of(state, {key: {"sessionId": "s1" if key == KEY else "s2", "updatedAt": 1,
                           "sessionFile": session_file.format(sessions=sessions)}})
    written = export(state, a_transcript(session_id="s1"), "main", 2)
    assert written.path == sessions / "s1.jsonl"
    index = json.loads((sessions / "sessions.json").read_text())
    assert index[KEY]["sessionFile"] == str(sessions / "s1.jsonl")


SID = transcript.SESSION_ID


@pytest.mark.parametrize("name, session_id", [
    # Older OpenClaw's forum topic and a fork: their names are OpenClaw's for the id.
    pytest.param(f"{SID}-topic-42.jsonl", SID, id="topic"),
    pytest.param(f"2026-01-02T03-04-05-678Z_{SID}.jsonl", SID, id="fork"),
    # Any name, its header naming the id (trimmed, as OpenClaw reads it).
    pytest.param("renamed.jsonl", " s1 ", id="header"),
])
def test_the_file_the_keys_own_entry_names_for_its_session_is_continued(
        state: Path, name: str, session_id: str) -> None:
    """OpenClaw reads the file the key's own entry names as the session: export writes
    into it, continuing it, and the entry keeps naming it; nothing is written beside."""
    sessions = state / "agents" / "main" / "sessions"
    sessions.mkdir(parents=True)
    whole = a_transcript(session_id=session_id)
    (sessions / name).write_bytes(transcript_bytes(whole.records[:2]))
    (sessions / "sessions.json").write_text(json.dumps({KEY: {
        "sessionId": session_id, "updatedAt": 1, "sessionFile": str(sessions / name)}}))
    written = export(state, whole, "main", 2)
    assert written.path == sessions / name and not written.unchanged
    assert (sessions / name).read_bytes() == transcript_bytes(whole.records)
    index = json.loads((sessions / "sessions.json").read_text())
    assert index[KEY] == {"sessionId": session_id, "updatedAt": 2,
                          "sessionFile": str(sessions / name)}
    assert sorted(path.name for path in sessions.iterdir()) == [name, "sessions.json"]
    assert export(state, whole, "main", 3).unchanged  # exported again: the same file


def test_a_topic_file_holding_another_transcript_is_not_written_over(state: Path) -> None:
    """The entry's topic file is the session's, but holds other records: refused as a
    transcript file holding something else is."""
    sessions = state / "agents" / "main" / "sessions"
    sessions.mkdir(parents=True)
    name = f"{SID}-topic-42.jsonl"
    other = transcript.records()[:2]
    other[1] = {**other[1], "id": "elsewhere"}
    (sessions / name).write_bytes(transcript_bytes(other))
    (sessions / "sessions.json").write_text(json.dumps({KEY: {
        "sessionId": SID, "updatedAt": 1, "sessionFile": name}}))
    before = {path: path.read_bytes() for path in files_under(state) if path.is_file()}
    with pytest.raises(ExportRefused, match="holds a different transcript"):
        export(state, a_transcript(), "main", 2)
    assert {path: path.read_bytes() for path in files_under(state) if path.is_file()} \
        == before


@pytest.mark.parametrize("name", [
    pytest.param("0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f1-topic-42.jsonl", id="another-topic"),
    pytest.param("s1-topic-42.jsonl", id="not-a-generated-id"),
])
def test_a_file_the_keys_own_entry_names_for_another_session_is_refused(
        state: Path, name: str) -> None:
    """A name OpenClaw makes for another id, or none it makes, and a header naming
    another session: that file is another session's."""
    sessions = state / "agents" / "main" / "sessions"
    index_of(state, {KEY: {"sessionId": SID, "updatedAt": 1,
                           "sessionFile": str(sessions / name)}})
    (sessions / "s2.jsonl").rename(sessions / name)
    before = {path: path.read_bytes() for path in files_under(state) if path.is_file()}
    with pytest.raises(ExportRefused) as refused:
        export(state, a_transcript(), "main", 2)
    assert f"to the file {name!r} through its sessionFile" in str(refused.value)
    assert {path: path.read_bytes() for path in files_under(state) if path.is_file()} \
        == before


def test_the_cli_imports_an_exported_spaced_id_and_topic_once(
        tmp_path: Path, state: Path) -> None:
    """Exported, then read back by ``openclaw import`` on another data folder: each
    session's records once, under its key, and no session made of a file's name."""
    data = tmp_path / "data"
    session = stored(data, "main", "\u3000s1 ")
    assert cli("export", session, "--state-dir", str(state),
               "--data-dir", str(data)).exit_code == 0
    sessions = state / "agents" / "main" / "sessions"
    topic_key = "agent:main:telegram:group:-1001:topic:42"
    topic = sessions / f"{SID}-topic-42.jsonl"
    whole = a_transcript()
    topic.write_bytes(transcript_bytes(whole.records[:1]))
    index = json.loads((sessions / "sessions.json").read_text())
    index[topic_key] = {"sessionId": SID, "updatedAt": 1, "sessionFile": str(topic)}
    (sessions / "sessions.json").write_text(json.dumps(index))
    export(state, Transcript("main", topic_key, SID, whole.records[:3]), "main", 2)
    other = tmp_path / "other"
    result = cli("import", "--state-dir", str(state), "--data-dir", str(other))
    assert result.exit_code == 0, result.output
    assert "6 records read" in result.output, result.output
    with EventStore.open(other) as store:
        keys = sorted(key for _, key in store.log.session_keys(0, 100))
    assert keys == sorted([session, session_key_for("main", topic_key)])


def test_a_topic_file_in_a_subfolder_the_entry_names_is_continued(state: Path) -> None:
    """A relative sessionFile in a subfolder of the sessions folder, which OpenClaw reads:
    continued there, the entry still naming it; nothing written beside it."""
    sessions = state / "agents" / "main" / "sessions"
    name = f"sub/{SID}-topic-42.jsonl"
    (sessions / "sub").mkdir(parents=True)
    whole = a_transcript()
    (sessions / name).write_bytes(transcript_bytes(whole.records[:2]))
    (sessions / "sessions.json").write_text(json.dumps({KEY: {
        "sessionId": SID, "updatedAt": 1, "sessionFile": name}}))
    written = export(state, whole, "main", 2)
    assert written.path == sessions / name
    assert (sessions / name).read_bytes() == transcript_bytes(whole.records)
    assert json.loads((sessions / "sessions.json").read_text())[KEY]["sessionFile"] == name
    assert sorted(path.name for path in sessions.iterdir()) == ["sessions.json", "sub"]


def test_a_session_file_linked_to_the_default_file_names_that_file(state: Path) -> None:
    """sessionFile names a link in the folder to '<id>.jsonl' itself: that is the file
    written; the link is left as it is."""
    sessions = state / "agents" / "main" / "sessions"
    sessions.mkdir(parents=True)
    whole = a_transcript()
    (sessions / f"{SID}.jsonl").write_bytes(transcript_bytes(whole.records[:2]))
    (sessions / "link.jsonl").symlink_to(f"{SID}.jsonl")
    (sessions / "sessions.json").write_text(json.dumps({KEY: {
        "sessionId": SID, "updatedAt": 1, "sessionFile": "link.jsonl"}}))
    written = export(state, whole, "main", 2)
    assert written.path == sessions / f"{SID}.jsonl"
    assert (sessions / f"{SID}.jsonl").read_bytes() == transcript_bytes(whole.records)
    assert (sessions / "link.jsonl").is_symlink()
