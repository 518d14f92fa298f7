"""Replication figures between real node processes on loopback.

- catch-up: B empty, A holding 1,000 sessions x 20 events (signed, as A writes them):
  seconds until B holds all, events/s, and bytes on the wire (counted by a TCP proxy
  between them, so websocket framing and the upgrade are included) per event as a ratio
  of its canonical CBOR size; meanwhile B's /healthz latency, i.e. whether it keeps
  answering while it catches up, and the CPU time of both nodes;
- idle round: bytes per repair round between two nodes in sync, with 100 and with
  10,000 sessions;
- propagation: one append on A until each of 4 peers has it, p50 and p99;
- partition: three nodes, links cut, both sides write, links healed: time to converge.

    python -m bench.replication [--quick]
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import NamedTuple

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bench import cli
from bench.http_append import cpu_s
from crdt.events import parse_event
from crdt.log.store import EventStore
from node.cli.linkproxy import LinkProxy
from node.config import host_name
from node.device import open_key
from tests.support.processes import NodeProcess

SECRET = "bench-secret"
PULL_S = 0.5


def fill(data: Path, sessions: int, per_session: int) -> int:
    """Write the log directly, as the node started on ``data`` would: under its device
    key's origin, every event signed (so a peer verifies each one it receives). Returns
    the total canonical CBOR bytes of its events."""
    data.mkdir(parents=True, exist_ok=True)
    signer = open_key(data).signer(host_name())
    with EventStore.open(data, signer=signer) as store:
        total = 0
        for start in range(0, sessions, 100):
            drafts = [parse_event({"agent_id": "main", "kind": {
                "type": "message_received", "content": f"message {n} of session {s}"}},
                session_key=f"bench:{s}")
                for s in range(start, min(start + 100, sessions)) for n in range(per_session)]
            total += sum(len(a.stored.event.canonical) for a in store.append_batch(drafts))
        return total


def node(root: Path, name: str, *peers: str) -> NodeProcess:
    args = ["--cluster-secret", SECRET, "--pull-interval", str(PULL_S),
            "--log-level", "warning"]
    for url in peers:
        args += ["--peer", url]
    return NodeProcess(root, name=name, extra_args=args)


def head(process: NodeProcess) -> int:
    return int(process.get("/healthz")["head"])


def wait_heads(processes: list[NodeProcess], target: int, timeout_s: float = 600) -> float:
    started = time.perf_counter()
    while any(head(p) < target for p in processes):
        if time.perf_counter() - started > timeout_s:
            raise TimeoutError("no convergence")
        time.sleep(0.02)
    return time.perf_counter() - started


@contextmanager
def started(*processes: NodeProcess) -> Iterator[None]:
    with ExitStack() as stack:
        for process in processes:
            stack.enter_context(process)
        yield


class CatchUp(NamedTuple):
    """What one catch-up measured."""

    events: int
    elapsed_s: float
    wire_bytes: int
    cbor_bytes: int
    latencies_s: list[float]  # B's /healthz round trips meanwhile
    cpu_a_s: float | None  # CPU seconds A's and B's processes used meanwhile (Linux):
    cpu_b_s: float | None  # on a machine shared with other work, the steadier figures
    #: CPU seconds B's child processes used meanwhile (its signature worker), which
    #: ``cpu_b_s`` does not count; None without /proc.
    cpu_b_children_s: float | None = None
    #: B's commits that stored events, and the seconds they took (their fsyncs
    #: included), from its /metrics once caught up.
    commits: int = 0
    commit_s: float = 0.0


def measure_catch_up(root: Path, sessions: int, per_session: int) -> CatchUp:
    """B empty, A filled: the time until B holds all, probing B's /healthz meanwhile."""
    a = node(root, "catchup-a")
    events = sessions * per_session
    cbor_bytes = fill(a.data_dir, sessions, per_session)
    with started(a), LinkProxy(a.port) as link:
        b = node(root, "catchup-b", f"http://127.0.0.1:{link.port}")
        latencies: list[float] = []
        with b:
            pids = [p.process.pid for p in (a, b) if p.process is not None]
            cpu_before = [cpu_s(pid) for pid in pids]
            children_before = children_cpu_s(pids[-1])
            began = time.perf_counter()
            # One kept-alive connection, as a console polling the node keeps: a new
            # connection per probe cost B about 0.3 ms of CPU each, which this figure
            # would count as catching up.
            probe = http.client.HTTPConnection("127.0.0.1", b.port, timeout=10)
            while True:
                t = time.perf_counter()
                probe.request("GET", "/healthz")
                held = int(json.loads(probe.getresponse().read())["head"])
                latencies.append(time.perf_counter() - t)
                if held >= events:
                    break
                time.sleep(0.01)
            elapsed = time.perf_counter() - began
            probe.request("GET", "/metrics")
            commits, commit_s = commit_figures(probe.getresponse().read().decode())
            probe.close()
            wire = link.bytes_forwarded
            cpu_a, cpu_b = (None if before is None or after is None else after - before
                            for before, after in zip(cpu_before, map(cpu_s, pids),
                                                     strict=True))
            children_after = children_cpu_s(pids[-1])
            children = (None if children_before is None or children_after is None
                        else children_after - children_before)
    return CatchUp(events, elapsed, wire, cbor_bytes, latencies, cpu_a, cpu_b, children,
                   commits, commit_s)


