"""The fault campaign: real nodes, partitions, kills, pauses and skewed clocks while
clients write; then everything heals and every acknowledged event must be on every node
exactly once, with the same projections everywhere.

    python -m tests.campaigns.faults --seconds 180 --nodes 5 --seed 7

Each pair of nodes talks through one link of a ``FaultProxy`` (the lower-numbered node
dials the other), so a partition is a set of links that reset or blackhole. Clients
append straight to the nodes (not through the proxies) and record every event id a node
acknowledged. Faults, at random times from a seeded generator, at most
``--concurrent-faults`` at once:

- partition (reset or blackhole): the nodes split in two groups for a few seconds;
- link (reset or blackhole): one pair cut;
- SIGKILL, then a restart on the same data (with a new clock skew, when libfaketime is
  installed: ``apt-get install faketime``; without it skew is skipped and the table says so);
- SIGSTOP for a few seconds, then SIGCONT;
- SIGTERM and a restart (the stop must take at most ``--stop-max-s``).

After ``--seconds``, every link passes, every node runs, and the campaign measures how
long the nodes take to hold the same events, then checks them. Exit status 1 when a
check fails; the data folder is kept for diagnosis (its path is printed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from crdt.events import Event, parse_event
from crdt.log.projection import rebuild
from tests.campaigns.common import (
    CampaignNode,
    faketime_lib,
    log_lines_from,
    log_size,
    print_table,
    run,
    secrets_in_logs,
    traceback_samples,
    tracebacks,
    verdict,
)
from tests.campaigns.proxy import BLACKHOLE, PASS, RESET, FaultProxy
from tests.support.argtypes import at_least, positive_seconds
from tests.support.cluster import (
    SECRET,
    all_events,
    automerge_content,
    event_batch,
    projection,
    serve_args,
    session_keys,
    session_path,
    wait_converged,
)

#: Sessions the clients write to (few, so that projections fold events from many nodes).
SESSIONS = 12
#: Seconds a client waits for an append's answer; a paused node answers late or never.
APPEND_TIMEOUT_S = 5.0
#: Pause between one client's appends, so that clients leave the machine to the nodes.
APPEND_PAUSE_S = 0.02
#: Range of seconds a partition, a cut link or a pause lasts.
FAULT_S = (1.0, 8.0)
#: Range of seconds a killed node stays down.
DOWN_S = (0.5, 3.0)
#: Range of seconds between two faults starting.
BETWEEN_FAULTS_S = (0.3, 2.5)
#: Seconds the nodes get to converge after the heal (a peer that was unreachable for
#: long retries after an exponential back-off of up to 60 s).
CONVERGE_TIMEOUT_S = 120.0
#: Largest clock skew, either way. A node takes no event stamped more than
#: ``[limits] clock_drift_max_ms`` (60 s) ahead of its own clock, so nodes whose clocks
#: differ by more hold each other's events back until the clocks agree (the README's
#: Clocks rule): skews stay within half the bound here, so that any two nodes agree.
SKEW_MAX_S = 29.0

FAULTS = ("partition reset", "partition blackhole", "link reset", "link blackhole",
          "SIGKILL + restart", "SIGSTOP/SIGCONT", "SIGTERM + restart")


@dataclass
class Run:
    """What a campaign did and saw."""

    nodes: list[CampaignNode]
    proxy: FaultProxy
    pairs: dict[tuple[int, int], str]
    rng: random.Random
    acknowledged: dict[str, str] = field(default_factory=dict)
    faults: Counter[str] = field(default_factory=Counter)
    failed_appends: int = 0
    failed_restarts: int = 0
    forced_stops: int = 0
    busy_nodes: set[int] = field(default_factory=set)
    busy_links: set[str] = field(default_factory=set)
    stops: list[Stop] = field(default_factory=list)
    stopping: bool = False


@dataclass(frozen=True)
class Stop:
    """A SIGTERM stop: of which node, when (Unix time), how long it took, and where in
    the node's log what it logged meanwhile lies (byte offsets)."""

    node: CampaignNode
    started: float
    took_s: float
    log_from: int
    log_to: int


