"""``clawsync openclaw import`` then ``export`` through an embedded data folder: what
OpenClaw wrote on one device comes back equal on another, and nothing is overwritten."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from crdt.events import parse_event
from crdt.log.store import EventStore
from node.main import main
from node.openclaw.jsonl import AgentSessions
from node.openclaw.source import Record
from tests.node.openclaw import transcript
from tests.node.openclaw.support import KEY, SID, cli, imported
from tests.support.openclaw import RECORDED, FakeGateway, RecordedGateway

#: A node address and a token no request could use (a CR kept from a token file).
UNUSABLE = {"node": "ftp://sync.example", "token": "s3cret\r"}


@pytest.mark.parametrize(("group", "env"), [
    pytest.param([], {"CLAWSYNC_NODE": UNUSABLE["node"], "CLAWSYNC_TOKEN": UNUSABLE["token"]},
                 id="environment"),
    pytest.param(["--node", UNUSABLE["node"], "--token", UNUSABLE["token"]], {}, id="option")])
def test_a_data_folder_needs_no_node_nor_token(tmp_path: Path, group: list[str],
                                               env: dict[str, str]) -> None:
    """With --data-dir no node is contacted: the group's --node and --token (a service's
    environment sets them for the other commands) are not looked at, usable or not."""
    gateway = FakeGateway(tmp_path / "a")
    gateway.open_session(KEY, SID)
    gateway.add(SID, transcript.records())
    data = tmp_path / "data"
    (tmp_path / "b" / "agents").mkdir(parents=True)
    for args in (["import", "--state-dir", str(tmp_path / "a")],
                 ["export", KEY, "--state-dir", str(tmp_path / "b")]):
        result = CliRunner().invoke(main, [*group, "openclaw", *args, "--data-dir", str(data)],
                                    env=env)
        assert result.exit_code == 0, result.output
    assert (tmp_path / "b" / "agents" / "main" / "sessions" / f"{SID}.jsonl").exists()


def test_export_gives_back_the_records_openclaw_wrote(tmp_path: Path) -> None:
    data, b = imported(tmp_path)
    sessions = b / "agents" / "main" / "sessions"
    sessions.mkdir(parents=True)
    (sessions / "sessions.json").write_text(json.dumps(
        {"agent:main:other": {"sessionId": "x", "updatedAt": 1, "sessionFile": "/x.jsonl"}}))
    result = cli("export", KEY, "--state-dir", str(b), "--data-dir", str(data))
    assert result.exit_code == 0, result.output
    path = sessions / f"{SID}.jsonl"
    assert f"{path}: {len(transcript.records())} records written" in result.output
    lines = path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == json.loads(json.dumps(transcript.records()))
    assert json.loads(lines[0])["type"] == "session"
    index = json.loads((sessions / "sessions.json").read_text())
    assert set(index) == {"agent:main:other", KEY}
    assert index[KEY]["sessionId"] == SID and index[KEY]["sessionFile"] == str(path)
    assert isinstance(index[KEY]["updatedAt"], int) and index[KEY]["updatedAt"] > 0
    # What B's watch reads of the exported files is what the node holds already.
    reread = cli("import", "--state-dir", str(b), "--data-dir", str(data))
    assert reread.exit_code == 0, reread.output
    assert f"{len(transcript.records())} records read: 0 new events" in reread.output
    # Again: nothing changes; by OpenClaw's key without its prefix, too.
    again = cli("export", "explicit:s1", "--state-dir", str(b), "--data-dir", str(data))
    assert "records already there, unchanged" in again.output
    assert "already holds session" not in again.output
    # Exported to the device it came from: said so.
    home = cli("export", KEY, "--state-dir", str(tmp_path / "a"), "--data-dir", str(data))
    assert f"OpenClaw's store already holds session {SID} ({len(transcript.records())} " \
           "records)" in home.output


def test_a_forgotten_record_leaves_no_gap_in_the_exported_chain(tmp_path: Path) -> None:
    """OpenClaw reads a conversation from its last record back through the parents: a
    child of a forgotten record names a parent the file lacks, and the history before
    it would be cut off."""
    data, b = imported(tmp_path)
    with EventStore.open(data) as store:
        held = [stored.event for stored in store.get_events(KEY)]
        parents = {r.get("parentId") for r in transcript.records()}
        middle = next(e for e in held if (e.payload.get("openclaw") or {}).get(
            "record", {}).get("id") in parents and e.payload["openclaw"]["record"].get(
            "parentId") is not None)
        store.forget(KEY, [middle.id.hex()])
    result = cli("export", KEY, "--state-dir", str(b), "--data-dir", str(data))
    assert result.exit_code == 0, result.output
    assert "record(s) whose parent is left out follow the record before the first of them" \
        in result.output
    written = [json.loads(line) for line in
               (b / "agents" / "main" / "sessions" / f"{SID}.jsonl").read_text().splitlines()]
    by_id = {r["id"]: r for r in written if r["type"] != "session"}
    chain = [written[-1]]
    while chain[-1].get("parentId") is not None:
        chain.append(by_id[chain[-1]["parentId"]])
    assert chain[-1] is written[1]


def test_export_refuses_to_overwrite_another_transcript(tmp_path: Path) -> None:
    data, b = imported(tmp_path)
    sessions = b / "agents" / "main" / "sessions"
    sessions.mkdir(parents=True)
    path = sessions / f"{SID}.jsonl"
    path.write_text('{"type":"session","version":3,"id":"someone else"}\n')
    result = cli("export", KEY, "--state-dir", str(b), "--data-dir", str(data))
    assert result.exit_code == 2 and "Usage:" not in result.output
    assert "holds a different transcript" in result.output
    assert path.read_text() == '{"type":"session","version":3,"id":"someone else"}\n'
    assert not (sessions / "sessions.json").exists()
    path.unlink()
    (sessions / "sessions.json").write_text(json.dumps({KEY: {"sessionId": "newer"}}))
    result = cli("export", KEY, "--state-dir", str(b), "--data-dir", str(data))
    assert result.exit_code == 2 and "maps session key" in result.output
    assert not path.exists()


def test_bad_state_folders_and_sessions_are_refused(tmp_path: Path) -> None:
    result = cli("import", "--state-dir", str(tmp_path / "missing"),
                 "--data-dir", str(tmp_path / "d"))
    assert result.exit_code == 2 and "missing does not exist" in result.output
    result = cli("import", "--state-dir", str(tmp_path), "--data-dir", str(tmp_path / "d"))
    assert result.exit_code == 2 and "holds no agents/ folder" in result.output
    data, b = imported(tmp_path)
    typo = tmp_path / "dta"
    result = cli("export", KEY, "--state-dir", str(b), "--data-dir", str(typo))
    assert result.exit_code == 2 and f"--data-dir {typo} holds no node's data" in result.output
    assert not typo.exists()  # export only reads: no new node's folder is made
    result = cli("export", "agent:main:nothing", "--state-dir", str(b), "--data-dir", str(data))
    assert result.exit_code == 1 and "no session 'agent:main:nothing'" in result.output
    # A key without OpenClaw's prefix is tried as a clawsync key too, and the error says
    # what is wrong with it: missing under both names, or holding no OpenClaw records.
    result = cli("export", "tg:alice", "--state-dir", str(b), "--data-dir", str(data))
    assert result.exit_code == 1
    assert "no session 'tg:alice' nor 'agent:main:tg:alice'" in result.output
    with EventStore.open(data) as store:
        store.append(parse_event({"agent_id": "main", "kind": {
            "type": "message_received", "content": "hi"}}, session_key="tg:alice"))
    result = cli("export", "tg:alice", "--state-dir", str(b), "--data-dir", str(data))
    assert result.exit_code == 1
    assert "session 'tg:alice' holds no OpenClaw records" in result.output
    # Written into another agent's folder, it would come back as that agent's session.
    result = cli("export", KEY, "--agent", "other", "--state-dir", str(b),
                 "--data-dir", str(data))
    assert result.exit_code == 2 and "Usage:" not in result.output
    assert f"session {KEY!r} belongs to OpenClaw agent 'main', not 'other'" in result.output
    assert not (b / "agents" / "other").exists()
    # A session id the session does not hold is the person's input too: named, with
    # those it holds.
    result = cli("export", KEY, "--session-id", "nope", "--state-dir", str(b),
                 "--data-dir", str(data))
    assert result.exit_code == 2 and "Usage:" not in result.output
    assert f"session {KEY!r} holds no OpenClaw session id 'nope': its session ids are " \
           f"{SID!r} (latest first)" in result.output
    assert not (b / "agents" / "main" / "sessions").exists()


@pytest.mark.parametrize("scenario", sorted(p.name for p in RECORDED.iterdir() if p.is_dir()))
def test_recorded_sessions_travel_between_devices(tmp_path: Path, scenario: str) -> None:
    """A: a real OpenClaw store; B: its older layout as OpenClaw's import reads it. Both
    import to the same events, and A's node exports what B's files hold."""
    RecordedGateway(tmp_path / "a", scenario).replay(10_000)
    legacy = RECORDED / scenario / "legacy"
    b_sessions = tmp_path / "b" / "agents" / "main" / "sessions"
    b_sessions.mkdir(parents=True)
    for path in legacy.glob("*.jsonl"):
        (b_sessions / path.name).write_bytes(path.read_bytes())
    (b_sessions / "sessions.json").write_bytes((legacy / "sessions.json").read_bytes())
    for device in ("a", "b"):
        result = cli("import", "--state-dir", str(tmp_path / device), "--data-dir",
                     str(tmp_path / f"data-{device}"))
        assert result.exit_code == 0, result.output
    index = json.loads((legacy / "sessions.json").read_text())
    with EventStore.open(tmp_path / "data-a") as a, EventStore.open(tmp_path / "data-b") as b:
        for key in index:
            from_b = {e.event.id for e in b.get_events(key)}
            assert from_b and from_b <= {e.event.id for e in a.get_events(key)}
    out = tmp_path / "c"
    (out / "agents").mkdir(parents=True)
    for key, entry in index.items():
        result = cli("export", key, "--state-dir", str(out), "--data-dir",
                     str(tmp_path / "data-a"), "--session-id", entry["sessionId"])
        assert result.exit_code == 0, result.output
        name = f"{entry['sessionId']}.jsonl"
        exported = (out / "agents" / "main" / "sessions" / name).read_text().splitlines()
        source = (legacy / name).read_text().splitlines()
        # Equal records, header first; the order of the rest is the mapping's (parents
        # before children), which may differ from the file's where the tree branches.
        def by_id(lines: list[str]) -> list[Any]:
            return sorted((json.loads(line) for line in lines),
                          key=lambda record: json.dumps(record, sort_keys=True))
        assert json.loads(exported[0]) == json.loads(source[0])
        assert by_id(exported) == by_id(source)


def test_a_key_with_several_session_ids_exports_its_latest(tmp_path: Path) -> None:
    """The README's ``export KEY`` on a key OpenClaw gave two session ids (the recorded
    ``sessions.rewind`` keeps a copy under a new id): the older layout names one session
    id per key, so the one OpenClaw continues (the latest records) is written, the other
    is named, and a refused export writes nothing at all."""
    RecordedGateway(tmp_path / "a", "rich").replay(10_000)
    data = tmp_path / "data"
    assert cli("import", "--state-dir", str(tmp_path / "a"), "--data-dir",
               str(data)).exit_code == 0
    b = tmp_path / "b"
    sessions = b / "agents" / "main" / "sessions"
    sessions.mkdir(parents=True)
    key, copy = "agent:main:explicit:r1", "d6122d99-743c-43ec-ae7b-5cc2965385df"
    result = cli("export", key, "--state-dir", str(b), "--data-dir", str(data))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in sessions.iterdir()) == ["r1.jsonl", "sessions.json"]
    assert json.loads((sessions / "sessions.json").read_text())[key]["sessionId"] == "r1"
    legacy = RECORDED / "rich" / "legacy" / "r1.jsonl"
    def records(path: Path) -> list[str]:
        return sorted(json.dumps(json.loads(line), sort_keys=True)
                      for line in path.read_text().splitlines())
    assert records(sessions / "r1.jsonl") == records(legacy)
    assert f"--session-id {copy}" in result.output
    # The other one, asked for by name, would change the key's session: refused whole.
    before = {p.name: p.read_bytes() for p in sessions.iterdir()}
    result = cli("export", key, "--session-id", copy, "--state-dir", str(b),
                 "--data-dir", str(data))
    assert result.exit_code == 2 and "maps session key" in result.output
    assert {p.name: p.read_bytes() for p in sessions.iterdir()} == before


def test_a_damaged_sessions_json_is_named_and_nothing_written(tmp_path: Path) -> None:
    data, b = imported(tmp_path)
    sessions = b / "agents" / "main" / "sessions"
    sessions.mkdir(parents=True)
    (sessions / "sessions.json").write_text('{"agent:main:x": {"sessionId": ')  # cut short
    result = cli("export", KEY, "--state-dir", str(b), "--data-dir", str(data))
    assert result.exit_code == 2 and "Usage:" not in result.output
    assert f"{sessions / 'sessions.json'} cannot be read" in result.output
    assert "nothing was written" in result.output
    assert [p.name for p in sessions.iterdir()] == ["sessions.json"]
    assert (sessions / "sessions.json").read_text() == '{"agent:main:x": {"sessionId": '


def test_a_watch_looking_midway_through_an_export_sees_no_other_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README lets ``watch`` run during an export: after each file export renames
    into place, the reader finds no transcript without its key (which would import it,
    for good, as another session)."""
    data, b = imported(tmp_path)
    sessions = b / "agents" / "main" / "sessions"
    source = AgentSessions(sessions, "main", "sessions")
    seen: list[tuple[str | None, ...]] = []
    real_replace = os.replace

    def replace_then_look(src: Any, dst: Any) -> None:
        real_replace(src, dst)
        seen.append(tuple(item.session_key for item in source.read({})
                          if isinstance(item, Record)))

    monkeypatch.setattr("node.openclaw.export.os.replace", replace_then_look)
    result = cli("export", KEY, "--state-dir", str(b), "--data-dir", str(data))
    assert result.exit_code == 0, result.output
    assert len(seen) == 2 and seen[-1] == (KEY,) * len(transcript.records())
    assert all(set(keys) <= {KEY} for keys in seen)


