"""The ``clawsync`` command line's mistakes and refusals, against real node processes:
usage errors (exit 2, no request), a node's refusals, an unreachable or wrong address,
an older node, and what stands in between (a proxy's login)."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import socketserver
import subprocess
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler
from pathlib import Path

import pytest

from crdt.keys import SESSION_KEY_BYTES_MAX
from node.client.api import Client, ClientError
from node.client.errors import NODE_SHOWN_CHARS_MAX
from node.headers import ROUTES_TOLD
from tests.support.certs import make_ca, make_cert
from tests.support.older_node import OLDER_VERSION
from tests.support.processes import (
    NodeProcess,
    child_env,
    cli_args,
    free_port,
    run_cli,
)
from tests.support.stand_in import Quiet, serving

pytestmark = pytest.mark.integration

KINDS = ("session_started", "message_received", "message_sent", "tool_called", "tool_result",
         "agent_response", "session_ended", "state_changed")


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """stdout of a command that must have succeeded (else show everything it said)."""
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout


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


#: How the command says a server hung up without a word: closed, or reset (the kernel's
#: answer when a server closes with the request unread; which one comes is timing).
HUNG_UP = re.compile(r"closed the connection during|Connection reset by peer")


def test_http_to_a_node_serving_https_says_to_try_https(tmp_path: Path) -> None:
    """A TLS server hangs up on plain HTTP without an answer: the command says why that
    may be, as it does for https:// to a plain node."""
    ca = make_ca(tmp_path, "ca")
    cert = make_cert(tmp_path, "node", ca)
    node = NodeProcess(tmp_path, name="tls", tls_ca=ca[0])
    node.extra_args = ["--tls-cert", str(cert[0]), "--tls-key", str(cert[1])]
    with node:
        plain = run_cli(node.url.replace("https://", "http://"), "sessions")
    assert plain.returncode == 1, plain.stderr
    assert HUNG_UP.search(plain.stderr), plain.stderr
    assert "try https://" in plain.stderr and "Traceback" not in plain.stderr


def test_a_plain_node_at_its_connection_cap_is_not_said_to_serve_https(tmp_path: Path) -> None:
    """A node at ``connections_per_address_max`` hangs up without a word too: it does not
    speak TLS, so no "try https://"."""
    config = tmp_path / "clawsync.toml"
    config.write_text("[limits]\nconnections_per_address_max = 1\n")
    with NodeProcess(tmp_path, extra_args=["--config", str(config)]) as node, \
            socket.create_connection(("127.0.0.1", node.port), timeout=10) as stream:
        stream.sendall(b"GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       b"Accept: text/event-stream\r\n\r\n")
        heard = b""
        while b"\r\n\r\n" not in heard:  # the stream is open: the address's one slot
            heard += stream.recv(4096) or pytest.fail(f"the stream closed: {heard!r}")
        assert heard.startswith(b"HTTP/1.1 200"), heard
        capped = run_cli(node.url, "sessions")
    assert capped.returncode == 1, capped.stderr
    assert HUNG_UP.search(capped.stderr), capped.stderr
    assert "https" not in capped.stderr and "Traceback" not in capped.stderr


class _HangUp(socketserver.BaseRequestHandler):
    """Reads what comes, then closes without a word (neither HTTP nor TLS)."""

    def handle(self) -> None:
        self.request.recv(4096)


def test_another_server_that_hangs_up_is_not_said_to_serve_https() -> None:
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), _HangUp) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            result = run_cli(f"http://127.0.0.1:{server.server_address[1]}", "sessions")
        finally:
            server.shutdown()
    assert result.returncode == 1, result.stderr
    assert HUNG_UP.search(result.stderr), result.stderr
    assert "https" not in result.stderr and "Traceback" not in result.stderr


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

    # --timestamp is checked as the node would, before any request; a text of neither
    # form the help offers names both.
    for stamp, said in (("yesterday", "not an RFC 3339 time with a zone (like "
                                      "2026-01-31T12:00:00.123Z), nor integer milliseconds"),
                        ("-5", "integer milliseconds must be from 0 to 253402300799999"),
                        ("2026-02-30T00:00:00Z", "not a valid date and time")):
        bad_time = run_cli(url, "append", "s1", "session_ended", "reason=x",
                           f"--timestamp={stamp}")
        assert bad_time.returncode == 2, (stamp, bad_time.stderr)
        assert bad_time.stderr.splitlines()[-1] == \
            f"Error: Invalid value for '--timestamp': {said}", bad_time.stderr


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


