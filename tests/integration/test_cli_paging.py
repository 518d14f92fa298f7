"""``clawsync events --all`` and ``sessions --all`` against a real node: each page is
printed as it comes, before the next is asked for (a session is never held whole), and
a page that fails after others were printed leaves whole lines, says they are cut short
and where the rest follows, and exits 1."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.support.processes import CLI_TIMEOUT_S, NodeProcess, child_env, cli_args, run_cli
from tests.support.terminal import ESCAPES, on_a_terminal

pytestmark = pytest.mark.integration

#: Events in the session, and how many a page holds: two pages, the first printing far
#: more than a pipe holds (64 KiB on Linux) in either form, so that the command is
#: still writing it when the node stops.
EVENTS = 1200
PAGE = 1000
#: What each event says: a plain line shows 100 characters of it, --json all.
CONTENT = "word " * 120


def filled(node: NodeProcess, tmp_path: Path) -> None:
    lines = tmp_path / "events.jsonl"
    lines.write_text("".join(
        json.dumps({"session_key": "s1", "agent_id": "main",
                    "kind": {"type": "message_received", "content": f"{at} {CONTENT}"}})
        + "\n" for at in range(EVENTS)))
    result = run_cli(node, "append", "--file", str(lines))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("form", [[], ["--json"]], ids=["plain", "json"])
def test_a_page_is_printed_before_the_next_is_fetched(node: NodeProcess, tmp_path: Path,
                                                      form: list[str]) -> None:
    """Every page was gathered before the first line was printed: here the node stops
    while the command writes its first page (the pipe is full, nobody reads it), so
    the second page fails. The first page's lines are out, each whole, the command says
    they are cut short and from where the rest follows, and exits 1."""
    filled(node, tmp_path)
    everything = run_cli(node, "events", "s1", "--all", "--limit", str(PAGE), *form)
    assert everything.returncode == 0, everything.stderr
    assert len(everything.stdout.splitlines()) == EVENTS
    first_page = node.get(f"/v1/sessions/s1/events?limit={PAGE}")
    with subprocess.Popen(cli_args(node, "events", "s1", "--all", "--limit", str(PAGE),
                                   *form),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=child_env()) as command:
        assert command.stdout is not None
        # The first bytes are there once the first page is (it is printed as it comes);
        # the rest of it (hundreds of KB) waits for room in the pipe: the node stops.
        start = os.read(command.stdout.fileno(), 4096)
        node.stop()
        out, err = command.communicate(timeout=CLI_TIMEOUT_S)
    printed = (start + out).decode()
    assert command.returncode == 1, err
    assert printed.endswith("\n"), printed[-200:]
    assert printed.splitlines() == everything.stdout.splitlines()[:PAGE]
    said = err.decode()
    assert (f"the events above are cut short by the error below: the rest follow "
            f"--after {first_page['next']}") in said, said
    assert said.splitlines()[-1].startswith("Error: "), said


def test_the_pages_of_all_are_the_lines_of_one(node: NodeProcess, tmp_path: Path) -> None:
    """--json with --all prints the same, byte for byte, whatever the pages' size."""
    filled(node, tmp_path)
    whole = run_cli(node, "events", "s1", "--all", "--limit", str(PAGE), "--json")
    paged = run_cli(node, "events", "s1", "--all", "--limit", "7", "--json")
    assert whole.returncode == paged.returncode == 0, paged.stderr
    assert paged.stdout == whole.stdout
    listed = run_cli(node, "sessions", "--all", "--limit", "1", "--json",
                     "--include-cluster")
    at_once = run_cli(node, "sessions", "--all", "--json", "--include-cluster")
    assert listed.returncode == at_once.returncode == 0, listed.stderr
    assert listed.stdout == at_once.stdout
    keys = [json.loads(line)["session_key"] for line in listed.stdout.splitlines()]
    # The cluster's own sessions and s1, each once: a page per session.
    assert len(keys) == len(set(keys)) > 1 and keys[-1] == "s1", keys


#: Sessions of one event each, the last key longer than any before it: a later page's
#: cell wider than the first page's column.
KEYS = ["k1", "k2", "k3", "k4", "tg:a-key-longer-than-the-first-pages"]


def on_terminal(node: NodeProcess, *args: str) -> list[str]:
    """The lines ``clawsync ARGS`` prints on a terminal 120 columns wide."""
    shown, _said = on_a_terminal(cli_args(node, *args), child_env({"COLUMNS": "120"}), 120)
    return ESCAPES.sub("", shown).replace("\r", "").splitlines()


@pytest.fixture
def sessions_of(node: NodeProcess, tmp_path: Path) -> NodeProcess:
    """A node holding a session of one event for each of ``KEYS``, and three more in k1."""
    lines = tmp_path / "events.jsonl"
    lines.write_text("".join(
        json.dumps({"session_key": key, "agent_id": "main",
                    "kind": {"type": "message_received", "content": f"hello {at}"}})
        + "\n" for at, key in enumerate(["k1", "k1", "k1", *KEYS])))
    assert run_cli(node, "append", "--file", str(lines)).returncode == 0
    return node


def test_sessions_all_on_a_terminal_names_the_columns_once(sessions_of: NodeProcess) -> None:
    """On a terminal each page was a table of its own under its own line of column
    names, repeated every --limit rows: one line of them now, over the first page, and
    every row once, whole (a later page's longer key too)."""
    listed = on_terminal(sessions_of, "sessions", "--all", "--limit", "2")
    assert [line for line in listed if line.split()[:2] == ["index", "session"]] == [
        listed[0]], listed
    assert sorted(line.split()[1] for line in listed[1:]) == sorted(KEYS), listed


def test_events_all_on_a_terminal_names_the_columns_once(sessions_of: NodeProcess) -> None:
    """The title and the column names over the first page alone, each later page's rows
    lined up under them, every event once."""
    printed = on_terminal(sessions_of, "events", "k1", "--all", "--limit", "1")
    positions = [event["position"]
                 for event in sessions_of.get("/v1/sessions/k1/events")["events"]]
    assert printed[0] == "k1", printed  # the title, once
    assert printed[1].split() == ["position", "time", "kind", "summary"], printed
    assert len(positions) == 4, positions
    assert [line.split()[0] for line in printed[2:]] == [str(at) for at in positions]
    # Lined up: each row's kind where the header's is.
    column = printed[1].index("kind")
    assert all(line[column:].startswith("message_received") for line in printed[2:]), printed
