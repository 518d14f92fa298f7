"""How long tests wait for what they expect before they fail, one bound per kind of wait.

A bound is generous on purpose: a test passes as soon as what it waits for holds, so a
long bound costs nothing when all is well, and a loaded machine (two cores, two pytest
workers) never fails a test that would pass. Tests never assert on wall-clock time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar, overload

#: Seconds a test waits for a node running in the test's own process (``node.server.run``), or
#: a client of it, to do one thing.
DEADLINE_S = 10.0
#: Seconds a test waits for a process of its own to do one thing, be it a node on loopback
#: (``tests.support.processes``) or a node's signature worker (``node.peers.verifying``):
#: longer than ``DEADLINE_S``, as a process first starts Python and its imports, and two
#: processes on a busy machine take turns.
PROCESS_DEADLINE_S = 30.0

T = TypeVar("T")


@overload
async def until(check: Callable[[], bool], /) -> None: ...


@overload
async def until(items: AsyncIterator[T], done: Callable[[T], bool], /) -> T: ...


async def until(what: Callable[[], bool] | AsyncIterator[Any],
                done: Callable[[Any], bool] | None = None, /) -> Any:
    """``until(check)``: wait until ``check()`` is true, looking again every 10 ms.
    ``until(items, done)``: the first of ``items`` (a subscription's views, say) that is
    ``done``; fail if they end first. Either fails after ``DEADLINE_S``."""
    async with asyncio.timeout(DEADLINE_S):
        if done is None:
            assert callable(what)
            while not what():
                await asyncio.sleep(0.01)
            return None
        assert not callable(what)
        async for item in what:
            if done(item):
                return item
    raise AssertionError("the items ended before one was done")
