"""What the client tests share: node URLs a client refuses, and a wait on a subscription."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from tests.support.addresses import HOST_NAMES_NO_LOOKUP_TAKES
from tests.support.waits import DEADLINE_S

#: Node URLs no node could be reached at, and what the refusal says (never the URL).
NO_NODE_URLS = [("http://[hub:7878", "is not a URL"), ("http:///hub:7878", "names no host"),
                ("http://hub:0", "has a port that is not between 1 and 65535"),
                ("http://hub:99999", "has a port that is not between 1 and 65535"),
                ("ftp://hub:7878", "must be an http:// or https:// URL"),
                ("ws://hub:7878", "must be an http:// or https:// URL"),
                # A name no lookup takes (``node.checks.host_name_problem``, as --node).
                *HOST_NAMES_NO_LOOKUP_TAKES]


async def until(views: AsyncIterator[dict[str, Any]],
                done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The first view of ``views`` that is ``done``; fail at the deadline or if the
    subscription ends first."""
    async with asyncio.timeout(DEADLINE_S):
        async for view in views:
            if done(view):
                return view
    raise AssertionError("the subscription ended")
