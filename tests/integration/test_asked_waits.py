"""A peer that answers a dial 429 with ``Retry-After`` (``node.asked_waits``): a
real node process dials a real aiohttp server on loopback, which records when each dial
came; the node waits at least what it was asked, up to its longest back-off, before the
next dial, and logs the wait once."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from node.peers.transport import PEER_PATH
from tests.support.cluster import wait_until
from tests.support.processes import NodeProcess, free_port
from tests.support.waits import PROCESS_DEADLINE_S

pytestmark = pytest.mark.integration

#: The node's longest back-off, and so the longest wait a peer may ask of it.
BACKOFF_MAX_S = 2.0
#: Back-off alone redials within a fraction of ``BACKOFF_MAX_S`` after the first
#: failures: a gap of ``BACKOFF_MAX_S`` is the asked wait's.
SYNC = f"[sync]\nbackoff_base_s = 0.05\nbackoff_max_s = {BACKOFF_MAX_S}\n"
#: What the server asks at each dial, in turn: a day (bounded by ``BACKOFF_MAX_S``),
#: then an HTTP-date a few seconds ahead (from its second: at least two seconds).
ASKED = ("86400", lambda: email.utils.formatdate(time.time() + 3, usegmt=True))
#: Clock granularity allowed where a gap is compared (the node's timer may fire a hair
#: before the asked time, by the event loop's clock resolution).
GRAIN_S = 0.01


@contextlib.contextmanager
def busy_peer(answers: tuple[str | Callable[[], str], ...]) -> Iterator[tuple[str, list[float]]]:
    """A server on a free loopback port, in a thread of its own, answering each dial 429
    with the next of ``answers`` as ``Retry-After`` (the last one again after them): its
    URL, and when (``time.monotonic``) each dial came."""
    came: list[float] = []

    async def answer(request: web.Request) -> web.Response:
        if request.path != PEER_PATH:
            return web.Response(status=404)
        came.append(time.monotonic())
        said = answers[min(len(came), len(answers)) - 1]
        return web.Response(status=429, text="slow down",
                            headers={"Retry-After": said if isinstance(said, str) else said()})

    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app)
    port = free_port()
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", came
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def asked_lines(node: NodeProcess) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in node.log_path.read_text().splitlines()
             if line.startswith("{")]
    return [line for line in lines
            if line.get("event") == "peer asked to wait before the next dial"]


def test_a_dial_answered_429_waits_what_the_peer_asked_up_to_the_longest_back_off(
        tmp_path: Path) -> None:
    config = tmp_path / "sync.toml"
    config.write_text(SYNC)
    with busy_peer(ASKED) as (url, came), \
            NodeProcess(tmp_path, extra_args=["--peer", url, "--config", str(config),
                                              "--log-format", "json"]) as node:
        wait_until(lambda: len(came) >= 3, PROCESS_DEADLINE_S, "three dials")
        lines = asked_lines(node)

        def state() -> str:
            return str(next(row["state"] for row in node.get("/v1/peers")["peers"]
                            if row["url"] == url))

        # Waiting (or dialing again), not forgotten: once the third dial's answer is
        # handled, for it is "down" until the writer has taken its failure.
        wait_until(lambda: state() in ("backoff", "connecting"), PROCESS_DEADLINE_S,
                   "the address waiting to be dialed again")
    gaps = [later - earlier for earlier, later in itertools.pairwise(came)]
    # A day asked, the longest back-off waited; then a date one to three seconds ahead,
    # again bounded by it: never the back-off's fraction of a second.
    assert all(gap >= BACKOFF_MAX_S - GRAIN_S for gap in gaps[:2]), gaps
    assert lines[0]["peer"] == url and lines[0]["asked_s"] == 86400.0
    assert lines[0]["wait_s"] == BACKOFF_MAX_S
    assert 1.0 <= lines[1]["asked_s"] <= 3.0 and lines[1]["wait_s"] == BACKOFF_MAX_S
    assert "slow down" in lines[0]["reason"] and "HTTP 429" in lines[0]["reason"]
