"""A hostile peer that floods a node with hellos, and a client that appends meanwhile:
for the test that a flooding peer is throttled and for ``bench.peer_flood``."""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field

import aiohttp

from node.peers.transport import NODE_HEADER, PEER_PATH
from sync.peer.messages import ORIGINS_MAX, Hello, encode

#: The flooder's node id: any well-formed one the victim does not have.
FLOODER = "f100d00000000000"


def big_hello(origins: int = ORIGINS_MAX) -> bytes:
    """A hello claiming one event in each of ``origins`` made-up origins."""
    return encode(Hello(FLOODER, {f"{n:016x}": 1 for n in range(origins)}))


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


async def flood(url: str, secret: str, duration_s: float,
                stop: asyncio.Event | None = None) -> int:
    """Send big hellos over one peer link for ``duration_s``, or until ``stop`` is set
    (as fast as the node takes them; it answers what it pushes, read and dropped);
    returns how many were sent."""
    message = big_hello()
    async with aiohttp.ClientSession() as http, http.ws_connect(
            url + PEER_PATH, headers={"Authorization": f"Bearer {secret}",
                                      NODE_HEADER: FLOODER},
            max_msg_size=0) as ws:
        async def drain() -> None:
            async for _ in ws:
                pass

        reader = asyncio.create_task(drain())
        deadline = time.monotonic() + duration_s
        sent = 0
        while time.monotonic() < deadline and not (stop is not None and stop.is_set()):
            await ws.send_bytes(message)
            sent += 1
        reader.cancel()
        return sent


async def append_while(url: str, token: str | None, done: asyncio.Event,
                       appends: Appends) -> None:
    """Append one small event at a time until ``done`` is set."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = [{"agent_id": "main", "kind": {"type": "message_received", "content": "hi"}}]
    async with aiohttp.ClientSession(headers=headers) as http:
        n = 0
        while not done.is_set():
            started = time.monotonic()
            async with http.post(f"{url}/v1/sessions/flood:{n % 8}/events",
                                 json=body) as reply:
                await reply.read()
                appends.statuses.append(reply.status)
            appends.latencies_s.append(time.monotonic() - started)
            n += 1


async def flood_and_append(url: str, secret: str, token: str | None,
                           duration_s: float) -> tuple[int, Appends]:
    """Flood and append at once; the hellos sent and the appends' figures."""
    appends, done = Appends(), asyncio.Event()
    client = asyncio.create_task(append_while(url, token, done, appends))
    try:
        sent = await flood(url, secret, duration_s)
    finally:
        done.set()
        await client
    return sent, appends
