"""A ``.jsonl`` transcript rewritten in place while no ``clawsync openclaw`` ran, its
first line kept, at the same length or longer: the next ``import`` (or ``watch``) tells
it by the tail mark its cursor keeps, reads it again from its start, and stores the
rewritten records; those stored before are answered as stored. Real files, a real node
process, real command processes."""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from node.openclaw.session_names import session_key_for
from node.openclaw.state import cursor_name
from tests.node.openclaw import transcript
from tests.support.cluster import wait_until
from tests.support.openclaw import turn_records, watching, write_jsonl
from tests.support.processes import NodeProcess, run_cli

pytestmark = pytest.mark.integration

SID, KEY = transcript.SESSION_ID, transcript.SESSION_KEY
CLAWSYNC_KEY = session_key_for("main", KEY)
#: Seconds a watch has to store what it reads.
STORED_S = 30.0


def said(node: NodeProcess) -> list[str]:
    """The contents of the session's user messages the node holds, sorted."""
    try:
        events = node.get(f"/v1/sessions/{quote(CLAWSYNC_KEY, safe='')}/events?limit=1000")
    except urllib.error.HTTPError:
        return []
    return sorted(event["kind"]["content"] for event in events["events"]
                  if event["kind"]["type"] == "message_received")


def cursor(node: NodeProcess, state: Path) -> dict[str, Any]:
    name = quote(cursor_name(state.resolve(), "main"), safe="")
    return dict(node.get(f"/v1/cursors/{name}")["cursor"])


def read_into(node: NodeProcess, state: Path, command: str, turns: list[str]) -> None:
    """``import`` (to its end), or ``watch`` until the node holds ``turns`` and the
    cursor the file's end, then stopped. A watch saves its cursor after the node has
    stored what it read, so the turns alone can be seen before the save; stopped in
    between, the next run reads those records again (answered as stored), which is
    not what these tests look at."""
    if command == "import":
        done = run_cli(node, "openclaw", "import", "--state-dir", str(state))
        assert done.returncode == 0, done.stderr
        return
    end = (state / "agents" / "main" / "sessions" / f"{SID}.jsonl").stat().st_size

    def caught_up() -> bool:
        return said(node) == turns and cursor(node, state).get(f"jsonl:{SID}") == end

    with watching(node, state):
        wait_until(lambda: caught_up() or None, STORED_S,
                   f"the node holds {turns} and the cursor offset {end}")


@pytest.mark.parametrize("command", ["import", "watch"])
@pytest.mark.parametrize("longer", [False, True])
def test_a_file_rewritten_while_no_bridge_ran_is_read_again(
        node: NodeProcess, tmp_path: Path, command: str, longer: bool) -> None:
    state = tmp_path / "openclaw"
    path = write_jsonl(state, KEY, SID, turn_records(SID, [1_700_000_000_000 + n * 1000
                                                             for n in range(3)]))
    read_into(node, state, command, ["turn 0", "turn 1", "turn 2"])
    offset = path.stat().st_size
    assert cursor(node, state)[f"jsonl:{SID}"] == offset
    assert f"tail:jsonl:{SID}" in cursor(node, state)
    written = path.read_bytes()
    first = written[:written.index(b"\n") + 1]
    # Rewritten in place as OpenClaw's compaction would: its header kept, a turn's text
    # changed at the same length (and one more turn, if longer).
    rewritten = written.replace(b'"turn 1"', b'"turn 7"')
    more = turn_records(SID, [1_700_000_000_000 + n * 1000 for n in range(4)])[-1:]
    if longer:
        rewritten += json.dumps(more[0]).encode() + b"\n"
    path.write_bytes(rewritten)
    assert rewritten.startswith(first) and len(rewritten) >= offset
    expected = sorted(["turn 0", "turn 1", "turn 2", "turn 7"] + (["turn 3"] if longer else []))
    read_into(node, state, command, expected)
    assert said(node) == expected  # the rewritten turn stored, nothing twice
    assert cursor(node, state)[f"jsonl:{SID}"] == len(rewritten)
    # Read again with nothing changed: nothing more.
    read_into(node, state, command, expected)
    assert said(node) == expected
