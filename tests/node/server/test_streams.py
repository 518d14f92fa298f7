"""Live streams: a reader that stops reading is dropped after ``stream_send_timeout_s``
and its slot counts again; a reader gone before the answer began is no error; pages are
cut by bytes without losing or repeating events."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import structlog

from crdt.log.projection import rebuild
from crdt.log.records import StoredEvent
from node.http.errors import STOPPING_RETRY_AFTER_S
from node.http.wire import to_json_bytes
from node.server import pages
from node.server.app import STREAMS
from node.server.run import RunningNode
from node.server.streams import SSE_TYPE
from tests.support.events import event
from tests.support.nodes import stop_held
from tests.support.waits import POLL_S, until

EventFactory = Callable[..., dict[str, Any]]
NodeFactory = Callable[..., Awaitable[RunningNode]]
STREAM = b"GET /v1/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
WEBSOCKET = (b"GET /automerge HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
             b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             b"Sec-WebSocket-Version: 13\r\n\r\n")


async def open_stream(node: RunningNode, rcvbuf: int | None = None
                      ) -> tuple[int, asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = node.url.removeprefix("http://").rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(STREAM)
    status_line = await asyncio.wait_for(reader.readline(), 10)
    return int(status_line.split()[1]), reader, writer


async def served_stream(node: RunningNode
                        ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A stream the node serves from this address, once its slot there is free; asked
    for again every ``POLL_S``."""
    async def served() -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        status, reader, writer = await open_stream(node)
        if status == 200:
            return reader, writer
        writer.close()
        return None

    return await until(served, poll_s=POLL_S)


async def test_a_stalled_reader_is_dropped_and_frees_its_slot(
        make_node: NodeFactory, event_body: EventFactory) -> None:
    node = await make_node(streams_per_address_max=1, stream_send_timeout_s=0.5,
                           sse_keepalive_s=0.2)
    async with aiohttp.ClientSession(base_url=node.url) as client:
        for first in range(0, 40, 10):  # about 4 MiB of events, far beyond any buffer
            bodies = [event_body(n, content="x" * 100_000) for n in range(first, first + 10)]
            async with client.post("/v1/sessions/s1/events", json=bodies) as resp:
                assert resp.status == 201
    status, _, stalled = await open_stream(node, rcvbuf=4096)  # and never read again
    assert status == 200
    status, _, refused = await open_stream(node)
    refused.close()
    assert status == 429  # its one slot is taken
    reader, writer = await served_stream(node)  # the stalled one dropped: its send timeout
    assert (await asyncio.wait_for(reader.read(100), 10))  # and this one is served
    writer.close()
    stalled.close()


async def test_a_closed_stream_frees_its_slot_before_the_keepalive(
        make_node: NodeFactory) -> None:
    node = await make_node(streams_per_address_max=1, sse_keepalive_s=60)
    status, _, first = await open_stream(node)
    assert status == 200
    first.close()
    # Within about GONE_CHECK_S: DEADLINE_S is far from the 60 s keepalive.
    _, writer = await served_stream(node)
    writer.close()


def stored_events(sizes: list[int]) -> list[StoredEvent]:
    return [StoredEvent(event(ms=1_000 + n, content="y" * size), n + 1, "o", n + 1)
            for n, size in enumerate(sizes)]


def fetch_from(log: list[StoredEvent]) -> pages.Fetch:
    return lambda after, count: [e for e in log if e.position > after][:count]


def encode(stored: StoredEvent) -> bytes:
    return b"x" * len(stored.event.payload["content"])


def test_pages_end_at_the_byte_bound_and_continue_at_next() -> None:
    log = stored_events([300, 300, 300, 1000, 10, 10, 10])
    fetch = fetch_from(log)
    seen, after, sizes = [], 0, []
    while True:
        page = pages.build(fetch, encode, after, limit=1000, bytes_max=500)
        sizes.append([len(part) for part in page.parts])
        seen += page.parts
        after = page.next
        if not page.more:
            break
    # A page ends once it reached the bound (the crossing event included): each event once.
    assert sizes == [[300, 300], [300, 1000], [10, 10, 10]]
    assert len(seen) == len(log)


def test_a_projection_sent_in_pieces_is_the_whole_encoded() -> None:
    events = [event(ms=1_000 + n, content="\x01" * 50 + str(n)) for n in range(20)]
    events.append(event("state_changed", 2_000, key="mood", value="calm"))
    projection = rebuild("s1", events)
    extra = {"automerge_url": "automerge:x"}
    pieces = list(pages.projection_json(projection, extra, bytes_max=1000))
    assert len(pieces) > 3
    assert b"".join(pieces) == to_json_bytes({**projection.to_json(), **extra})
    empty = rebuild("s2", [event("state_changed", 2_000, session="s2", key="k", value=1)])
    assert b"".join(pages.projection_json(empty, extra, 1000)) == to_json_bytes(
        {**empty.to_json(), **extra})


