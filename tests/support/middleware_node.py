"""What the builds of clawsync that answer some requests otherwise share
(``devices_failing_node``, ``relist_failing_node``, ``older_node``,
``cursor_moving_node``): the ``clawsync`` command run with one more middleware in the
app ``serve`` builds, innermost, inside the node's error middleware, which answers what
it raises as it answers any handler's failure."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def run_with(middleware: Middleware) -> None:
    """Runs the ``clawsync`` command (its arguments those of this process), ``serve``
    building its app with ``middleware`` innermost."""
    import node.server.run as run_module
    from node.main import main
    from node.server.app import make_app

    def app_with(*args: Any, **kwargs: Any) -> web.Application:
        app = make_app(*args, **kwargs)
        app.middlewares.append(middleware)  # innermost: inside the error middleware
        return app

    setattr(run_module, "make_app", app_with)  # noqa: B010 (what serve builds)
    main(prog_name="clawsync")
