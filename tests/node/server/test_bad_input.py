"""One test per kind of bad input. Each checks the 4xx status, that the JSON error names
the problem and the field, that nothing was written, and that the node still serves."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import cbor2
import pytest
import yarl

from crdt import codec
from crdt.events import EVENT_BYTES_MAX
from node.server.run import RunningNode

EventFactory = Callable[..., dict[str, Any]]
NodeFactory = Callable[..., Awaitable[RunningNode]]

URL = "/v1/sessions/s1/events"
JSON = {"Content-Type": "application/json"}
CBOR = {"Content-Type": "application/cbor"}
#: Small limits make oversized input cheap to send.
BODY_BYTES_MAX = 64 * 1024
BATCH_EVENTS_MAX = 3


@pytest.fixture
async def node(make_node: NodeFactory, event_body: EventFactory) -> RunningNode:
    """A node holding one event, so that a stray write would show."""
    node = await make_node(body_bytes_max=BODY_BYTES_MAX, batch_events_max=BATCH_EVENTS_MAX)
    async with aiohttp.ClientSession(base_url=node.url) as client, client.post(
            URL, json=event_body(0)) as resp:
        assert resp.status == 201
    return node


@pytest.fixture
async def client(node: RunningNode, event_body: EventFactory
                 ) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=node.url) as session:
        head = node.astore.head
        async with session.get(URL) as resp:
            positions = [e["position"] for e in (await resp.json())["events"]]
        assert len(positions) == 1
        yield session
        # After every bad request: nothing was written, and the node still works.
        assert node.astore.head == head
        async with session.get(URL) as resp:
            assert [e["position"] for e in (await resp.json())["events"]] == positions
        async with session.post(URL, json=event_body(1)) as resp:
            assert resp.status == 201
        assert node.astore.head == head + 1


async def refused(resp: aiohttp.ClientResponse, status: int, code: str,
                  field: str | None, says: str) -> None:
    assert resp.status == status
    assert resp.content_type == "application/json"
    error = (await resp.json())["error"]
    assert error["code"] == code
    assert error["field"] == field
    assert says in error["message"]


async def post_bytes(client: aiohttp.ClientSession, body: bytes, headers: dict[str, str],
                     status: int, code: str, field: str | None, says: str) -> None:
    async with client.post(URL, data=body, headers=headers) as resp:
        await refused(resp, status, code, field, says)


async def post_json(client: aiohttp.ClientSession, value: Any, status: int, code: str,
                    field: str | None, says: str) -> None:
    await post_bytes(client, json.dumps(value).encode(), JSON, status, code, field, says)


async def test_malformed_json(client: aiohttp.ClientSession) -> None:
    await post_bytes(client, b'{"agent_id": "main", ', JSON, 400, "invalid_input", "body",
                     "JSON")


@pytest.mark.parametrize(("body", "says"), [
    (b"[NaN]", "NaN"),
    (b'{"a": Infinity}', "Infinity"),
    (b"[1e999]", "out of range"),
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


async def test_unknown_kind(client: aiohttp.ClientSession, event_body: EventFactory) -> None:
    event = event_body(5, kind={"type": "teleport", "to": "mars"})
    await post_json(client, event, 400, "invalid_input", "events[0].kind.type",
                    "unknown event type 'teleport'")


async def test_missing_field(client: aiohttp.ClientSession, event_body: EventFactory) -> None:
    event = event_body(5)
    del event["agent_id"]
    await post_json(client, event, 400, "invalid_input", "events[0].agent_id", "is required")


async def test_wrongly_typed_field(client: aiohttp.ClientSession,
                                   event_body: EventFactory) -> None:
    event = event_body(5, kind={"type": "message_received", "content": 5})
    await post_json(client, event, 400, "invalid_input", "events[0].kind.content",
                    "must be a string")


async def test_unknown_field(client: aiohttp.ClientSession, event_body: EventFactory) -> None:
    await post_json(client, event_body(5, colour="red"), 400, "invalid_input", "events[0]",
                    "unknown field 'colour'")


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


async def test_too_many_events_in_a_batch(client: aiohttp.ClientSession,
                                          event_body: EventFactory) -> None:
    events = [event_body(n) for n in range(5, 5 + BATCH_EVENTS_MAX + 1)]
    await post_json(client, events, 413, "limit_exceeded", "events",
                    f"the limit is {BATCH_EVENTS_MAX}")


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


async def test_event_over_the_size_limit(make_node: NodeFactory,
                                         event_body: EventFactory) -> None:
    node = await make_node()  # default body limit: the event fits the body, not the event limit
    event = event_body(5, kind={"type": "message_received",
                                "content": "x" * (EVENT_BYTES_MAX + 1)})
    async with aiohttp.ClientSession(base_url=node.url) as client:
        async with client.post(URL, json=event) as resp:
            await refused(resp, 413, "limit_exceeded", "events[0]",
                          f"the limit is {EVENT_BYTES_MAX}")
        assert node.astore.head == 0
        async with client.post(URL, json=event_body(6)) as resp:
            assert resp.status == 201


async def test_id_not_matching_content(client: aiohttp.ClientSession,
                                       event_body: EventFactory) -> None:
    await post_json(client, event_body(5, id="00" * 32), 400, "id_mismatch", "events[0].id",
                    "does not match")


async def test_one_bad_event_refuses_the_whole_batch(client: aiohttp.ClientSession,
                                                     event_body: EventFactory) -> None:
    events = [event_body(5), event_body(6), event_body(7, agent_id="")]
    await post_json(client, events, 400, "invalid_input", "events[2].agent_id", "empty")


@pytest.mark.parametrize("when", [
    {"timestamp": "9999-12-31T23:59:59.999Z"},
    {"hlc": [253_402_300_799_999, 0]},
    {"hlc": [int(time.time() * 1000) + 3 * 3_600_000, 0]},  # a device three hours fast
])
async def test_a_timestamp_far_ahead_of_the_node_clock(client: aiohttp.ClientSession,
                                                       event_body: EventFactory,
                                                       when: dict[str, Any]) -> None:
    # In a batch with a good event, so that the whole request is seen to be refused.
    late = {name: value for name, value in event_body(6).items() if name != "hlc"}
    events = [event_body(5), {**late, **when}]
    await post_json(client, events, 400, "timestamp_ahead", "events[1].timestamp",
                    "ms ahead of this node's clock")


@pytest.mark.parametrize(("path", "field", "says"), [
    (URL + "?after=-1", "after", "must be an integer from 0"),
    (URL + "?after=abc", "after", "must be an integer from 0"),
    (URL + "?limit=0", "limit", "must be an integer from 1 to 1000"),
    (URL + "?limit=100000", "limit", "must be an integer from 1 to 1000"),
    (URL + "?after=1&after=2", "after", "more than once"),
    ("/v1/sessions?after=1.5", "after", "must be an integer"),
    ("/v1/events?limit=", "limit", "must be an integer"),
    ("/v1/events?wait=nan", "wait", "seconds"),
    ("/v1/events?wait=3600", "wait", "seconds from 0 to 60"),
    ("/v1/events?after=99999999999999999999", "after", "must be an integer"),
])
async def test_bad_cursor(client: aiohttp.ClientSession, path: str, field: str,
                          says: str) -> None:
    async with client.get(path) as resp:
        await refused(resp, 400, "invalid_parameter", field, says)


@pytest.mark.parametrize(("method", "path", "field", "takes"), [
    ("GET", "/v1/events?limt=5", "limt", "after, limit, wait"),
    ("GET", URL + "?after=0&prefix=s", "prefix", "after, limit"),
    ("POST", URL + "?session=s2", "session", "none"),
    ("GET", "/v1/sessions/s1?detail=1", "detail", "none"),
    ("DELETE", "/v1/sessions/s1?reason=gdpr", "reason", "none"),  # not forgotten for "user"
    ("GET", "/v1/node?x", "x", "none"),
    ("GET", "/automerge?tokn=abc", "tokn", "token"),
])
async def test_a_query_parameter_the_route_does_not_take(
        client: aiohttp.ClientSession, event_body: EventFactory, method: str, path: str,
        field: str, takes: str) -> None:
    """A typo or a stray parameter is named, not silently the default."""
    async with client.request(method, path, json=event_body(7)) as resp:
        await refused(resp, 400, "invalid_parameter", field, f"(it takes {takes})")


async def test_the_routes_take_their_parameters_and_peers_routes_any(
        client: aiohttp.ClientSession) -> None:
    for path in ("/v1/sessions?after=0&limit=5&prefix=s&detail=1&include_cluster=0",
                 URL + "?after=0&limit=5", "/v1/events?after=0&limit=5&wait=0"):
        async with client.get(path) as resp:
            assert resp.status == 200, (path, await resp.text())
    # A newer node may call a peer route with parameters this one does not know.
    async with client.get("/peer/v1/members?since=5") as resp:
        assert resp.status != 400, await resp.text()


STREAM = {"Accept": "text/event-stream"}


@pytest.mark.parametrize(("path", "field"), [
    ("/v1/events?limit=0", "limit"), ("/v1/events?wait=abc", "wait"),
    ("/v1/events?after=-1", "after")])
async def test_a_live_stream_checks_its_parameters_too(
        client: aiohttp.ClientSession, path: str, field: str) -> None:
    async with client.get(path, headers=STREAM) as resp:
        await refused(resp, 400, "invalid_parameter", field, "must be")


@pytest.mark.parametrize(("path", "headers", "field"), [
    (URL + "?after={at}", {}, "after"),
    ("/v1/events?after={at}", {}, "after"),
    ("/v1/events?after={at}&wait=1", {}, "after"),
    ("/v1/events?after={at}", STREAM, "after"),
    ("/v1/events", {**STREAM, "Last-Event-ID": "{at}"}, "Last-Event-ID"),
])
async def test_a_position_past_the_head_is_refused(
        client: aiohttp.ClientSession, node: RunningNode, path: str,
        headers: dict[str, str], field: str) -> None:
    """Positions are each node's own: one past the head (another node's, or from before
    a restore) would skip every event stored until the head reached it."""
    head = node.astore.head

    def at(position: int) -> tuple[str, dict[str, str]]:
        return path.format(at=position), {name: value.format(at=position)
                                          for name, value in headers.items()}

    past, past_headers = at(head + 3)
    async with client.get(past, headers=past_headers) as resp:
        await refused(resp, 400, "invalid_parameter", field,
                      f"past this node's newest position ({head})")
    here, _ = at(head)
    if here != path:  # the head itself, as a page (which ends): nothing after it yet
        async with client.get(here) as resp:
            assert resp.status == 200 and (await resp.json())["events"] == []


async def test_a_session_index_past_the_last_is_refused(
        client: aiohttp.ClientSession, node: RunningNode) -> None:
    """Like positions, session indexes are each node's own: one past the last would skip
    every session created until the list reached it."""
    listed = (await node.astore.stats())["sessions"]
    async with client.get(f"/v1/sessions?after={listed + 1}") as resp:
        await refused(resp, 400, "invalid_parameter", "after",
                      f"past this node's last session index ({listed})")
    async with client.get(f"/v1/sessions?after={listed}") as resp:
        assert resp.status == 200 and (await resp.json())["sessions"] == []


@pytest.mark.parametrize("query", ["prefix=%ff", "prefix=a%C3", "after=%C3%28"])
async def test_a_query_whose_escapes_are_not_utf8_is_refused(
        client: aiohttp.ClientSession, query: str) -> None:
    # aiohttp reads "%ff" as U+FFFD, which would match the keys that start with it.
    url = client._build_url("/v1/sessions").with_query(None)
    async with client.get(yarl.URL(f"{url}?{query}", encoded=True)) as resp:
        await refused(resp, 400, "invalid_parameter", query.split("=")[0],
                      "percent-encoded UTF-8")
    async with client.get(yarl.URL(f"{url}?prefix=%EF%BF%BD", encoded=True)) as resp:
        assert resp.status == 200  # U+FFFD itself, well encoded


@pytest.mark.parametrize(("field", "value", "says"), [
    ("position", "abc", "a non-negative integer, not string"),
    ("seq", -3, "a non-negative integer, not -3"),
    ("position", True, "a non-negative integer, not boolean"),
    ("origin", [1], "a string, not array"),
    ("created", "yes", "a boolean, not string"),
    ("known_kind", 0, "a boolean, not 0"),
])
async def test_a_nodes_own_numbering_must_have_its_type(
        client: aiohttp.ClientSession, event_body: EventFactory, field: str, value: Any,
        says: str) -> None:
    """A node's output may be posted again: its numbering is ignored, but checked."""
    await post_json(client, event_body(5, **{field: value}), 400, "invalid_input",
                    f"events[0].{field}", says)


