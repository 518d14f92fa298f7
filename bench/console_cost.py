"""What a console open and a 1 s Prometheus scrape cost appends: appends/s of a real node
without and with them, as a ratio.

The appends are bench.http_append's (16 clients, one event per request, each waiting for
its answer). The node has one peer, so appends also replicate and /v1/peers and the
per-peer metrics have a link to show. "A console open" is what the console does, run
in a process of its own (as a browser is): one live stream of GET /v1/events (Accept:
text/event-stream) read to the end of every event, and every 2 s GET /v1/peers,
GET /v1/sessions?limit=50 and GET /v1/node (when the node has it); plus GET /metrics
every second. Runs alternate without and with (each round in the other order), so
neither a log that grows nor whatever else the machine does favours one side. Besides
appends/s, it prints the CPU time the node's process spent per append (from /proc),
which a disk shared with other work disturbs less, and the events per group commit
(from /metrics, read before and after each run): a busier node gathers more appends
into each fsync.

    python -m bench.console_cost [--events 3000] [--clients 16] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

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


def cpu_s(pid: int) -> float:
    """User and system CPU seconds process ``pid`` has used (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def commits(url: str) -> float:
    """Group commits the node has made (its clawsync_commit_seconds count)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return next(sample.value for family in text_string_to_metric_families(text)
                for sample in family.samples if sample.name == "clawsync_commit_seconds_count")


def run(node: NodeProcess, clients: int, events: int, console_on: bool
        ) -> tuple[float, float, float, dict[str, int]]:
    """Appends/s, the node's CPU milliseconds per append, events per commit, and what
    the console read."""
    assert node.process is not None
    before_cpu_s, before_commits = cpu_s(node.process.pid), commits(node.url)
    if console_on:
        rate, read = with_console(node.url, clients, events)
    else:
        rate, read = asyncio.run(measure(node.url, clients, events))[0], {}
    cpu_ms = (cpu_s(node.process.pid) - before_cpu_s) * 1000 / events
    return rate, cpu_ms, events / (commits(node.url) - before_commits), read


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
    parser.add_argument("--events", type=int, default=3000, help="appends per run")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
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
        sides: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
        for round_ in range(1, args.rounds + 1):
            for console_on in (False, True) if round_ % 2 else (True, False):
                rate, cpu_ms, per_commit, read = run(node, args.clients, args.events,
                                                     console_on)
                sides[console_on].append((rate, cpu_ms, per_commit))
                print(f"round {round_} {'with' if console_on else 'without':>7}: "
                      f"{rate:,.0f} appends/s, node CPU {cpu_ms:.2f} ms/append, "
                      f"{per_commit:.1f} events/commit"
                      + (f" (the console read {dict(read)})" if console_on else ""))
        (base, base_cpu, base_batch), (loaded, loaded_cpu, loaded_batch) = (
            tuple(statistics.median(figure) for figure in zip(*sides[on], strict=True))
            for on in (False, True))
        print(f"{args.clients} clients, {args.events} appends per run, medians of "
              f"{args.rounds} rounds:\n"
              f"  without: {base:,.0f} appends/s, {base_cpu:.2f} ms CPU/append, "
              f"{base_batch:.1f} events/commit\n"
              f"  with a console open and a {SCRAPE_S:g} s scrape: {loaded:,.0f} appends/s, "
              f"{loaded_cpu:.2f} ms CPU/append, {loaded_batch:.1f} events/commit\n"
              f"  ratio with/without: appends/s {loaded / base:.2f}, "
              f"CPU per append {loaded_cpu / base_cpu:.2f}")


if __name__ == "__main__":
    main()
