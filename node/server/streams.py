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

from typing import Any

from aiohttp import hdrs, web

from node.http.wire import int_param, parse_int, to_json_bytes
from node.store import AsyncStore, StoreClosing

SSE_TYPE = "text/event-stream"
KEEPALIVE_COMMENT = b": keepalive\n\n"


def wants_stream(request: web.BaseRequest) -> bool:
    """True when the client asks for server-sent events."""
    accept = ",".join(request.headers.getall(hdrs.ACCEPT, []))
    return any(item.split(";")[0].strip().lower() == SSE_TYPE for item in accept.split(","))


def resume_position(request: web.BaseRequest, cursor_max: int) -> int:
    """Where to start: ``Last-Event-ID`` (a reconnecting client) wins over ``after=``."""
    last_id = request.headers.get("Last-Event-ID")
    if last_id is not None:
        return parse_int(last_id.strip(), "Last-Event-ID", low=0, high=cursor_max)
    return int_param(request, "after", default=0, low=0, high=cursor_max)


def format_event(position: int, data: dict[str, Any]) -> bytes:
    # json.dumps escapes newlines inside strings, so the data stays on one line.
    return b"id: %d\nevent: event\ndata: %s\n\n" % (position, to_json_bytes(data))


async def stream_events(request: web.Request, astore: AsyncStore, after: int, page: int,
                        keepalive_s: float) -> web.StreamResponse:
    """Send every event after ``after`` and then each new one, until the client leaves
    or the node stops."""
    response = web.StreamResponse(headers={
        hdrs.CONTENT_TYPE: SSE_TYPE,
        hdrs.CACHE_CONTROL: "no-cache",
        "X-Accel-Buffering": "no",  # nginx would otherwise hold events back
    })
    await response.prepare(request)
    cursor = after
    try:
        while not astore.released and not _gone(request):
            events = await astore.events_after(cursor, page)
            if events:
                await response.write(b"".join(
                    format_event(stored.position, stored.to_json()) for stored in events))
                cursor = events[-1].position
                continue
            head = await astore.wait_for_head(cursor, keepalive_s)
            if head <= cursor and not astore.released:
                await response.write(KEEPALIVE_COMMENT)
    except (ConnectionError, StoreClosing):
        pass  # the client went away or the node stops; the answer has already begun
    return response


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()
