"""The OpenClaw bridge: import rate and follow lag.

1. Import rate: a 10,000-record OpenClaw transcript (turns shaped as OpenClaw writes
   them: user message, assistant tool call, tool result, assistant text; rows over 512
   bytes zstd-compressed as OpenClaw does for larger events) in a WAL SQLite store, read by
   ``clawsync openclaw import`` into a real node over HTTP (the command's whole run, a
   process start included), and into an embedded data folder (``--data-dir``).
2. Follow lag: ``clawsync openclaw watch`` follows the store into node A, which
   replicates to node B; rows are committed one at a time, and the lag from each commit
   to its event on A and on B (both followed over their live event streams) is measured.

    python -m bench.openclaw_import [--records 10000] [--rows 200] [--interval 0.05]
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import cli
from bench.cli import Cluster
from node.client.api import Client
from tests.support.openclaw import FakeGateway
from tests.support.processes import NodeProcess, child_env, cli_args, spawn_cli

SID, KEY = "bench-session", "agent:main:explicit:bench"


def turn(n: int, second: int, parent: str) -> list[dict[str, Any]]:
    """Four records of one turn, ids unique by ``n``."""
    at = f"2026-12-01T{second // 3600 % 24:02d}:{second // 60 % 60:02d}:{second % 60:02d}.000Z"
    ids = [f"{n:06x}{k:02x}" for k in range(4)]
    usage = {"input": 1200, "output": 40, "cacheRead": 0, "cacheWrite": 0, "totalTokens": 1240,
             "cost": {"input": 0.001, "output": 0.0004, "cacheRead": 0, "cacheWrite": 0,
                      "total": 0.0014}}
    base = {"api": "openai-completions", "provider": "fake", "model": "fake-model",
            "usage": usage}
    return [
        {"type": "message", "id": ids[0], "parentId": parent, "timestamp": at,
         "message": {"role": "user", "content": f"turn {n}: list the files " + "x" * 200}},
        {"type": "message", "id": ids[1], "parentId": ids[0], "timestamp": at,
         "message": {**base, "role": "assistant", "stopReason": "toolUse", "content": [
             {"type": "toolCall", "id": f"call_{n}", "name": "exec",
              "arguments": {"command": "ls -la"}}]}},
        {"type": "message", "id": ids[2], "parentId": ids[1], "timestamp": at,
         "message": {"role": "toolResult", "toolCallId": f"call_{n}", "toolName": "exec",
                     "isError": False, "content": [{"type": "text",
                                                    "text": "file.txt\n" * 80}]}},
        {"type": "message", "id": ids[3], "parentId": ids[2], "timestamp": at,
         "message": {**base, "role": "assistant", "stopReason": "stop",
                     "content": [{"type": "text", "text": f"Here are the files of turn {n}."}]}},
    ]


def transcript(records: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"type": "session", "version": 3, "id": SID,
                                  "timestamp": "2026-12-01T00:00:00.000Z", "cwd": "/w"}]
    n = 0
    while len(out) < records:
        out += turn(n, n, out[-1]["id"])
        n += 1
    return out[:records]


def import_rate(tmp: Path, count: int) -> None:
    records = transcript(count)
    state = tmp / "openclaw"
    gateway = FakeGateway(state)
    gateway.open_session(KEY, SID)
    for record in records:  # zstd for the larger rows, as OpenClaw does
        packed = len(json.dumps(record)) > 512 and record["type"] != "session"
        gateway.add(SID, [record], zstd=packed)
    zstd_rows = gateway.db.execute("SELECT COUNT(*) FROM transcript_events "
                                   "WHERE event_zstd IS NOT NULL").fetchone()[0]
    print(f"transcript: {count} records ({zstd_rows} zstd rows)")
    with NodeProcess(tmp, name="import-node") as node:
        started = time.perf_counter()
        result = subprocess.run(cli_args(node, "openclaw", "import", "--state-dir", str(state)),
                                capture_output=True, text=True, env=child_env(), check=True)
        elapsed = time.perf_counter() - started
        print(f"import over HTTP:  {count / elapsed:,.0f} records/s ({elapsed:.2f} s; "
              f"{result.stderr.strip().splitlines()[-1]})")
        started = time.perf_counter()
        again = subprocess.run(cli_args(node, "openclaw", "import", "--state-dir", str(state)),
                               capture_output=True, text=True, env=child_env(), check=True)
        print(f"import again:      {time.perf_counter() - started:.2f} s "
              f"({again.stderr.strip().splitlines()[-1]})")
    started = time.perf_counter()
    result = subprocess.run(cli_args("http://127.0.0.1:1", "openclaw", "import", "--state-dir",
                                     str(state), "--data-dir", str(tmp / "embedded")),
                            capture_output=True, text=True, env=child_env(), check=True)
    elapsed = time.perf_counter() - started
    print(f"import embedded:   {count / elapsed:,.0f} records/s ({elapsed:.2f} s)")


async def follow(url: str, seen: dict[str, float], ready: asyncio.Event) -> None:
    async with Client(url) as client:
        async for item in client.stream(0, lambda what, _p, _r: ready.set()
                                        if what == "open" else None):
            record = item.event.get("kind", {}).get("openclaw", {}).get("record", {})
            if isinstance(record, dict) and "id" in record:
                seen.setdefault(record["id"], time.monotonic())


def percentiles(lags: list[float]) -> str:
    cuts = statistics.quantiles(lags, n=100, method="inclusive")
    return (f"p50 {cuts[49] * 1000:.0f} ms, p99 {cuts[98] * 1000:.0f} ms, "
            f"max {max(lags) * 1000:.0f} ms")


async def lag(tmp: Path, rows: int, interval_s: float) -> None:
    state = tmp / "live"
    gateway = FakeGateway(state)
    gateway.open_session(KEY, SID)
    records = transcript(rows + 1)
    gateway.add(SID, records[:1])
    (tmp / "cluster").mkdir()
    with Cluster(tmp / "cluster") as cluster:
        a = cluster.node("a")
        b = cluster.node("b", peers=[a.url])
        watch = spawn_cli(a, "openclaw", "watch", "--state-dir", str(state))
        seen_a: dict[str, float] = {}
        seen_b: dict[str, float] = {}
        ready_a, ready_b = asyncio.Event(), asyncio.Event()
        tasks = [asyncio.create_task(follow(a.url, seen_a, ready_a)),
                 asyncio.create_task(follow(b.url, seen_b, ready_b))]
        try:
            await ready_a.wait()
            await ready_b.wait()
            while records[0]["id"] not in seen_b:  # the header went through: all is up
                await asyncio.sleep(0.05)
            committed: dict[str, float] = {}
            for record in records[1:]:
                gateway.add(SID, [record])  # about a millisecond: the loop may wait
                committed[record["id"]] = time.monotonic()
                await asyncio.sleep(interval_s)
            deadline = time.monotonic() + 60
            while not set(committed) <= set(seen_b) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            for task in tasks:
                task.cancel()
            watch.terminate()
            watch.wait(timeout=30)
    lag_a = [seen_a[i] - t for i, t in committed.items() if i in seen_a]
    lag_b = [seen_b[i] - t for i, t in committed.items() if i in seen_b]
    print(f"follow lag, {rows} rows committed one by one every {interval_s * 1000:.0f} ms "
          f"(watch polls every 200 ms):")
    print(f"  commit -> node A: {percentiles(lag_a)} ({len(lag_a)}/{rows} seen)")
    print(f"  commit -> peer B: {percentiles(lag_b)} ({len(lag_b)}/{rows} seen)")


def main() -> None:
    parser = cli.parser("bench.openclaw_import", __doc__)
    parser.add_argument("--records", type=cli.positive_int, default=10_000,
                        help="records of the imported transcript, its header included")
    parser.add_argument("--rows", type=cli.at_least(2), default=200,
                        help="rows committed one at a time while watch follows")
    parser.add_argument("--interval", type=cli.positive_float, default=0.05,
                        help="seconds between two of those commits")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        import_rate(Path(folder), args.records)
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(lag(Path(folder), args.rows, args.interval))


if __name__ == "__main__":
    cli.run(main)
