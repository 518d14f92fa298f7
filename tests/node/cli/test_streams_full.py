"""``clawsync tail`` at a node whose live streams are all taken (503 ``streams_full``),
or whose streams from its address are (429 ``too_many_streams``): it
says so once, in its own words with the limit's name, however often it is refused, and
follows once a stream closes."""

from __future__ import annotations

import asyncio
import http.client
import subprocess
from pathlib import Path

from node.cli.linkproxy import LinkProxy
from node.server.streams import RETRY_AFTER_S
from tests.support.metrics import scrape, value
from tests.support.processes import LineReader, NodeProcess, spawn_cli, stop_cli
from tests.support.waits import wait_until

FULL_LINE = ("the node's live streams are all taken ([limits] streams_max): asking again by "
             "itself until one is free, to follow after position 0")


def streams_refused(node: NodeProcess, status: int = 503) -> float:
    """The node's live streams refused with ``status`` so far (its ``/metrics``)."""
    families = asyncio.run(scrape(node.url))
    return value(families, "clawsync_http_requests", "_total", route="/v1/events",
                 method="GET", status=str(status)) or 0.0


def open_stream(node: NodeProcess) -> http.client.HTTPConnection:
    """A live stream of the node held open (and not read) from this address, asked for
    again while the node still counts one that closed."""
    def opened() -> http.client.HTTPConnection | None:
        connection = http.client.HTTPConnection("127.0.0.1", node.port, timeout=30)
        connection.request("GET", "/v1/events?after=0",
                           headers={"Accept": "text/event-stream"})
        if (status := connection.getresponse().status) == 200:
            return connection
        connection.close()
        assert status == 429, status
        return None

    return wait_until(opened, RETRY_AFTER_S, "a live stream from this address", poll_s=0.2)


def wait_asked_again(node: NodeProcess, tail: subprocess.Popen[str], said: LineReader,
                     refused: float) -> None:
    """Wait until the node refused the tail twice more for its address than ``refused``
    (it asked again), the tail waiting all along, not ended."""
    def asked_again() -> bool:
        assert tail.poll() is None, said.seen  # waiting, not ended
        return streams_refused(node, 429) >= refused + 2

    wait_until(asked_again, RETRY_AFTER_S * 3, "the tail asking again", poll_s=0.2)


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
            wait_until(lambda: streams_refused(node) >= 2, RETRY_AFTER_S * 3,
                       "the tail asking again", poll_s=0.2)
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


def test_tail_refused_for_its_address_once_it_followed_waits_then_follows(
        tmp_path: Path) -> None:
    """The tail's link drops and, before it is back, another stream from its address
    takes the one the node allows it: the tail says so once, with that limit's name, and
    waits the node's Retry-After, not ending; it follows once that stream closes."""
    config = tmp_path / "clawsync.toml"
    config.write_text("[limits]\nstreams_max = 2\nstreams_per_address_max = 1\n")
    with NodeProcess(tmp_path, extra_args=["--config", str(config)]) as node, \
            LinkProxy(target_port=node.port) as link:
        tail = spawn_cli(f"http://127.0.0.1:{link.port}", "tail")
        try:
            assert tail.stderr is not None
            said = LineReader(tail.stderr)
            said.wait_for("following")
            link.cut()
            said.wait_for("reconnecting")
            other = open_stream(node)
            refused = streams_refused(node, 429)  # its own, while the node counted the tail's
            link.heal()
            assert said.wait_for("streams_per_address_max", timeout_s=RETRY_AFTER_S) == (
                "this address's live streams at the node are all taken ([limits] "
                "streams_per_address_max): asking again by itself until one is free, to "
                "follow after position 0")
            wait_asked_again(node, tail, said, refused)
            other.close()
            assert said.wait_for("reconnected", timeout_s=RETRY_AFTER_S * 3) == (
                "reconnected; following after position 0")
            assert len([seen for seen in said.seen if "all taken" in seen]) == 1
        finally:
            if tail.poll() is None:
                stop_cli(tail)


def test_tail_started_at_its_address_limit_says_so_once_then_follows(tmp_path: Path) -> None:
    """Another stream from the tail's address holds the one the node allows it before
    the tail began: the tail says so once, with that limit's name, and waits the node's
    Retry-After, not ending; it follows once that stream closes."""
    config = tmp_path / "clawsync.toml"
    config.write_text("[limits]\nstreams_max = 2\nstreams_per_address_max = 1\n")
    with NodeProcess(tmp_path, extra_args=["--config", str(config)]) as node:
        other = open_stream(node)
        tail = spawn_cli(node, "tail")
        try:
            assert tail.stderr is not None
            said = LineReader(tail.stderr)
            assert said.wait_for("streams_per_address_max") == (
                "this address's live streams at the node are all taken ([limits] "
                "streams_per_address_max): asking again by itself until one is free, to "
                "follow after position 0")
            wait_asked_again(node, tail, said, 0)
            other.close()
            assert said.wait_for("following", timeout_s=RETRY_AFTER_S * 3).startswith(
                f"following {node.url} after position 0")
            assert len([seen for seen in said.seen if "all taken" in seen]) == 1
        finally:
            if tail.poll() is None:
                stop_cli(tail)
