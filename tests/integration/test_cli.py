"""The ``clawsync`` command line against real node processes, as a person would use it."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import threading
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from crdt.membership import DEVICES_SESSION
from node.client.api import Client, ClientError
from tests.support.automerge import App, text_id
from tests.support.cluster import wait_until
from tests.support.older_node import OLDER_VERSION
from tests.support.processes import (
    START_TIMEOUT_S,
    LineReader,
    NodeProcess,
    child_env,
    cli_args,
    free_port,
    run_cli,
    spawn_cli,
)

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


def test_serve_refuses_an_open_address_without_a_token(tmp_path: Path) -> None:
    result = run_cli("http://127.0.0.1:1", "serve", "--host", "0.0.0.0",
                     "--port", str(free_port()), "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 2
    assert "--token" in result.stderr and "0.0.0.0" in result.stderr


def test_config_file_sets_options_and_limits(tmp_path: Path) -> None:
    config = tmp_path / "clawsync.toml"
    config.write_text('log-format = "json"\n'
                      "[limits]\nbody_bytes_max = 2000\npage-max = 150\n"
                      "[automerge_limits]\nframes_per_s = 0.5\nframes_burst = 2\n")
    with NodeProcess(tmp_path, extra_args=["--config", str(config)]) as node:
        # log-format = json; the line is written by the log's own thread, perhaps after
        # the node first answers
        wait_until(lambda: b'"event": "serving"' in node.log_path.read_bytes(),
                   timeout_s=START_TIMEOUT_S, what="the serving line in JSON")
        big = ok(run_cli(node, "append", "s1", "message_received", "content=" + "x" * 100))
        assert big.startswith("stored")
        result = run_cli(node, "append", "s1", "message_received", "content=" + "x" * 3000)
        assert result.returncode == 2 and "2000" in result.stderr  # 413: too large
        refused = run_cli(node, "events", "s1", "--limit", "151")
        assert refused.returncode == 2 and "150" in refused.stderr  # 400: over the limit
        assert asyncio.run(automerge_flood(node.url, frames=3)) == "more than 0.5 frames per second"


async def automerge_flood(url: str, frames: int) -> str:
    """Join /automerge and send ``frames`` - 1 more frames at once; the node's error."""
    app = App()
    async with aiohttp.ClientSession() as session, session.ws_connect(url + "/automerge") as ws:
        await ws.send_bytes(app.join())
        app.receive(await ws.receive_bytes())  # the node's peer message
        for _ in range(frames - 1):
            await ws.send_bytes(app.frame(type="ephemeral", targetId=app.server,
                                          documentId=text_id("x"), count=1, sessionId="s",
                                          data=b"\xa0"))
        async for message in ws:
            if message.type == aiohttp.WSMsgType.BINARY:
                app.receive(bytes(message.data))
    return app.errors[-1]


