"""Hostile HTTP, sent byte for byte over raw sockets to a real node.

* Credentials that are not UTF-8 (or not even text) on every route that takes a secret
  are wrong credentials: 401, and the node's log holds none of its secrets.
* A flood of requests that aiohttp's HTTP parser refuses, and of clients that leave
  inside a body, costs the log a bounded number of short lines, no traceback.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.limits import Limits
from tests.support.processes import NodeProcess
from tests.support.raw_http import ANSWER_TIMEOUT_S, exchange, get, status_of

TOKEN = "client-token-5e1f"
SECRET = "cluster-secret-9a7b"
AUTOMERGE_TOKEN = "automerge-token-c3d2"
#: Every route that takes a credential.
GUARDED = ("/v1/sessions", "/v1/events", "/metrics", "/peer/v1/ws", "/peer/v1/members",
           "/automerge")
#: Authorization headers no honest client sends: bytes that are not UTF-8, lone
#: surrogates in UTF-8's form, a scheme that is not text. (Control bytes other than tab
#: are refused by the HTTP parser itself, with 400.)
HOSTILE_AUTHORIZATION = (b"Bearer \xff", b"Bearer \xc3\x28", b"Bearer \xed\xa0\x80",
                         b"Bearer " + TOKEN.encode() + b"\xff", b"\xff\xfe " + b"x" * 8,
                         b"bearer \x80\x81\x82\x83", b"Bearer \x80\tx")


#: Requests the HTTP parser refuses: a bad header name, TLS on the HTTP port, a control
#: byte in the path, an overlong header, an unknown version, an unknown method after a
#: good request, a bad chunk size, two lengths, a chunk longer than it says.
MALFORMED = (b"GET / HTTP/1.1\r\nHo st: x\r\n\r\n", b"\x16\x03\x01\x00\xa5\x01\r\n\r\n",
             b"GET /\x00 HTTP/1.1\r\n\r\n",
             b"GET / HTTP/1.1\r\nX: " + b"a" * 10_000 + b"\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
             b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nBLAH / HTTP/1.1\r\n\r\n",
             b"POST /v1/sessions/s1/events HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
             b"POST /v1/sessions/s1/events HTTP/1.1\r\nContent-Length: 3\r\n"
             b"Content-Length: 4\r\n\r\nabc",
             b"GET /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab\r\n\r\n")
#: The start of a request whose client then leaves, inside the body.
CUT_SHORT = (b"POST /v1/sessions/s1/events HTTP/1.1\r\nHost: x\r\n"
             b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n[{")
#: Seconds the node is given to read what a client sent before the client leaves.
LEAVE_AFTER_S = 0.05


def logged(node: NodeProcess) -> str:
    """The node's own output (without the command lines the tests write into the log)."""
    text = node.log_path.read_text(errors="replace")
    return "\n".join(line for line in text.splitlines() if not line.startswith("--- start"))


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """A node with a client token, a cluster secret and an Automerge token."""
    tmp = tmp_path_factory.mktemp("hostile")
    tokens = tmp / "tokens.json"
    tokens.write_text(json.dumps({AUTOMERGE_TOKEN: {"read_only": True}}))
    with NodeProcess(tmp, token=TOKEN, extra_args=[
            "--cluster-secret", SECRET, "--automerge-tokens", str(tokens)]) as node:
        yield node


@pytest.mark.parametrize("path", GUARDED)
def test_undecodable_credentials_are_wrong_ones(guarded: NodeProcess, path: str) -> None:
    for authorization in HOSTILE_AUTHORIZATION:
        answer = exchange(guarded, get(path.encode(), b"Authorization: " + authorization))
        assert status_of(answer) == 401, (authorization, answer[:200])
    if path == "/automerge":
        for token in (b"%ff", b"%ED%A0%80", b"%00"):
            answer = exchange(guarded, get(b"/automerge?token=" + token))
            assert status_of(answer) == 401, (token, answer[:200])


def test_no_secret_reaches_the_log(guarded: NodeProcess) -> None:
    for path in GUARDED:
        for authorization in HOSTILE_AUTHORIZATION:
            exchange(guarded, get(path.encode(), b"Authorization: " + authorization))
    assert guarded.get("/healthz")["status"] == "ok"
    text = logged(guarded)
    for secret in (TOKEN, SECRET, AUTOMERGE_TOKEN):
        assert secret not in text
    assert "Traceback" not in text


def leave_inside_the_body(node: NodeProcess) -> None:
    with socket.create_connection(("127.0.0.1", node.port), timeout=ANSWER_TIMEOUT_S) as sock:
        sock.sendall(CUT_SHORT)
        time.sleep(LEAVE_AFTER_S)  # the handler is reading the body when the client leaves


def test_a_flood_of_malformed_requests_is_a_few_short_lines(tmp_path: Path) -> None:
    lines_max = Limits().refused_log_lines_max
    with NodeProcess(tmp_path) as node:
        before = len(logged(node).splitlines())
        for n in range(200):
            # answered, not closed at headers_timeout_s (ANSWER_TIMEOUT_S waits longer)
            answer = exchange(node, MALFORMED[n % len(MALFORMED)])
            assert status_of(answer) == 400, answer[:200]
        for _ in range(20):
            leave_inside_the_body(node)
        assert node.get("/healthz")["status"] == "ok"
        new = logged(node).splitlines()[before:]
    assert not [line for line in new if "Traceback" in line or "ERROR" in line
                or "error " in line]
    refused = [line for line in new if "refused a malformed request" in line]
    assert 0 < len(refused) <= lines_max
    assert len(new) <= lines_max + 5, new  # and little else: no line per request
