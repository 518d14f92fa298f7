"""A build of clawsync on which another import saves one cursor just before each save of
it that names a condition (``If-Match`` or ``If-None-Match``, as ``clawsync openclaw``
saves): an unconditional ``PUT`` of its own over HTTP, another value each time (a tag
names a value), as a second import of the same state folder would. The node itself then
refuses the conditional save (412 ``cursor_changed``), every time, with no timing: what
makes a real ``clawsync openclaw import`` stop with its own exit.

The cursor is named by the environment variable ``MOVED_CURSOR_ENV``. Run it as the
``clawsync`` command, ``python -m tests.support.cursor_moving_node serve ...``;
importing it changes nothing."""

from __future__ import annotations

import os

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Middleware

from tests.support.middleware_node import Handler, run_with

#: The variable naming the cursor that is moved.
MOVED_CURSOR_ENV = "MOVED_CURSOR"
#: The entry the other import saves, its value one more at each save.
OTHER_ENTRY = "db:other"


def _moving(name: str) -> Middleware:
    """The middleware, with the count of its saves."""
    saves = [0]
    path = f"/v1/cursors/{name}"

    @web.middleware
    async def moves_first(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "PUT" and request.path == path and (
                "If-Match" in request.headers or "If-None-Match" in request.headers):
            saves[0] += 1
            auth = {key: value for key, value in request.headers.items()
                    if key == "Authorization"}
            async with aiohttp.ClientSession() as session, session.put(
                    request.url, json={"cursor": {OTHER_ENTRY: saves[0]}},
                    headers=auth) as answer:
                answer.raise_for_status()
        return await handler(request)

    return moves_first


if __name__ == "__main__":
    run_with(_moving(os.environ[MOVED_CURSOR_ENV]))
