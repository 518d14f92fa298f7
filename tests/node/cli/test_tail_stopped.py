"""``clawsync tail`` whose first stream a node refuses with a wait (503 ``unavailable`` as
it stops, 503 ``streams_full``, 429 ``too_many_streams``): it waits as asked, and a node
that then does not come back ends it as a node never reached does (exit 1, "cannot
reach"), not a wait forever."""

from __future__ import annotations

import json
import threading

import pytest

from tests.support.processes import CLI_TIMEOUT_S, LineReader, spawn_cli, stop_cli
from tests.support.stand_in import Quiet, serving

#: The wait the stand-in asks for: the shortest a ``Retry-After`` says.
RETRY_AFTER = "1"


def refusal(code: str, message: str) -> bytes:
    """A node's error body (``node.http.wire.error_body``)."""
    return json.dumps({"error": {"code": code, "message": message, "field": None}}).encode()


#: What the tail says it does while a node's streams are all taken.
ASKING = ": asking again by itself until one is free, to follow after position 0"
#: A node's refusal as it stops (``node.http.errors.stopping``), and of a stream while
#: its streams, or this address's, are all taken (``node.server.streams``); each with
#: the end of the line the tail says of it (the node's URL for ``{url}``).
REFUSALS = {
    "stopping": (503, refusal("unavailable", "the node is stopping"),
                 "the node is stopping; waiting for {url} to follow after position 0"),
    "streams_full": (503, refusal("streams_full", "this node serves 1 live streams"),
                     f"([limits] streams_max){ASKING}"),
    "too_many_streams": (429, refusal("too_many_streams", "this address has 1 live "
                                      "streams open, the limit"),
                         f"([limits] streams_per_address_max){ASKING}"),
}


@pytest.mark.parametrize("refused_as", list(REFUSALS))
def test_tail_refused_by_a_node_that_never_returns_ends(refused_as: str) -> None:
    """Refused once, waited as asked (said as waiting for a node never followed yet, not
    as reconnecting): the node gone by then, the tail ends."""
    status, body, said_of_it = REFUSALS[refused_as]
    refused = threading.Event()

    class Refusing(Quiet):
        """A node whose live streams are refused with a wait: healthy still."""

        def do_GET(self) -> None:
            if not self.path.startswith("/v1/events"):
                self.answer(200, {"status": "ok", "node_id": "n", "head": 0})
                return
            self.send_response(status)
            self.send_header("Retry-After", RETRY_AFTER)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            refused.set()

    with serving(Refusing) as url:
        tail = spawn_cli(url, "tail")
        assert refused.wait(CLI_TIMEOUT_S), "the tail asked for no stream"
    # The node is gone: its port refuses the connection the tail asks for next.
    try:
        assert tail.stderr is not None
        said = LineReader(tail.stderr)
        assert said.wait_for("cannot reach", timeout_s=CLI_TIMEOUT_S).startswith(
            f"Error: cannot reach the node at {url}"), said.seen
        assert tail.wait(CLI_TIMEOUT_S) == 1
        # Said as a wait for a node never followed yet, not as a reconnection.
        assert any(line.endswith(said_of_it.format(url=url)) for line in said.seen), said.seen
    finally:
        if tail.poll() is None:
            stop_cli(tail)
