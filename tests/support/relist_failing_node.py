"""A build of clawsync whose ``GET /v1/devices`` fails once, right after a ``POST
/v1/devices`` that changed nothing (200): it answers the JSON 500 a node gives when a
handler raises, as a node whose device records cannot be read for a moment would. It
stands for such a node between ``clawsync devices add``'s add and its second look at the
members.

``POST /test/hide`` with ``{"device_id"}`` (``HIDE_ROUTE``) leaves that member out of
the next ``GET /v1/devices``, as a list made before another node's record of it came
in would: ``clawsync devices add``'s first look at the members then lacks it.

Run it as the ``clawsync`` command, ``python -m tests.support.relist_failing_node
serve ...``; importing it changes nothing."""

from __future__ import annotations

import json

from aiohttp import web
from aiohttp.typedefs import Middleware

from tests.support.middleware_node import Handler, run_with

#: The route that fails, and is added to.
ROUTE = "/v1/devices"
#: Where a test names the member the next list leaves out.
HIDE_ROUTE = "/test/hide"


def _relist_failing() -> Middleware:
    """The middleware, with what it holds between requests."""
    armed = [False]  # an add answered 200 since the last list
    hidden: list[str] = []  # the member the next list leaves out

    @web.middleware
    async def relist_fails(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == HIDE_ROUTE and request.method == "POST":
            hidden[:] = [(await request.json())["device_id"]]
            return web.json_response({"hidden": hidden[0]})
        # Inside the node's error middleware, which answers the raise as any handler's
        # failure: 500, with the node's JSON error.
        if request.path == ROUTE and request.method == "GET" and armed[0]:
            armed[0] = False
            raise RuntimeError("the device records cannot be read")
        response = await handler(request)
        if request.path == ROUTE and request.method == "GET" and hidden \
                and isinstance(response, web.Response) and response.body is not None:
            listed = json.loads(bytes(response.body))  # type: ignore[arg-type]
            gone = hidden.pop()
            listed["members"] = [row for row in listed["members"]
                                 if row["device_id"] != gone]
            return web.json_response(listed, status=response.status)
        if request.path == ROUTE and request.method == "POST" and response.status == 200:
            armed[0] = True
        return response

    return relist_fails


if __name__ == "__main__":
    run_with(_relist_failing())