def build(tmp: Path, count: int, rng: random.Random, skew: bool) -> Run:
    """Nodes n0..n{count-1}, one proxy link per pair; nothing started yet."""
    nodes = [CampaignNode(tmp, name=f"n{i}") for i in range(count)]
    proxy = FaultProxy()
    pairs: dict[tuple[int, int], str] = {}
    for i, node in enumerate(nodes):
        peers = []
        for j in range(i + 1, count):
            name = f"n{i}-n{j}"
            link = proxy.add(name, nodes[j].port)
            pairs[i, j] = name
            peers.append(f"http://127.0.0.1:{link.port}")
        node.extra_args = serve_args(peers)
        if skew and rng.random() < 0.5:
            node.skew_s = rng.uniform(-SKEW_MAX_S, SKEW_MAX_S)
    return Run(nodes, proxy, pairs, rng)


# -- clients -------------------------------------------------------------------------------


async def client(run: Run, http: aiohttp.ClientSession, rng: random.Random, name: str) -> None:
    """Append small batches to random sessions on random nodes until the run stops."""
    n = 0
    while not run.stopping:
        node = rng.choice(run.nodes)
        key = f"s{rng.randrange(SESSIONS)}"
        n += 1
        try:
            async with http.post(node.url + session_path(key) + "/events",
                                 json=event_batch(rng, f"{name}.{n}")) as answer:
                if answer.status in (200, 201):
                    for stored in (await answer.json())["events"]:
                        run.acknowledged[stored["id"]] = node.name
                else:
                    run.failed_appends += 1
        except (aiohttp.ClientError, OSError, TimeoutError):
            run.failed_appends += 1  # not acknowledged: it may or may not be stored
        await asyncio.sleep(APPEND_PAUSE_S)


# -- faults --------------------------------------------------------------------------------


def crossing(run: Run, group: set[int]) -> list[str]:
    return [name for (i, j), name in run.pairs.items() if (i in group) != (j in group)]


async def cut(run: Run, names: list[str], mode: str) -> None:
    names = [name for name in names if name not in run.busy_links]
    run.busy_links |= set(names)
    for name in names:
        run.proxy.set_mode(name, mode)
    await asyncio.sleep(run.rng.uniform(*FAULT_S))
    for name in names:
        run.proxy.set_mode(name, PASS)
    run.busy_links -= set(names)


