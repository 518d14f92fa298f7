"""The table of ``clawsync tokens`` on a 100-column terminal: every column, for the tokens
people make. Tokens as a household names and scopes them (the README's ``--name
dashboard``, names of short words; patterns of OpenClaw's keys, ``agent:main:...``, the
longest ones people give), one read-only, one revoked (the state's widest cell, its time
whole). Not the longest the limits allow: a name may be one word of 128 bytes, which no
table column holds whole; the plain lines give such a one."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.cells import cell_len

from node.cli.group import main
from node.cli.tokens import HEADERS
from tests.support.processes import NodeProcess, run_cli

TOKENS = [
    ("dashboard", ["agent:main:telegram:*"], True),
    ("kitchen tablet", ["tg:*", "agent:main:*"], False),
    ("old phone", ["*"], False),
]


def test_a_100_column_terminal_shows_every_column_of_the_tokens(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with NodeProcess(tmp_path) as node:
        made = []
        for name, patterns, read_only in TOKENS:
            args = ["tokens", "create", "--name", name, "--json",
                    *[arg for pattern in patterns for arg in ("--sessions", pattern)],
                    *(["--read-only"] if read_only else [])]
            created = run_cli(node, *args)
            assert created.returncode == 0, created.stderr
            made.append(json.loads(created.stdout)["id"])
        revoked = run_cli(node, "tokens", "revoke", made[-1])
        assert revoked.returncode == 0, revoked.stderr
        monkeypatch.setattr("node.cli.output.is_terminal", lambda: True)
        shown = CliRunner().invoke(main, ["--node", node.url, "tokens"],
                                   env={"COLUMNS": "100"})
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert lines[0].split() == HEADERS, shown.stdout  # a table with every column
    assert max(cell_len(line) for line in lines) <= 100, lines
    assert "left out" not in shown.stderr, shown.stderr
    # Each id whole, on its row's first line; the access in a word.
    firsts = [line for line in lines if line.split()[:1] in ([token] for token in made)]
    assert [line.split()[0] for line in firsts] == made, lines
    access, state = lines[0].index("access"), lines[0].index("state")
    assert [line[access:access + 6].strip() for line in firsts] == ["read", "write", "write"]
    assert [line[state:] for line in firsts] == ["valid", "valid", "revoked"], lines
    # The revoked token's time whole, on the state's next line.
    assert re.fullmatch(r" +\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", lines[-1]), lines