async def test_bad_last_event_id(client: aiohttp.ClientSession) -> None:
    headers = {"Accept": "text/event-stream", "Last-Event-ID": "x"}
    async with client.get("/v1/events", headers=headers) as resp:
        await refused(resp, 400, "invalid_parameter", "Last-Event-ID", "must be")


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


async def test_session_key_in_body_differs_from_url(client: aiohttp.ClientSession,
                                                    event_body: EventFactory) -> None:
    await post_json(client, event_body(5, session_key="s2"), 400, "invalid_input",
                    "events[0].session_key", "differs from the session in the URL")


async def test_bad_session_key_in_url(client: aiohttp.ClientSession,
                                      event_body: EventFactory) -> None:
    async with client.post("/v1/sessions/a%01b/events", json=event_body(5)) as resp:
        await refused(resp, 400, "invalid_input", "session_key", "control characters")


@pytest.mark.parametrize("escaped", ["%ff", "a%C3", "%C3%28"])
async def test_a_key_whose_escapes_are_not_utf8_is_refused_everywhere(
        client: aiohttp.ClientSession, node: RunningNode, event_body: EventFactory,
        escaped: str) -> None:
    # aiohttp would hand the route "%ff" as text, the key "%25ff" names: two spellings
    # of one session, one of them a mistake.
    head = node.astore.head
    path = f"/v1/sessions/{escaped}"
    for method, suffix, body in (("POST", "/events", event_body(5)), ("GET", "", None),
                                 ("GET", "/events", None), ("DELETE", "", None),
                                 ("POST", "/forget", {"events": ["00" * 32]})):
        async with client.request(method, path + suffix, json=body) as resp:
            await refused(resp, 400, "invalid_input", "session_key",
                          "percent-encoded UTF-8")
    assert node.astore.head == head


async def test_json_with_a_byte_order_mark(client: aiohttp.ClientSession,
                                          event_body: EventFactory) -> None:
    body = b"\xef\xbb\xbf" + json.dumps(event_body(5)).encode()
    await post_bytes(client, body, JSON, 400, "invalid_input", "body", "byte order mark")


async def test_a_prefix_that_no_key_could_start_with(client: aiohttp.ClientSession) -> None:
    async with client.get("/v1/sessions?prefix=%00") as resp:
        await refused(resp, 400, "invalid_parameter", "prefix", "control characters")


async def test_a_page_posted_whole_says_to_post_its_events(
        client: aiohttp.ClientSession, event_body: EventFactory) -> None:
    page = {"events": [event_body(5)], "next": 9, "more": False}
    await post_json(client, page, 400, "invalid_input", "events", "post its \"events\" list")


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
