"""Which events ``clawsync append --file`` leaves out of a copy (``only_nodes_write``), and
what ``clawsync append`` says when SESSION or KIND is left out."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from crdt.clock import Hlc
from crdt.events import Draft
from crdt.kinds import NODES_AGENT_ID
from crdt.membership import DEVICES_SESSION
from node.cli.append import only_nodes_write
from node.main import main


def test_a_copy_leaves_out_what_only_nodes_write() -> None:
    def shown(session: str, agent: str, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        return Draft(session, agent, kind, payload, Hlc(5_000, 0)).seal().to_json()

    said = shown("s1", "main", "message_received", {"content": "hi", "attachments": []})
    assert not only_nodes_write(said)
    assert only_nodes_write({**said, "forgotten_by": "ab" * 32})
    assert only_nodes_write(shown("s1", NODES_AGENT_ID, "forget", {"events": None}))
    # A later version's kind: its record under the nodes' agent, content under another.
    assert only_nodes_write(shown(DEVICES_SESSION, NODES_AGENT_ID, "device_renamed", {}))
    assert not only_nodes_write(shown("s1", "main", "device_renamed", {}))


@pytest.mark.parametrize(("args", "name"), [([], "SESSION"), (["s1"], "KIND")])
def test_a_missing_argument_is_said_as_every_command_says_it(args: list[str],
                                                             name: str) -> None:
    # With no arguments at all, append printed its whole help to stderr (exit 2) and no
    # error line, where `clawsync events` says what is missing.
    result = CliRunner().invoke(main, ["append", *args], prog_name="clawsync")
    other = CliRunner().invoke(main, ["events"], prog_name="clawsync")
    assert (result.exit_code, other.exit_code) == (2, 2)
    assert result.stdout == other.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0].startswith("Usage: clawsync append [OPTIONS] [SESSION] [KIND]")
    error = next(line for line in lines if line.startswith("Error: "))
    assert error.startswith(f"Error: Missing argument '{name}'. Give SESSION and KIND "
                            "(or --file). The kinds and their fields:")
    assert "  message_received  content=TEXT [attachments:=JSON]" in lines
    assert "Examples:" not in result.stderr  # the usage lines, not the help
    assert other.stderr.splitlines()[-1] == "Error: Missing argument 'SESSION'."
