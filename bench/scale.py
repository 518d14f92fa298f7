"""Reads at scale: a node over a log of about 1,000,000 events in 100,000 sessions.

Builds the log once with the embedded store (kept in ``--data`` for later runs), then:

- reads the projection of a 10,000-event session, embedded and over HTTP (ms);
- starts a real node process on the log and times start -> first answered request;
- reports that node's resident memory (RSS) after serving reads.

    python -m bench.scale [--data /tmp/clawsync-scale] [--sessions 100000] [--events 1000000]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from rich.progress import Progress

from crdt.events import parse_event
from crdt.log.store import EventStore
from tests.support.processes import NodeProcess, child_env, free_port

BIG = "scale:big"
BIG_EVENTS = 10_000
BATCH = 2_000


def build(data: Path, sessions: int, events: int) -> None:
    """Fill the log: one 10,000-event session, then small sessions up to ``events``."""
    small = events - BIG_EVENTS
    with EventStore.open(data) as store:
        if store.head >= events:
            return
        with Progress() as progress:
            task = progress.add_task("building the log", total=events)
            kinds = ({"type": "message_received", "content": "question " + "x" * 80},
                     {"type": "agent_response", "content": "answer " + "y" * 80,
                      "model": "m"})
            big = [parse_event({"agent_id": "main", "kind": kinds[i % 2]}, session_key=BIG)
                   for i in range(BIG_EVENTS)]
            for i in range(0, len(big), BATCH):
                store.append_batch(big[i:i + BATCH])
                progress.advance(task, len(big[i:i + BATCH]))
            for start in range(0, small, BATCH):
                batch = [parse_event({"agent_id": "main", "kind": kinds[n % 2]},
                                     session_key=f"scale:{n % sessions}")
                         for n in range(start, min(start + BATCH, small))]
                store.append_batch(batch)
                progress.advance(task, len(batch))


def embedded_projection_ms(data: Path) -> float:
    with EventStore.open(data) as store:
        samples = []
        for _ in range(5):
            started = time.perf_counter()
            store.get_projection(BIG).to_json()
            samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def serve_figures(data: Path) -> tuple[float, float, float]:
    """Seconds to first answer, projection read over HTTP (ms), RSS (MiB)."""
    node = NodeProcess(data.parent, name="scale", port=free_port(),
                       extra_args=["--log-level", "warning"])
    node.data_dir = data
    started = time.perf_counter()
    node.process = subprocess.Popen(node.command(), env=child_env(),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        node.wait_healthy(120)
        first_answer_s = time.perf_counter() - started
        samples = []
        for _ in range(5):
            begin = time.perf_counter()
            with urllib.request.urlopen(f"{node.url}/v1/sessions/scale%3Abig") as response:
                response.read()
            samples.append((time.perf_counter() - begin) * 1000)
        node.get("/v1/sessions?after=99000&limit=1000")
        return first_answer_s, statistics.median(samples), rss_mib(node.process.pid)
    finally:
        node.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/clawsync-scale/data"))
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    args.data.parent.mkdir(parents=True, exist_ok=True)
    build(args.data, args.sessions, args.events)
    with EventStore.open(args.data) as store:
        stats = store.stats()
    print(f"log: {stats['events']:,} events in {stats['sessions']:,} sessions")
    print(f"projection of a {BIG_EVENTS:,}-event session, embedded: "
          f"{embedded_projection_ms(args.data):.0f} ms")
    first_s, http_ms, rss = serve_figures(args.data)
    print(f"node start -> first answered request: {first_s:.2f} s")
    print(f"projection of a {BIG_EVENTS:,}-event session over HTTP: {http_ms:.0f} ms")
    print(f"node RSS with {stats['sessions']:,} sessions on disk: {rss:.0f} MiB")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
