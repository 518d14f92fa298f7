"""node.peers.members_fetch.fetch_members against a server on loopback that refuses: what it
says is the status and a bounded part of the answer (``dial_words.refusal_text``), read from the
first ``REFUSAL_BYTES_MAX`` bytes only."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from node.peers.dial_words import REFUSAL_BYTES_MAX, REFUSAL_CHARS_MAX
from node.peers.link_errors import LinkClosed
from node.peers.members_fetch import fetch_members
from sync.peer.config import SyncConfig
from tests.node.peers.support import DEADLINE_S, STALLED_REFUSAL, answer, serving, stalling


async def refusal(status: int, body: bytes) -> str:
    async with serving(answer(status, body, content_type="text/html")) as url, \
            aiohttp.ClientSession() as http:
        with pytest.raises(LinkClosed) as raised:
            await fetch_members(http, url, secret=None, tls=None, config=SyncConfig())
    said = str(raised.value)
    assert said.startswith(f"cannot list members of {url}: it answered HTTP {status}")
    return said.removeprefix(f"cannot list members of {url}: ")


async def test_a_page_refusing_says_its_first_line_without_control_characters() -> None:
    page = "\n  Blocked \x1b[31mby\u202e the proxy\r\n<p>ticket 42</p>".encode()
    assert await refusal(403, page) == "it answered HTTP 403: Blocked [31mby the proxy"


async def test_a_long_line_is_cut_to_its_first_characters() -> None:
    said = await refusal(502, "é".encode() * 1000)
    assert said == "it answered HTTP 502: " + "é" * (REFUSAL_CHARS_MAX - 1) + "…"


async def test_only_the_first_bytes_of_the_answer_are_read() -> None:
    """What comes after ``REFUSAL_BYTES_MAX`` bytes is not read, so not shown: the status
    alone, when those bytes are blank."""
    assert await refusal(401, b" " * REFUSAL_BYTES_MAX + b"unseen") == "it answered HTTP 401"
    cut = await refusal(401, b" " * (REFUSAL_BYTES_MAX - 4) + b"seen, not this")
    assert cut == "it answered HTTP 401: seen"


async def test_a_refusal_whose_body_stalls_says_its_status_in_time() -> None:
    """A 403 whose body stops short: the status, with what came of the body, is said
    once ``REFUSAL_READ_S`` is over, not at the end of the request's time-out (longer
    here than the test waits)."""
    config = SyncConfig(connect_timeout_s=3 * DEADLINE_S)
    async with stalling(STALLED_REFUSAL) as url, aiohttp.ClientSession() as http:
        with pytest.raises(LinkClosed) as raised:
            async with asyncio.timeout(DEADLINE_S):
                await fetch_members(http, url, secret=None, tls=None, config=config)
    assert str(raised.value) == (f"cannot list members of {url}: it answered HTTP 403: "
                                 "Blocked here")
