"""What the commands and the Python client do with bodies no node sends, which would crash
or exhaust the client: JSON nested deeper than Python parses, an endless answer, a line
or a message of the live stream without end, fields of another type in what ``tail``,
``append``, ``events`` and an OpenClaw export read. Each is one clear error, never a
traceback nor a client that fills its memory."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from crdt.clock import Hlc
from crdt.events import Draft
from node.cli.common import NodeError
from node.cli.openclaw_sink import HttpSink
from node.client.api import Client
from node.client.errors import ClientError
from node.limits import ClientLimits
from tests.support.processes import one_error_line, run_cli
from tests.support.stand_in import Quiet, serving

#: JSON nested deeper than Python's parser goes.
DEEP = b"[" * 200_000
#: A live stream's line longer than the client reads as one (a message's most).
LONG_LINE = ClientLimits().stream_message_bytes_max + 1024
#: An event's content on one line longer than aiohttp reads by default (512 KiB), within
#: what a node sends (``body_bytes_max``).
BIG_EVENT_CHARS = 1024 * 1024
#: What an endless answer sends before the test gives up on the client (past
#: ``answer_bytes_max``, which the client must stop at).
ENDLESS_BYTES = 80 * 1024 * 1024
#: A live stream's message of many short lines, past ``stream_message_bytes_max``.
LONG_MESSAGE = 8 * 1024 * 1024
#: 400 bodies whose "error" is not the node's shape, by mode: no object (as some web
#: servers and proxies word a refusal), a code or a field that is no text.
REFUSALS: dict[str, Any] = {
    "texterror": {"error": "Bad Request"},
    "codelist": {"error": {"code": ["x"], "message": "m"}},
    "codeobject": {"error": {"code": {}, "message": "m"}},
    "fieldlist": {"error": {"code": "invalid_field", "message": "m", "field": ["f"]}},
}
#: A refusal whose detail is a number JSON has not (``json.dumps`` writes ``Infinity``):
#: the client reads it as no refusal of the node's shape, as any body that is not JSON.
ENDLESS_BOUND = {"error": {"code": "timestamp_ahead", "field": "timestamp",
                           "message": "timestamp: past the bound", "bound_ms": float("inf"),
                           "clock_ms": 0}}
#: A link of ``GET /v1/peers`` that backs off for ever: JSON has no Infinity, Python's
#: ``json.dumps`` writes it all the same.
ENDLESS_BACKOFF = {"link": "http://127.0.0.1:1/", "url": "http://127.0.0.1:1/",
                   "direction": "out", "node_id": "peer-1", "state": "backoff",
                   "retry_in_s": float("inf"), "last_contact_s_ago": None,
                   "bytes_in": 0, "bytes_out": 0}


class _Hostile(Quiet):
    def _send(self, status: int, body: bytes, kind: str = "application/json",
              length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)  # the client may hang up first: as it should

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        url = urlsplit(self.path)
        mode = url.path.split("/")[2]
        path = url.path.removeprefix(f"/m/{mode}")
        if path == "/v1/events":
            self._stream(mode)
        elif mode == "deep":
            self._send(200, DEEP)
        elif mode == "deeperror":
            self._send(400, DEEP)
        elif mode in REFUSALS:
            self.answer(400, REFUSALS[mode])
        elif mode == "endlessbound":
            self.answer(400, ENDLESS_BOUND)
        elif mode == "infinity" and path == "/healthz":
            self.answer(200, {"status": "ok", "node_id": "n1", "head": 0})
        elif mode == "infinity":
            self.answer(200, {"peers": [ENDLESS_BACKOFF]})
        elif mode == "declared":  # a length no answer has, and nothing after it
            self._send(200, b"", length=2**40)
        elif mode == "endless":
            self._endless()
        elif mode == "head":
            self.answer(200, {"status": "ok", "head": "7x"})
        elif mode == "events" and self.command == "POST":
            self.answer(200, {"created": 1, "events": "abc"})
        elif mode == "kind" and self.command == "POST":
            self.answer(200, {"created": 1, "events": [{"position": 1, "kind": 5}]})
        elif mode == "kind":
            self.answer(200, {"events": [{"position": 1, "kind": 5}], "next": 1,
                              "more": False})
        elif mode == "created":
            self.answer(200, {"created": "x", "events": []})
        else:
            self.answer(404, {"error": {"code": "not_found", "message": "no"}})

    def _endless(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        chunk = b"[" + b" " * (64 * 1024 - 1)
        try:
            for _ in range(ENDLESS_BYTES // len(chunk)):
                self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading: as it should

    def _stream(self, mode: str) -> None:
        if mode == "sse-deep":
            body = b"id: 1\ndata: " + DEEP + b"\n\n"
        elif mode == "sse-line":
            body = b"data: " + b"x" * LONG_LINE + b"\n\n"
        elif mode == "sse-big":
            event = {"position": 1, "session_key": "s1", "kind": {
                "type": "message_received", "content": "x" * BIG_EVENT_CHARS}}
            body = b"id: 1\ndata: " + json.dumps(event).encode() + b"\n\n"
        elif mode == "sse-kind":
            body = b'id: 1\ndata: {"position": 1, "kind": 5}\n\n'
        elif mode == "sse-nan":
            body = b'id: 1\ndata: {"position": 1, "session_key": "s1", "kind": ' \
                b'{"type": "message_received", "content": NaN}}\n\n'
        else:  # many short data lines of one message that never ends
            line = b"data: " + b"x" * 1000 + b"\n"
            body = line * (LONG_MESSAGE // len(line))
        self._send(200, body, kind="text/event-stream")

    do_GET = do_POST = do_DELETE = _answer


@pytest.fixture(scope="module")
def hostile() -> Iterator[str]:
    with serving(_Hostile) as url:
        yield url


@pytest.mark.parametrize("args", [("status",), ("events", "s1"), ("sessions",),
                                  ("append", "s1", "message_received", "content=hi")])
def test_deeply_nested_json_is_said(hostile: str, args: tuple[str, ...]) -> None:
    said = one_error_line(run_cli(f"{hostile}/m/deep", *args))
    assert "not a JSON object" in said, said


def test_deeply_nested_json_in_a_refusal_is_said(hostile: str) -> None:
    said = one_error_line(run_cli(f"{hostile}/m/deeperror", "events", "s1"))
    assert "the node refused" in said, said


@pytest.mark.parametrize("mode", sorted(REFUSALS))
@pytest.mark.parametrize("args", [("events", "s1"),
                                  ("append", "s1", "message_received", "content=hi")])
def test_a_refusal_of_another_shape_is_said(hostile: str, mode: str,
                                            args: tuple[str, ...]) -> None:
    result = run_cli(f"{hostile}/m/{mode}", *args)
    # A code that is text blames the input (2); the others are no clawsync answer (1).
    assert result.returncode == (2 if mode == "fieldlist" else 1), result.stderr[-1000:]
    assert "Traceback" not in result.stderr, result.stderr[-1000:]
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: "), \
        result.stderr[-1000:]
    assert "the node refused" in result.stderr, result.stderr


def test_status_says_a_number_json_has_not(hostile: str) -> None:
    said = one_error_line(run_cli(f"{hostile}/m/infinity", "status"))
    assert "not a JSON object" in said, said


def test_a_refusal_with_a_number_json_has_not_is_said_without_it(hostile: str) -> None:
    result = run_cli(f"{hostile}/m/endlessbound", "append", "s1", "message_received",
                     "content=hi")
    # Its words ("past the bound") are not shown: its body is no refusal of a node's.
    assert (result.returncode, result.stderr) == (
        1, "Error: the node refused the event: Bad Request\n"), result.stderr


def test_the_stand_in_sends_more_than_the_limits() -> None:
    limits = ClientLimits()
    assert limits.answer_bytes_max < ENDLESS_BYTES
    assert limits.stream_message_bytes_max < LONG_MESSAGE


@pytest.mark.parametrize("mode", ["endless", "declared"])
def test_an_answer_past_its_limit_is_refused(hostile: str, mode: str) -> None:
    said = one_error_line(run_cli(f"{hostile}/m/{mode}", "status"))
    assert "answer_bytes_max" in said, said


@pytest.mark.parametrize(("mode", "words"), [
    ("sse-deep", "nested too deep"),
    ("sse-line", "LineTooLong"),
    ("sse-long", "stream_message_bytes_max"),
    ("sse-kind", "'kind'"),
])
def test_tail_says_a_stream_it_cannot_read(hostile: str, mode: str, words: str) -> None:
    result = run_cli(f"{hostile}/m/{mode}", "tail", "--after", "0")
    assert result.returncode == 1, (result.stdout, result.stderr[-1000:])
    following, said = result.stderr.splitlines()  # ends instead of reconnecting for ever
    assert following.startswith("following "), result.stderr
    assert said.startswith("Error: ") and words in said, said


def test_tail_says_a_head_that_is_no_number(hostile: str) -> None:
    said = one_error_line(run_cli(f"{hostile}/m/head", "tail"))
    assert "'7x' as 'head', not" in said, said


@pytest.mark.parametrize(("mode", "words"), [
    ("events", "'abc' as 'events', not a list"),
    ("kind", "5 as 'kind', not"),
])
def test_append_says_an_answer_it_cannot_read(hostile: str, mode: str, words: str) -> None:
    said = one_error_line(run_cli(f"{hostile}/m/{mode}", "append", "s1",
                                  "message_received", "content=hi"))
    assert "the node stored 1 event of session 's1', but its answer is malformed" in said
    assert words in said, said


def test_events_says_a_kind_that_is_no_object(hostile: str) -> None:
    said = one_error_line(run_cli(f"{hostile}/m/kind", "events", "s1"))
    assert "5 as 'kind', not" in said, said


def test_an_export_says_a_count_of_created_that_is_no_number(hostile: str) -> None:
    event = Draft("s1", "main", "message_received", {"content": "hi"}).seal(Hlc(1, 0))

    async def append() -> Any:
        async with Client(f"{hostile}/m/created") as client:
            return await HttpSink(client).append([event])

    with pytest.raises(NodeError, match="'x' as 'created', not"):
        asyncio.run(append())


async def _first_streamed(node: str) -> Any:
    """The first item the client's live stream from ``node`` gives, None if none."""
    async with Client(node) as client:
        async for item in client.stream(0):
            return item
    return None


def test_the_client_says_deep_json_in_a_stream(hostile: str) -> None:
    with pytest.raises(ClientError, match="nested too deep"):
        asyncio.run(_first_streamed(f"{hostile}/m/sse-deep"))


def test_the_client_says_a_number_json_has_not_in_a_stream(hostile: str) -> None:
    with pytest.raises(ClientError) as raised:
        asyncio.run(_first_streamed(f"{hostile}/m/sse-nan"))
    assert str(raised.value) == "the live stream sent data that is not JSON: NaN is not a " \
        "JSON number"


def test_the_client_reads_an_event_on_a_line_longer_than_aiohttps_default(
        hostile: str) -> None:
    """A node sends each event on one ``data:`` line, up to its ``body_bytes_max``: the
    client takes lines as long as a message it reads (aiohttp's default stops at 512 KiB
    with LineTooLong)."""
    item = asyncio.run(_first_streamed(f"{hostile}/m/sse-big"))
    assert item is not None and item.position == 1
    assert len(item.event["kind"]["content"]) == BIG_EVENT_CHARS