def test_a_number_json_has_not_is_said_where_it_was_written(node: NodeProcess,
                                                            tmp_path: Path) -> None:
    """NaN, Infinity and 1e999 (Python's json reads it as inf) are the input's fault, said
    as its other mistakes are: the node refused them as "body: JSON: Infinity is not a
    JSON number", naming neither what was written nor where."""
    head = node.get("/healthz")["head"]
    said = run_cli(node, "append", "s1", "tool_called", "tool_name=x", 'params:={"a": 1e999}')
    assert (said.returncode, said.stderr.splitlines()[-1]) == (
        2, 'Error: params:= needs a JSON value (number 1e999 is out of range); write '
           'params={"a": 1e999} to pass it as text'), said.stderr
    good = '{"kind": {"type": "message_received", "content": "hi"}}'
    for text, where in (
            (f'{good}\n{{"kind": {{"type": "message_received", "content": NaN}}}}\n',
             "line 2 of <stdin>: NaN is not a JSON number"),
            ('{"kind": {"type": "message_received", "content": -Infinity}}\n' + good,
             "line 1 of <stdin>: -Infinity is not a JSON number"),
            (f'[{good},\n {{"kind": {{"type": "message_received", "content": 1e999}}}}]',
             "event #2 in <stdin>: number 1e999 is out of range")):
        result = run_cli(node, "append", "s1", "--file", "-", input=text)
        assert (result.returncode, result.stderr) == (2, f"Error: {where}\n"), result.stderr
    assert node.get("/healthz")["head"] == head  # nothing was sent, not even line 1


def test_a_malformed_argument_the_node_refuses_exits_2_and_changes_nothing(
        node: NodeProcess) -> None:
    """Usage mistakes only the node can find exit as those click finds do (2), with the
    node's words and without the usage lines; what the node decides stays 1."""
    ok(run_cli(node, "append", "s1", "message_received", "content=hi"))
    head = node.get("/healthz")["head"]
    for args, says in ((("devices", "remove", "nosuchid"), "device_id: has 8 characters"),
                       (("tokens", "revoke", "zz"), "token_id: must be 16 lowercase hex"),
                       (("events", "s1", "--limit", "100000"), ": --limit: must be")):
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


