"""Append throughput over HTTP against a real node process, with 1 and 32 clients.

Each client posts one event per request (no client-side batching) and waits for the
answer, so every event is acknowledged only after its commit; the node groups what
arrives concurrently into shared commits. The same clients then post the same bodies to
``bench.bare_server`` (aiohttp parsing the JSON and answering 201, storing nothing), also
a real process; rounds alternate between the two. Prints events/s, latency percentiles,
the node's rate as a ratio of the bare server's (also round by round, with the machine's
load average), and each server's CPU time per event (user and system, from /proc on
Linux): on a machine shared with other work the rates swing with the load, the CPU a
server spends on an event much less. Also per event, the CPU of the clients (this
process): the bare server's rate is about what they can send, so the node's side waits
wherever they are left idle (its commits); and how busy the server's main thread (the
event loop) and its busiest other thread (the node's store writer) were. For the node,
from its /metrics, where a request's time goes: events per group commit, the time of a
commit (transaction and fsync), the time from a parsed request to its durable answer
(queue, gathering, commit, hand-offs), and the rest of the clients' mean latency (HTTP
both ways, the clients' own turns).

    python -m bench.http_append [--events 4000] [--clients 1 32] [--rounds 3]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import NamedTuple

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bench import cli
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


def process_cpu_s(pid: int) -> float:
    """User and system CPU seconds process ``pid`` has used so far (Linux)."""
    return _stat_cpu_s(Path(f"/proc/{pid}/stat"))


def _stat_cpu_s(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float | None:
    """``process_cpu_s``, or None without /proc."""
    try:
        return process_cpu_s(pid)
    except OSError:
        return None


def thread_cpu_s(pid: int) -> dict[int, float]:
    """User and system CPU seconds of each thread of process ``pid`` (Linux; empty
    without /proc)."""
    found: dict[int, float] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tids:
        try:
            found[int(tid)] = _stat_cpu_s(Path(f"/proc/{pid}/task/{tid}/stat"))
        except OSError:
            continue  # ended meanwhile
    return found


class Stages(NamedTuple):
    """Totals of the node's /metrics that split a request's time; subtract two readings
    for a round's."""

    commits: float
    commit_events: float  # events in those commits
    commit_s: float  # their transactions and fsyncs
    appends: float  # requests answered
    append_s: float  # each from parsed to its durable answer


def stage_figures(metrics: str) -> Stages:
    """``Stages`` from the text of a node's /metrics."""
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name.endswith(("_sum", "_count")):
                sums[sample.name] = sample.value
    try:
        return Stages(sums["clawsync_commit_events_count"], sums["clawsync_commit_events_sum"],
                      sums["clawsync_commit_seconds_sum"], sums["clawsync_append_seconds_count"],
                      sums["clawsync_append_seconds_sum"])
    except KeyError as missing:
        raise ValueError(f"no {missing.args[0]} in /metrics") from None


def read_stages(url: str) -> Stages:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as answer:
        return stage_figures(answer.read().decode())


def describe_stages(before: Stages, after: Stages, latencies: list[float]) -> str:
    """Where a node's round went, from ``read_stages`` before and after it."""
    commits = after.commits - before.commits
    appends = after.appends - before.appends
    if not commits or not appends:
        return ""
    waited_ms = (after.append_s - before.append_s) * 1000 / appends
    return (f"; {(after.commit_events - before.commit_events) / commits:.1f} events a "
            f"commit, {(after.commit_s - before.commit_s) * 1000 / commits:.1f} ms each "
            f"(transaction, fsync); {waited_ms:.1f} ms from a parsed request to its durable "
            f"answer, {statistics.mean(latencies) * 1000 - waited_ms:.1f} ms of the mean "
            "latency elsewhere (HTTP, the clients)")


class Run(NamedTuple):
    """One round against one server."""

    rate: float  # events per second
    latencies: list[float]
    cpu_ms: float | None  # the server's CPU per event
    client_cpu_ms: float  # this process's (the clients') CPU per event
    #: Share of the round the server's main thread was on a CPU, and its busiest other
    #: thread's (None without /proc).
    busy: tuple[float, float] | None
    stages: str = ""  # the node's ``describe_stages``; empty for the bare server


