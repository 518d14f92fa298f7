"""``clawsync tail`` at a node whose live streams are all taken (503 ``streams_full``):
it says so once, in its own words with the limit's name, however often it is refused,
and follows once a stream closes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from node.server.streams import RETRY_AFTER_S
from tests.support.metrics import scrape, value
from tests.support.processes import LineReader, NodeProcess, spawn_cli, stop_cli

FULL_LINE = ("the node's live streams are all taken ([limits] streams_max): asking again by "
             "itself until one is free, to follow after position 0")


def streams_refused(node: NodeProcess) -> float:
    """The node's live streams refused as full so far (its ``/metrics``)."""
    families = asyncio.run(scrape(node.url))
    return value(families, "clawsync_http_requests", "_total", route="/v1/events",
                 method="GET", status="503") or 0.0


def test_tail_at_a_full_node_says_so_once_then_follows_once_a_stream_closes(
        tmp_path: Path) -> None:
    config = tmp_path / "clawsync.toml"
    config.write_text("[limits]\nstreams_max = 1\nstreams_per_address_max = 1\n")
    with NodeProcess(tmp_path, extra_args=["--config", str(config)]) as node:
        first = spawn_cli(node, "tail")
        second = None
        try:
            assert first.stderr is not None
            LineReader(first.stderr).wait_for("following")
            second = spawn_cli(node, "tail")
            assert second.stderr is not None
            said = LineReader(second.stderr)
            assert said.wait_for("streams_max") == FULL_LINE
            # Refused again after the node's Retry-After: not said again.
            deadline = time.monotonic() + RETRY_AFTER_S * 3
            while streams_refused(node) < 2:
                assert time.monotonic() < deadline, "the tail did not ask again"
                time.sleep(0.2)
            assert second.poll() is None  # waiting, not ended
            stop_cli(first)
            # Asked again after the node's Retry-After, it takes the place freed.
            assert said.wait_for("following", timeout_s=RETRY_AFTER_S * 3).startswith(
                f"following {node.url} after position 0")
            assert [seen for seen in said.seen if "streams_max" in seen] == [FULL_LINE]
        finally:
            for tail in (first, second):
                if tail is not None and tail.poll() is None:
                    stop_cli(tail)
