"""What forgetting costs, and how soon the bytes are gone.

- embedded: forgetting a session of 10,000 events in one ``EventStore`` on disk (the
  commit that makes every event a skeleton, plus the WAL checkpoint), against one
  ordinary append in the same store; and forgetting one event of that session (the
  header is folded again from the whole session);
- writer stall: a real node holding that session; one client appends single events to
  another session throughout, another forgets the big session: the longest append the
  first client saw during the forget, against its median before;
- propagation: three real nodes; a forget on one until the forgotten marker is gone
  from the raw files (database, -wal, -shm) of all three data folders.

    python -m bench.forget [--quick]
"""

from __future__ import annotations

import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

from bench import cli
from bench.cli import Cluster
from crdt.events import parse_event
from crdt.log.store import EventStore
from tests.support.cluster import (
    append,
    message,
    request,
    session_path,
    wait_converged,
)
from tests.support.rawfiles import files_holding

MARKER = "bench-forget-marker"


def _drafts(count: int, key: str) -> list:  # type: ignore[type-arg]
    return [parse_event(message(f"{MARKER} {n} " + "x" * 80), session_key=key)
            for n in range(count)]


def embedded(root: Path, events: int) -> None:
    store = EventStore.open(root / "embedded")
    try:
        for start in range(0, events, 1000):
            store.append_batch(_drafts(min(1000, events - start), "big"))
        began = time.perf_counter()
        store.append(parse_event(message("ordinary"), session_key="other"))
        ordinary_s = time.perf_counter() - began
        one = store.get_events("big")[events // 2].event.id.hex()
        began = time.perf_counter()
        store.forget("big", [one])
        one_s = time.perf_counter() - began
        began = time.perf_counter()
        store.forget("big")
        whole_s = time.perf_counter() - began
    finally:
        store.close()
    left = files_holding(root / "embedded", MARKER)
    print(f"embedded, session of {events} events: forget the session {whole_s:.2f} s, "
          f"one event of it {one_s:.2f} s, an ordinary append {ordinary_s * 1000:.1f} ms "
          f"({whole_s / ordinary_s:.0f}x); files still holding the marker: {left or 'none'}")


def stall(root: Path, events: int) -> None:
    (root / "stall").mkdir()
    with Cluster(root / "stall") as cluster:
        node = cluster.node("solo", secret=None)
        for start in range(0, events, 1000):
            append(node, "big", [message(f"{MARKER} {n}") for n in
                                 range(start, min(events, start + 1000))])
        latencies: list[tuple[float, float]] = []  # (started, seconds)
        stop = threading.Event()
        failed: list[Exception] = []

        def writer() -> None:
            n = 0
            try:
                while not stop.is_set():
                    began = time.perf_counter()
                    append(node, "other", [message(f"beside {n}")])
                    latencies.append((began, time.perf_counter() - began))
                    n += 1
            except Exception as error:  # raised below, unless Ctrl-C stopped the node
                failed.append(error)

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            time.sleep(2.0)
            forget_began = time.perf_counter()
            request(node, "DELETE", session_path("big"))
            forget_s = time.perf_counter() - forget_began
            time.sleep(1.0)
        finally:  # also on Ctrl-C: the writer must end before its node stops
            stop.set()
            thread.join()
        if failed:
            raise failed[0]
    before = [s for t, s in latencies if t < forget_began]
    during = [s for t, s in latencies if forget_began - 0.5 <= t <= forget_began + forget_s]
    print(f"writer stall, node holding {events} events: DELETE took {forget_s:.2f} s; "
          f"appends beside it: median before {statistics.median(before) * 1000:.1f} ms, "
          f"longest during {max(during, default=0) * 1000:.0f} ms "
          f"({len(during)} appends overlapped)")


def propagation(root: Path, events: int) -> None:
    (root / "three").mkdir()
    with Cluster(root / "three") as cluster:
        a = cluster.node("a")
        b = cluster.node("b", peers=[a.url])
        c = cluster.node("c", peers=[a.url, b.url])
        ids = {e["id"] for e in append(a, "s", [message(f"{MARKER} {n}")
                                                for n in range(events)])}
        wait_converged([a, b, c], must_hold=ids)
        nodes = [a, b, c]
        began = time.perf_counter()
        request(a, "DELETE", session_path("s"))
        gone: dict[str, float] = {}
        while len(gone) < 3 and time.perf_counter() - began < 120:
            for node in nodes:
                if node.name not in gone and not files_holding(node.data_dir, MARKER):
                    gone[node.name] = time.perf_counter() - began
            time.sleep(0.01)
    print("propagation, forget on a until the marker is gone from the raw files: "
          + json.dumps({name: round(s, 3) for name, s in sorted(gone.items())}) + " s")


def main() -> None:
    parser = cli.parser("bench.forget", __doc__)
    parser.add_argument("--quick", action="store_true", help="1,000 events, not 10,000")
    args = parser.parse_args()
    events = 1_000 if args.quick else 10_000
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        embedded(root, events)
        stall(root, events)
        propagation(root, 100)


if __name__ == "__main__":
    cli.run(main)
