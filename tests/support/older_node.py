"""A build of clawsync standing for an older release: it says it runs ``OLDER_VERSION``
and has no ``GET /v1/tokens`` (a route added later). Run it as the ``clawsync`` command,
``python -m tests.support.older_node serve ...``; importing it changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

#: The version this build says it is.
OLDER_VERSION = "0.0.1"
#: The route it lacks: its answer is the JSON 404 of any path a node has no route for.
MISSING_ROUTE = "/v1/tokens"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _without_route(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method == "GET" and request.path == MISSING_ROUTE:
        raise web.HTTPNotFound()  # as aiohttp's router says it, for the node's error
    return await handler(request)  # middleware around this one to answer


def _older(make_app: Callable[..., web.Application]) -> Callable[..., web.Application]:
    def older_app(*args: Any, **kwargs: Any) -> web.Application:
        app = make_app(*args, **kwargs)
        app.middlewares.append(_without_route)  # innermost: inside the error middleware
        return app

    return older_app


if __name__ == "__main__":
    import node.server.app as app_module
    import node.server.run as run_module
    from node.main import main
    from node.server.app import make_app

    setattr(app_module, "software_version", lambda: OLDER_VERSION)  # noqa: B010 (GET /v1/node)
    setattr(run_module, "make_app", _older(make_app))  # noqa: B010 (what serve builds)
    main(prog_name="clawsync")
