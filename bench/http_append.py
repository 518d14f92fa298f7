"""Append throughput over HTTP against a real node process, with 1 and 32 clients.

Each client posts one event per request (no client-side batching) and waits for the
answer, so every event is acknowledged only after its commit; the node groups what
arrives concurrently into shared commits. The same clients then post the same bodies to
``bench.bare_server`` (aiohttp parsing the JSON and answering 201, storing nothing), also
a real process; rounds alternate between the two. Prints events/s, latency percentiles
and the node's rate as a ratio of the bare server's.

    python -m bench.http_append [--events 4000] [--clients 1 32] [--rounds 3]
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


def describe(rate: float, latencies: list[float]) -> str:
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return (f"{rate:,.0f} events/s (p50 {cuts[49] * 1000:.1f} ms, "
            f"p99 {cuts[98] * 1000:.1f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-http-"))
    with NodeProcess(folder, name="bench", extra_args=["--log-level", "warning"]) as node, \
            NodeProcess(folder, name="bare", program="bench.bare_server") as bare:
        for clients in args.clients:
            runs: dict[str, list[tuple[float, list[float]]]] = {"node": [], "bare": []}
            for _ in range(args.rounds):
                for name, url in (("node", node.url), ("bare", bare.url)):
                    runs[name].append(asyncio.run(measure(url, clients, args.events)))
            # The round with the median rate, each side.
            node_run, bare_run = (sorted(runs[name])[len(runs[name]) // 2]
                                  for name in ("node", "bare"))
            print(f"{clients:>3} client(s): node {describe(*node_run)}, bare aiohttp "
                  f"{describe(*bare_run)}, ratio {node_run[0] / bare_run[0]:.2f}")


if __name__ == "__main__":
    main()
