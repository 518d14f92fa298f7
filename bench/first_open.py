"""First open of a long session whose Automerge document is not yet built.

A real node process; two sessions of ``--messages`` messages each, appended over HTTP
(appends never build a document), then each opened once, cold:

* ``GET /v1/sessions/{key}/automerge``: ms from the request to the last byte of the saved
  document (the node builds it from the log first), beside a second GET of the same
  session (the document already built) as the baseline;
* an automerge-repo client (tests/js/bench.mjs) ``find()`` of the other session: ms from
  the request to the node's sync message carrying the document, and to the complete
  document in the client.

Beside each, the CPU time the node process spent meanwhile, which a busy machine
stretches less than the wall-clock time.

    python -m bench.first_open [--messages 10000]

Needs Node.js and the packages of tests/js (``npm ci --prefix tests/js``) for the last.
"""

from __future__ import annotations

import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

from bench import cli
from bench.http_append import process_cpu_s
from bench.js_client import INSTALL, JS_DIR, bench_js, fill
from crdt.automerge.document import automerge_url
from tests.support.processes import NodeProcess


def cpu_ms(node: NodeProcess) -> float:
    """CPU time (user and system) the node process has used so far, in ms."""
    assert node.process is not None
    return process_cpu_s(node.process.pid) * 1000


def get_ms(node: NodeProcess, key: str) -> tuple[float, int]:
    """ms to GET the session's saved document, and its size in bytes."""
    begin = time.perf_counter()
    with urllib.request.urlopen(f"{node.url}/v1/sessions/{quote(key, safe='')}/automerge",
                                timeout=600) as response:
        size = len(response.read())
    return (time.perf_counter() - begin) * 1000, size


def first_open(tmp: Path, messages: int) -> None:
    """Both first opens, with the node's data in ``tmp``."""
    with NodeProcess(tmp, name="bench", extra_args=["--log-level", "warning"]) as node:
        fill(node, "get", messages)
        fill(node, "find", messages)
        time.sleep(1.0)  # let the appends' garbage settle
        cpu = cpu_ms(node)
        first, size = get_ms(node, "get")
        cpu, first_cpu = cpu_ms(node), cpu_ms(node) - cpu
        again, _ = get_ms(node, "get")
        print(f"first open, {messages:,} messages, document not yet built: GET /automerge "
              f"{first:,.0f} ms (node CPU {first_cpu:,.0f} ms, {size / 1e6:.1f} MB); baseline "
              f"the same GET once built {again:,.0f} ms (node CPU {cpu_ms(node) - cpu:,.0f} ms)")
        cpu = cpu_ms(node)
        result = bench_js("load", node.url, "find", automerge_url("find"), str(messages),
                          "1")
        print(f"first open by an automerge-repo client find(): the node's sync message "
              f"carrying the document {result['node_ms'][0]:,.0f} ms after the request "
              f"(built from the log; node CPU for the whole find {cpu_ms(node) - cpu:,.0f} ms); "
              f"complete document in the client {result['find_ms'][0]:,.0f} ms")


def main() -> None:
    parser = cli.parser("bench.first_open", __doc__)
    parser.add_argument("--messages", type=cli.positive_int, default=10_000,
                        help="messages in each of the two sessions")
    args = parser.parse_args()
    cli.require_npm_packages(JS_DIR, INSTALL)
    with tempfile.TemporaryDirectory(prefix="bench-first-open-") as tmp:
        first_open(Path(tmp), args.messages)


if __name__ == "__main__":
    cli.run(main)
