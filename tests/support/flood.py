"""A hostile peer that floods a node with hellos, and a client that appends meanwhile:
for the test that a flooding peer is throttled and for ``bench.peer_flood``.

A node that reads no more (throttled, starved of CPU, stopped) holds a send or an append
for as long as it likes: the flood's handshake and sends, and each append, also end at the
flood's deadline or when the caller says stop. Then the flooder's link is closed, which
takes up to ``CLOSE_TIMEOUT_S`` more before it is dropped; so a flood returns within its
deadline plus that."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TypeVar

import aiohttp

from node.peers.transport import NODE_HEADER, PEER_PATH
from sync.peer.limits import ORIGINS_MAX
from sync.peer.messages import Hello, encode

#: The flooder's node id: any well-formed one the victim does not have.
FLOODER = "f100d00000000000"
#: How long the flooder's link may take to close once the flood is over: a node that
#: reads no more takes no close either, and after this the connection is dropped.
CLOSE_TIMEOUT_S = 5.0

T = TypeVar("T")


def big_hello(origins: int = ORIGINS_MAX) -> bytes:
    """A hello claiming one event in each of ``origins`` made-up origins."""
    return encode(Hello(FLOODER, {f"{n:016x}": 1 for n in range(origins)}))


async def unless_set(stop: asyncio.Event, work: Awaitable[T],
                     timeout_s: float | None = None) -> T | None:
    """``work``'s result, or None if ``stop`` is set or ``timeout_s`` passes first (the
    work is then cancelled). Its errors are raised."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopped}, timeout=timeout_s,
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        task.cancel()  # nothing if it is done
    await asyncio.wait({task})  # let a cancelled one unwind
    return None if task.cancelled() else task.result()


@dataclass
class Appends:
    """Latencies of a client's appends, in seconds, and the statuses it got."""

    latencies_s: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    def quantile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies_s)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> str:
        return (f"{len(self.latencies_s)} appends: p50 "
                f"{1000 * statistics.median(self.latencies_s):.1f} ms, p99 "
                f"{self.quantile_ms(0.99):.1f} ms, max {1000 * max(self.latencies_s):.1f} ms")


@dataclass
class Flooded:
    """What a flood did: the hellos sent, how it ended (``"stop"``, ``"deadline"``, or
    ``"a failed link"`` when the link failed, its error then raised by ``flood``), and for
    how long the node had held the send still waiting then (None if none was)."""

    sent: int = 0
    ended_by: str = "deadline"
    waiting_s: float | None = None

    def summary(self) -> str:
        waiting = "" if self.waiting_s is None else (
            f", a send held for {self.waiting_s:.1f} s then")
        return f"{self.sent} hellos sent, ended by {self.ended_by}{waiting}"


async def flood(url: str, secret: str, duration_s: float,
                stop: asyncio.Event | None = None, flooded: Flooded | None = None) -> Flooded:
    """Send big hellos over one peer link for ``duration_s``, or until ``stop`` is set
    (as fast as the node takes them; it answers what it pushes, read and dropped).
    The handshake and each send wait no longer than that either; the link's close then
    waits up to ``CLOSE_TIMEOUT_S``. Returns ``flooded`` (a new one if None), kept up to
    date as it goes for a caller to watch, which holds what was done when the link fails
    (an ``aiohttp.ClientError`` or ``OSError``, raised)."""
    stop = stop or asyncio.Event()
    deadline = time.monotonic() + duration_s
    flooded = flooded or Flooded()
    try:
        await _flood(url, secret, deadline, stop, flooded)
    except (aiohttp.ClientError, OSError):
        flooded.ended_by = "a failed link"
        raise
    return flooded


async def _flood(url: str, secret: str, deadline: float, stop: asyncio.Event,
                 flooded: Flooded) -> None:
    message = big_hello()
    async with aiohttp.ClientSession() as http:
        ws = await unless_set(stop, http.ws_connect(
            url + PEER_PATH, headers={"Authorization": f"Bearer {secret}",
                                      NODE_HEADER: FLOODER}, max_msg_size=0),
            max(0.0, deadline - time.monotonic()))
        if ws is None:
            flooded.ended_by = "stop" if stop.is_set() else "deadline"
            return

        async def drain() -> None:
            async for _ in ws:
                pass

        async def send() -> bool:
            await ws.send_bytes(message)
            return True

        reader = asyncio.create_task(drain())
        try:
            while (left_s := deadline - time.monotonic()) > 0 and not stop.is_set():
                started = time.monotonic()
                if await unless_set(stop, send(), left_s) is None:
                    flooded.waiting_s = time.monotonic() - started
                    break
                flooded.sent += 1
        finally:
            flooded.ended_by = "stop" if stop.is_set() else "deadline"
            reader.cancel()
            # A node that reads nothing takes no close frame either: drop the link.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(ws.close(), CLOSE_TIMEOUT_S)


async def append_while(url: str, token: str | None, done: asyncio.Event,
                       appends: Appends) -> None:
    """Append one small event at a time until ``done`` is set (an append still waiting
    then is given up, and counts nowhere)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = [{"agent_id": "main", "kind": {"type": "message_received", "content": "hi"}}]
    async with aiohttp.ClientSession(headers=headers) as http:
        n = 0

        async def append(n: int) -> int:
            async with http.post(f"{url}/v1/sessions/flood:{n % 8}/events",
                                 json=body) as reply:
                await reply.read()
                return reply.status

        while not done.is_set():
            started = time.monotonic()
            status = await unless_set(done, append(n))
            if status is None:
                break
            appends.statuses.append(status)
            appends.latencies_s.append(time.monotonic() - started)
            n += 1


async def flood_and_append(url: str, secret: str, token: str | None,
                           duration_s: float) -> tuple[int, Appends]:
    """Flood and append at once; the hellos sent and the appends' figures."""
    appends, done = Appends(), asyncio.Event()
    client = asyncio.create_task(append_while(url, token, done, appends))
    try:
        flooded = await flood(url, secret, duration_s)
    finally:
        done.set()
        await client
    return flooded.sent, appends
