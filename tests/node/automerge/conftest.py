"""Fixtures the Automerge hub's tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest


@pytest.fixture
async def clients() -> AsyncIterator[list[aiohttp.ClientSession]]:
    """Client sessions a test opens, closed at teardown."""
    opened: list[aiohttp.ClientSession] = []
    yield opened
    for session in opened:
        await session.close()
