"""A build of clawsync whose store is closing at the first append it is sent: that
append meets ``StoreClosing``, which the node answers as it would (503 ``unavailable``,
with its ``Retry-After``), and the appends after it are taken. It stands for a node that
stops and comes back, for what a client waits. Run it as the ``clawsync`` command,
``python -m tests.support.closing_node serve ...``; importing it changes nothing."""

from __future__ import annotations

from aiohttp import web

from node.store import StoreClosing
from tests.support.middleware_node import Handler, run_with

#: Appends refused so far (one is).
_refused: list[str] = []


@web.middleware
async def _closing_once(request: web.Request, handler: Handler) -> web.StreamResponse:
    # Raised inside the node's error middleware, which answers it as any handler's.
    if request.method == "POST" and request.path.endswith("/events") and not _refused:
        _refused.append(request.path)
        raise StoreClosing("the node is shutting down")
    return await handler(request)


if __name__ == "__main__":
    run_with(_closing_once)
