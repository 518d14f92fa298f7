"""What a console open and a 1 s Prometheus scrape cost appends: appends/s of a real node
without and with them, as a ratio (and with the scrape alone).

The appends are bench.http_append's (16 clients, one event per request, each waiting for
its answer). The node has one peer, so appends also replicate and /v1/peers and the
per-peer metrics have a link to show. "A console open" is what the console does, run
in a process of its own (as a browser is): one live stream of GET /v1/events (Accept:
text/event-stream) read to the end of every event, and every 2 s GET /v1/peers,
GET /v1/sessions?limit=50 and GET /v1/node (when the node has it); plus GET /metrics
every second. Each round runs without, with the scrape alone and with both, in an order
that turns from round to round; a round's ratios compare runs made moments apart, so a
log that grows or whatever else the machine does meanwhile favours no side. Besides
appends/s, it prints the CPU time the node's process spent per append (from /proc),
which a disk shared with other work disturbs less, and the events per group commit
(from /metrics, read before and after each run): a busier node gathers more appends
into each fsync.

    python -m bench.console_cost [--events 3000] [--clients 16] [--rounds 5] [--memory]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bench import cli
from bench.http_append import measure, process_cpu_s
from tests.support.processes import NodeProcess, child_env

SECRET = "bench-console-secret"
#: How often the console polls, and Prometheus scrapes.
POLL_S = 2.0
SCRAPE_S = 1.0
POLLED = ("/v1/peers", "/v1/sessions?limit=50", "/v1/node")


# -- the load, in its own process ---------------------------------------------------------


async def load(url: str, console: bool) -> Counter[str]:
    """Scrape ``url`` every second and, with ``console``, load it as an open console
    does, until stdin closes; what it read, counted."""
    counts: Counter[str] = Counter()
    async with aiohttp.ClientSession() as http:
        tasks = [asyncio.create_task(every(SCRAPE_S, http, url, ("/metrics",), counts))]
        if console:
            async with http.get(f"{url}/v1/node") as response:
                polled = POLLED if response.status == 200 else POLLED[:-1]
            tasks += [asyncio.create_task(stream(http, url, counts)),
                      asyncio.create_task(every(POLL_S, http, url, polled, counts))]
        while counts["/metrics"] == 0 or (console and counts["stream_open"] == 0):
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

#: What runs beside the appends: nothing, the scrape, the scrape and a console.
SIDES = ("without", "scrape", "console")


class Run(NamedTuple):
    rate: float  # appends/s
    cpu_ms: float  # the node's CPU milliseconds per append
    per_commit: float  # events per group commit
    read: dict[str, int]  # what the load read


def commits(url: str) -> float:
    """Group commits the node has made (its clawsync_commit_seconds count)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return next(sample.value for family in text_string_to_metric_families(text)
                for sample in family.samples if sample.name == "clawsync_commit_seconds_count")


def run(node: NodeProcess, clients: int, events: int, side: str) -> Run:
    assert node.process is not None
    before_cpu_s, before_commits = process_cpu_s(node.process.pid), commits(node.url)
    if side == "without":
        rate, read = asyncio.run(measure(node.url, clients, events))[0], {}
    else:
        rate, read = loaded(node.url, clients, events, console=side == "console")
    cpu_ms = (process_cpu_s(node.process.pid) - before_cpu_s) * 1000 / events
    return Run(rate, cpu_ms, events / (commits(node.url) - before_commits), read)


def loaded(url: str, clients: int, events: int, console: bool
           ) -> tuple[float, dict[str, int]]:
    """Appends/s while a load process works on the node; what the load read."""
    command = [sys.executable, "-m", "bench.console_cost", "--load", url]
    child = subprocess.Popen(command + (["--console"] if console else []),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env=child_env())
    assert child.stdin is not None and child.stdout is not None
    try:
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError("the load process did not start")
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


def report(runs: dict[str, list[Run]], clients: int, events: int) -> None:
    print(f"{clients} clients, {events} appends per run, {len(runs['without'])} rounds "
          "(medians):")
    for side in SIDES:
        print(f"  {side:>8}: {statistics.median(r.rate for r in runs[side]):,.0f} appends/s, "
              f"{statistics.median(r.cpu_ms for r in runs[side]):.2f} ms node CPU/append, "
              f"{statistics.median(r.per_commit for r in runs[side]):.1f} events/commit")
    for side in SIDES[1:]:
        rates = sorted(a.rate / b.rate for a, b in zip(runs[side], runs["without"],
                                                       strict=True))
        cpu = statistics.median(a.cpu_ms / b.cpu_ms for a, b in zip(
            runs[side], runs["without"], strict=True))
        print(f"  {side} / without, per round: appends/s {statistics.median(rates):.2f} "
              f"(from {rates[0]:.2f} to {rates[-1]:.2f}), node CPU per append {cpu:.2f}")


def compare(tmp: Path, events: int, clients: int, rounds: int, memory: bool) -> None:
    """Every round's runs, on nodes with their data in ``tmp``, and their medians."""
    quiet = ["--log-level", "warning", "--cluster-secret", SECRET]
    in_memory = ["--storage", "memory:"] if memory else []
    with NodeProcess(tmp, name="a", extra_args=[*quiet, *in_memory]) as node, \
            NodeProcess(tmp, name="b", extra_args=[*quiet, "--peer", node.url]):
        asyncio.run(measure(node.url, clients, events // 4))  # warm up
        runs: dict[str, list[Run]] = {side: [] for side in SIDES}
        for round_ in range(rounds):
            turn = round_ % len(SIDES)
            for side in SIDES[turn:] + SIDES[:turn]:
                runs[side].append(result := run(node, clients, events, side))
                print(f"round {round_ + 1} {side:>8}: {result.rate:,.0f} appends/s, "
                      f"{result.cpu_ms:.2f} ms node CPU/append, "
                      f"{result.per_commit:.1f} events/commit"
                      + (f"; the load read {result.read}" if result.read else ""))
        report(runs, clients, events)


def main() -> None:
    parser = cli.parser("bench.console_cost", __doc__)
    parser.add_argument("--events", type=cli.positive_int, default=3000,
                        help="appends per run, shared among the clients")
    parser.add_argument("--clients", type=cli.clients(), default=16,
                        help="clients appending at once")
    parser.add_argument("--rounds", type=cli.positive_int, default=5,
                        help="rounds of three runs: without, with the scrape, with both")
    parser.add_argument("--memory", action="store_true",
                        help="keep node A's log in memory: no fsync, so appends are bound "
                             "by CPU, the worst case for what the console costs")
    parser.add_argument("--load", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--console", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        # The parent ends the load by closing stdin, after Ctrl-C or a SIGTERM to the
        # process group too (which reach this process as well): one "interrupted" is
        # enough.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print(json.dumps(asyncio.run(load(args.load, args.console))), flush=True)
        return
    if args.events < args.clients:
        parser.error(f"--events {args.events} leaves some of {args.clients} clients "
                     "without an append: give at least one per client")
    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        compare(Path(tmp), args.events, args.clients, args.rounds, args.memory)

if __name__ == "__main__":
    cli.run(main)
