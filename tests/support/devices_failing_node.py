"""A build of clawsync whose ``GET /v1/devices`` fails: it answers the JSON 500 a node
gives when a handler raises, as a node whose device records cannot be read would. It
stands for such a node in what the CLI shows without the devices' view (``clawsync
tokens``). Run it as the ``clawsync`` command, ``python -m
tests.support.devices_failing_node serve ...``; importing it changes nothing."""

from __future__ import annotations

from aiohttp import web

from tests.support.middleware_node import Handler, run_with

#: The route that fails.
FAILING_ROUTE = "/v1/devices"


@web.middleware
async def _failing_devices(request: web.Request, handler: Handler) -> web.StreamResponse:
    # Raised inside the node's error middleware, which answers it as any handler's
    # failure: 500, with the node's JSON error.
    if request.method == "GET" and request.path == FAILING_ROUTE:
        raise RuntimeError("the device records cannot be read")
    return await handler(request)


if __name__ == "__main__":
    run_with(_failing_devices)
