"""``clawsync tail`` whose first stream a node refuses with a wait (503 ``unavailable`` as
it stops, 503 ``streams_full``, 429 ``too_many_streams``): it waits as asked. Each refusal
comes after the node's token check, so the node was reached: a failure after it (a proxy
whose node restarts) is waited out too, said as a wait for a node never followed yet, and
the tail follows once a stream opens."""

from __future__ import annotations

import itertools
import json

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


#: A proxy's answer while its node is away: no code, no wait asked for.
AWAY = b"bad gateway"
#: The stream requests the stand-in answers as away, after its refusal.
AWAY_TIMES = 2


@pytest.mark.parametrize("refused_as", list(REFUSALS))
def test_tail_refused_then_out_of_reach_waits_for_the_node(refused_as: str) -> None:
    """Refused once and waited as asked; the node then out of reach twice (a proxy's
    502), asked again each time rather than ended; then a stream opens and is followed."""
    status, body, said_of_it = REFUSALS[refused_as]
    asked = itertools.count()

    class Refusing(Quiet):
        """A node whose first live stream is refused with a wait, healthy still; behind
        a proxy that then finds it away, then back."""

        def do_GET(self) -> None:
            if not self.path.startswith("/v1/events"):
                self.answer(200, {"status": "ok", "node_id": "n", "head": 0})
                return
            turn = next(asked)
            if turn == 0:
                self.send_response(status)
                self.send_header("Retry-After", RETRY_AFTER)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif turn <= AWAY_TIMES:
                self.send_response(502)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(AWAY)))
                self.end_headers()
                self.wfile.write(AWAY)
            else:  # a stream that opens, then ends: the tail has followed it
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()

    with serving(Refusing) as url:
        tail = spawn_cli(url, "tail")
        try:
            assert tail.stderr is not None
            said = LineReader(tail.stderr)
            said.wait_for(f"following {url} after position 0", timeout_s=CLI_TIMEOUT_S)
            assert any(line.endswith(said_of_it.format(url=url)) for line in said.seen), \
                said.seen
            # A wait for a node never followed yet, not a reconnection: the proxy's 502
            # after a refusal as full, or stopping's own refusal (the 502 after it is no
            # news: the stream is lost still).
            assert any(line.endswith(f"; waiting for {url} to follow after position 0")
                       for line in said.seen), said.seen
        finally:
            stop_cli(tail)