@pytest.mark.parametrize(("text", "problem"), [
    ("[limits]\nbody_bytes = 1\n", "[limits] has no setting 'body_bytes'"),
    ("[limits]\nbody_bytes_max = 1.5\n", "body_bytes_max must be a whole number"),
    ("[automerge_limits]\nframes_per_s = -1\n", "frames_per_s must be positive"),
    ("limits = 3\n", "limits must be a table"),
    ("[limits]\npage_default = 50\npage_max = 10\n",
     "[limits] page_default (50) is above [limits] page_max (10)"),
    ("[automerge_limits]\nframes_per_s = nan\n", "frames_per_s must be positive and at most"),
    ("[automerge_limits]\nframes_burst = 1" + "0" * 40 + "\n", "frames_burst must be positive"),
    ("[limits]\nqueue_events_max = 10\n", "batch_events_max (1000) is above"),
    ("[automerge_limits]\nserved_bytes_max = 1000000000\n",
     "served_bytes_max (1000000000) is above [automerge_limits] outbox_bytes_max"),
])
def test_config_file_errors_name_the_setting(tmp_path: Path, text: str, problem: str) -> None:
    config = tmp_path / "clawsync.toml"
    config.write_text(text)
    result = run_cli("http://127.0.0.1:1", "serve", "--config", str(config),
                     "--port", str(free_port()), "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 2, result.stderr
    assert problem in result.stderr and "Traceback" not in result.stderr


def test_status_says_why_a_peer_address_is_not_linked(tmp_path: Path) -> None:
    """`--peer` with this node's own port (a typo) showed as "peers 0" and nothing else,
    and a dial that fails as "backoff": the reasons were in the log alone."""
    node = NodeProcess(tmp_path, name="lonely")
    dead = f"http://127.0.0.1:{free_port()}"
    node.extra_args = ["--peer", node.url + "/", "--peer", dead]
    node.start()
    try:
        said = [f"--peer {node.url}/ is this node's own address: it is not dialed",
                f"{dead}: cannot reach {dead}"]
        wait_until(lambda: all(line in run_cli(node, "status").stdout for line in said), 30,
                   "status says why")
    finally:
        node.stop()


def test_unreachable_node_is_a_clear_error(node: NodeProcess) -> None:
    result = run_cli(f"http://127.0.0.1:{free_port()}", "sessions")
    assert result.returncode == 1
    assert "cannot reach the node at http://127.0.0.1:" in result.stderr
    assert "(connection refused) — is `clawsync serve` running?" in result.stderr
    assert "Traceback" not in result.stderr
    # The cause, where it is another: a mistyped host, https:// to a plain node.
    nowhere = run_cli("http://nosuchhost.invalid:7878", "sessions")
    assert nowhere.returncode == 1 and "host name does not resolve (" in nowhere.stderr, \
        nowhere.stderr
    plain = run_cli(node.url.replace("http://", "https://"), "sessions")
    assert plain.returncode == 1, plain.stderr
    assert "does not speak TLS" in plain.stderr and "try http://" in plain.stderr
    assert "certificate" not in plain.stderr  # it said: trust the cluster's CA


@pytest.mark.parametrize("path, base", [("/v1", ""), ("/v1/sessions", ""),
                                        ("/proxy/v1/", "/proxy"), ("/console/", "")])
def test_an_address_with_an_api_path_is_a_usage_error(path: str, base: str) -> None:
    # Pasted from a browser or the HTTP table: the commands would ask for /v1/v1/...
    node = f"http://127.0.0.1:{free_port()}"
    result = run_cli(node + path, "sessions")
    assert result.returncode == 2, result.stderr
    assert f"give the node's own address, '{node}{base}'" in result.stderr


def test_unknown_kind_lists_the_kinds_without_a_request() -> None:
    # No node runs at this address: a usage error must come before any request.
    result = run_cli(f"http://127.0.0.1:{free_port()}", "append", "s1", "message_recieved",
                     "content=hi")
    assert result.returncode == 2
    assert "unknown event kind 'message_recieved'" in result.stderr
    assert all(kind in result.stderr for kind in KINDS)
    assert "content=TEXT" in result.stderr


def test_bad_field_syntax_is_a_usage_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    missing_equals = run_cli(url, "append", "s1", "message_received", "content")
    assert missing_equals.returncode == 2 and "FIELD=VALUE" in missing_equals.stderr
    bad_json = run_cli(url, "append", "s1", "tool_called", "tool_name=x", "params:={oops")
    assert bad_json.returncode == 2 and "needs a JSON value" in bad_json.stderr
    text_for_bool = run_cli(url, "append", "s1", "tool_result", "tool_name=x", "result:=1",
                            "success=yes")
    assert text_for_bool.returncode == 2 and "success:=true" in text_for_bool.stderr
    typo = run_cli(url, "append", "s1", "message_received", "contnet=hi")
    assert typo.returncode == 2, typo.stderr
    assert "message_received has no field 'contnet'; its fields: content=TEXT" in typo.stderr
    assert "extra fields go in an event given with --file" in typo.stderr

    # --timestamp is checked as the node would, before any request.
    for stamp, said in (("yesterday", "not an RFC 3339 time with a zone"),
                        ("-5", "integer milliseconds must be from 0 to"),
                        ("2026-02-30T00:00:00Z", "not a valid date and time")):
        bad_time = run_cli(url, "append", "s1", "session_ended", "reason=x",
                           f"--timestamp={stamp}")
        assert bad_time.returncode == 2, (stamp, bad_time.stderr)
        assert f"Invalid value for '--timestamp': {said}" in bad_time.stderr, bad_time.stderr


def test_a_node_address_or_token_no_request_could_carry_is_a_usage_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for args, said in (
            (("--node", "", "sessions"), "'clawsync --node' (given before the command): is empty"),
            (("--node", "http://me:secret@127.0.0.1:7878", "sessions"),
             "'clawsync --node' (given before the command): holds a user name or password"),
            (("sessions", "--node", "http://me:secret@127.0.0.1:7878"),
             "--node: holds a user name or password"),
            (("--token", "s3cret\r", "sessions"), "the token holds a control character"),
            (("sessions", "--token", "s3cret\r"), "the token holds a control character")):
        result = run_cli(url, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert said in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert "secret@" not in result.stderr


def test_a_listings_json_before_a_subcommand_is_a_usage_error() -> None:
    """``tokens --json revoke ID`` revoked and printed no JSON: the flag is the listing's."""
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens: no request may be sent
    for args, said in (
            (("tokens", "--json", "create", "--sessions", "*"),
             "give it after create (clawsync tokens create ... --json)"),
            (("tokens", "--json", "revoke", "3f9c0a1b2c3d4e5f"),
             "--json is the listing's, and revoke prints no JSON"),
            (("devices", "--json", "remove", "X"), "and remove prints no JSON"),
            (("origins", "--json", "retire", "3f9c0a1b2c3d4e5f"), "and retire prints no JSON")):
        result = run_cli(url, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert said in result.stderr, result.stderr


def test_node_refusal_is_shown(node: NodeProcess, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"agent_id": "main", "kind": {
        "type": "message_received", "content": 5}}))
    result = run_cli(node, "append", "s1", "--file", str(bad))
    assert result.returncode == 2, result  # the file's fault: an input error
    assert "the node refused event #1 of the file: kind.content: must be a string" \
        in result.stderr, result.stderr

    missing = run_cli(node, "events", "no-such-session")
    assert missing.returncode == 1 and "no session 'no-such-session'" in missing.stderr



def test_a_malformed_argument_the_node_refuses_exits_2_and_changes_nothing(
        node: NodeProcess) -> None:
    """Usage mistakes only the node can find exit as those click finds do (2), with the
    node's words and without the usage lines; what the node decides stays 1."""
    ok(run_cli(node, "append", "s1", "message_received", "content=hi"))
    head = node.get("/healthz")["head"]
    for args, says in ((("devices", "remove", "nosuchid"), "device_id: has 8 characters"),
                       (("forget", "s1", "--event", "zz"), "events[0]: must be 64 hex"),
                       (("tokens", "revoke", "zz"), "token_id: must be 16 lowercase hex"),
                       (("events", "s1", "--limit", "100000"), "limit")):
        result = run_cli(node, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("Error: the node refused "), result.stderr
        assert says in result.stderr and "Usage:" not in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert node.get("/healthz")["head"] == head
    missing = run_cli(node, "events", "no-such-session")  # 404: well-formed, not there
    assert missing.returncode == 1, missing.stderr


def test_an_event_dated_ahead_of_the_nodes_clock_exits_1_and_changes_nothing(
        node: NodeProcess) -> None:
    """Clock skew, not a mistyped command: the same append succeeds once the node's
    clock has caught up, so it exits as other refusals do (1), not as a usage error."""
    head = node.get("/healthz")["head"]
    result = run_cli(node, "append", "s1", "message_received", "content=early",
                     "--timestamp", "2999-01-01T00:00:00Z")
    assert result.returncode == 1, result.stderr
    assert "timestamp" in result.stderr and "Traceback" not in result.stderr
    assert node.get("/healthz")["head"] == head


def test_an_empty_session_key_is_named_and_nothing_is_stored(node: NodeProcess) -> None:
    head = node.get("/healthz")["head"]
    for args in (("append", "", "message_received", "content=x"), ("events", ""),
                 ("projection", ""), ("forget", "")):
        result = run_cli(node, *args)
        assert result.returncode == 2, (args, result)  # a usage error, as for other args
        assert "SESSION]': is empty: a session key is 1 to 512" in result.stderr \
            or "SESSION': is empty: a session key is 1 to 512" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    tail = run_cli(node, "tail", "--session", "")  # refused before it follows anything
    assert tail.returncode == 2, tail
    assert "'--session': is empty: a session key is 1 to 512" in tail.stderr, tail.stderr
    assert node.get("/healthz")["head"] == head


def test_token_is_required_and_accepted(token_node: NodeProcess) -> None:
    refused = run_cli(token_node.url, "sessions")
    assert refused.returncode == 1 and "--token" in refused.stderr
    wrong = run_cli(token_node, "sessions", token="wrong")
    assert wrong.returncode == 1 and "token" in wrong.stderr
    ok(run_cli(token_node, "append", "s1", "message_received", "content=hi"))
    assert "s1" in ok(run_cli(token_node, "sessions"))
    # --node and --token after the command name win over those before it.
    after_command = run_cli("http://127.0.0.1:1", "sessions", "--node", token_node.url,
                            "--token", "s3cret")
    assert "s1" in ok(after_command)


def test_an_empty_token_in_the_environment_means_none(tmp_path: Path) -> None:
    """CLAWSYNC_TOKEN="" is no token for serve, whatever its file holds, and for a client
    command, as --token "" is."""
    config = tmp_path / "clawsync.toml"
    config.write_text('token = "from-file"\n')
    empty = child_env({"CLAWSYNC_TOKEN": ""})
    with NodeProcess(tmp_path, extra_args=["--config", str(config)],
                     env={"CLAWSYNC_TOKEN": ""}) as node:
        for args in (cli_args(node, "sessions"), cli_args(node, "sessions", token="")):
            result = subprocess.run(args, env=empty, capture_output=True, text=True,
                                    timeout=60, check=False)
            assert ok(result) == "", args  # let in without a token; no sessions yet
    # Unset, the file's token is the node's.
    with NodeProcess(tmp_path, extra_args=["--config", str(config)], name="filed") as node:
        refused = subprocess.run(cli_args(node, "sessions"), env=empty, capture_output=True,
                                 text=True, timeout=60, check=False)
        assert refused.returncode == 1 and "needs a token" in refused.stderr


@pytest.mark.parametrize("command", ["serve", "append", "events", "sessions", "projection",
                                     "tail"])
def test_help_of_each_command_shows_examples(command: str) -> None:
    out = ok(run_cli("http://127.0.0.1:1", command, "--help"))
    assert "Examples:" in out
    assert f"clawsync {command}" in out


def test_tail_past_the_head_names_the_position_it_was_given(node: NodeProcess) -> None:
    result = run_cli(node, "tail", "--after", "999999")
    # The node's 400, about its own positions: the same command works once it has
    # stored that many events, so a refusal (1), not a usage mistake (2).
    assert result.returncode == 1, result.stderr
    assert "after: is past this node's newest position" in result.stderr, result.stderr
    assert "Last-Event-ID" not in result.stderr


def test_an_address_without_the_api_is_named_not_taken_for_a_missing_session(
        node: NodeProcess) -> None:
    """A reverse proxy's wrong prefix, or another service: its 404s say nothing of
    sessions or devices."""
    elsewhere = f"{node.url}/prefix"
    for args in (("events", "s1"), ("projection", "s1", "--url"),
                 ("devices", "remove", "A" * 56)):
        result = run_cli(elsewhere, *args)
        assert result.returncode == 1, (args, result.stderr)
        assert f"{elsewhere} has no clawsync API (404 for" in result.stderr, result.stderr
        # The node's own JSON 404: a node where the prefix leads, but no version there.
        assert "or a node too old to say its version)?" in result.stderr, result.stderr
        assert "automerge:" not in result.stdout
    missing = run_cli(node, "events", "s1")
    assert missing.returncode == 1 and "no session 's1'" in missing.stderr


def test_an_older_node_without_a_route_is_named_with_its_version(tmp_path: Path) -> None:
    """A node one upgrade behind answers a route it lacks with its JSON 404, and a method
    a path of it lacks with its JSON 405: the CLI names the node's version and its own,
    not an address without the API; what the older node has works."""
    with NodeProcess(tmp_path, name="older", program="tests.support.older_node") as older:
        for args, route in ((("tokens",), "GET /v1/tokens (404)"),
                            (("tokens", "create", "--sessions", "*"), "POST /v1/tokens (404)"),
                            (("forget", "s1"), "DELETE /v1/sessions/s1 (405)")):
            result = run_cli(older, *args)
            assert result.returncode == 1, (args, result.stderr)
            assert (f"the node at {older.url} runs clawsync {OLDER_VERSION}, which has no "
                    f"{route}; this is clawsync ") in result.stderr, result.stderr
            assert ": upgrade the node" in result.stderr and "API" not in result.stderr
        ok(run_cli(older, "append", "s1", "message_received", "content=hi"))
        assert "hi" in ok(run_cli(older, "events", "s1"))  # the refused forget took nothing


def test_a_route_the_node_lacks_at_its_own_version_is_named_plainly(
        node: NodeProcess) -> None:
    """The same version on both sides: no upgrade to suggest, the route is named."""
    async def ask() -> str:
        async with Client(node.url) as client:
            with pytest.raises(ClientError) as refused:
                await client._request("GET", "/v1/nothing", what="the request")
        return str(refused.value)

    assert asyncio.run(ask()) == f"the node at {node.url} has no GET /v1/nothing (404)"


def test_another_service_is_named_for_writes_as_for_reads(tmp_path: Path) -> None:
    """Python's own file server answers a POST or DELETE 501, without a node's JSON
    error body: not a node that failed, an address with no clawsync API."""
    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 partial(SimpleHTTPRequestHandler, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        elsewhere = f"http://127.0.0.1:{server.server_address[1]}"
        for args, status in ((("sessions",), 404),
                             (("append", "s1", "message_received", "content=x"), 501),
                             (("forget", "s1"), 501)):
            result = run_cli(elsewhere, *args)
            assert result.returncode == 1, (args, result.stderr)
            assert f"{elsewhere} has no clawsync API ({status} for" in result.stderr, \
                result.stderr
    finally:
        server.shutdown()
        server.server_close()


class _Gate(BaseHTTPRequestHandler):
    """A reverse proxy's own login in front of a node: 401 or 403 as plain text, before
    any request reaches the node (``/401/...``, ``/403/...``)."""

    def do_GET(self) -> None:
        status = int(self.path.split("/")[1])
        self.send_response(status)
        if self.path.split("/")[2] == "bearer":  # the node's 401, its body swapped
            self.send_header("WWW-Authenticate", 'Bearer realm="clawsync"')
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"login required\n")

    def log_message(self, *args: Any) -> None:  # quiet in the test's output
        pass


@pytest.mark.parametrize("status", [401, 403])
def test_a_refusal_by_something_in_between_is_not_blamed_on_the_token(status: int) -> None:
    """Every refusal of a node carries its JSON error: a plain 401/403 is from a proxy or
    firewall in front, and saying the token was refused would send the user the wrong
    way."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Gate)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        gate = f"http://127.0.0.1:{server.server_address[1]}/{status}"
        result = run_cli(gate, "sessions", token="t" * 32)
        assert result.returncode == 1, result.stderr
        assert f"{gate} refused" in result.stderr and "without a clawsync answer" \
            in result.stderr, result.stderr
        assert "token does not allow" not in result.stderr
        assert "refused the token" not in result.stderr
        if status == 401:  # the node's own 401 under a proxy's error page: the token
            swapped = run_cli(f"{gate}/bearer", "sessions", token="t" * 32)
            assert swapped.returncode == 1, swapped.stderr
            assert "the node refused the token" in swapped.stderr, swapped.stderr
    finally:
        server.shutdown()
        server.server_close()
