"""Bodies a node cannot read as a batch: malformed or tagged JSON and CBOR, too large,
compressed wrongly or past the limit, nested too deep, in another content type or
charset, empty, or sent too slowly. Each test checks the 4xx status, that the JSON error
names the problem and the field, that nothing was written, and that the node still
serves."""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import cbor2
import pytest

from crdt import codec
from node.server.run import RunningNode
from tests.node.server.bad_input.refusals import (
    BODY_BYTES_MAX,
    CBOR,
    JSON,
    URL,
    post_bytes,
    post_json,
    refused,
)

EventFactory = Callable[..., dict[str, Any]]
NodeFactory = Callable[..., Awaitable[RunningNode]]


async def test_malformed_json(client: aiohttp.ClientSession) -> None:
    await post_bytes(client, b'{"agent_id": "main", ', JSON, 400, "invalid_input", "body",
                     "JSON")


@pytest.mark.parametrize(("body", "says"), [
    (b"[NaN]", "JSON: NaN is not a JSON number"),
    (b'{"a": Infinity}', "JSON: Infinity is not a JSON number"),
    (b"[1e999]", "JSON: number 1e999 is out of range"),
    (b"[" + b"9" * 5000 + b"]", "JSON"),
    (b'{"agent_id": "\xff"}', "UTF-8"),
    (b'{"a": 1, "a": 2}', "duplicate key"),
    (b"", "empty"),
])
async def test_json_that_other_languages_would_read_differently(
        client: aiohttp.ClientSession, body: bytes, says: str) -> None:
    await post_bytes(client, body, JSON, 400, "invalid_input", "body", says)


async def test_malformed_cbor(client: aiohttp.ClientSession) -> None:
    await post_bytes(client, b"\xa2\x61", CBOR, 400, "invalid_input", "body", "CBOR")


async def test_cbor_with_a_tag(client: aiohttp.ClientSession,
                               event_body: EventFactory) -> None:
    event = event_body(5)
    event["kind"]["content"] = cbor2.CBORTag(32, "http://example.com")
    await post_bytes(client, cbor2.dumps(event), CBOR, 400, "invalid_input", "body", "tags")


async def test_cbor_with_trailing_bytes(client: aiohttp.ClientSession,
                                        event_body: EventFactory) -> None:
    body = codec.encode(event_body(5)) + b"\x00"
    await post_bytes(client, body, CBOR, 400, "invalid_input", "body", "trailing")


async def test_oversized_body_with_content_length(client: aiohttp.ClientSession) -> None:
    body = b" " * (BODY_BYTES_MAX + 1)
    await post_bytes(client, body, JSON, 413, "limit_exceeded", "body",
                     f"the limit is {BODY_BYTES_MAX}")


async def test_oversized_body_streamed_without_content_length(
        client: aiohttp.ClientSession) -> None:
    sent = 0

    async def endless_whitespace() -> AsyncIterator[bytes]:
        # Valid JSON whitespace, forever (up to a safety stop far past the cap): only
        # counting the bytes as they arrive can stop it.
        nonlocal sent
        while sent < 100 * BODY_BYTES_MAX:
            sent += 4096
            yield b" " * 4096

    async with client.post(URL, data=endless_whitespace(), headers=JSON) as resp:
        assert resp.request_info.headers.get("Transfer-Encoding") == "chunked"
        assert "Content-Length" not in resp.request_info.headers
        await refused(resp, 413, "limit_exceeded", "body", f"limit of {BODY_BYTES_MAX}")


async def test_compressed_body_that_inflates_past_the_limit(
        client: aiohttp.ClientSession) -> None:
    body = gzip.compress(b" " * (100 * BODY_BYTES_MAX))  # a few kB on the wire
    assert len(body) < BODY_BYTES_MAX
    await post_bytes(client, body, {**JSON, "Content-Encoding": "gzip"}, 413,
                     "limit_exceeded", "body", f"limit of {BODY_BYTES_MAX}")


def plain_event(event_body: EventFactory) -> bytes:
    return json.dumps(event_body(9)).encode()


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
async def test_a_body_that_is_not_in_its_content_encoding(
        client: aiohttp.ClientSession, event_body: EventFactory, coding: str) -> None:
    await post_bytes(client, plain_event(event_body), {**JSON, "Content-Encoding": coding},
                     400, "invalid_content_encoding", "Content-Encoding",
                     f"not valid {coding}")


@pytest.mark.parametrize("compress", [gzip.compress, zlib.compress])
@pytest.mark.parametrize("cut", [1, 4, 8])  # inside the trailer, or inside the data
async def test_a_compressed_body_cut_short(client: aiohttp.ClientSession,
                                           event_body: EventFactory,
                                           compress: Callable[[bytes], bytes],
                                           cut: int) -> None:
    coding = "gzip" if compress is gzip.compress else "deflate"
    body = compress(plain_event(event_body))[:-cut]
    await post_bytes(client, body, {**JSON, "Content-Encoding": coding}, 400,
                     "invalid_content_encoding", "Content-Encoding", "ends inside")