def measure_process(pid: int, url: str, clients: int, events: int,
                    stages: bool = False) -> Run:
    """``measure`` against the server process ``pid``, with the CPU it and the clients
    spent; with ``stages``, also where a request's time went (a node's /metrics)."""
    stages_before = read_stages(url) if stages else None
    before, threads_before = cpu_s(pid), thread_cpu_s(pid)
    client_before = time.process_time()
    rate, latencies = asyncio.run(measure(url, clients, events))
    client_s = time.process_time() - client_before
    after, threads_after = cpu_s(pid), thread_cpu_s(pid)
    split = "" if stages_before is None else \
        describe_stages(stages_before, read_stages(url), latencies)
    cpu_ms = None if before is None or after is None else \
        (after - before) * 1000 / len(latencies)
    busy = None
    if threads_after:
        elapsed_s = len(latencies) / rate
        spent = {tid: (seconds - threads_before.get(tid, 0.0)) / elapsed_s
                 for tid, seconds in threads_after.items()}
        others = [share for tid, share in spent.items() if tid != pid]
        busy = (spent.get(pid, 0.0), max(others, default=0.0))
    return Run(rate, latencies, cpu_ms, client_s * 1000 / len(latencies), busy, split)


def describe(run: Run) -> str:
    cuts = statistics.quantiles(run.latencies, n=100, method="inclusive")
    cpu = "" if run.cpu_ms is None else f", {run.cpu_ms:.3f} CPU ms/event"
    # Each share also as CPU microseconds per event: shares move with the rate, these
    # much less.
    busy = "" if run.busy is None else \
        (f", main thread busy {run.busy[0]:.0%} ({run.busy[0] * 1e6 / run.rate:.0f} us/event),"
         f" busiest other {run.busy[1]:.0%} ({run.busy[1] * 1e6 / run.rate:.0f} us/event)")
    return (f"{run.rate:,.0f} events/s (p50 {cuts[49] * 1000:.1f} ms, "
            f"p99 {cuts[98] * 1000:.1f} ms{cpu}{busy}; clients "
            f"{run.client_cpu_ms:.3f} CPU ms/event{run.stages})")


def main() -> None:
    parser = cli.parser("bench.http_append", __doc__)
    parser.add_argument("--events", type=cli.at_least(2), default=4000,
                        help="appends per run, shared among the clients")
    parser.add_argument("--clients", type=cli.clients(), nargs="+", default=[1, 32],
                        help="clients appending at once; one run for each number given")
    parser.add_argument("--rounds", type=cli.positive_int, default=3,
                        help="rounds against the node and the bare server, alternating")
    args = parser.parse_args()
    if args.events < max(args.clients):
        parser.error(f"--events {args.events} leaves some of {max(args.clients)} clients "
                     "without an append: give at least one per client")
    quiet = ["--log-level", "warning"]
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp, \
            NodeProcess(Path(tmp), name="bench", extra_args=quiet) as node, \
            NodeProcess(Path(tmp), name="bare", program="bench.bare_server") as bare:
        for clients in args.clients:
            runs: dict[str, list[Run]] = {"node": [], "bare": []}
            for _ in range(args.rounds):
                for name, server in (("node", node), ("bare", bare)):
                    assert server.process is not None
                    runs[name].append(measure_process(server.process.pid, server.url,
                                                      clients, args.events,
                                                      stages=server is node))
            # The round with the median rate, each side.
            node_run, bare_run = (sorted(runs[name], key=lambda run: run.rate)[
                len(runs[name]) // 2] for name in ("node", "bare"))
            # Each round runs the two back to back, so the ratio within a round is the
            # least touched by the machine's load changing between rounds.
            ratios = [node.rate / bare.rate for node, bare
                      in zip(runs["node"], runs["bare"], strict=True)]
            print(f"{clients:>3} client(s): node {describe(node_run)}, bare aiohttp "
                  f"{describe(bare_run)}, ratio {node_run.rate / bare_run.rate:.2f} "
                  f"(per round: {', '.join(f'{ratio:.2f}' for ratio in ratios)}; median "
                  f"{statistics.median(ratios):.2f}; load average "
                  f"{os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    cli.run(main)
