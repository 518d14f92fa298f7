"""The table of ``clawsync tokens`` on the terminals people have, for the tokens they make.
Tokens as a household names and scopes them (the README's ``--name dashboard``, names of
short words; patterns of OpenClaw's keys, ``agent:main:...``, the longest ones people
give), one read-only, one revoked (the state's widest cell, its time whole). Not the
longest the limits allow: a name may be one word of 128 bytes, which no table column
holds whole; the plain lines give such a one."""

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


def test_the_tokens_table_keeps_every_pattern_whole_at_80_100_and_120_columns(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pattern is never broken (a piece of ``agent:main:*`` read as ``*``, every
    session), and the time issued is left out before patterns go one a line. The access
    reads as what it is, ``ro`` or ``rw`` in the table and ``read-only`` or
    ``read-write`` in the plain lines, never ``write``. 80 columns: every column but the
    issuer and the time issued (the access in words took 84); 100: every column but the
    time issued; 120: every column."""
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
        piped = run_cli(node, "tokens")
        monkeypatch.setattr("node.cli.output.is_terminal", lambda: True)
        shown = {columns: CliRunner().invoke(main, ["--node", node.url, "tokens"],
                                             env={"COLUMNS": str(columns)})
                 for columns in (80, 100, 120)}
    patterns = [" ".join(patterns) for _name, patterns, _read_only in TOKENS]
    assert piped.returncode == 0, piped.stderr
    lines = piped.stdout.splitlines()
    assert lines[0].split()[:4] == ["ID", "NAME", "SESSIONS", "ACCESS"], lines
    for line, token, pattern, access in zip(lines[1:], made, patterns,
                                            ["read-only", "read-write", "read-write"],
                                            strict=True):
        assert re.match(rf"{token}  .+  {re.escape(pattern)} +{access}  ", line), line
    for columns, left_out in ((80, ["issuer", "issued"]), (100, ["issued"]), (120, [])):
        result = shown[columns]
        assert result.exit_code == 0, result.output
        lines, err = result.stdout.splitlines(), result.stderr
        assert max(cell_len(line) for line in lines) <= columns, lines
        assert lines[0].split() == [header for header in HEADERS if header not in left_out]
        assert ("(left out for want of room: " + ", ".join(left_out) + ";" in err) \
            is bool(left_out), err
        # Each id whole, on its row's first line: its patterns there, as one cell.
        firsts = [line for line in lines if line.split()[:1] in ([token] for token in made)]
        assert [line.split()[0] for line in firsts] == made, lines
        at, access = lines[0].index("sessions"), lines[0].index("access")
        assert [line[at:access].rstrip() for line in firsts] == patterns, lines
        assert [line[access:].split()[0] for line in firsts] == ["ro", "rw", "rw"], lines
        state = lines[0].index("state")
        assert [line[state:] for line in firsts] == ["valid", "valid", "revoked"], lines
        # The revoked token's time whole, on the state's next line.
        assert re.fullmatch(r" +\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", lines[-1]), lines
