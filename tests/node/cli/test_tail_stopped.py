"""``clawsync tail`` whose first stream a node refuses as it stops (503 ``unavailable``
with a ``Retry-After``): it waits as asked, and a node that then does not come back
ends it as a node never reached does (exit 1, "cannot reach"), not a wait forever."""

from __future__ import annotations

import threading

from tests.support.processes import CLI_TIMEOUT_S, LineReader, spawn_cli, stop_cli
from tests.support.stand_in import Quiet, serving

#: The wait the stand-in asks for: the shortest a ``Retry-After`` says.
RETRY_AFTER = "1"
#: A node's refusal as it stops (``node.http.errors.stopping``).
STOPPING = (b'{"error": {"code": "unavailable", "message": "the node is stopping", '
            b'"field": null}}')


def test_tail_refused_by_a_stopping_node_that_never_returns_ends() -> None:
    """Refused once, waited as asked: the node gone by then, the tail ends."""
    refused = threading.Event()

    class Stopping(Quiet):
        """A node as it stops: healthy still, its live streams refused 503 with a
        wait."""

        def do_GET(self) -> None:
            if not self.path.startswith("/v1/events"):
                self.answer(200, {"status": "ok", "node_id": "n", "head": 0})
                return
            self.send_response(503)
            self.send_header("Retry-After", RETRY_AFTER)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(STOPPING)))
            self.end_headers()
            self.wfile.write(STOPPING)
            refused.set()

    with serving(Stopping) as url:
        tail = spawn_cli(url, "tail")
        assert refused.wait(CLI_TIMEOUT_S), "the tail asked for no stream"
    # The node is gone: its port refuses the connection the tail asks for next.
    try:
        assert tail.stderr is not None
        said = LineReader(tail.stderr)
        assert said.wait_for("cannot reach", timeout_s=CLI_TIMEOUT_S).startswith(
            f"Error: cannot reach the node at {url}"), said.seen
        assert tail.wait(CLI_TIMEOUT_S) == 1
        assert any("the node is stopping" in line for line in said.seen), said.seen
    finally:
        if tail.poll() is None:
            stop_cli(tail)

