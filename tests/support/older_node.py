"""A build of clawsync standing for an older release, for what a newer CLI tells of it.

It says it is ``OLDER_VERSION`` in ``GET /v1/node`` (only there: its hello to peers and
``--version`` still say this version, so it stands for an older node to a CLI, not to
peers). It has no route under ``/v1/tokens`` (added later): any request there gets the
JSON 404 an older node gave a path it had no route for, its message "Not Found" and no
``hint`` (``OLDER_NO_ROUTE``), sent as it was, not as this node's error middleware would
say it now. And ``/v1/sessions/{key}`` takes no
DELETE (added later), as a node answers a method a path does not take: JSON 405 with its
``Allow``. Run it as the ``clawsync`` command, ``python -m tests.support.older_node serve
...``; importing it changes nothing."""

from __future__ import annotations

from aiohttp import web

from tests.support.middleware_node import Handler, run_with

#: The version this build says it is.
OLDER_VERSION = "0.0.1"
#: The routes it lacks.
MISSING_ROUTES = "/v1/tokens"
MISSING_METHOD = ("DELETE", "/v1/sessions/")
#: The body of an older node's 404 for a path none of its routes matched.
OLDER_NO_ROUTE = b'{"error":{"code":"not_found","message":"Not Found","field":null}}'


@web.middleware
async def _older_routes(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path == MISSING_ROUTES or request.path.startswith(MISSING_ROUTES + "/"):
        return web.Response(status=404, body=OLDER_NO_ROUTE, content_type="application/json")
    # Raised as aiohttp's router raises it, for the node's error middleware around this
    # one to answer: an older node's 405 had other words, but a client keys on its code.
    method, prefix = MISSING_METHOD
    if request.method == method and request.path.startswith(prefix) \
            and "/" not in request.path.removeprefix(prefix):
        raise web.HTTPMethodNotAllowed(method, ["GET", "HEAD"])
    return await handler(request)


if __name__ == "__main__":
    import node.server.app as app_module

    setattr(app_module, "software_version", lambda: OLDER_VERSION)  # noqa: B010 (GET /v1/node)
    run_with(_older_routes)