def commit_figures(metrics: str) -> tuple[int, float]:
    """How many commits a node's /metrics counts, and their total seconds."""
    for family in text_string_to_metric_families(metrics):
        if family.name == "clawsync_commit_seconds":
            samples = {sample.name: sample.value for sample in family.samples}
            return (int(samples["clawsync_commit_seconds_count"]),
                    samples["clawsync_commit_seconds_sum"])
    raise ValueError("no clawsync_commit_seconds in /metrics")


def children_cpu_s(pid: int) -> float | None:
    """CPU seconds the child processes of ``pid`` have used (Linux), or None: those
    alive now, plus those that ended and were waited for (``pid``'s cutime and cstime),
    so that a worker replaced during a run still counts."""
    total = 0.0
    try:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # ended meanwhile
            if int(fields[1]) == pid:
                total += cpu_s(int(stat.parent.name)) or 0.0
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return total + (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def cpu_figures(got: CatchUp) -> str:
    if got.cpu_a_s is None or got.cpu_b_s is None:
        return "CPU time unknown (no /proc)"
    children = "" if not got.cpu_b_children_s else (
        f" + its worker processes {got.cpu_b_children_s:.2f} s "
        f"({got.cpu_b_children_s / got.events * 1e6:.0f} us/event)")
    return (f"CPU time: B {got.cpu_b_s:.2f} s ({got.cpu_b_s / got.events * 1e6:.0f} us/event)"
            f"{children}, A {got.cpu_a_s:.2f} s")


def commit_line(got: CatchUp) -> str:
    """B's commits: how many events each stored, and the time spent in them (fsyncs)."""
    if not got.commits:
        return "B's commits: none counted"
    return (f"B's commits: {got.commits:,} ({got.events / got.commits:,.0f} events each), "
            f"{got.commit_s:.2f} s in them, fsyncs included "
            f"({got.commit_s / got.commits * 1000:.1f} ms each)")


def probes(latencies_s: list[float]) -> str:
    cuts = statistics.quantiles(latencies_s, n=100, method="inclusive")
    return (f"p50 {cuts[49] * 1000:.1f} ms, p99 {cuts[98] * 1000:.1f} ms, max "
            f"{max(latencies_s) * 1000:.1f} ms ({len(latencies_s)} probes)")


def catch_up(root: Path, sessions: int, per_session: int) -> None:
    got = measure_catch_up(root, sessions, per_session)
    events, elapsed, wire, cbor_bytes = got.events, got.elapsed_s, got.wire_bytes, got.cbor_bytes
    print(f"catch-up: {events:,} events ({sessions:,} sessions x {per_session}) in "
          f"{elapsed:.1f} s = {events / elapsed:,.0f} events/s; wire {wire:,} bytes = "
          f"{wire / cbor_bytes:.2f} x canonical CBOR ({cbor_bytes / events:.0f} B/event)")
    print(f"  B /healthz while catching up: {probes(got.latencies_s)}")
    print(f"  {cpu_figures(got)}")
    print(f"  {commit_line(got)}")


def idle_round(root: Path, sessions: int, rounds: int = 10) -> None:
    a = node(root, f"idle{sessions}-a")
    fill(a.data_dir, sessions, 1)
    with started(a), LinkProxy(a.port) as link:
        b = node(root, f"idle{sessions}-b", f"http://127.0.0.1:{link.port}")
        with b:
            wait_heads([b], sessions)
            time.sleep(2 * PULL_S)  # let acknowledgements settle
            before = link.bytes_forwarded
            time.sleep(rounds * PULL_S)
            spent = link.bytes_forwarded - before
    print(f"idle: {sessions:>6,} sessions in sync: {spent / rounds:.0f} bytes per "
          f"{PULL_S} s round (both directions)")


async def propagation(hub: NodeProcess, peers: list[NodeProcess], samples: int) -> list[float]:
    delays: list[float] = []
    async with aiohttp.ClientSession() as http:
        for n in range(samples):
            began = time.perf_counter()
            body = {"agent_id": "bench", "kind": {"type": "message_received",
                                                  "content": f"probe {n}"}}
            # Positions are per node: each peer waits for news after its own head.
            waits = [http.get(f"{p.url}/v1/events", params={"after": str(head(p)),
                     "wait": "10", "limit": "1"}) for p in peers]
            began = time.perf_counter()
            pending = [asyncio.ensure_future(_arrived(w, began)) for w in waits]
            await asyncio.sleep(0.005)  # the long polls are waiting
            async with http.post(f"{hub.url}/v1/sessions/probe/events", json=body) as reply:
                await reply.read()
            delays += await asyncio.gather(*pending)
    return delays


async def _arrived(request: object, began: float) -> float:
    async with request as reply:  # type: ignore[attr-defined]
        await reply.read()
    return time.perf_counter() - began


def propagate(root: Path, samples: int) -> None:
    hub = node(root, "prop-hub")
    with hub:
        peers = [node(root, f"prop-{i}", hub.url) for i in range(4)]
        with started(*peers):
            wait_heads(peers, 0)
            time.sleep(1)
            delays = asyncio.run(propagation(hub, peers, samples))
    cuts = statistics.quantiles(delays, n=100, method="inclusive")
    print(f"propagation of one append to 4 peers ({samples} appends): p50 "
          f"{cuts[49] * 1000:.1f} ms, p99 {cuts[98] * 1000:.1f} ms")


def partition(root: Path, per_side: int) -> None:
    a = node(root, "part-a")
    with a, LinkProxy(a.port) as to_b, LinkProxy(a.port) as to_c:
        b = node(root, "part-b", f"http://127.0.0.1:{to_b.port}")
        c = node(root, "part-c", f"http://127.0.0.1:{to_c.port}")
        with started(b, c):
            to_b.cut()
            to_c.cut()
            for process, side in ((a, "a"), (b, "b"), (c, "c")):
                batch = [{"agent_id": side, "kind": {"type": "message_received",
                                                     "content": f"{side} {n}"}}
                         for n in range(per_side)]
                request = urllib.request.Request(
                    process.url + "/v1/sessions/shared/events", method="POST",
                    data=json.dumps(batch).encode(),
                    headers={"Content-Type": "application/json"})
                urllib.request.urlopen(request).read()
            to_b.heal()
            to_c.heal()
            elapsed = wait_heads([a, b, c], 3 * per_side)
    print(f"partition of 3 nodes healed ({per_side} events written on each side): "
          f"converged in {elapsed:.2f} s (pull interval {PULL_S} s, back-off up to 60 s)")


def main() -> None:
    parser = cli.parser("bench.replication", __doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-replication-") as tmp:
        root = Path(tmp)
        catch_up(root, 100 if args.quick else 1000, 20)
        idle_round(root, 100)
        idle_round(root, 1000 if args.quick else 10_000)
        propagate(root, 20 if args.quick else 200)
        partition(root, 100)


if __name__ == "__main__":
    cli.run(main)
