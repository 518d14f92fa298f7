"""The ``clawsync`` command line against real node processes, as a person would use it:
writing (``append``) and reading (``events``, ``sessions``, ``projection``, ``tail``).
Serving and its configuration: ``test_cli_serve``; mistakes and refusals:
``test_cli_errors``."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from crdt.membership import DEVICES_SESSION
from tests.support.processes import (
    LineReader,
    NodeProcess,
    run_cli,
    spawn_cli,
)
from tests.support.stand_in import Quiet, serving

pytestmark = pytest.mark.integration

SEED_KEY = "agent:main:telegram:bot1:dm:user1"
KINDS = ("session_started", "message_received", "message_sent", "tool_called", "tool_result",
         "agent_response", "session_ended", "state_changed")


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """stdout of a command that must have succeeded (else show everything it said)."""
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def seed_event(kind: dict[str, Any], timestamp: str) -> dict[str, Any]:
    """An event as the seed's serde export writes it: an array-of-bytes id, RFC 3339 time
    with nanoseconds."""
    return {"id": list(range(32)), "session_key": SEED_KEY, "agent_id": "main",
            "timestamp": timestamp, "kind": kind}


def test_append_text_and_json_fields(node: NodeProcess) -> None:
    out = ok(run_cli(node, "append", "s1", "session_started", "channel=telegram", "peer_id=u1"))
    assert out.startswith("stored: position ")
    ok(run_cli(node, "append", "s1", "message_received", "content=hello world"))
    ok(run_cli(node, "append", "s1", "tool_called", "tool_name=search",
               'params:={"q": "weather", "n": 3}'))
    ok(run_cli(node, "append", "s1", "tool_result", "tool_name=search", "result:=[1, 2.5]",
               "success:=true", "--agent", "bot2"))
    ok(run_cli(node, "append", "s1", "state_changed", "key=mood", "value=happy"))

    events = json_lines(ok(run_cli(node, "events", "s1", "--json")))
    kinds = [event["kind"] for event in events]
    assert [kind["type"] for kind in kinds] == [
        "session_started", "message_received", "tool_called", "tool_result", "state_changed"]
    assert kinds[1]["content"] == "hello world"
    assert kinds[2]["params"] == {"q": "weather", "n": 3}
    assert kinds[3]["result"] == [1, 2.5] and kinds[3]["success"] is True
    assert events[3]["agent_id"] == "bot2"
    assert kinds[4]["value"] == "happy"


def test_append_file_in_seed_form(node: NodeProcess, tmp_path: Path) -> None:
    export = tmp_path / "export.json"
    export.write_text(json.dumps([
        seed_event({"type": "session_started", "channel": "telegram", "peer_id": "user1"},
                   "2024-01-01T12:00:00.123456789Z"),
        seed_event({"type": "message_received", "content": "hi", "attachments": []},
                   "2024-01-01T12:00:01.000000001Z"),
    ]))
    result = ok(run_cli(node, "append", "--file", str(export)))
    assert result.count("stored: position") == 2

    events = json_lines(ok(run_cli(node, "events", SEED_KEY, "--json")))
    assert [event["hlc"] for event in events] == [[1704110400123, 456789],
                                                   [1704110401000, 1]]
    # The seed's array id is dropped; the node's content hash is a hex string.
    assert all(isinstance(event["id"], str) and len(event["id"]) == 64 for event in events)


def test_append_json_lines_from_stdin(node: NodeProcess) -> None:
    lines = "\n".join(json.dumps({"agent_id": "main", "kind": {
        "type": "message_sent", "content": f"m{i}", "message_id": str(i)}}) for i in range(3))
    result = run_cli(node, "append", "s-lines", "--file", "-", input=lines + "\n")
    assert ok(result).count("stored: position") == 3
    assert "3 events in 1 session: 3 stored, 0 already stored" in result.stderr
    one = run_cli(node, "append", "s-one", "--file", "-", input=lines.split("\n")[0])
    assert one.returncode == 0, one.stderr
    assert "1 event in 1 session: 1 stored, 0 already stored" in one.stderr, one.stderr
    # What the file holds is wrong, not how the command was typed: no usage lines.
    bad = run_cli(node, "append", "s-lines", "--file", "-", input="not json\n")
    assert bad.returncode == 2 and "line 1 of <stdin> is not JSON" in bad.stderr
    assert "Usage:" not in bad.stderr


def test_duplicate_append_says_already_stored(node: NodeProcess) -> None:
    args = ("append", "s1", "session_ended", "reason=done", "--timestamp",
            "2026-01-01T12:00:00Z")
    first = ok(run_cli(node, *args))
    again = ok(run_cli(node, *args))
    assert first.startswith("stored: ")
    assert again.startswith("already stored: ")
    # Same position and id: the node recognised the event, it did not store a copy.
    assert first.split(": ", 1)[1] == again.split(": ", 1)[1]
    assert len(json_lines(ok(run_cli(node, "events", "s1", "--json")))) == 1


def test_events_sessions_and_projection_output(node: NodeProcess) -> None:
    ok(run_cli(node, "append", "chat", "session_started", "channel=web", "peer_id=ann"))
    ok(run_cli(node, "append", "chat", "message_received", "content=where is my order?"))
    ok(run_cli(node, "append", "chat", "agent_response", "content=on its way",
               "model=m1", 'tokens:={"input": 5, "output": 3}'))
    ok(run_cli(node, "append", "chat", "state_changed", "key=topic", "value:=\"orders\""))
    ok(run_cli(node, "append", "other", "session_ended", "reason=bye"))

    lines = ok(run_cli(node, "events", "chat")).splitlines()
    assert len(lines) == 4
    assert "message_received" in lines[1] and "where is my order?" in lines[1]
    assert "on its way [m1]" in lines[2]

    paged = run_cli(node, "events", "chat", "--limit", "2")
    assert len(ok(paged).splitlines()) == 2 and "--all" in paged.stderr
    assert len(ok(run_cli(node, "events", "chat", "--limit", "1", "--all")).splitlines()) == 4

    listed = ok(run_cli(node, "sessions"))
    assert "chat" in listed and "other" in listed
    keys = [item["session_key"] for item in json_lines(ok(run_cli(
        node, "sessions", "--json", "--limit", "1", "--all")))]
    # The node's device-key record (written before its first event) opened a session of
    # the cluster's own: not listed.
    assert keys == ["chat", "other"]

    summary = ok(run_cli(node, "projection", "chat"))
    assert "web" in summary and "where is my order?" in summary
    assert 'topic = "orders"' in summary
    view = json.loads(ok(run_cli(node, "projection", "chat", "--json")))
    assert view["event_count"] == 4 and view["custom_state"] == {"topic": "orders"}
    url = ok(run_cli(node, "projection", "chat", "--url")).strip()
    assert url.startswith("automerge:") and url == view["automerge_url"]
    # A session with no event yet has its URL already, for a client to find() it early.
    early = run_cli(node, "projection", "later", "--url")
    assert early.returncode == 0 and "no session 'later' on the node yet" in early.stderr
    assert run_cli(node, "projection", "later").returncode == 1  # nothing else to show
    ok(run_cli(node, "append", "later", "message_received", "content=now"))
    assert early.stdout.strip() == ok(run_cli(node, "projection", "later", "--url")).strip()


def test_copy_a_session_between_nodes(node: NodeProcess, tmp_path: Path) -> None:
    ok(run_cli(node, "append", "s1", "message_received", "content=one"))
    ok(run_cli(node, "append", "s1", "message_received", "content=two"))
    secret = json_lines(ok(run_cli(node, "append", "s1", "message_received",
                                   "content=my address", "--json")))[0]["id"]
    ok(run_cli(node, "forget", "s1", "--event", secret))
    exported = ok(run_cli(node, "events", "s1", "--all", "--json"))
    assert len(json_lines(exported)) == 4  # with the forgotten event and the record
    with NodeProcess(tmp_path, name="other") as other:
        result = run_cli(other, "append", "--file", "-", input=exported)
        copied = json_lines(ok(run_cli(other, "events", "s1", "--json")))
    # The forgotten event and the forget record, which no node takes from a client, are
    # left out with a note; the rest is copied.
    assert result.returncode == 0, result.stderr
    assert "left out 2 of the 4 events" in result.stderr
    assert [e["kind"].get("content") for e in copied] == ["one", "two"]
    assert [e["id"] for e in copied] == [e["id"] for e in json_lines(exported)[:2]]


def test_a_page_of_the_api_is_a_file_append_takes(node: NodeProcess, tmp_path: Path) -> None:
    ok(run_cli(node, "append", "s1", "message_received", "content=one"))
    ok(run_cli(node, "append", "s1", "message_received", "content=two"))
    page = tmp_path / "page.json"
    page.write_text(json.dumps(node.get("/v1/sessions/s1/events")))
    result = run_cli(node, "append", "--file", str(page))
    assert result.returncode == 0, result.stderr
    assert "2 events in 1 session: 0 stored, 2 already stored" in result.stderr


def test_a_refusal_after_left_out_events_names_the_files_numbers(node: NodeProcess) -> None:
    lines = [
        {"session_key": "s1", "agent_id": "main", "hlc": [1000, 0], "forgotten_by": "ab" * 32,
         "kind": {"type": "message_received"}},
        {"session_key": "s1", "agent_id": "main", "kind": {"type": "message_received",
                                                           "content": "fine"}},
        {"session_key": "s1", "agent_id": "main", "kind": {"type": "mistyped"}},
    ]
    result = run_cli(node, "append", "--file", "-",
                     input="\n".join(json.dumps(line) for line in lines))
    assert result.returncode == 2  # the file's fault
    assert "left out 1 of the 3 events" in result.stderr
    assert "unknown event type 'mistyped'" in result.stderr
    # The third line of the file, the second of its batch: named by the file's number.
    assert "the node refused event #3 of the file: kind.type: unknown event type" \
        in result.stderr, result.stderr
    assert "none of the 2 events of session 's1' sent with it is stored" in result.stderr


def test_a_refused_import_says_whether_running_it_again_stores_events_twice(
        node: NodeProcess) -> None:
    """An event without a timestamp (or with a null one, read as none) gets the node's
    clock, and so a new id, each time it is sent: running the import again stores it
    again, which must not be called safe."""
    refused = {"session_key": "again-b", "agent_id": "main", "kind": {"type": "mistyped"}}
    safe = "Running the import again is safe: stored events are recognised"
    twice = ("1 event stored has no timestamp: running the import again would store it a "
             "second time")
    for first_key, stamp, said in (("again-a", {"timestamp": 1_700_000_000_000}, safe),
                                   ("again-c", {}, twice),
                                   ("again-d", {"timestamp": None}, twice),
                                   ("again-e", {"timestamp": None, "hlc": None}, twice)):
        first = {"session_key": first_key, "agent_id": "main",
                 "kind": {"type": "message_received", "content": "hi"}, **stamp}
        lines = [first, {**refused, "timestamp": 1_700_000_000_000}]
        for _ in range(2):  # what is said of a rerun holds for it
            result = run_cli(node, "append", "--file", "-",
                             input="\n".join(json.dumps(line) for line in lines))
            assert result.returncode == 2, result.stderr
            assert "1 event of the file is. " + said + ")" in result.stderr, result.stderr
        held = ok(run_cli(node, "events", first_key, "--json")).splitlines()
        assert len(held) == (1 if said == safe else 2), held


def test_a_refused_import_that_stored_nothing_may_be_run_again(node: NodeProcess) -> None:
    """The events without a timestamp the file holds were not sent: none stored, none
    stored twice."""
    lines = [{"session_key": "none-a", "agent_id": "main", "kind": {"type": "mistyped"},
              "timestamp": 1_700_000_000_000},
             {"session_key": "none-b", "agent_id": "main",
              "kind": {"type": "message_received", "content": "hi"}}]
    result = run_cli(node, "append", "--file", "-",
                     input="\n".join(json.dumps(line) for line in lines))
    assert result.returncode == 2, result.stderr
    assert ("(none of the 1 event of session 'none-a' sent with it is stored; 0 events of "
            "the file are. Running the import again is safe: stored events are "
            "recognised)") in result.stderr, result.stderr


class _HangsUpOnTheSecond(Quiet):
    """A node that stores the first batch it is sent and hangs up on the next one, which
    it may have stored: as a reset or a timeout after it committed looks."""

    sent = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).sent += 1
        if type(self).sent > 1:
            self.close_connection = True
            return
        key = self.path.split("/")[3]
        self.answer(200, {"created": 1, "events": [
            {"position": 1, "id": "ab" * 32, "session_key": key, "created": True,
             "kind": {"type": "message_received"}}]})


def test_an_import_the_node_did_not_answer_claims_nothing_of_what_it_stored() -> None:
    lines = [{"session_key": key, "agent_id": "main", "timestamp": 1_700_000_000_000,
              "kind": {"type": "message_received", "content": "hi"}}
             for key in ("hang-a", "hang-b", "hang-b")]
    handler = type("HangsUp", (_HangsUpOnTheSecond,), {"sent": 0})
    with serving(handler) as url:
        result = run_cli(url, "append", "--file", "-",
                         input="\n".join(json.dumps(line) for line in lines))
    assert result.returncode == 1, result.stderr
    assert ("(the node may have stored the 2 events of session 'hang-b' sent with it, all, "
            "some or none; 1 event of the file is stored before them)") in result.stderr, \
        result.stderr
    assert "safe" not in result.stderr and "none of" not in result.stderr


def test_tail_prints_events_appended_after_it_started(node: NodeProcess) -> None:
    ok(run_cli(node, "append", "s1", "message_received", "content=before"))
    tail = spawn_cli(node, "tail", "--session", "s1")
    try:
        assert tail.stdout is not None and tail.stderr is not None
        out, err = LineReader(tail.stdout), LineReader(tail.stderr)
        err.wait_for("following")
        ok(run_cli(node, "append", "other", "message_received", "content=elsewhere"))
        ok(run_cli(node, "append", "s1", "message_received", "content=after"))
        line = out.wait_for("after")
        assert "s1" in line and "message_received" in line
        # "before" predates the tail, "elsewhere" is another session.
        assert not any("before" in seen or "elsewhere" in seen for seen in out.seen)
        tail.send_signal(signal.SIGINT)
        assert tail.wait(timeout=30) == -signal.SIGINT  # Ctrl-C, as for every command
        assert err.wait_for("interrupted")
        assert "Traceback" not in "\n".join(err.seen)
        assert not any("no session" in seen for seen in err.seen)  # s1 is there
    finally:
        tail.kill()
        tail.wait()


def test_tail_of_a_session_not_there_yet_says_so_and_keeps_following(
        node: NodeProcess) -> None:
    """A mistyped key would follow in silence: said once, and the session may begin."""
    tail = spawn_cli(node, "tail", "--session", "tg:alise")
    try:
        assert tail.stdout is not None and tail.stderr is not None
        out, err = LineReader(tail.stdout), LineReader(tail.stderr)
        err.wait_for("there is no session 'tg:alise' on the node yet: waiting for its "
                     "first event")
        err.wait_for("following")
        ok(run_cli(node, "append", "tg:alise", "message_received", "content=first"))
        assert "tg:alise" in out.wait_for("first")
        assert tail.poll() is None
    finally:
        tail.kill()
        tail.wait()


def test_tail_reconnects_when_the_node_restarts(node: NodeProcess) -> None:
    tail = spawn_cli(node, "tail", "--json")
    try:
        assert tail.stdout is not None and tail.stderr is not None
        out, err = LineReader(tail.stdout), LineReader(tail.stderr)
        err.wait_for("following")
        ok(run_cli(node, "append", "s1", "message_received", "content=first"))
        first = json.loads(out.wait_for("first"))
        node.restart()
        ok(run_cli(node, "append", "s1", "message_received", "content=second"))
        second = json.loads(out.wait_for("second"))
        assert second["position"] > first["position"]
        err.wait_for("reconnecting")
    finally:
        tail.kill()
        tail.wait()


def test_session_keys_with_url_characters(node: NodeProcess) -> None:
    key = "team/a b:c?d#e%f"
    ok(run_cli(node, "append", key, "message_received", "content=odd key"))
    [event] = json_lines(ok(run_cli(node, "events", key, "--json")))
    assert event["session_key"] == key
    assert json.loads(ok(run_cli(node, "projection", key, "--json")))["session_key"] == key
    # The first event's session alone (the device-key record's is the cluster's own).
    [listed] = ok(run_cli(node, "sessions")).splitlines()
    assert key in listed and DEVICES_SESSION not in listed


def test_sessions_include_cluster_lists_the_cluster_sessions_too(node: NodeProcess) -> None:
    ok(run_cli(node, "append", "chat", "message_received", "content=hi"))
    plain = [row["session_key"] for row in json_lines(ok(run_cli(node, "sessions", "--json")))]
    every = [row["session_key"] for row in json_lines(ok(run_cli(
        node, "sessions", "--json", "--include-cluster")))]
    # The device-key record came before the first event, in a session of the cluster's own.
    assert (plain, every) == (["chat"], [DEVICES_SESSION, "chat"])
    assert DEVICES_SESSION in ok(run_cli(node, "sessions", "--include-cluster"))
    about = node.get("/v1/node")  # the node's figures agree with the list
    assert (about["sessions"], about["cluster_sessions"]) == (len(plain),
                                                             len(every) - len(plain))
    assert about["sessions_live"] == len(plain)
    assert "cluster's own sessions too" in ok(run_cli(node, "sessions", "--help"))


def test_tail_past_the_head_names_the_position_it_was_given(node: NodeProcess) -> None:
    result = run_cli(node, "tail", "--after", "999999")
    # The node's 400, about its own positions: the same command works once it has
    # stored that many events, so a refusal (1), not a usage mistake (2).
    assert result.returncode == 1, result.stderr
    assert "after: is past this node's newest position" in result.stderr, result.stderr
    assert "Last-Event-ID" not in result.stderr
