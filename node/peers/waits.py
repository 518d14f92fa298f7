"""Waiting for an event or a time, whichever comes first, in a task that may be cancelled.

``asyncio.wait_for`` in Python 3.11 returns the inner result when the task is cancelled
just as the event is set (it checks whether the awaited thing is done before raising),
so a loop of such waits swallows the cancel and runs on: the node's stop waited for the
members rounds and a dial's back-off that never ended. ``asyncio.timeout`` counts the
task's cancel requests and lets one that is not its own through.
"""

from __future__ import annotations

import asyncio
import contextlib


async def set_or_timeout(event: asyncio.Event, timeout_s: float) -> None:
    """Return once ``event`` is set or ``timeout_s`` went by; a cancel always raises."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            await event.wait()
