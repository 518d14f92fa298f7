"""How a peer's refusal is read: aiohttp drops the body of a refused websocket handshake
before it raises, so a dial reads it as the answer comes (``refusals_read``), within the
dial's time-out; a request reads its own (``refusal_words``). What the bytes say is
found by ``node.peers.dial_words``.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp

from node.peers.dial_words import (
    REFUSAL_BYTES_MAX,
    REFUSAL_READ_MARGIN_S,
    REFUSAL_READ_S,
    refusal_text,
)


class Refusing:
    """One dial's refused handshake as far as it came (``refusals_read``): its status
    and the bytes of its body read, and the credentials its words must not show."""

    def __init__(self, hide: Iterable[str | None]) -> None:
        self.hide = tuple(hide)
        #: The answer's status and headers, kept before its body is read: a dial whose
        #: time-out ends that read still says the status came.
        self.status: int | None = None
        self.headers: Mapping[str, str] | None = None
        self.body = bytearray()
        #: Whether ``body`` was read to its end, or to ``REFUSAL_BYTES_MAX`` and a byte.
        self.whole = False
        #: When the dial gives up (the event loop's clock), set once it is under way.
        self.deadline = float("inf")

    def text(self) -> str:
        """What the body read so far says (``refusal_text``)."""
        return refusal_text(bytes(self.body), self.hide, whole=self.whole)


#: The refusal ``dial`` waits on, in its own task (a request of another task, a member
#: list say, reads its refusal itself).
refusing_now: contextvars.ContextVar[Refusing | None] = contextvars.ContextVar(
    "refusing", default=None)


def refusals_read() -> aiohttp.TraceConfig:
    """What the session that ``dial`` uses is made with (``trace_configs``), so that a
    refused handshake says why: aiohttp drops the body of an answer other than 101
    before it raises. Read once the answer came, up to ``REFUSAL_BYTES_MAX`` bytes, for
    ``REFUSAL_READ_S`` at most and ending ``REFUSAL_READ_MARGIN_S`` before the dial's
    time-out (so that a body that stalls leaves the status said, not "no answer", with
    what came of it); no other request is made. Only a body whose length is known
    (``Content-Length``, or chunks) is read: aiohttp reads a handshake's answer as one
    that ends with its headers, so a body that ends where the connection closes reads
    as empty. A session without it gives the status alone."""
    async def ended(_session: aiohttp.ClientSession, _context: Any,
                    params: aiohttp.TraceRequestEndParams) -> None:
        refusing = refusing_now.get()
        if refusing is not None and params.response.status >= 400:
            refusing.status, refusing.headers = params.response.status, params.response.headers
            left_s = refusing.deadline - asyncio.get_running_loop().time()
            refusing.whole = await read_refusal(params.response, refusing.body,
                                                left_s - REFUSAL_READ_MARGIN_S)

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(ended)
    return trace


async def read_most(reply: aiohttp.ClientResponse, most: int,
                    into: bytearray | None = None) -> bytes:
    """The first ``most`` bytes of ``reply``'s body, fewer only if it ends before: a
    body comes in pieces, and ``content.read(n)`` gives only what has come so far.
    ``into`` holds the bytes as they come, for a reader whose read is cut off."""
    read = bytearray() if into is None else into
    while len(read) < most:
        piece = await reply.content.read(most - len(read))
        if not piece:
            break
        read += piece
    return bytes(read)


async def read_refusal(reply: aiohttp.ClientResponse, into: bytearray,
                       within_s: float = REFUSAL_READ_S) -> bool:
    """Read ``reply``'s body into ``into`` (a byte more than ``refusal_text`` reads, to
    know a body cut short) within ``within_s`` and ``REFUSAL_READ_S`` seconds; whether
    it was read whole. What came in time is kept: the status, and those words, say
    enough."""
    if within_s <= 0:
        return False
    try:
        async with asyncio.timeout(min(within_s, REFUSAL_READ_S)):
            await read_most(reply, REFUSAL_BYTES_MAX + 1, into)
    except (aiohttp.ClientError, OSError, TimeoutError):
        return False
    return True


async def refusal_words(reply: aiohttp.ClientResponse, hide: Iterable[str | None]) -> str:
    """``refusal_text`` of what of ``reply``'s body came in time (``read_refusal``)."""
    body = bytearray()
    whole = await read_refusal(reply, body)
    return refusal_text(bytes(body), hide, whole=whole)
