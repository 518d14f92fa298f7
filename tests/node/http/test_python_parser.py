"""A node serving through aiohttp's pure-Python HTTP parser (``AIOHTTP_NO_EXTENSIONS=1``,
as on a platform without aiohttp's compiled extension) answers hostile requests as one
on the compiled parser does: each refused with the same 4xx, nothing stored, no
traceback in its log. One node process, every case sent to it raw (bytes that aiohttp's
client would not send), the answers checked together so that every difference shows.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.http.head_limits import HEADERS_MAX
from tests.support.processes import NodeProcess
from tests.support.python_parser_node import PARSER_LINE

TOKEN = "python-parser-token"
#: A small body limit makes oversized bodies cheap to send.
BODY_BYTES_MAX = 64 * 1024
#: Seconds to wait for each answer: a request the node neither answers nor closes fails.
ANSWER_TIMEOUT_S = 20.0

HOST = b"Host: x\r\nConnection: close\r\n"
AUTH = b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
EVENTS = b"/v1/sessions/s1/events"
EVENT = json.dumps([{"agent_id": "a", "kind": {"type": "message_received",
                                               "content": "hi"}}]).encode()
BIG_EVENT = EVENT.replace(b"hi", b"x" * BODY_BYTES_MAX)


def post(body: bytes, headers: bytes = b"", path: bytes = EVENTS, *,
         length: bool = True) -> bytes:
    """A raw append (with the token) of ``body`` as JSON."""
    head = (b"POST " + path + b" HTTP/1.1\r\n" + HOST + AUTH
            + b"Content-Type: application/json\r\n" + headers)
    if length:
        head += b"Content-Length: %d\r\n" % len(body)
    return head + b"\r\n" + body


def chunked(body: bytes, headers: bytes = b"") -> bytes:
    return post(body, b"Transfer-Encoding: chunked\r\n" + headers, length=False)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


def headers(count: int) -> bytes:
    return b"".join(b"X-H%d: v\r\n" % n for n in range(count))


def get(target: bytes, headers: bytes = b"", version: bytes = b"HTTP/1.1") -> bytes:
    return b"GET " + target + b" " + version + b"\r\n" + HOST + AUTH + headers + b"\r\n"


#: (case, raw request, the status the compiled parser's node answers, and the error
#: code when that answer is the node's own JSON error rather than aiohttp's refusal).
CASES: list[tuple[str, bytes, int, str | None]] = [
    # request lines
    ("path not UTF-8", get(b"/\xff\xfe"), 400, None),
    ("session key as raw UTF-8", post(EVENT, path="/v1/sessions/é/events".encode()), 400,
     None),
    ("query not UTF-8", get(b"/v1/events?after=\xff"), 400, None),
    ("HTTP/9.9", get(b"/healthz", version=b"HTTP/9.9"), 400, None),
    ("HTTP/1.2", get(b"/v1/sessions", version=b"HTTP/1.2"), 400, None),
    ("path of 100,000 bytes", get(b"/" + b"a" * 100_000), 400, None),
    # headers: size, count, syntax
    ("header of 9,000 bytes", get(b"/healthz", b"X-Big: " + b"a" * 9000 + b"\r\n"), 400, None),
    # HEADERS_MAX, with get's three (Host, Connection, Authorization): the compiled
    # parser takes them all
    ("HEADERS_MAX headers", get(b"/healthz", headers(HEADERS_MAX - 3)), 200, None),
    ("HEADERS_MAX + 1 headers", get(b"/healthz", headers(HEADERS_MAX - 2)), 400, None),
    ("150 headers", get(b"/healthz", headers(150)), 400, None),
    ("header without a colon", get(b"/healthz", b"Bad Header\r\n"), 400, None),
    ("NUL in a header name", get(b"/healthz", b"X-N\x00: v\r\n"), 400, None),
    # framing
    ("two Content-Lengths", post(b"[]", b"Content-Length: 7\r\n"), 400, None),
    ("Content-Length -1", post(b"", b"Content-Length: -1\r\n", length=False), 400, None),
    ("Content-Length with Transfer-Encoding",
     chunked(b"2\r\n[]\r\n0\r\n\r\n", b"Content-Length: 12\r\n"), 400, None),
    ("chunked not last", post(b"0\r\n\r\n", b"Transfer-Encoding: chunked, gzip\r\n",
                              length=False), 400, None),
    ("chunk size not hex", chunked(b"zz\r\nabc\r\n0\r\n\r\n"), 400, None),
    ("chunk shorter than its size", chunked(b"5\r\nab\r\n0\r\n\r\n"), 400, None),
    # bodies
    ("body over body_bytes_max", post(BIG_EVENT), 413, "limit_exceeded"),
    ("chunked body over body_bytes_max", chunked(chunk(BIG_EVENT) + b"0\r\n\r\n"), 413,
     "limit_exceeded"),
    ("chunked, many chunks over body_bytes_max", chunked(b"".join(
        chunk(BIG_EVENT[at:at + 1000]) for at in range(0, len(BIG_EVENT), 1000))
        + b"0\r\n\r\n"), 413, "limit_exceeded"),
    ("bad JSON", post(b"{"), 400, "invalid_input"),
    ("JSON not UTF-8", post(EVENT.replace(b"hi", b"\xff")), 400, "invalid_input"),
    ("truncated gzip", post(b"\x1f\x8b\x08\x00", b"Content-Encoding: gzip\r\n"), 400,
     "invalid_content_encoding"),
]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    folder = tmp_path_factory.mktemp("python-parser")
    config = folder / "limits.toml"
    config.write_text(f"[limits]\nbody-bytes-max = {BODY_BYTES_MAX}\n"
                      "refused-log-lines-max = 1000\n")
    with NodeProcess(folder, token=TOKEN, program="tests.support.python_parser_node",
                     env={"AIOHTTP_NO_EXTENSIONS": "1"},
                     extra_args=["--config", str(config)]) as node:
        yield node


def answer(node: NodeProcess, raw: bytes) -> tuple[int, str | None]:
    """The status of the node's answer to ``raw`` and its JSON error code (None if the
    body is not one)."""
    with socket.create_connection(("127.0.0.1", node.port), timeout=ANSWER_TIMEOUT_S) as sock:
        with contextlib.suppress(OSError):  # refused before all was sent: read its answer
            sock.sendall(raw)
        received = b""
        while piece := sock.recv(65536):
            received += piece
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/"), f"no answer: {received[:200]!r}"
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = None
    return int(head.split(b" ", 2)[1]), code


def test_serves_through_the_pure_python_parser(node: NodeProcess) -> None:
    line = next(line for line in Path(node.log_path).read_text().splitlines()
                if line.startswith(PARSER_LINE))
    assert line.endswith("pure_python=True"), line


def test_hostile_requests_are_answered_as_with_the_compiled_parser(node: NodeProcess) -> None:
    assert answer(node, post(EVENT)) == (201, None)
    head = node.get("/healthz")["head"]
    differ = []
    for case, raw, status, code in CASES:
        got = answer(node, raw)
        if got[0] != status or (code is not None and got[1] != code):
            differ.append(f"{case}: {got}, not {(status, code)}")
    assert not differ, "\n".join(differ)
    assert node.get("/healthz")["head"] == head  # nothing stored
    assert answer(node, post(EVENT)) == (201, None)  # and it still serves
    log = Path(node.log_path).read_text()
    assert "Traceback" not in log and "[ERROR]" not in log, node.log_tail()
