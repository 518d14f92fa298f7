"""A node serves through aiohttp's pure-Python HTTP parser (``AIOHTTP_NO_EXTENSIONS=1``,
as on a platform without aiohttp's compiled extension) or its compiled one, llhttp; each
answers hostile requests as the other does: each refused with the same 4xx, nothing
stored, no traceback in its log. Where they differ (``DIFFERENCES``, README's paragraph
on the parsers) each answers as that table says, so that an aiohttp upgrade that moves
either is seen. One node process per parser, every case sent to it raw (bytes that
aiohttp's client would not send), the answers checked together so that every difference
shows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.http.head_limits import HEADER_BYTES_MAX, HEADERS_MAX, TARGET_BYTES_MAX
from tests.support.processes import NodeProcess
from tests.support.python_parser_node import PARSER_LINE
from tests.support.raw_http import answer, exchange, get, tls_hello

TOKEN = "python-parser-token"
#: A small body limit makes oversized bodies cheap to send.
BODY_BYTES_MAX = 64 * 1024
#: The environment that picks each parser (aiohttp reads it once, when first imported).
PARSERS = {"compiled": {}, "pure_python": {"AIOHTTP_NO_EXTENSIONS": "1"}}

AUTH = b"Authorization: Bearer " + TOKEN.encode()
EVENTS = b"/v1/sessions/s1/events"
EVENT = json.dumps([{"agent_id": "a", "kind": {"type": "message_received",
                                               "content": "hi"}}]).encode()
BIG_EVENT = EVENT.replace(b"hi", b"x" * BODY_BYTES_MAX)
#: Headers ``authed`` sends: Host, Connection and AUTH.
AUTHED_HEADERS = 3
#: A TLS 1.2 alert record: warning, close_notify.
TLS_ALERT = bytes.fromhex("150303000201" "00")
#: The start of an SSLv2-compatible ClientHello (a 2-byte length with its top bit set,
#: then type 1, version 3.1, cipher specs), as old clients send it.
SSL2_HELLO = bytes.fromhex("8031" "01" "0301" "0018" "0000" "0010")


def post(body: bytes, *headers: bytes, path: bytes = EVENTS, length: bool = True,
         chunks: bool = False) -> bytes:
    """A raw append (with the token) of ``body`` as JSON."""
    head = [b"Content-Type: application/json", *headers]
    if length:
        head.append(b"Content-Length: %d" % len(body))
    if chunks:
        head.append(b"Transfer-Encoding: chunked")
    return get(path, AUTH, *head, method=b"POST") + body


def chunked(body: bytes, *headers: bytes) -> bytes:
    return post(body, *headers, length=False, chunks=True)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


def headers(count: int) -> tuple[bytes, ...]:
    return tuple(b"X-H%d: v" % n for n in range(count))


def first_header(size: int) -> bytes:
    """A GET of /healthz whose first header's name and value are ``size`` bytes."""
    name = b"X-Big"
    line = name + b": " + b"a" * (size - len(name))
    return b"GET /healthz HTTP/1.1\r\n" + line + b"\r\n" + authed(b"").split(b"\r\n", 1)[1]


def authed(target: bytes, *headers: bytes, version: bytes = b"HTTP/1.1",
           method: bytes = b"GET") -> bytes:
    return get(target, AUTH, *headers, version=version, method=method)


