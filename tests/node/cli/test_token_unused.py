"""A client command given ``--token`` for a node started without one: the node answers
it (a node whose token was turned off keeps serving the clients still configured with
it), and the command warns, once, that the node does not check the token. A node that
takes the token, or a command without one, says nothing of it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.client import answers
from tests.support.openclaw import write_sessions
from tests.support.processes import NodeProcess, run_cli

TOKEN = "a-token-of-sixteen-chars"


@pytest.fixture(scope="module")
def open_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    with NodeProcess(tmp_path_factory.mktemp("open")) as node:
        yield node


def test_a_token_the_node_does_not_take_is_warned_of_once(open_node: NodeProcess) -> None:
    """``status`` asks the node several things, each with the token: one warning."""
    done = run_cli(open_node, "status", token=TOKEN)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines().count(answers.token_unused(open_node.url)) == 1, \
        done.stderr


def test_the_request_is_answered_all_the_same(open_node: NodeProcess) -> None:
    appended = run_cli(open_node, "append", "tg:alice", "message_received", "content=hi",
                       token=TOKEN)
    assert appended.returncode == 0, appended.stderr
    assert answers.token_unused(open_node.url) in appended.stderr.splitlines()
    read = run_cli(open_node, "events", "tg:alice", "--json")
    assert read.returncode == 0, read.stderr
    assert [json.loads(line)["kind"]["content"] for line in read.stdout.splitlines()] \
        == ["hi"]
    assert "--token" not in read.stderr  # no token given: nothing to warn of


def test_openclaw_import_warns_of_it_once_too(open_node: NodeProcess, tmp_path: Path
                                              ) -> None:
    """The OpenClaw commands talk to the node through a client of their own making."""
    state = tmp_path / "openclaw"
    session_id = "00000000-0000-4000-8000-000000000001"
    write_sessions(state, {("agent:main:explicit:s1", session_id): [
        {"type": "session", "version": 3, "id": session_id,
         "timestamp": "2026-12-01T10:00:00.000Z", "cwd": "/w"}]})
    done = run_cli(open_node, "openclaw", "import", "--state-dir", str(state), token=TOKEN)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines().count(answers.token_unused(open_node.url)) == 1, \
        done.stderr
    assert "1 record read: 1 new event" in done.stderr, done.stderr


def test_a_node_that_takes_the_token_says_nothing_of_it(tmp_path: Path) -> None:
    with NodeProcess(tmp_path, token=TOKEN) as node:
        done = run_cli(node, "status")
    assert done.returncode == 0, done.stderr
    assert "--token" not in done.stderr, done.stderr
