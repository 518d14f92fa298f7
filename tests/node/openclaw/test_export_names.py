"""``clawsync openclaw export`` writes only where OpenClaw keeps its sessions: the agent
id and the session id, which any device of the cluster may have written into events,
become a folder and a file name only if they are names OpenClaw makes, and a symbolic
link out of ``agents/`` is not followed. A refused transcript writes nothing, anywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crdt.events import parse_event
from crdt.log.store import EventStore
from node.openclaw.export import (
    AGENT_ID_CHARS_MAX,
    FILE_NAME_BYTES_MAX,
    SESSION_ID_CHARS_MAX,
    SHOWN_CHARS_MAX,
    ExportRefused,
    export,
    transcript_bytes,
)
from node.openclaw.mapping import SessionRef, events_for
from node.openclaw.records import Transcript
from node.openclaw.session_names import session_key_for
from tests.node.openclaw import transcript
from tests.node.openclaw.exporting import a_transcript, files_under, nothing_written, stored
from tests.node.openclaw.support import KEY, cli

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


