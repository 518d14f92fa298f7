"""Append throughput over HTTP against a real node process, with 1 and 32 clients.

Each client posts one event per request (no client-side batching) and waits for the
answer, so every event is acknowledged only after its commit; the node groups what
arrives concurrently into shared commits. Prints events/s and latency percentiles.

    python -m bench.http_append [--events 4000] [--clients 1 32]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp

from tests.support.processes import NodeProcess


async def client(http: aiohttp.ClientSession, url: str, number: int, count: int,
                 latencies: list[float]) -> None:
    for n in range(count):
        body = {"agent_id": "bench", "kind": {"type": "message_received",
                                              "content": f"client {number} message {n}"}}
        started = time.perf_counter()
        async with http.post(f"{url}/v1/sessions/bench%3A{number % 8}/events",
                             json=body) as response:
            await response.read()
            if response.status != 201:
                raise RuntimeError(f"append answered {response.status}")
        latencies.append(time.perf_counter() - started)


async def measure(url: str, clients: int, events: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http, url, c, events // clients, latencies)
                               for c in range(clients)))
        elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 32])
    args = parser.parse_args()
    with NodeProcess(Path(tempfile.mkdtemp(prefix="bench-http-")), name="bench",
                     extra_args=["--log-level", "warning"]) as node:
        for clients in args.clients:
            rate, latencies = asyncio.run(measure(node.url, clients, args.events))
            cuts = statistics.quantiles(latencies, n=100, method="inclusive")
            print(f"{clients:>3} client(s): {rate:,.0f} events/s, latency p50 "
                  f"{cuts[49] * 1000:.1f} ms, p99 {cuts[98] * 1000:.1f} ms")


if __name__ == "__main__":
    main()
