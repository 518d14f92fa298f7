"""``clawsync tail`` at a node whose live streams are all taken (503 ``streams_full``):
it says so once, with the limit's name and the wait, and follows once a stream closes."""

from __future__ import annotations

from pathlib import Path

from node.server.streams import RETRY_AFTER_S
from tests.support.processes import LineReader, NodeProcess, spawn_cli, stop_cli


def test_tail_at_a_full_node_says_so_then_follows_once_a_stream_closes(
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
            line = said.wait_for("streams_max")
            assert line == (
                f"the node could not handle the live stream now (HTTP 503, try again in "
                f"{RETRY_AFTER_S} s): this node serves 1 live streams, its limit ([limits] "
                "streams_max); try again later; waiting to follow after position 0")
            assert second.poll() is None  # waiting, not ended
            stop_cli(first)
            # Asked again after the node's Retry-After, it takes the place freed.
            assert said.wait_for("following", timeout_s=RETRY_AFTER_S * 3).startswith(
                f"following {node.url} after position 0")
            assert [seen for seen in said.seen if "streams_max" in seen] == [line]  # once
        finally:
            for tail in (first, second):
                if tail is not None and tail.poll() is None:
                    stop_cli(tail)
