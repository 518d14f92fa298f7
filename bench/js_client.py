"""A real automerge-repo client (npm, tests/js/bench.mjs) against a real node process.

Prints three figures, each beside a baseline measured in the same run:

* loading a 10,000-message session: ms from ``repo.find()`` to the complete document
  (first find: the node builds the document from the log; later finds: it is in
  memory), against ``GET /v1/sessions/{key}/automerge`` plus ``Automerge.load``; then
  where the time goes (the node's share, the client's receive, automerge-repo's diff)
  and the client's floor: what automerge 3.5 and automerge-repo 2.5.6 do with any
  message carrying the whole document (``loadIncremental`` into an empty document, with
  its patches, then ``diff`` from nothing), whatever the node sends;
* an append on the node to the client seeing it: p50 and p99 ms, against the append's
  own HTTP round trip (in a small session and in the 10,000-message one);
* node memory (RSS) with 200 connected idle clients each holding one session, against
  the same node before they connect.

    python -m bench.js_client [--messages 10000] [--appends 200] [--clients 200]

Needs Node.js and the packages of tests/js (``npm ci --prefix tests/js``).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bench import cli
from crdt.automerge.document import automerge_url
from tests.support.processes import NodeProcess

JS_DIR = Path(__file__).resolve().parents[1] / "tests" / "js"
INSTALL = "npm ci --prefix tests/js"
BATCH = 1000


def post(node: NodeProcess, key: str, events: list[dict[str, Any]]) -> None:
    request = urllib.request.Request(
        f"{node.url}/v1/sessions/{quote(key, safe='')}/events", method="POST",
        data=json.dumps(events).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        response.read()


def fill(node: NodeProcess, key: str, messages: int) -> None:
    for start in range(0, messages, BATCH):
        post(node, key, [{"agent_id": "bench", "kind": {
            "type": "message_received" if n % 2 else "agent_response",
            "content": f"message {n}: a line of chat about the weather and the news",
            **({} if n % 2 else {"model": "m"})}}
            for n in range(start, min(messages, start + BATCH))])


def bench_js(*args: str) -> dict[str, Any]:
    done = subprocess.run(["node", "bench.mjs", *args], cwd=JS_DIR, capture_output=True,
                          text=True, timeout=1800, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench.mjs {args[0]} failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def rss_mib(node: NodeProcess) -> float:
    assert node.process is not None
    for line in Path(f"/proc/{node.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def cuts(values: list[float]) -> str:
    q = statistics.quantiles(values, n=100, method="inclusive")
    return f"p50 {q[49]:.1f} ms, p99 {q[98]:.1f} ms"


def load(node: NodeProcess, messages: int) -> None:
    fill(node, "big", messages)
    result = bench_js("load", node.url, "big", automerge_url("big"), str(messages), "5")
    first, *warm = result["find_ms"]
    node_first, *node_warm = result["node_ms"]
    find, baseline = statistics.median(warm), statistics.median(result["baseline_ms"])
    receive = statistics.median(result["receive_ms"][1:])
    frame = statistics.median(result["frame_ms"][1:])
    floor = (statistics.median(result["incremental_ms"])
             + statistics.median(result["diff_ms"]))
    print(f"load {messages:,} messages: find() to complete document: first {first:,.0f} ms "
          f"(built from the log), then median {find:,.0f} ms; baseline GET /automerge + "
          f"Automerge.load median {baseline:,.0f} ms: ratio {find / baseline:.2f}")
    print(f"  where it goes (medians of the later finds): the node, from the client's "
          f"request to its {result['frame_bytes'] / 1e6:.1f} MB sync message, "
          f"{statistics.median(node_warm):,.0f} ms (first find, building the document from "
          f"the log: {node_first:,.0f} ms); connecting before that "
          f"{frame - statistics.median(node_warm):,.0f} ms; "
          f"Automerge.receiveSyncMessage {receive:,.0f} ms; automerge-repo after it (its "
          f"DocHandle's diff of the new document) {find - frame - receive:,.0f} ms")
    print(f"  the client's floor with any message carrying the document: "
          f"Automerge.loadIncremental into an empty document (load plus patches) "
          f"{statistics.median(result['incremental_ms']):,.0f} ms + Automerge.diff from "
          f"nothing {statistics.median(result['diff_ms']):,.0f} ms = {floor:,.0f} ms: "
          f"ratio {floor / baseline:.2f} to the baseline")


def latency(node: NodeProcess, key: str, appends: int, label: str) -> None:
    result = bench_js("latency", node.url, key, automerge_url(key), str(appends))
    print(f"append -> client sees it ({label}): {cuts(result['seen_ms'])}; baseline "
          f"append round trip {cuts(result['post_ms'])}")


def idle(node: NodeProcess, clients: int, tmp: Path) -> None:
    keys = [f"idle:{n}" for n in range(clients)]
    for start in range(0, clients, BATCH):
        for key in keys[start:start + BATCH]:
            post(node, key, [{"agent_id": "bench", "kind": {"type": "message_received",
                                                          "content": "hello"}}])
    urls = tmp / "urls.txt"
    urls.write_text("\n".join(automerge_url(key) for key in keys))
    time.sleep(1.0)  # let the appends' garbage settle before the baseline
    before = rss_mib(node)
    js = subprocess.Popen(["node", "bench.mjs", "idle", node.url, str(urls)], cwd=JS_DIR,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert js.stdout is not None
        line = js.stdout.readline()
        if not line:
            raise RuntimeError(f"bench.mjs idle failed; node log:\n{node.log_tail()}")
        ready = json.loads(line)
        time.sleep(2.0)  # idle: nothing but keepalives
        during = rss_mib(node)
    finally:
        assert js.stdin is not None
        js.stdin.close()
        js.wait(60)
    print(f"{ready['ready']} idle clients, one session each: node RSS {during:.1f} MiB; "
          f"baseline before they connected {before:.1f} MiB (+{during - before:.1f} MiB, "
          f"{(during - before) * 1024 / clients:.0f} KiB per client)")


def run(tmp: Path, messages: int, appends: int, clients: int) -> None:
    """The three figures, with the nodes' data in ``tmp``."""
    with NodeProcess(tmp, name="bench", extra_args=["--log-level", "warning"]) as node:
        load(node, messages)
        post(node, "small", [{"agent_id": "bench", "kind": {"type": "message_received",
                                                            "content": "start"}}])
        latency(node, "small", appends, "small session")
        latency(node, "big", appends, f"{messages:,}-message session")
    with NodeProcess(tmp, name="idle", extra_args=["--log-level", "warning"]) as node:
        idle(node, clients, tmp)


def main() -> None:
    parser = cli.parser("bench.js_client", __doc__)
    parser.add_argument("--messages", type=cli.positive_int, default=10_000,
                        help="messages in the session the client loads")
    parser.add_argument("--appends", type=cli.at_least(2), default=200,
                        help="appends the client waits to see, in each session")
    parser.add_argument("--clients", type=cli.clients(), default=200,
                        help="idle clients connected for the memory figure")
    args = parser.parse_args()
    cli.require_npm_packages(JS_DIR, INSTALL)
    with tempfile.TemporaryDirectory(prefix="bench-js-") as tmp:
        run(Path(tmp), args.messages, args.appends, args.clients)


if __name__ == "__main__":
    cli.run(main)