def test_a_session_key_the_node_would_refuse_is_a_usage_error_before_any_request(
        node: NodeProcess) -> None:
    """A key past the node's limit, with a control character, or from an argument that
    is not UTF-8 (a traceback once: no URL carries it): refused here (exit 2) in the
    node's words and with its limit, not sent."""
    head = node.get("/healthz")["head"]
    long_key = "é" * (SESSION_KEY_BYTES_MAX // 2 + 1)
    for key, said in ((long_key, f"is {SESSION_KEY_BYTES_MAX + 2} bytes; the limit is "
                                 f"{SESSION_KEY_BYTES_MAX}"),
                      ("a\x01b", "must not contain control characters"),
                      ("a\udcffb", "is not valid Unicode (lone surrogate)")):
        for args in (("append", key, "message_received", "content=x"), ("events", key),
                     ("forget", key), ("tail", "--session", key)):
            result = run_cli(node, *args)
            assert result.returncode == 2, (args, result)
            assert f"': {said}" in result.stderr, result.stderr
            assert "the node refused" not in result.stderr and "Traceback" not in result.stderr
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


def test_a_long_node_address_is_cut_in_the_errors_that_name_it(node: NodeProcess) -> None:
    """An address ``--node`` takes (a long reverse proxy prefix) is shown cut at
    ``NODE_SHOWN_CHARS_MAX`` by the errors that name it later, as by its refusal."""
    prefix = "/" + "p" * 5000
    for base, said in ((f"http://127.0.0.1:{free_port()}", "cannot reach the node at "),
                       (node.url, "")):
        result = run_cli(base + prefix, "sessions")
        assert result.returncode == 1, result.stderr[-300:]
        shown = (base + prefix)[:NODE_SHOWN_CHARS_MAX]
        assert f"{said}{shown}… ({len(base + prefix)} characters)" in result.stderr, \
            result.stderr[-300:]
        assert len(result.stderr) < 3 * NODE_SHOWN_CHARS_MAX, result.stderr[-300:]


def test_an_address_without_the_api_is_named_not_taken_for_a_missing_session(
        node: NodeProcess) -> None:
    """A reverse proxy's wrong prefix, or another service: its 404s say nothing of
    sessions or devices; a node's own 404 there says, in its hint, which route it lacks."""
    elsewhere = f"{node.url}/prefix"
    for args, path in ((("events", "s1"), "/prefix/v1/sessions/s1/events"),
                       (("projection", "s1", "--url"), "/prefix/v1/sessions/s1"),
                       (("devices", "remove", "A" * 56), "/prefix/v1/devices/" + "A" * 56)):
        result = run_cli(elsewhere, *args)
        assert result.returncode == 1, (args, result.stderr)
        assert f"{elsewhere} has no clawsync API (404 for" in result.stderr, result.stderr
        # The node's own JSON 404: a node where the prefix leads, no version there.
        assert (f"another service)? The node there says: this node has no route "
                f"{'DELETE' if args[0] == 'devices' else 'GET'} {path}; {ROUTES_TOLD}"
                ) in result.stderr, result.stderr
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
    with serving(partial(SimpleHTTPRequestHandler, directory=str(tmp_path))) as elsewhere:
        for args, status in ((("sessions",), 404),
                             (("append", "s1", "message_received", "content=x"), 501),
                             (("forget", "s1"), 501)):
            result = run_cli(elsewhere, *args)
            assert result.returncode == 1, (args, result.stderr)
            assert f"{elsewhere} has no clawsync API ({status} for" in result.stderr, \
                result.stderr


class _Gate(Quiet):
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


@pytest.mark.parametrize("status", [401, 403])
def test_a_refusal_by_something_in_between_is_not_blamed_on_the_token(status: int) -> None:
    """Every refusal of a node carries its JSON error: a plain 401/403 is from a proxy or
    firewall in front, and saying the token was refused would send the user the wrong
    way."""
    with serving(_Gate) as base:
        gate = f"{base}/{status}"
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


#: What a hostile (or broken) node says in its refusal: a terminal title, a bell, a line
#: of its own, a screen cleared.
HOSTILE_WORDS = "taken\x1b]0;PWNED\x07\nError: forged line\x1b[2J"


class _Hostile(Quiet):
    """A node that refuses every request (409) with control characters in its words."""

    def _refuse(self) -> None:
        self.answer(409, {"error": {"code": "conflict", "message": HOSTILE_WORDS,
                                    "field": "key\x1b[31m"}})

    do_GET = do_POST = do_DELETE = _refuse


def test_a_nodes_words_reach_the_terminal_escaped() -> None:
    """A refusal's message is printed by every command: its escape sequences would
    retitle or clear the terminal, its newline forge a line of the command's own."""
    with serving(_Hostile) as hostile:
        for args in (("sessions",), ("append", "s1", "message_received", "content=x"),
                     ("forget", "s1")):
            result = run_cli(hostile, *args)
            assert result.returncode == 1, (args, result.stderr)
            assert not any(char in result.stderr for char in "\x1b\x07"), result.stderr
            assert result.stderr.count("\n") == 1, result.stderr  # its own line end only
            assert "key\\x1b[31m: taken\\x1b]0;PWNED\\x07\\x0aError: forged line" \
                "\\x1b[2J" in result.stderr, result.stderr
