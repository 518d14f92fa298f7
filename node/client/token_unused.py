"""A token given to a node that takes none: the node answers as it would without it
(it must: a node whose token was turned off keeps serving the clients still configured
with one), and says so in ``TOKEN_UNUSED_HEADER``. A client that gave ``--token`` would
otherwise believe the node protected; this tells it, once per client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp

from node.headers import TOKEN_UNUSED_HEADER


def token_unused_heard(token: str | None, shown_url: str,
                       tell: Callable[[str], None] | None) -> list[aiohttp.TraceConfig]:
    """What a client's session is made with (``trace_configs``) to call
    ``tell(shown_url)`` at the first answer that says the ``token`` it carried was not
    needed, and never after; nothing without a token or ``tell``."""
    if not token or tell is None:
        return []
    told = False

    async def ended(_session: aiohttp.ClientSession, _context: Any,
                    params: aiohttp.TraceRequestEndParams) -> None:
        nonlocal told
        if not told and TOKEN_UNUSED_HEADER in params.response.headers:
            told = True
            tell(shown_url)

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(ended)
    return [trace]