async def test_bytes_after_a_compressed_body(client: aiohttp.ClientSession,
                                             event_body: EventFactory) -> None:
    body = gzip.compress(plain_event(event_body)) + b"{}"
    await post_bytes(client, body, {**JSON, "Content-Encoding": "gzip"}, 400,
                     "invalid_content_encoding", "Content-Encoding", "follow the end")


@pytest.mark.parametrize("coding", ["br", "zstd", "gzip, gzip", "compress"])
async def test_an_unknown_content_encoding(client: aiohttp.ClientSession,
                                           event_body: EventFactory, coding: str) -> None:
    await post_bytes(client, plain_event(event_body), {**JSON, "Content-Encoding": coding},
                     415, "unsupported_content_encoding", "Content-Encoding",
                     "is not accepted")


async def test_a_compressed_body_is_taken(node: RunningNode, event_body: EventFactory) -> None:
    async with aiohttp.ClientSession(base_url=node.url) as client:
        for coding, compress in (("gzip", gzip.compress), ("deflate", zlib.compress)):
            async with client.post(URL, data=compress(json.dumps(event_body(len(coding))).encode()),
                                   headers={**JSON, "Content-Encoding": coding}) as resp:
                assert resp.status == 201, await resp.text()


#: A body nested too deep is refused with the limit on an event's values too, which is
#: the one the README gives.
TOO_DEEP = (f"nesting deeper than {codec.DEPTH_MAX + 3} levels in the body "
            f"(an event's values may nest {codec.DEPTH_MAX})")


def nested(depth: int) -> Any:
    """An empty list inside ``depth - 1`` more: ``depth`` levels."""
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize("depth", [40, 30_000])  # 30,000 overflows the JSON parser's stack
async def test_nesting_too_deep(client: aiohttp.ClientSession, depth: int) -> None:
    params = "[" * depth + "]" * depth
    body = ('{"agent_id": "main", "kind": {"type": "tool_called", "tool_name": "t", '
            '"params": ' + params + "}}").encode()
    await post_bytes(client, body, JSON, 413, "limit_exceeded", "body", TOO_DEEP)


async def test_nesting_too_deep_in_cbor(client: aiohttp.ClientSession) -> None:
    body = cbor2.dumps({"agent_id": "main", "kind": {"type": "tool_called",
                                                     "tool_name": "t", "params": nested(41)}})
    await post_bytes(client, body, CBOR, 413, "limit_exceeded", "body", f"CBOR {TOO_DEEP}")


async def test_nesting_too_deep_inside_a_payload(client: aiohttp.ClientSession) -> None:
    # Within the body's depth bound, but deeper than a payload value may be.
    params = nested(33)
    event = {"agent_id": "main", "kind": {"type": "tool_called", "tool_name": "t",
                                          "params": params}}
    async with client.post(URL, json=event) as resp:
        assert resp.status == 413
        error = (await resp.json())["error"]
    assert error["code"] == "limit_exceeded"
    assert error["field"].startswith("events[0].kind.params[0]")
    assert "nesting deeper" in error["message"]


async def test_unsupported_content_type(client: aiohttp.ClientSession,
                                        event_body: EventFactory) -> None:
    body = json.dumps(event_body(5)).encode()
    await post_bytes(client, body, {"Content-Type": "text/plain"}, 415,
                     "unsupported_media_type", "Content-Type", "text/plain")


@pytest.mark.parametrize("charset", ["latin-1", "utf-16"])
async def test_json_in_another_charset_is_refused(client: aiohttp.ClientSession,
                                                  event_body: EventFactory,
                                                  charset: str) -> None:
    body = json.dumps(event_body(5)).encode()
    await post_bytes(client, body, {"Content-Type": f"application/json; charset={charset}"},
                     415, "unsupported_media_type", "Content-Type",
                     f"charset '{charset}' is not accepted: JSON bodies are UTF-8")


async def test_json_that_names_its_utf_8_charset_is_taken(node: RunningNode,
                                                         event_body: EventFactory) -> None:
    async with aiohttp.ClientSession(base_url=node.url) as session, session.post(
            URL, data=json.dumps(event_body(7)).encode(),
            headers={"Content-Type": "application/json; charset=UTF-8"}) as resp:
        assert resp.status == 201, await resp.text()


async def test_json_with_a_byte_order_mark(client: aiohttp.ClientSession,
                                          event_body: EventFactory) -> None:
    body = b"\xef\xbb\xbf" + json.dumps(event_body(5)).encode()
    await post_bytes(client, body, JSON, 400, "invalid_input", "body", "byte order mark")


async def test_empty_batch(client: aiohttp.ClientSession) -> None:
    await post_json(client, [], 400, "invalid_input", "events", "at least one event")


async def test_body_that_is_not_an_event(client: aiohttp.ClientSession) -> None:
    await post_json(client, "hello", 400, "invalid_input", "events[0]", "must be an object")


async def test_body_sent_too_slowly(make_node: NodeFactory,
                                    event_body: EventFactory) -> None:
    node = await make_node(read_timeout_s=0.05)
    host, port = node.url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"POST /v1/sessions/s1/events HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
    await writer.drain()
    answer = await reader.read()  # the server answers and closes; the client never finished
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b'"code":"request_timeout"' in answer
    assert node.astore.head == 0
