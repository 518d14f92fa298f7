"""How long a full-size append body holds up a node's other requests.

A real node process is sent append requests at the body limit (4 MiB), in two shapes:
1,000 events of about 4 KiB (the most events one request may hold) and 40 events of
about 100 KiB (near the largest event, 128 KiB). Meanwhile one client asks ``/healthz`` in a loop;
its slowest answers show how long the node's event loop was busy decoding and checking
the body. Prints the append latency and the ``/healthz`` latencies while it ran.

    python -m bench.large_body [--rounds 5]
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp

from bench import cli
from tests.support.processes import NodeProcess

BODY_BYTES_MAX = 4 * 1024 * 1024


def body(events: int, round_number: int) -> bytes:
    """A JSON list of ``events`` message events that fills the body limit."""
    overhead = len(json.dumps({"agent_id": "bench", "kind": {
        "type": "message_received", "content": ""}})) + 2
    size = BODY_BYTES_MAX // events - overhead - 16
    items = [{"agent_id": "bench", "kind": {
        "type": "message_received",
        "content": f"{round_number}:{n}:" + "x" * (size - len(f"{round_number}:{n}:"))}}
        for n in range(events)]
    data = json.dumps(items).encode()
    assert len(data) <= BODY_BYTES_MAX, len(data)
    return data


async def ping(http: aiohttp.ClientSession, url: str, stop: asyncio.Event,
               latencies: list[float]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        async with http.get(f"{url}/healthz") as response:
            await response.read()
        latencies.append(time.perf_counter() - started)


async def measure(url: str, events: int, rounds: int) -> tuple[list[float], list[float]]:
    appends: list[float] = []
    pings: list[float] = []
    async with aiohttp.ClientSession() as http, aiohttp.ClientSession() as pinger:
        for round_number in range(rounds):
            data = body(events, round_number)
            stop = asyncio.Event()
            pinging = asyncio.create_task(ping(pinger, url, stop, pings))
            await asyncio.sleep(0.05)  # the pinger is running before the body arrives
            started = time.perf_counter()
            try:
                async with http.post(f"{url}/v1/sessions/bench%3Abig/events", data=data,
                                     headers={"Content-Type": "application/json"}) as response:
                    await response.read()
                    if response.status != 201:
                        raise RuntimeError(f"append answered {response.status}")
                appends.append(time.perf_counter() - started)
            finally:
                stop.set()
                await pinging
    return appends, pings


def main() -> None:
    parser = cli.parser("bench.large_body", __doc__)
    parser.add_argument("--rounds", type=cli.at_least(2), default=5,
                        help="appends of each shape (the percentiles need two)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-body-") as tmp, \
            NodeProcess(Path(tmp), name="bench", extra_args=["--log-level", "warning"]) as node:
        for events in (1000, 40):
            appends, pings = asyncio.run(measure(node.url, events, args.rounds))
            cuts = statistics.quantiles(pings, n=100, method="inclusive")
            print(f"{events:>4} events per 4 MiB body: append median "
                  f"{statistics.median(appends) * 1000:.0f} ms; /healthz meanwhile p50 "
                  f"{cuts[49] * 1000:.1f} ms, p99 {cuts[98] * 1000:.1f} ms, max "
                  f"{max(pings) * 1000:.1f} ms ({len(pings)} requests)")


if __name__ == "__main__":
    cli.run(main)