def test_pages_end_at_the_count_and_tell_whether_more_follow() -> None:
    log = stored_events([1] * 40)
    page = pages.build(fetch_from(log), encode, 0, limit=20, bytes_max=10**6)
    assert (len(page.parts), page.next, page.more) == (20, 20, True)
    page = pages.build(fetch_from(log), encode, 20, limit=20, bytes_max=10**6)
    assert (len(page.parts), page.next, page.more) == (20, 40, False)
    page = pages.build(fetch_from(log), encode, 40, limit=20, bytes_max=10**6)
    assert (page.parts, page.next, page.more) == ([], 40, False)


async def test_a_client_gone_before_the_answer_begins_is_no_error(
        make_node: NodeFactory, event_body: EventFactory) -> None:
    """A client that asks for the stream (or a projection, or the Automerge websocket)
    and resets the connection before the node has written the answer's headers: the
    node writes to a closing transport, which is the client leaving, not a fault (it
    logged "unexpected error" with a traceback, dozens a second under a flood)."""
    node = await make_node()
    async with aiohttp.ClientSession(base_url=node.url) as client, \
            client.post("/v1/sessions/s1/events", json=[event_body(0)]) as resp:
        assert resp.status == 201
    host, port = node.url.removeprefix("http://").rsplit(":", 1)
    asks = [STREAM, b"GET /v1/sessions/s1 HTTP/1.1\r\nHost: x\r\n\r\n", WEBSOCKET]
    with structlog.testing.capture_logs() as said:
        for ask in asks * 5:
            # Blocking calls, so the loop serving the node sees the request and the
            # reset together: it starts the handler on a transport that is closing.
            with socket.create_connection((host, int(port))) as sock:
                sock.sendall(ask)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                struct.pack("ii", 1, 0))  # close with a reset
            await asyncio.sleep(0.1)
    assert [line for line in said if line["log_level"] in ("error", "critical")] == []


async def test_a_stream_asked_for_while_the_node_stops_is_refused_as_stopping(
        make_node: NodeFactory) -> None:
    """Once the node is stopping, a new stream would end at once:
    it is refused as other requests of a stopping node are, with the wait of a restart."""
    node = await make_node()
    node.astore.begin_stopping()  # what the node's stop does first
    async with aiohttp.ClientSession(base_url=node.url) as client, client.get(
            "/v1/events", headers={"Accept": "text/event-stream"}) as resp:
        assert resp.status == 503
        assert resp.headers["Retry-After"] == str(STOPPING_RETRY_AFTER_S)
        assert (await resp.json())["error"]["code"] == "unavailable"


async def test_a_full_node_that_stops_answers_a_stream_as_stopping(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A node whose streams are all taken as it stops refuses a new one as stopping,
    with the wait of a restart, not as full, from the start of its stop: while its peer
    links close (held here), before its site stops. A client is told the node stops,
    not that it waits for a stream to be freed (``clawsync tail``'s words for
    ``streams_full``)."""
    node = await make_node(streams_max=1, streams_per_address_max=1)
    async with aiohttp.ClientSession(base_url=node.url) as client:
        # Its one stream taken, as by another client's (its address: another's).
        with node.runner.app[STREAMS].held("192.0.2.1"):
            async with client.get("/v1/events", headers={"Accept": SSE_TYPE}) as resp:
                assert (resp.status, (await resp.json())["error"]["code"]) == (
                    503, "streams_full")
            async with stop_held(node, monkeypatch), client.get(
                    "/v1/events", headers={"Accept": SSE_TYPE}) as resp:
                assert (resp.status, (await resp.json())["error"]["code"],
                        resp.headers["Retry-After"]) == (
                    503, "unavailable", str(STOPPING_RETRY_AFTER_S))


async def test_a_long_poll_at_a_stopping_node_is_refused_as_stopping(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A long poll with no news at a node that is stopping would end at once, an empty
    page the client would ask again for at once, for the whole stop: it is refused as
    stopping, with the wait of a restart. A page asked for with no wait is still given."""
    node = await make_node()
    async with aiohttp.ClientSession(base_url=node.url) as client, \
            stop_held(node, monkeypatch):
        async with client.get("/v1/events", params={"after": "0", "wait": "30"}) as resp:
            assert (resp.status, (await resp.json())["error"]["code"],
                    resp.headers["Retry-After"]) == (
                503, "unavailable", str(STOPPING_RETRY_AFTER_S))
        async with client.get("/v1/events", params={"after": "0"}) as resp:
            assert (resp.status, (await resp.json())["events"]) == (200, [])


async def test_a_position_past_the_head_at_a_stopping_node_is_refused_as_stopping(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A position just past the head is given a moment to turn up, which a stop cuts
    short: it is then no proof that the position is another node's, so the answer is
    the stop's 503, not the 400 of a position past the head."""
    node = await make_node()
    async with aiohttp.ClientSession(base_url=node.url) as client, \
            stop_held(node, monkeypatch), \
            client.get("/v1/events", params={"after": "1"}) as resp:
        assert (resp.status, (await resp.json())["error"]["code"]) == (503, "unavailable")
