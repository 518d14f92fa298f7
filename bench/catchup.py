"""Catch-up to an empty node, against automerge-repo's sync server, in one run.

- clawsync: node A holds 1,000 sessions x 20 events, signed as A writes them; an empty
  node B (real processes, linked through a TCP proxy) pulls them all, verifying every
  signature: seconds until B's head reaches them, B's /healthz latency meanwhile, and
  the CPU time each node used (bench.replication);
- automerge-repo 2.5.6 (bench/js_sync_server/sync.mjs): its sync server (websocket
  server adapter, file-system storage) holds 1,000 documents x 20 changes; a fresh client
  with file-system storage finds them all: seconds until it holds every change, flushed.

Prints both times and how many times faster clawsync was.

    python -m bench.catchup [--sessions 1000] [--events 20]

Needs Node.js and the packages of bench/js_sync_server, as its lock file pins them
(``npm install --no-save --prefix bench/js_sync_server``: npm 11's ``npm ci`` refuses this
lock file, which leaves out the other platforms' optional builds of ``cbor-extract``).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from bench import cli
from bench.replication import commit_line, cpu_figures, measure_catch_up, probes
from tests.support.processes import free_port

JS_DIR = Path(__file__).resolve().parent / "js_sync_server"
JS_TIMEOUT_S = 1800
INSTALL = "npm install --no-save --prefix bench/js_sync_server"


def js(*args: str) -> str:
    done = subprocess.run(["node", "sync.mjs", *args], cwd=JS_DIR, capture_output=True,
                          text=True, timeout=JS_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"sync.mjs {args[0]} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def js_catch_up(root: Path, docs: int, changes: int) -> float:
    """Seconds for a fresh automerge-repo client to replicate every document."""
    server_dir, urls = root / "js-server", root / "js-urls.json"
    js("fill", str(server_dir), str(docs), str(changes), str(urls))
    port = free_port()
    with subprocess.Popen(["node", "sync.mjs", "serve", str(server_dir), str(port)],
                          cwd=JS_DIR, stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            server.stdout.readline()  # {"listening": port}
            out = js("replicate", f"ws://127.0.0.1:{port}", str(urls), str(changes),
                     str(root / "js-client"))
        finally:
            server.terminate()
    result = json.loads(out.strip().splitlines()[-1])
    assert result["docs"] == docs
    return float(result["ms"]) / 1000


def compare(root: Path, sessions: int, events: int) -> None:
    """Both catch-ups, their data in ``root``, and how they compare."""
    ours = measure_catch_up(root, sessions, events)
    print(f"catch-up of {sessions:,} sessions x {events} events to an empty "
          f"node: clawsync {ours.elapsed_s:.2f} s "
          f"({ours.events / ours.elapsed_s:,.0f} events/s)", flush=True)
    print(f"  B /healthz while catching up: {probes(ours.latencies_s)} (target p99 < 50 ms)",
          flush=True)
    print(f"  {cpu_figures(ours)}", flush=True)
    print(f"  {commit_line(ours)}", flush=True)
    theirs_s = js_catch_up(root, sessions, events)
    print(f"  automerge-repo 2.5.6 sync server, {sessions:,} documents x "
          f"{events} changes to a fresh client: {theirs_s:.2f} s")
    print(f"  clawsync is {theirs_s / ours.elapsed_s:.1f}x faster (target: 10x)")


def main() -> None:
    parser = cli.parser("bench.catchup", __doc__)
    parser.add_argument("--sessions", type=cli.positive_int, default=1000,
                        help="sessions on node A, documents on the sync server")
    parser.add_argument("--events", type=cli.positive_int, default=20,
                        help="events per session, changes per document")
    args = parser.parse_args()
    cli.require_npm_packages(JS_DIR, INSTALL)
    with tempfile.TemporaryDirectory(prefix="bench-catchup-") as tmp:
        compare(Path(tmp), args.sessions, args.events)


if __name__ == "__main__":
    cli.run(main)
