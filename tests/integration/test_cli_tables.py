"""What the real ``clawsync`` command prints against a real node, on a terminal (a
pseudo-terminal of COLUMNS columns, as a person's) and piped: tables that fit the
terminal with no line ending in spaces, ids and times never broken across lines, free
text (names) wrapped; plain lines whose columns line up on the screen with a device name
of double-width characters."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
from rich.cells import cell_len

from node.cli.output import when
from node.cli.tokens import HEADERS
from tests.support.processes import CLI_TIMEOUT_S, NodeProcess, child_env, cli_args, run_cli

pytestmark = pytest.mark.integration

#: The escape sequences rich writes on a terminal (colours, bold).
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
#: A device name of double-width characters: 8 characters, 16 columns of the screen.
CJK_NAME = "家族のタブレット"


def on_terminal(node: NodeProcess, *args: str, columns: int) -> list[str]:
    """Run ``clawsync ARGS`` with its stdout on a pseudo-terminal ``columns`` wide; the
    lines it printed there, escape sequences removed."""
    primary, secondary = os.openpty()
    process = subprocess.Popen(cli_args(node, *args), stdin=subprocess.DEVNULL,
                               stdout=secondary, stderr=subprocess.PIPE,
                               env=child_env({"COLUMNS": str(columns)}))
    os.close(secondary)
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the command exited and closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(primary)
    _out, err = process.communicate(timeout=CLI_TIMEOUT_S)
    assert process.returncode == 0, err
    text = _ESCAPES.sub("", b"".join(chunks).decode()).replace("\r", "")
    return text.splitlines()


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def listed_node(node: NodeProcess) -> NodeProcess:
    """A node with a session, three tokens (one revoked) and a CJK name for its device."""
    ok(run_cli(node, "append", "s1", "message_received", "content=hello there"))
    for args in (("--sessions", "tg:*", "--name", "notes app for the whole family"),
                 ("--sessions", "tg:alice", "--sessions", "web:*", "--read-only",
                  "--name", "dashboard"),
                 ("--sessions", "*", "--name", "sync-app")):
        issued = json.loads(ok(run_cli(node, "tokens", "create", *args, "--json")))
    ok(run_cli(node, "tokens", "revoke", issued["id"]))
    own = ok(run_cli(node, "device", "--id")).strip()
    ok(run_cli(node, "devices", "add", own, "--name", CJK_NAME))
    return node


@pytest.mark.parametrize("columns", [80, 60])
def test_every_listing_fits_a_narrow_terminal_and_cuts_no_id_or_time(
        listed_node: NodeProcess, columns: int) -> None:
    node = listed_node
    tokens = node.get("/v1/tokens")["tokens"]
    devices = node.get("/v1/devices")
    for args in (("tokens",), ("devices",), ("status",), ("sessions",), ("events", "s1")):
        lines = on_terminal(node, *args, columns=columns)
        assert lines, args
        assert [line for line in lines if line != line.rstrip()] == [], (args, lines)
        if args[0] != "events" and args[0] != "sessions":
            continue  # whole ids (a device's takes 63): the terminal wraps such lines
        assert max(cell_len(line) for line in lines) <= columns, (args, lines)
    # Too narrow for either table: the plain lines, every id and time whole in them.
    listing = "\n".join(on_terminal(node, "tokens", columns=columns))
    for token in tokens:
        assert token["id"] in listing and when(token["issued_at"]) in listing, listing
    assert devices["device_id"] in "\n".join(on_terminal(node, "devices", columns=columns))


def test_the_tokens_table_wraps_names_not_times(listed_node: NodeProcess) -> None:
    """130 columns: a table, the long name over lines, each time on one line."""
    tokens = listed_node.get("/v1/tokens")["tokens"]
    for columns, wraps in ((130, True), (200, False)):
        lines = on_terminal(listed_node, "tokens", columns=columns)
        assert lines[0].split() == HEADERS, lines
        assert max(cell_len(line) for line in lines) <= columns, lines
        assert [line for line in lines if line != line.rstrip()] == [], lines
        assert (len(lines) > 1 + len(tokens)) is wraps, lines
        table = "\n".join(lines)
        assert ("notes app for the whole family" not in table) is wraps, lines
        for token in tokens:
            assert token["id"] in table and when(token["issued_at"]) in table, lines
            if token["revoked_at"]:
                assert when(token["revoked_at"]) in table, lines


def test_piped_lines_line_up_with_a_cjk_device_name(listed_node: NodeProcess) -> None:
    """The name takes 16 columns of the screen in 8 characters: the columns after it
    start where the header's do."""
    lines = ok(run_cli(listed_node, "devices")).splitlines()
    assert len(lines) == 2 and CJK_NAME in lines[1], lines
    assert cell_len(lines[0][:lines[0].index("STATE")]) == \
        cell_len(lines[1][:lines[1].index("member")]), lines
