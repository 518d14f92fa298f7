"""Which events ``clawsync append --file`` leaves out of a copy (``only_nodes_write``), and
what ``clawsync append`` says when SESSION or KIND is left out or the file is not UTF-8
text (and that a byte order mark before it is read past)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from crdt.clock import Hlc
from crdt.events import Draft
from crdt.kinds import NODES_AGENT_ID
from crdt.membership import DEVICES_SESSION
from node.cli.append import batches
from node.cli.event_files import only_nodes_write
from node.client.transport import json_bytes
from node.limits import ClientLimits
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


@pytest.mark.parametrize("data", [b"\xff\xfe", b'{"kind": "\xe9t\xe9"}'])
def test_a_file_that_is_not_utf8_is_an_input_error(tmp_path: Path, data: bytes) -> None:
    # It was a UnicodeDecodeError's traceback, exit code 1.
    path = tmp_path / "bin.dat"
    path.write_bytes(data)
    result = CliRunner().invoke(main, ["append", "s2", "--file", str(path)])
    at = next(index for index, byte in enumerate(data) if byte >= 0x80) + 1
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (f"Error: {path} is not UTF-8 text (its byte {at}, "
                             f"0x{data[at - 1]:02x}, begins no UTF-8 character)\n")
    piped = CliRunner().invoke(main, ["append", "s2", "--file", "-"], input=b"[]\n\xff")
    assert piped.exit_code == 2
    assert "is not UTF-8 text (its byte 4, 0xff, begins no UTF-8 character)" in piped.stderr


def test_a_leading_byte_order_mark_is_read_past(tmp_path: Path) -> None:
    # Editors write one; json.loads refused it ("Unexpected UTF-8 BOM"). The file is read
    # as events: this one lacks only the session_key SESSION would give.
    path = tmp_path / "events.json"
    path.write_bytes(b'\xef\xbb\xbf{"kind": {"type": "session_ended"}}\n')
    result = CliRunner().invoke(main, ["append", "--file", str(path)])
    assert result.exit_code == 2
    assert result.stderr == (f"Error: event #1 in {path} has no session_key: give SESSION "
                             "for events without one\n")
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\xef\xbb\xbf[\xff]")  # the position counts the mark's bytes
    said = CliRunner().invoke(main, ["append", "s1", "--file", str(bad)]).stderr
    assert "(its byte 5, 0xff," in said


def test_import_batches_are_sized_as_the_body_is_sent() -> None:
    """Compact UTF-8, as the client sends it: text past ASCII counts its 2 to 4 bytes, not
    the 6 or 12 of a ``\\u`` escape, so it is not cut into batches far below the limit."""
    events = [{"session_key": "s", "kind": "message", "content": "é" * 100} for _ in range(10)]
    body = len(json_bytes(events))  # [e1,...,e10]: each event and a comma or bracket, and one
    assert body == 10 * (len(json_bytes(events[0])) + 1) + 1
    limits = ClientLimits(import_batch_bytes_max=body)
    assert [numbers for numbers, _key, _batch in batches(events, limits)] == [
        list(range(1, 11))]
    limits = ClientLimits(import_batch_bytes_max=body - 1)
    assert [numbers for numbers, _key, _batch in batches(events, limits)] == [
        list(range(1, 10)), [10]]
