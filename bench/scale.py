"""Reads at scale: a node over a log of 1,000,000 events in 100,000 sessions, or
10,000,000 in 1,000,000, each with one more session of 10,000 events.

Builds each log once with the embedded store (kept in its folder for later runs; a
stopped build resumes), then starts a real node process on it and reports: the time
from process start to ``/healthz`` answering and to the big session's projection
served, the node's RSS then and after the reads, the projection read (first and warm,
over HTTP; and embedded), the data folder's size, the CPU the node spends after start
until it is idle, and the automerge id index (every session's document id, built at
the first request for an id it lacks). Given two logs, a last column says how each
figure grew.

    python -m bench.scale [--scale EVENTS:SESSIONS:FOLDER ...]
    python -m bench.scale --scale 1000000:100000:/tmp/scale1m/data \\
                          --scale 10000000:1000000:/tmp/scale10m/data
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from rich.progress import Progress

from bench import cli
from bench.http_append import process_cpu_s
from crdt.automerge.documents import Documents
from crdt.errors import CrdtError, NotFound, StoreError
from crdt.events import Draft, parse_event
from crdt.log.store import EventStore
from node.automerge.library import StoreLibrary
from tests.support.processes import NodeProcess, child_env, free_port

BIG = "scale:big"
BIG_EVENTS = 10_000
BATCH = 5_000
#: The log measured without --scale: about 0.7 GiB on disk (10M events: about 7 GiB),
#: kept for later runs.
DEFAULT_SCALE = "1000000:100000:/tmp/clawsync-scale/data"


def build(data: Path, sessions: int, events: int) -> None:
    """Fill the log: one 10,000-event session, then ``events - 10,000`` more in
    ``sessions`` small sessions, each session's events one after another (a batch
    touches a few sessions, so the build goes at the store's pace for fresh sessions).
    Batches commit whole: a build that was stopped resumes at the head."""
    small = events - BIG_EVENTS
    kinds = ({"type": "message_received", "content": "question " + "x" * 80},
             {"type": "agent_response", "content": "answer " + "y" * 80, "model": "m"})

    @functools.lru_cache(maxsize=4 * BATCH)
    def drafted(session_key: str, kind: int) -> Draft:  # sealed anew, at another time
        return parse_event({"agent_id": "main", "kind": kinds[kind]}, session_key=session_key)

    def draft(n: int) -> Draft:  # the n-th event of the log, counted from 0
        if n < BIG_EVENTS:
            return drafted(BIG, n % 2)
        n -= BIG_EVENTS
        return drafted(f"scale:{n * sessions // small}", n % 2)

    with EventStore.open(data) as store, Progress() as progress:
        task = progress.add_task(f"building {events:,} events", total=events,
                                 completed=store.head)
        for start in range(store.head, events, BATCH):
            store.append_batch([draft(n) for n in range(start, min(start + BATCH, events))])
            progress.update(task, completed=store.head)


def embedded_projection_ms(data: Path) -> float:
    with EventStore.open(data) as store:
        samples = []
        for _ in range(5):
            started = time.perf_counter()
            store.get_projection(BIG).to_json()
            samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def id_index_figures(data: Path) -> tuple[float, float]:
    """The automerge id index (built at the first request for an id it lacks, on the
    writer thread): seconds to build it, embedded, and the RSS it added (MiB)."""
    with EventStore.open(data) as store:
        library = StoreLibrary(store, Documents(store))
        before, started = rss_mib(os.getpid()), time.perf_counter()
        library.resolve(bytes(16))  # an id no session has: every session is indexed
        return time.perf_counter() - started, rss_mib(os.getpid()) - before


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def folder_mib(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) / 2**20


def timed_read_ms(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=600) as response:
        response.read()
    return (time.perf_counter() - started) * 1000


def serve_figures(data: Path, settle: bool = True) -> dict[str, float]:
    """A real node started on the log: from process start to /healthz answering and to
    the big session's projection served, RSS then, the projection read first and warm,
    and the CPU the node spends until it settles (idle for ``SETTLED_S``)."""
    node = NodeProcess(data.parent, name="scale", port=free_port(),
                       extra_args=["--log-level", "warning"])
    node.data_dir = data
    started = time.perf_counter()
    node.process = subprocess.Popen(node.command(), env=child_env(),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid = node.process.pid
    try:
        node.wait_healthy(600)
        figures = {"ready_s": time.perf_counter() - started, "rss_ready_mib": rss_mib(pid)}
        url = f"{node.url}/v1/sessions/{urllib.parse.quote(BIG, safe='')}"
        figures["http_first_ms"] = timed_read_ms(url)
        figures["serving_s"] = time.perf_counter() - started
        figures["http_warm_ms"] = statistics.median(timed_read_ms(url) for _ in range(5))
        figures["rss_read_mib"] = rss_mib(pid)
        if not settle:
            return {**figures, "settled_s": math.nan, "cpu_settled_s": math.nan,
                    "rss_settled_mib": math.nan}
        last, quiet_since = process_cpu_s(pid), time.perf_counter()
        while time.perf_counter() - quiet_since < SETTLED_S:
            time.sleep(0.25)
            now = process_cpu_s(pid)
            if now - last > 0.05:  # still working
                quiet_since = time.perf_counter()
            last = now
        figures["settled_s"] = quiet_since - started
        figures["cpu_settled_s"] = last
        figures["rss_settled_mib"] = rss_mib(pid)
        return figures
    finally:
        node.stop()


#: The node counts as settled once it used no CPU to speak of for this long.
SETTLED_S = 2.0
ROWS = (  # figure, label, format
    ("events", "events", "{:,.0f}"),
    ("sessions", "sessions", "{:,.0f}"),
    ("folder_mib", "data folder (MiB)", "{:,.0f}"),
    ("ready_s", "start -> /healthz answers (s)", "{:.2f}"),
    ("serving_s", f"start -> {BIG_EVENTS:,}-event projection served (s)", "{:.2f}"),
    ("rss_ready_mib", "RSS at /healthz (MiB)", "{:.0f}"),
    ("rss_read_mib", "RSS after the projection reads (MiB)", "{:.0f}"),
    ("http_first_ms", "projection over HTTP, first (ms)", "{:.0f}"),
    ("http_warm_ms", "projection over HTTP, warm, median of 5 (ms)", "{:.0f}"),
    ("embedded_ms", "projection embedded, median of 5 (ms)", "{:.0f}"),
    ("index_s", "automerge id index of every session, embedded (s)", "{:.2f}"),
    ("index_mib", "RSS the id index adds (MiB)", "{:.0f}"),
    ("settled_s", "start -> node idle (s)", "{:.1f}"),
    ("cpu_settled_s", "node CPU until idle (s)", "{:.1f}"),
    ("rss_settled_mib", "RSS when idle (MiB)", "{:.0f}"),
)


def measure(data: Path, sessions: int, events: int, *, build_log: bool = True,
            quick: bool = False) -> dict[str, float]:
    """Build the log (unless ``build_log`` is False: measure it as it stands) and
    measure; ``quick`` leaves out the id index and the wait for the node to be idle."""
    data.parent.mkdir(parents=True, exist_ok=True)
    if build_log:
        build(data, sessions, events)
    with EventStore.open(data) as store:
        stats = store.stats()
    figures: dict[str, float] = {"events": stats["events"], "sessions": stats["sessions"],
                                 "folder_mib": folder_mib(data),
                                 "embedded_ms": embedded_projection_ms(data)}
    figures["index_s"], figures["index_mib"] = (math.nan, math.nan) if quick \
        else id_index_figures(data)
    figures.update(serve_figures(data, settle=not quick))
    return figures


def scale_arg(text: str) -> tuple[int, int, Path]:
    """An argparse type: EVENTS:SESSIONS:FOLDER, a log big enough for what is measured
    (the 10,000-event session, and at least one event in each small session)."""
    parts = text.split(":", 2)
    if len(parts) != 3 or not parts[2]:
        raise argparse.ArgumentTypeError(f"not EVENTS:SESSIONS:FOLDER: {text!r}")
    sessions = cli.positive_int(parts[1])
    events = cli.positive_int(parts[0])
    if events < BIG_EVENTS + sessions:
        raise argparse.ArgumentTypeError(
            f"{events:,} events is too few: the log holds a {BIG_EVENTS:,}-event session "
            f"and at least one event in each of {sessions:,} sessions, so EVENTS must be at "
            f"least {BIG_EVENTS + sessions:,}")
    return events, sessions, Path(parts[2])


def _why(error: CrdtError) -> str:
    """What is wrong with a folder the benchmark cannot use, and what to do."""
    if isinstance(error, NotFound):
        return (f"holds no {BIG!r} session: give a folder this benchmark built, or leave "
                "out --no-build")
    if isinstance(error, StoreError) and "bound to a device key" in str(error):
        # A node measured it, and its device key now owns the folder's origin.
        return (f"{error}\n(a node has opened this folder, so the build cannot go on in "
                "it: measure it as it stands with --no-build, or give a new folder)")
    return str(error)


def main() -> None:
    parser = cli.parser("bench.scale", __doc__)
    parser.add_argument("--scale", type=scale_arg, action="append",
                        metavar="EVENTS:SESSIONS:FOLDER",
                        help=f"a log to build (once, kept in FOLDER) and measure: EVENTS in "
                             f"all, {BIG_EVENTS:,} of them in one big session and the rest "
                             f"spread over SESSIONS small ones, so EVENTS is at least "
                             f"{BIG_EVENTS:,} + SESSIONS; give it twice to see how each "
                             f"figure grows; without it: {DEFAULT_SCALE}")
    parser.add_argument("--no-build", action="store_true",
                        help="measure each log as it stands (a build stopped part way)")
    parser.add_argument("--quick", action="store_true",
                        help="leave out the id index and the wait for the node to be idle")
    args = parser.parse_args()
    runs = args.scale or [scale_arg(DEFAULT_SCALE)]
    if args.no_build:
        for _, _, folder in runs:
            if not folder.is_dir():  # else opening it would make an empty log there
                parser.error(f"--no-build measures a log as it stands, and {folder} "
                             "is no folder")
    results = []
    for events, sessions, folder in runs:
        try:
            results.append(measure(folder, sessions, events, build_log=not args.no_build,
                                   quick=args.quick))
        except CrdtError as error:
            sys.exit(f"python -m bench.scale: {folder}: {_why(error)}")
    width = max(len(label) for _, label, _ in ROWS)
    for name, label, form in ROWS:
        cells = [("skipped" if math.isnan(figures[name])  # --quick leaves it out
                  else form.format(figures[name])).rjust(10) for figures in results]
        if len(results) > 1 and results[0][name] and not math.isnan(results[0][name]):
            cells.append(f"x{results[-1][name] / results[0][name]:.2f}".rjust(8))
        print(f"{label.ljust(width)} {' '.join(cells)}")
    sys.stdout.flush()


if __name__ == "__main__":
    cli.run(main)
