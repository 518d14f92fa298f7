"""A build of clawsync whose store is closing at the first append it is sent: that
append meets ``StoreClosing``, which the node answers as it would (503 ``unavailable``,
with its ``Retry-After``), and the appends after it are taken. Its first live stream
ends at once, as the node stopping ends it, and the stream asked for next meets the
closing store too; the streams after it are served. It stands for a node that stops and
comes back, for what a client waits. Run it as the ``clawsync`` command,
``python -m tests.support.closing_node serve ...``; importing it changes nothing."""

from __future__ import annotations

from aiohttp import web

from node.server.streams import SSE_TYPE, wants_stream
from node.store import StoreClosing
from tests.support.middleware_node import Handler, run_with

#: Appends refused so far (one is).
_refused: list[str] = []
#: Live streams asked for so far (the first ends at once, the second is refused).
_streams: list[str] = []


@web.middleware
async def _closing_once(request: web.Request, handler: Handler) -> web.StreamResponse:
    # Raised inside the node's error middleware, which answers it as any handler's.
    if request.method == "POST" and request.path.endswith("/events") and not _refused:
        _refused.append(request.path)
        raise StoreClosing("the node is shutting down")
    if request.path == "/v1/events" and wants_stream(request) and len(_streams) < 2:
        _streams.append(request.path_qs)
        if len(_streams) == 1:
            return web.Response(content_type=SSE_TYPE)  # opened, and ended with no event
        raise StoreClosing("the node is shutting down")
    return await handler(request)


if __name__ == "__main__":
    run_with(_closing_once)
