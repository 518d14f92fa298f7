"""``clawsync sessions --json``: one line per session with the fields the README names, in
its order, whatever the node's version; the table hides sessions forgotten whole."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node.cli.read import SESSION_FIELDS
from tests.support.processes import NodeProcess, child_env, cli_args, run_cli
from tests.support.stand_in import Quiet, serving
from tests.support.terminal import ESCAPES, on_a_terminal

README = Path(__file__).parents[3] / "README.md"
#: A ``detail=1`` row as a node before ``forgotten`` (0.2) answered it, and one as a
#: later node might, with a field this version does not know.
OLDER_ROW = {"index": 1, "session_key": "tg:alice", "state": "active", "message_count": 2,
             "event_count": 3, "last_activity": "2026-11-21T05:10:34.002Z",
             "channel": "telegram", "agent_id": "main"}
NEWER_ROW = {**OLDER_ROW, "index": 2, "session_key": "tg:bob", "forgotten": False,
             "pinned": True, "agent_id": None}


@pytest.fixture
def stand_in() -> Iterator[str]:
    """The address of a node of other versions: its session list holds ``OLDER_ROW``
    and ``NEWER_ROW``."""
    page = json.dumps({"sessions": [OLDER_ROW, NEWER_ROW], "next": 2,
                       "more": False}).encode()

    class Handler(Quiet):
        def do_GET(self) -> None:
            found = self.path.startswith("/v1/sessions?")
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(page) if found else 0))
            self.end_headers()
            if found:
                self.wfile.write(page)

    with serving(Handler) as url:
        yield url


def json_rows(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_the_readme_names_the_fields_of_a_json_line() -> None:
    text = " ".join(README.read_text().split())
    [said] = re.findall(r"A line of `clawsync sessions --json` has the fields (.*?), in this "
                        r"order", text)
    assert tuple(re.findall(r"`([a-z_]+)`", said)) == SESSION_FIELDS


def test_a_json_line_has_the_same_fields_whatever_the_nodes_version(stand_in: str) -> None:
    """An older node's row lacks ``forgotten`` (null), a newer node's extra field is left
    out: every line has exactly ``SESSION_FIELDS``, in order."""
    listed = run_cli(stand_in, "sessions", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json_rows(listed.stdout)
    assert [list(row) for row in rows] == [list(SESSION_FIELDS)] * 2
    assert rows[0] == {**OLDER_ROW, "forgotten": None}
    assert rows[1] == {name: NEWER_ROW[name] for name in SESSION_FIELDS}
    table = run_cli(stand_in, "sessions")  # an unknown "forgotten" hides nothing
    assert "tg:alice" in table.stdout and "tg:bob" in table.stdout, table.stderr


def test_a_json_line_of_this_nodes_has_the_fields_and_says_forgotten(
        tmp_path: Path) -> None:
    with NodeProcess(tmp_path) as node:
        for key in ("kept", "gone"):
            appended = run_cli(node, "append", key, "message_received", "content=hi")
            assert appended.returncode == 0, appended.stderr
        forgot = run_cli(node, "forget", "gone")
        assert forgot.returncode == 0, forgot.stderr
        rows = json_rows(run_cli(node, "sessions", "--json").stdout)
        assert [list(row) for row in rows] == [list(SESSION_FIELDS)] * 2
        assert {row["session_key"]: row["forgotten"] for row in rows} == {
            "kept": False, "gone": True}
        about = node.get("/v1/node")
        assert (about["sessions_live"], about["sessions"]) == (1, 2)
        shown = run_cli(node, "projection", "gone")
        assert "state          forgotten (every event of it)" in shown.stdout.splitlines()


def test_the_plain_list_shows_what_the_console_shows(stand_in: str) -> None:
    """State, message count and last activity beside each key, as the console shows
    them; the plain lines (piped) give the time as the table does (--json as the node
    does)."""
    listed = run_cli(stand_in, "sessions")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0].split("  ") == [
        "1", "tg:alice", "active", "2", "2026-11-21 05:10:34Z"]


def test_the_table_of_sessions_fits_80_columns(stand_in: str) -> None:
    shown, _said = on_a_terminal(cli_args(stand_in, "sessions"), child_env(), 80)
    lines = ESCAPES.sub("", shown).splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    assert any("tg:alice" in line and "active" in line and "2026-11-21 05:10:34Z" in line
               for line in lines), lines
