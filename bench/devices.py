"""Removal figure: time from a device's removal on one node to its links being closed on
every node of a 4-node cluster (real node processes on loopback, device keys, no shared
secret).

Each run starts a fresh device D (a removal is final, so each run removes a new one),
adds it on the hub and waits until every node of A, B, C has a link up with it; then
removes D on B (``DELETE /v1/devices/{id}``) and polls, every 5 ms, every node's
``/v1/peers`` until no node (D included) has a link up between D and the others. The
time is measured from just before the request; it includes the request itself, the
removal's replication (B -> the others) and the closes.

    python -m bench.devices [--runs 5]
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import quote

from bench import cli
from tests.support.processes import NodeProcess

PULL_S = 0.5
POLL_S = 0.005
LINK_TIMEOUT_S = 120.0


def device_node(tmp: Path, stack: ExitStack, name: str, peers: list[str]) -> NodeProcess:
    node = NodeProcess(tmp, name=name)
    node.extra_args = ["--pull-interval", str(PULL_S), "--members-interval", "1",
                       "--advertise-url", node.url]
    for url in peers:
        node.extra_args += ["--peer", url]
    return stack.enter_context(node)


def call(node: NodeProcess, method: str, path: str, body: object = None) -> object:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(node.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read())


def device_id(node: NodeProcess) -> str:
    found: str = node.get("/v1/node")["device_id"]
    return found


def linked(node: NodeProcess) -> set[str]:
    return {row["device_id"] for row in node.get("/v1/peers")["peers"]
            if row["state"] == "up" and row["device_id"]}


def wait(check: object, what: str) -> None:
    deadline = time.monotonic() + LINK_TIMEOUT_S
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"not within {LINK_TIMEOUT_S} s: {what}")
        time.sleep(0.05)


def one_run(tmp: Path, stack: ExitStack, hub: NodeProcess, others: list[NodeProcess],
            run: int) -> float:
    """Seconds from the removal of a new device on B until no node links with it."""
    d = device_node(tmp, stack, f"d{run}", [hub.url])
    gone = device_id(d)
    call(hub, "POST", "/v1/devices", {"device_id": gone, "name": f"d{run}"})
    cluster = [hub, *others]
    wait(lambda: all(gone in linked(node) for node in cluster), "d linked with every node")
    started = time.perf_counter()
    call(others[0], "DELETE", f"/v1/devices/{quote(gone)}")
    pending = [*cluster, d]
    while pending:
        pending = [node for node in pending
                   if (linked(node) if node is d else gone in linked(node))]
        if time.perf_counter() - started > LINK_TIMEOUT_S:
            raise SystemExit(f"links to the removed device still up on "
                             f"{[n.name for n in pending]}")
        time.sleep(POLL_S)
    elapsed = time.perf_counter() - started
    d.stop()
    return elapsed


def main() -> None:
    parser = cli.parser("bench.devices", __doc__)
    parser.add_argument("--runs", type=cli.positive_int, default=5,
                        help="devices added and removed, one after another")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
        tmp = Path(folder)
        a = device_node(tmp, stack, "a", [])
        others = []
        for name in ("b", "c"):
            node = device_node(tmp, stack, name, [a.url])
            call(a, "POST", "/v1/devices", {"device_id": device_id(node), "name": name})
            others.append(node)
        ids = {device_id(node) for node in (a, *others)}
        wait(lambda: all(ids - {device_id(n)} <= linked(n) for n in (a, *others)),
             "a, b and c linked with each other")
        times = [one_run(tmp, stack, a, others, run) for run in range(args.runs)]
    print(f"removal -> links closed on all 4 nodes (the removed one included), "
          f"{len(times)} runs, pull interval {PULL_S} s:")
    print(f"  median {statistics.median(times) * 1000:.0f} ms, "
          f"max {max(times) * 1000:.0f} ms "
          f"(runs: {', '.join(f'{t * 1000:.0f}' for t in times)} ms)")


if __name__ == "__main__":
    cli.run(main)