def begun_twice(tmp_path: Path) -> tuple[Path, Path, list[dict[str, Any]]]:
    """``imported``, and session id SID begun again on a second device an hour later (its
    own header, records of its own ids), imported too; that beginning's records."""
    data, b = imported(tmp_path)
    other = FakeGateway(tmp_path / "a2")
    other.open_session(KEY, SID)
    header, *first_turn = transcript.records()[:6]
    later = [{**header, "timestamp": header["timestamp"].replace("T10:", "T11:"),
              "cwd": "/home/v/.openclaw/workspace"}]
    later += [{**record, "id": f"b{record['id'][1:]}",
               "parentId": record["parentId"] and f"b{record['parentId'][1:]}",
               "timestamp": record["timestamp"].replace("T10:", "T11:")}
              for record in first_turn]
    other.add(SID, later)
    result = cli("import", "--state-dir", str(tmp_path / "a2"), "--data-dir", str(data))
    assert result.exit_code == 0, result.output
    return data, b, later


def test_a_session_id_begun_on_two_devices_is_written_with_one_header(
        tmp_path: Path) -> None:
    """Two devices that each ran ``openclaw agent --session-id s1`` wrote a header each
    for one session key and id. OpenClaw's import keeps one header per file and then
    refuses to finish (one record fewer than the file): the first header is written, and
    every record of both beginnings."""
    data, b, later = begun_twice(tmp_path)
    result = cli("export", KEY, "--state-dir", str(b), "--data-dir", str(data))
    assert result.exit_code == 0, result.output
    written = [json.loads(line) for line in
               (b / "agents" / "main" / "sessions" / f"{SID}.jsonl").read_text().splitlines()]
    assert [r for r in written if r["type"] == "session"] == [transcript.records()[0]]
    assert written[0] == transcript.records()[0]
    wanted = json.loads(json.dumps(transcript.records()[1:] + later[1:]))
    assert sorted(written[1:], key=lambda r: r["id"]) == sorted(wanted, key=lambda r: r["id"])
    assert f"note: OpenClaw session id {SID!r} of {KEY!r} was begun 2 times separately " \
           "(on several devices): written with the first beginning's header only" \
           in result.output
    # The latest beginning's turn is last, where OpenClaw goes on from.
    assert written[-1]["id"] == later[-1]["id"]
    # Read back, it holds nothing the node lacks: no copy of any record.
    reread = cli("import", "--state-dir", str(b), "--data-dir", str(data))
    assert reread.exit_code == 0, reread.output
    assert f"{len(written)} records read: 0 new events" in reread.output