#: (case, raw request, the status both parsers' nodes answer, and the error code when
#: that answer is the node's own JSON error rather than aiohttp's refusal).
CASES: list[tuple[str, bytes, int, str | None]] = [
    # request lines
    ("path not UTF-8", authed(b"/\xff\xfe"), 400, None),
    ("session key as raw UTF-8", post(EVENT, path="/v1/sessions/é/events".encode()), 400,
     None),
    # prefix= takes any text: only the refusal of a byte that is not ASCII refuses it
    ("query as raw UTF-8", authed("/v1/sessions?prefix=é".encode()), 400, None),
    ("HTTP/9.9", authed(b"/healthz", version=b"HTTP/9.9"), 400, None),
    ("HTTP/1.2", authed(b"/v1/sessions", version=b"HTTP/1.2"), 400, None),
    ("HTTP/2.0", authed(b"/healthz", version=b"HTTP/2.0"), 200, None),
    ("HTTP/2.0 without the token", get(b"/v1/sessions", version=b"HTTP/2.0"), 401,
     "unauthorized"),
    ("HTTP/0.9", authed(b"/healthz", version=b"HTTP/0.9"), 200, None),
    ("method BREW, before the token", get(b"/v1/sessions", method=b"BREW"), 400, None),
    # at once, before headers_timeout_s (ANSWER_TIMEOUT_S is longer): the pure-Python
    # parser refuses a line feed without its CR (a hello's supported_groups extension,
    # 0x000a, holds one), and waits for the end of a line without one. So the whole hello
    # is refused even without node.http.listener ending a head no request begins with;
    # the cut hello, the alert and the SSLv2 hello are what guard that
    ("TLS hello on the HTTP port, whole", tls_hello(), 400, None),
    ("TLS hello cut before its line feed", tls_hello().split(b"\n", 1)[0], 400, None),
    ("TLS alert (close_notify)", TLS_ALERT, 400, None),
    ("SSLv2-compatible hello", SSL2_HELLO, 400, None),
    ("path of 100,000 bytes", authed(b"/" + b"a" * 100_000), 400, None),
    ("target of TARGET_BYTES_MAX + 1", authed(b"/" + b"a" * TARGET_BYTES_MAX), 400, None),
    # headers: size, count, syntax
    ("header of 9,000 bytes", authed(b"/healthz", b"X-Big: " + b"a" * 9000), 400, None),
    # the first header's name and value together: the pure-Python parser is given the
    # ": " between them
    ("first header of HEADER_BYTES_MAX", first_header(HEADER_BYTES_MAX), 200, None),
    ("first header of HEADER_BYTES_MAX + 1", first_header(HEADER_BYTES_MAX + 1), 400, None),
    ("HEADERS_MAX headers", authed(b"/healthz", *headers(HEADERS_MAX - AUTHED_HEADERS)), 200,
     None),
    ("HEADERS_MAX + 1 headers", authed(b"/healthz", *headers(HEADERS_MAX + 1 - AUTHED_HEADERS)),
     400, None),
    ("150 headers", authed(b"/healthz", *headers(150)), 400, None),
    ("header without a colon", authed(b"/healthz", b"Bad Header"), 400, None),
    ("NUL in a header name", authed(b"/healthz", b"X-N\x00: v"), 400, None),
    # framing
    ("two Content-Lengths", post(b"[]", b"Content-Length: 7"), 400, None),
    ("Content-Length -1", post(b"", b"Content-Length: -1", length=False), 400, None),
    ("Content-Length with Transfer-Encoding",
     chunked(b"2\r\n[]\r\n0\r\n\r\n", b"Content-Length: 12"), 400, None),
    ("chunked not last", post(b"0\r\n\r\n", b"Transfer-Encoding: chunked, gzip",
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
    ("truncated gzip", post(b"\x1f\x8b\x08\x00", b"Content-Encoding: gzip"), 400,
     "invalid_content_encoding"),
]

#: What the parsers answer differently, as README says (case, raw request, the compiled
#: parser's node's status and code, the pure-Python one's).
DIFFERENCES: list[tuple[str, bytes, tuple[int, str | None], tuple[int, str | None]]] = [
    # the pure-Python parser bounds the whole request line, method and version too
    ("target of TARGET_BYTES_MAX", authed(b"/" + b"a" * (TARGET_BYTES_MAX - 1)),
     (404, "not_found"), (400, None)),
    # the compiled parser bounds a later header's name and its value each
    ("later header of HEADER_BYTES_MAX + 1", authed(
        b"/healthz", b"X-Big: " + b"a" * (HEADER_BYTES_MAX + 1 - len(b"X-Big"))),
     (200, None), (400, None)),
    # the pure-Python parser reads a method in upper case
    ("method get", authed(b"/healthz", method=b"get"), (400, None), (200, None)),
    # it counts trailers against the header count too
    ("HEADERS_MAX - 1 headers and 2 trailers",
     chunked(chunk(EVENT) + b"0\r\nX-T1: v\r\nX-T2: v\r\n\r\n",
             *headers(HEADERS_MAX - 1 - AUTHED_HEADERS - 2)), (201, None), (400, None)),
    # a length past 2^64: the compiled parser cannot read it, the pure-Python one can
    ("Content-Length of 30 digits", post(EVENT, b"Content-Length: " + b"9" * 30,
                                         length=False), (400, None),
     (413, "limit_exceeded")),
]


@pytest.fixture(scope="module", params=list(PARSERS))
def node(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """A node on the parser named ``request.param``."""
    folder = tmp_path_factory.mktemp(request.param)
    config = folder / "limits.toml"
    config.write_text(f"[limits]\nbody-bytes-max = {BODY_BYTES_MAX}\n"
                      "refused-log-lines-max = 1000\n")
    with NodeProcess(folder, token=TOKEN, program="tests.support.python_parser_node",
                     env=PARSERS[request.param],
                     extra_args=["--config", str(config)]) as node:
        yield node


def pure_python(node: NodeProcess) -> bool:
    """Whether ``node`` was started on the pure-Python parser."""
    return node.env == PARSERS["pure_python"]


def test_serves_through_the_parser_it_was_started_on(node: NodeProcess) -> None:
    line = next(line for line in Path(node.log_path).read_text().splitlines()
                if line.startswith(PARSER_LINE))
    assert line.endswith(f"pure_python={pure_python(node)}"), line


def differing(node: NodeProcess,
              expected: list[tuple[str, bytes, tuple[int, str | None]]]) -> list[str]:
    """The cases ``node`` answers otherwise than ``expected`` (a code of None: any)."""
    differ = []
    for case, raw, (status, code) in expected:
        try:
            got = answer(node, raw)
        except AssertionError as error:  # closed unanswered
            differ.append(f"{case}: {error}")
            continue
        if got[0] != status or (code is not None and got[1] != code):
            differ.append(f"{case}: {got}, not {(status, code)}")
    return differ


def test_hostile_requests_are_answered_alike_on_both_parsers(node: NodeProcess) -> None:
    assert answer(node, post(EVENT)) == (201, None)
    head = node.get("/healthz")["head"]
    differ = differing(node, [(case, raw, (status, code))
                              for case, raw, status, code in CASES])
    assert not differ, "\n".join(differ)
    assert node.get("/healthz")["head"] == head  # nothing stored
    assert answer(node, post(EVENT)) == (201, None)  # and it still serves
    log = Path(node.log_path).read_text()
    assert "Traceback" not in log and "[ERROR]" not in log, node.log_tail()


def test_where_the_parsers_differ_each_answers_as_documented(node: NodeProcess) -> None:
    differ = differing(node, [(case, raw, pure if pure_python(node) else compiled)
                              for case, raw, compiled, pure in DIFFERENCES])
    assert not differ, "\n".join(differ)


def test_a_header_split_from_its_request_line_is_held_to_the_same_bound(
        node: NodeProcess) -> None:
    """The network splits a head where it will: a header line that arrives in a read of
    its own, or over two, is taken or refused as the same line in one read is."""
    differ = []
    for size, status in ((HEADER_BYTES_MAX, 200), (HEADER_BYTES_MAX + 1, 400)):
        raw = first_header(size)
        line_end = raw.index(b"\r\n") + 2
        for split, parts in (("after the request line", (raw[:line_end], raw[line_end:])),
                             ("inside the header", (raw[:line_end + 100],
                                                    raw[line_end + 100:]))):
            got = answer(node, *parts)
            if got[0] != status:
                differ.append(f"first header of {size}, split {split}: {got}")
    assert not differ, "\n".join(differ)


def test_a_made_up_method_is_no_new_series_of_the_request_count(node: NodeProcess) -> None:
    for method in (b"BREW", b"M00001", b"M00002"):
        assert answer(node, authed(b"/healthz", method=method))[0] == 400
    metrics = exchange(node, authed(b"/metrics")).decode()
    series = [line for line in metrics.splitlines()
              if line.startswith("clawsync_http_requests_total{")]
    assert series, metrics[:2000]
    assert not [line for line in series if 'method="BREW"' in line or 'method="M0' in line]
