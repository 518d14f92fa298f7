"""What a console open and a 1 s Prometheus scrape cost appends: appends/s of a real node
without and with them, as a ratio.

The appends are bench.http_append's (16 clients, one event per request, each waiting for
its answer). The node has one peer, so appends also replicate and /v1/peers and the
per-peer metrics have a link to show. "A console open" is what the console does, run
in a process of its own (as a browser is): one live stream of GET /v1/events (Accept:
text/event-stream) read to the end of every event, and every 2 s GET /v1/peers,
GET /v1/sessions?limit=50 and GET /v1/node (when the node has it); plus GET /metrics
every second. Rounds alternate without and with, so a log that grows does not favour
either side.

    python -m bench.console_cost [--events 6000] [--clients 16] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp

from bench.http_append import measure
from tests.support.processes import NodeProcess, child_env

SECRET = "bench-console-secret"
#: How often the console polls, and Prometheus scrapes.
POLL_S = 2.0
SCRAPE_S = 1.0
POLLED = ("/v1/peers", "/v1/sessions?limit=50", "/v1/node")


# -- the console, in its own process -----------------------------------------------------


async def console(url: str) -> Counter[str]:
    """Load ``url`` as an open console and a scraper do, until stdin closes; what it
    read, counted."""
    counts: Counter[str] = Counter()
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/v1/node") as response:
            polled = POLLED if response.status == 200 else POLLED[:-1]
        tasks = [asyncio.create_task(stream(http, url, counts)),
                 asyncio.create_task(every(POLL_S, http, url, polled, counts)),
                 asyncio.create_task(every(SCRAPE_S, http, url, ("/metrics",), counts))]
        while counts["stream_open"] == 0 or counts["/metrics"] == 0:
            await asyncio.sleep(0.05)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return counts


async def stream(http: aiohttp.ClientSession, url: str, counts: Counter[str]) -> None:
    async with http.get(f"{url}/healthz") as response:
        after = (await response.json())["head"]  # live from now, as the console opens
    headers = {"Accept": "text/event-stream"}
    async with http.get(f"{url}/v1/events?after={after}", headers=headers,
                        timeout=aiohttp.ClientTimeout(total=None)) as response:
        assert response.status == 200, response.status
        counts["stream_open"] += 1
        async for line in response.content:
            if line.startswith(b"data: "):
                json.loads(line[6:])  # as the console's page does
                counts["stream_events"] += 1


async def every(period_s: float, http: aiohttp.ClientSession, url: str,
                paths: tuple[str, ...], counts: Counter[str]) -> None:
    while True:
        started = time.perf_counter()
        for path in paths:
            async with http.get(url + path) as response:
                assert response.status == 200, (path, response.status)
                await response.read()
                counts[path] += 1
        await asyncio.sleep(max(0.0, period_s - (time.perf_counter() - started)))


# -- the benchmark ---------------------------------------------------------------------------


def with_console(url: str, clients: int, events: int) -> tuple[float, dict[str, int]]:
    """Appends/s while a console process loads the node; what the console read."""
    child = subprocess.Popen([sys.executable, "-m", "bench.console_cost", "--console", url],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env=child_env())
    assert child.stdin is not None and child.stdout is not None
    try:
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError("the console process did not start")
        rate, _ = asyncio.run(measure(url, clients, events))
        child.stdin.close()
        read: dict[str, int] = json.loads(child.stdout.read())
    finally:
        if not child.stdin.closed:
            child.stdin.close()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return rate, read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=6000, help="appends per run")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--console", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.console:
        print(json.dumps(asyncio.run(console(args.console))), flush=True)
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench-console-"))
    quiet = ["--log-level", "warning", "--cluster-secret", SECRET]
    with NodeProcess(tmp, name="a", extra_args=quiet) as node, \
            NodeProcess(tmp, name="b", extra_args=[*quiet, "--peer", node.url]):
        asyncio.run(measure(node.url, args.clients, args.events // 4))  # warm up
        without, with_ = [], []
        for round_ in range(1, args.rounds + 1):
            without.append(asyncio.run(measure(node.url, args.clients, args.events))[0])
            rate, read = with_console(node.url, args.clients, args.events)
            with_.append(rate)
            print(f"round {round_}: without {without[-1]:,.0f} appends/s, with console and "
                  f"scrape {rate:,.0f} appends/s (the console read {read})")
        base, loaded = statistics.median(without), statistics.median(with_)
        print(f"{args.clients} clients, {args.events} appends per run, median of "
              f"{args.rounds}: without {base:,.0f} appends/s, with a console open and a "
              f"{SCRAPE_S:g} s scrape {loaded:,.0f} appends/s; ratio {loaded / base:.2f}")


if __name__ == "__main__":
    main()
