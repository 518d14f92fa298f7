"""``clawsync openclaw export`` and the ``sessionFile`` entries of ``sessions.json``: a
transcript another key's entry (or the key's own, for another session) names is not
written over, the file the key's own entry names for its session is continued, and one
beside it is written where they name no other transcript."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crdt.log.store import EventStore
from node.openclaw.export import ExportRefused, export, transcript_bytes
from node.openclaw.records import Transcript
from node.openclaw.session_names import session_key_for
from tests.node.openclaw import transcript
from tests.node.openclaw.exporting import a_transcript, files_under, stored
from tests.node.openclaw.support import KEY, cli


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
