"""A build of clawsync whose ``GET /v1/devices`` fails: it answers the JSON 500 a node
gives when a handler raises, as a node whose device records cannot be read would. It
stands for such a node in what the CLI shows without the devices' view (``clawsync
tokens``). Run it as the ``clawsync`` command, ``python -m
tests.support.devices_failing_node serve ...``; importing it changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

#: The route that fails.
FAILING_ROUTE = "/v1/devices"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _failing_devices(request: web.Request, handler: Handler) -> web.StreamResponse:
    # Raised inside the node's error middleware, which answers it as any handler's
    # failure: 500, with the node's JSON error.
    if request.method == "GET" and request.path == FAILING_ROUTE:
        raise RuntimeError("the device records cannot be read")
    return await handler(request)


def _failing(make_app: Callable[..., web.Application]) -> Callable[..., web.Application]:
    def failing_app(*args: Any, **kwargs: Any) -> web.Application:
        app = make_app(*args, **kwargs)
        app.middlewares.append(_failing_devices)  # innermost: inside the error middleware
        return app

    return failing_app


if __name__ == "__main__":
    import node.server.run as run_module
    from node.main import main
    from node.server.app import make_app

    setattr(run_module, "make_app", _failing(make_app))  # noqa: B010 (what serve builds)
    main(prog_name="clawsync")