def test_a_transcript_an_earlier_export_wrote_with_two_headers_is_replaced(
        tmp_path: Path) -> None:
    """Written by an export that kept every header (``[first, second, records...]``), it is
    the same transcript: replaced by the one-header file, not refused as another."""
    data, b, later = begun_twice(tmp_path)
    result = cli("export", KEY, "--state-dir", str(b), "--data-dir", str(data))
    assert result.exit_code == 0, result.output
    path = b / "agents" / "main" / "sessions" / f"{SID}.jsonl"
    one_header = path.read_bytes()
    first, *rest = one_header.splitlines(keepends=True)
    second = json.dumps(later[0], separators=(",", ":")).encode() + b"\n"
    path.write_bytes(first + second + b"".join(rest[:-2]))  # and two records fewer
    result = cli("export", KEY, "--state-dir", str(b), "--data-dir", str(data))
    assert result.exit_code == 0, result.output
    assert f"{path}: {len(rest) + 1} records written" in result.output
    assert path.read_bytes() == one_header
    # Another transcript behind the two headers is still refused.
    path.write_bytes(first + second + b'{"type":"message","id":"someone else"}\n')
    result = cli("export", KEY, "--state-dir", str(b), "--data-dir", str(data))
    assert result.exit_code == 2 and "holds a different transcript" in result.output
