"""A SESSION the node does not hold, as a typo makes one: the error names the node's
sessions whose keys are close to it, or says how to list them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from node.cli.common import SESSIONS_COMPARED_MAX
from tests.support.processes import NodeProcess, run_cli


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    with NodeProcess(tmp_path_factory.mktemp("node")) as started:
        for key in ("tg:alice", "tg:bob"):
            appended = run_cli(started, "append", key, "message_received", "content=hi")
            assert appended.returncode == 0, appended.stderr
        yield started


@pytest.mark.parametrize("command", [("events",), ("projection",), ("forget",)])
def test_a_mistyped_session_names_the_close_one(node: NodeProcess,
                                                command: tuple[str, ...]) -> None:
    done = run_cli(node, *command, "tg:alise")
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == ("Error: there is no session 'tg:alise' on the node; "
                                   "did you mean 'tg:alice'?"), done.stderr
    assert "Traceback" not in done.stderr


def test_a_session_like_none_says_how_to_list_them(node: NodeProcess) -> None:
    done = run_cli(node, "events", "weather")
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == ("Error: there is no session 'weather' on the node; "
                                   "`clawsync sessions` lists them"), done.stderr
    # Nothing was forgotten on the way: the sessions are all there.
    assert run_cli(node, "events", "tg:alice").returncode == 0


def test_a_node_that_lists_fewer_sessions_a_page_still_says_how_to_list_them(
        tmp_path: Path) -> None:
    """One page of ``SESSIONS_COMPARED_MAX`` is more than this node's page_max: it
    refuses that page, and the error is the node's "no such session" all the same."""
    config = tmp_path / "clawsync.toml"
    config.write_text(f"[limits]\npage_default = 10\npage_max = {SESSIONS_COMPARED_MAX - 1}\n")
    (tmp_path / "node").mkdir()
    with NodeProcess(tmp_path / "node", extra_args=["--config", str(config)]) as node:
        appended = run_cli(node, "append", "tg:alice", "message_received", "content=hi")
        assert appended.returncode == 0, appended.stderr
        done = run_cli(node, "events", "tg:alise")
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == ("Error: there is no session 'tg:alise' on the node; "
                                   "`clawsync sessions` lists them"), done.stderr