async def partition(run: Run, mode: str) -> None:
    count = len(run.nodes)
    group = set(run.rng.sample(range(count), run.rng.randint(1, count // 2)))
    run.faults[f"partition {mode}"] += 1
    await cut(run, crossing(run, group), mode)


async def link(run: Run, mode: str) -> None:
    run.faults[f"link {mode}"] += 1
    await cut(run, [run.rng.choice(list(run.pairs.values()))], mode)


def pick_node(run: Run) -> int | None:
    free = [i for i in range(len(run.nodes)) if i not in run.busy_nodes]
    if len(free) < 2:  # keep at least one other node untouched
        return None
    index = run.rng.choice(free)
    run.busy_nodes.add(index)
    return index


def new_skew(run: Run, node: CampaignNode) -> None:
    """At a restart, half the time the clock changes: corrected, or set wrong."""
    if faketime_lib() is None or run.rng.random() < 0.5:
        return
    node.skew_s = run.rng.choice([0.0, run.rng.uniform(-SKEW_MAX_S, SKEW_MAX_S)])
    run.faults["clock skew change"] += 1


def timed_kill(node: CampaignNode, sig: int) -> tuple[int, Stop]:
    """``node.kill``'s exit code, and the stop it made: timed in the thread that waits,
    not in this busy event loop, which may take its time to resume the faults task
    afterwards."""
    log_from, started, wall = log_size(node), time.monotonic(), time.time()
    code = node.kill(sig)
    return code, Stop(node, wall, time.monotonic() - started, log_from, log_size(node))


async def kill(run: Run, sig: int) -> None:
    index = pick_node(run)
    if index is None:
        return
    node = run.nodes[index]
    try:
        code, stop = await asyncio.to_thread(timed_kill, node, sig)
        if sig == signal.SIGTERM:
            run.stops.append(stop)
            run.forced_stops += code == -signal.SIGKILL  # outlived the harness's timeout
            run.faults["SIGTERM + restart"] += 1
        else:
            run.faults["SIGKILL + restart"] += 1
        await asyncio.sleep(run.rng.uniform(*DOWN_S))
        new_skew(run, node)
        try:
            await asyncio.to_thread(node.start)
        except (RuntimeError, TimeoutError) as error:
            run.failed_restarts += 1  # the heal tries again; the table reports it
            print(f"{node.name} did not restart: {error}", file=sys.stderr)
    finally:
        run.busy_nodes.discard(index)


async def pause(run: Run) -> None:
    index = pick_node(run)
    if index is None:
        return
    node = run.nodes[index]
    try:
        assert node.process is not None
        os.kill(node.process.pid, signal.SIGSTOP)
        run.faults["SIGSTOP/SIGCONT"] += 1
        await asyncio.sleep(run.rng.uniform(*FAULT_S))
        os.kill(node.process.pid, signal.SIGCONT)
    finally:
        run.busy_nodes.discard(index)


async def one_fault(run: Run) -> None:
    choice = run.rng.choice(FAULTS)
    if choice.startswith("partition"):
        await partition(run, RESET if choice.endswith("reset") else BLACKHOLE)
    elif choice.startswith("link"):
        await link(run, RESET if choice.endswith("reset") else BLACKHOLE)
    elif choice == "SIGKILL + restart":
        await kill(run, signal.SIGKILL)
    elif choice == "SIGTERM + restart":
        await kill(run, signal.SIGTERM)
    else:
        await pause(run)


async def inject(run: Run, seconds: float, concurrent: int) -> None:
    """Start faults at random moments until ``seconds`` pass; wait for them to end."""
    deadline = time.monotonic() + seconds
    running: set[asyncio.Task[None]] = set()
    while time.monotonic() < deadline:
        await asyncio.sleep(run.rng.uniform(*BETWEEN_FAULTS_S))
        running = {task for task in running if not task.done()}
        if len(running) < concurrent:
            running.add(asyncio.create_task(one_fault(run)))
    for task in running:
        await task  # a fault that failed (a node that would not restart) fails the run


# -- the checks ----------------------------------------------------------------------------


def heal(run: Run) -> None:
    run.proxy.heal_all()
    for node in run.nodes:
        if node.running and node.process is not None:
            os.kill(node.process.pid, signal.SIGCONT)
        elif not node.running:
            node.start()


def check(run: Run) -> dict[str, int]:
    """Lost, duplicated and diverged counts over every node."""
    wanted = set(run.acknowledged)
    logs = {node.name: all_events(node) for node in run.nodes}
    id_sets = {name: {event["id"] for event in events} for name, events in logs.items()}
    first = run.nodes[0].name
    result = {
        "lost": len({i for ids in id_sets.values() for i in wanted - ids}),
        "duplicates": sum(len(events) - len(id_sets[name]) for name, events in logs.items()),
        "position gaps": sum(
            [e["position"] for e in events] != list(range(1, len(events) + 1))
            for events in logs.values()),
        "nodes holding other events": sum(ids != id_sets[first] for ids in id_sets.values()),
    }
    by_key: dict[str, list[Any]] = {}
    for event in logs[first]:
        by_key.setdefault(event["session_key"], []).append(parse_event(event, records_ok=True))
    diverged = set()
    for node in run.nodes:
        if session_keys(node) != set(by_key):
            diverged |= set(by_key) ^ session_keys(node)
    for key, sealed in by_key.items():
        expected = rebuild(key, [e for e in sealed if isinstance(e, Event)]).to_json()
        views = [projection(node, key) for node in run.nodes]
        documents = [automerge_content(node, key) for node in run.nodes]
        if any(view != expected for view in views) or any(d != documents[0] for d in documents):
            diverged.add(key)
    result["diverged sessions"] = len(diverged)
    return result


def show_slow_stops(run: Run, bound_s: float) -> None:
    """Each stop over ``bound_s``, with what its node logged meanwhile, to show which
    step took the time."""
    for stop in run.stops:
        if stop.took_s <= bound_s:
            continue
        at = time.strftime("%H:%M:%S", time.gmtime(stop.started))
        print(f"slow stop: {stop.node.name}, SIGTERM at {at} UTC, {stop.took_s:.1f} s; "
              f"its log meanwhile:", file=sys.stderr)
        for line in log_lines_from(stop.node, stop.log_from, stop.log_to):
            print(f"  {line}", file=sys.stderr)


def report(run: Run, args: argparse.Namespace, converged_s: float | None,
           counts: dict[str, int], logged: int) -> bool:
    skew = "" if faketime_lib() is not None else " (skipped: no libfaketime)"
    rows: list[tuple[str, object, str]] = [
        ("nodes / seconds / seed", f"{args.nodes} / {args.seconds:g} / {args.seed}", ""),
        ("events acknowledged", len(run.acknowledged), ""),
        ("appends not acknowledged", run.failed_appends, ""),
    ]
    for fault in (*FAULTS, "clock skew change"):
        name = fault + (skew if fault == "clock skew change" else "")
        rows.append((f"faults: {name}", run.faults[fault], ""))
    stop_s = max((stop.took_s for stop in run.stops), default=0.0)
    rows.append((f"graceful stop, max s (bound {args.stop_max_s:g})", f"{stop_s:.1f}",
                 verdict(stop_s <= args.stop_max_s)))
    rows.append(("graceful stops killed after 10 s", run.forced_stops,
                 verdict(not run.forced_stops)))
    rows.append(("convergence after heal, s",
                 "not reached" if converged_s is None else f"{converged_s:.1f}",
                 verdict(converged_s is not None)))
    for what, count in counts.items():
        rows.append((what, count, verdict(count == 0)))
    rows.append(("tracebacks in node logs", logged, verdict(logged == 0)))
    leaked = secrets_in_logs(run.nodes, [SECRET])
    rows.append(("cluster secret in node logs", leaked, verdict(leaked == 0)))
    rows.append(("restarts that failed", run.failed_restarts, verdict(not run.failed_restarts)))
    print_table("fault campaign", rows)
    return (converged_s is not None and logged == 0 == leaked and not run.failed_restarts
            and not run.forced_stops and stop_s <= args.stop_max_s
            and not any(counts.values()))


async def campaign(args: argparse.Namespace, tmp: Path) -> bool:
    rng = random.Random(args.seed)
    run = build(tmp, args.nodes, rng, skew=not args.no_skew)
    try:
        for node in run.nodes:
            await asyncio.to_thread(node.start)
        timeout = aiohttp.ClientTimeout(total=APPEND_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            clients = [asyncio.create_task(client(run, http, random.Random(f"{args.seed}.{n}"),
                                                  f"c{n}"))
                       for n in range(args.clients)]
            await inject(run, args.seconds, args.concurrent_faults)
            run.stopping = True
            await asyncio.gather(*clients)
        await asyncio.to_thread(heal, run)
        healed = time.monotonic()
        converged_s: float | None = None
        try:
            await asyncio.to_thread(wait_converged, run.nodes, set(run.acknowledged),
                                    CONVERGE_TIMEOUT_S)
            converged_s = time.monotonic() - healed
        except AssertionError as error:
            print(f"not converged: {error}", file=sys.stderr)
        counts = await asyncio.to_thread(check, run)
        logged = tracebacks(run.nodes)
        for sample in traceback_samples(run.nodes):
            print(f"traceback: {sample}", file=sys.stderr)
        show_slow_stops(run, args.stop_max_s)
        return report(run, args, converged_s, counts, logged)
    finally:
        for node in reversed(run.nodes):
            if node.running and node.process is not None:
                os.kill(node.process.pid, signal.SIGCONT)  # a paused node cannot stop
            node.stop()
        run.proxy.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.campaigns.faults",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=positive_seconds, default=120.0,
                        help="how long faults are injected while clients write "
                             "(default: %(default)s)")
    parser.add_argument("--nodes", type=at_least(2), default=4,
                        help="nodes, each a process (default: %(default)s)")
    parser.add_argument("--clients", type=at_least(1), default=6,
                        help="concurrent writing clients (default: %(default)s)")
    parser.add_argument("--concurrent-faults", type=at_least(0), default=2,
                        help="faults in force at once (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=None,
                        help="of every random choice (default: a new one, printed)")
    parser.add_argument("--stop-max-s", type=positive_seconds, default=5.0,
                        help="longest a SIGTERM may take to stop a node, whatever its "
                             "peers do (default: %(default)s)")
    parser.add_argument("--no-skew", action="store_true", help="leave every clock right")
    parser.add_argument("--keep", action="store_true", help="keep the data folder")
    args = parser.parse_args(argv)
    return run("faults", "fault campaign", args, campaign)


if __name__ == "__main__":
    sys.exit(main())
