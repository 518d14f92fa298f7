"""Live event streams as server-sent events (``GET /v1/events`` with
``Accept: text/event-stream``).

Each stored event is sent as

    id: <position>
    event: event
    data: <the event as JSON, on one line>

so a browser's ``EventSource`` resumes after a dropped connection by sending the last
``id`` back as ``Last-Event-ID``. Positions, not timestamps, are the cursor: an old event
that arrives late still has a new position and is still delivered.

>>> format_event(7, {"id": "ab"})
b'id: 7\\nevent: event\\ndata: {"id":"ab"}\\n\\n'
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import Counter
from collections.abc import Iterator
from typing import Any

from aiohttp import hdrs, web

from crdt.log.records import StoredEvent
from crdt.log.store import EventStore
from node.http.errors import stopping
from node.http.listener import address_key
from node.http.params import int_param, parse_int
from node.http.wire import JSON_TYPE, error_body, to_json_bytes
from node.limits import Limits
from node.server import pages
from node.store import AsyncStore, StoreClosing

SSE_TYPE = "text/event-stream"
KEEPALIVE_COMMENT = b": keepalive\n\n"
#: Seconds a refused stream is told to wait before trying again (``Retry-After``).
RETRY_AFTER_S = 10
#: Seconds between looks, while a stream waits for news, at whether its client left.
GONE_CHECK_S = 1.0


class StreamSlots:
    """How many live streams are open, in all and per client address (``address_key``),
    against ``Limits.streams_max`` and ``streams_per_address_max``."""

    __slots__ = ("_by_address", "_limits", "_open")

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._open = 0
        self._by_address: Counter[str] = Counter()

    @property
    def open(self) -> int:
        return self._open

    def refusal(self, address: str) -> web.Response | None:
        """The answer for a stream that may not open now, or None when it may."""
        if self._open >= self._limits.streams_max:
            return _refused(503, "streams_full", f"this node serves {self._open} live "
                            "streams, its limit ([limits] streams_max); try again later")
        if self._by_address[address] >= self._limits.streams_per_address_max:
            return _refused(429, "too_many_streams", "this address has "
                            f"{self._by_address[address]} live streams open, the limit")
        return None

    @contextlib.contextmanager
    def held(self, address: str) -> Iterator[None]:
        """Count one stream of ``address`` while the block runs."""
        self._open += 1
        self._by_address[address] += 1
        try:
            yield
        finally:
            self._open -= 1
            self._by_address[address] -= 1
            if not self._by_address[address]:
                del self._by_address[address]


def _refused(status: int, code: str, message: str) -> web.Response:
    return web.Response(status=status, body=error_body(code, message), content_type=JSON_TYPE,
                        headers={hdrs.RETRY_AFTER: str(RETRY_AFTER_S)})


def wants_stream(request: web.BaseRequest) -> bool:
    """True when the client asks for server-sent events."""
    accept = ",".join(request.headers.getall(hdrs.ACCEPT, []))
    return any(item.split(";")[0].strip().lower() == SSE_TYPE for item in accept.split(","))


def resume_position(request: web.BaseRequest, cursor_max: int) -> tuple[str, int]:
    """Where to start, and what said so: ``Last-Event-ID`` (a reconnecting client) wins
    over ``after=``."""
    last_id = request.headers.get("Last-Event-ID")
    if last_id is not None:
        return "Last-Event-ID", parse_int(last_id.strip(), "Last-Event-ID", low=0,
                                          high=cursor_max)
    return "after", int_param(request, "after", default=0, low=0, high=cursor_max)


def format_event(position: int, data: dict[str, Any]) -> bytes:
    # json.dumps escapes newlines inside strings, so the data stays on one line.
    return b"id: %d\nevent: event\ndata: %s\n\n" % (position, to_json_bytes(data))


async def stream_events(request: web.Request, astore: AsyncStore, after: int,
                        limits: Limits, slots: StreamSlots) -> web.StreamResponse:
    """Send every event after ``after`` and then each new one, until the client leaves,
    stops reading for ``stream_send_timeout_s``, or the node stops. Refused (503, 429)
    beyond ``streams_max`` or ``streams_per_address_max``, and (503 ``unavailable``,
    with the ``Retry-After`` of a restart) once the node is stopping."""
    if astore.stopping:
        # Opened now, it would end at once with no event: an empty 200 that a client
        # takes for a stream, then for one lost, rather than for a node that is stopping.
        # Nothing below awaits before ``response.prepare`` sends the headers, so this
        # look holds till the answer starts (a second one there would see the same).
        # What remains: a stop begun once the headers are out, which ends the stream
        # at its first look at ``stopping``, no event sent; the client asks again, as
        # for any stream lost, and gets this 503. Before the slots: a full node that
        # stops says it stops, not that a stream will be freed.
        raise stopping()
    address = address_key(request.remote or "")
    refused = slots.refusal(address)
    if refused is not None:
        return refused
    with slots.held(address):
        response = web.StreamResponse(headers={
            hdrs.CONTENT_TYPE: SSE_TYPE,
            hdrs.CACHE_CONTROL: "no-cache",
            "X-Accel-Buffering": "no",  # nginx would otherwise hold events back
        })
        try:
            await response.prepare(request)
            await _follow(request, response, astore, after, limits)
        except TimeoutError:
            # A reader who stopped reading: drop it now rather than hold what it has
            # not taken; it resumes from its Last-Event-ID when it reads again.
            if request.transport is not None:
                request.transport.abort()
        except (ConnectionError, StoreClosing):
            # The client went away (before the headers went too: aiohttp then ends the
            # connection quietly), or the node stops; the answer has already begun.
            pass
        return response


async def _follow(request: web.Request, response: web.StreamResponse, astore: AsyncStore,
                  cursor: int, limits: Limits) -> None:
    send_s = limits.stream_send_timeout_s
    while not astore.stopping and not _gone(request):
        # Read and format on a reader thread, bounded in bytes: one write holds at most
        # ``stream_write_bytes_max`` plus one event, whatever the events are.
        data, last = await astore.read(functools.partial(_read_page, after=cursor,
                                                          limits=limits))
        if data:
            await _send(response, data, send_s)
            cursor = last
            continue
        head = await _wait_for_news(request, astore, cursor, limits.sse_keepalive_s)
        if head <= cursor and not astore.stopping and not _gone(request):
            await _send(response, KEEPALIVE_COMMENT, send_s)


async def _wait_for_news(request: web.Request, astore: AsyncStore, cursor: int,
                         timeout_s: float) -> int:
    """``wait_for_head``, looking every ``GONE_CHECK_S`` whether the client left: aiohttp
    does not tell a handler, and a left stream would hold its slot until the keepalive."""
    deadline_s = asyncio.get_running_loop().time() + timeout_s
    while not _gone(request):
        remaining_s = deadline_s - asyncio.get_running_loop().time()
        if remaining_s <= 0:
            break
        head = await astore.wait_for_head(cursor, min(remaining_s, GONE_CHECK_S))
        if head > cursor or astore.stopping:
            return head
    return astore.head


def _read_page(store: EventStore, *, after: int, limits: Limits) -> tuple[bytes, int]:
    """The next events as one write, and the position of the last. Joined here, and
    the parts dropped, so that a stalled stream holds its unsent events about twice at
    most (this write, and the transport's copy of what it could not send)."""
    page = pages.build(store.events_after, _format_stored, after, limits.page_default,
                       limits.stream_write_bytes_max)
    return b"".join(page.parts), page.next


def _format_stored(stored: StoredEvent) -> bytes:
    return format_event(stored.position, stored.to_json())


async def _send(response: web.StreamResponse, data: bytes, timeout_s: float) -> None:
    """Write ``data``; ``TimeoutError`` when the reader leaves it unread for ``timeout_s``
    (aiohttp waits for the send buffer to drain below its high-water mark)."""
    async with asyncio.timeout(timeout_s):
        await response.write(data)


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()
