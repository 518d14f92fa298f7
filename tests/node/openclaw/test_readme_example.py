"""README's example of OpenClaw's older layout (a transcript and its ``sessions.json``
entry) imports into a node as README says it does."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cluster import all_events
from tests.support.processes import NodeProcess, run_cli

README = Path(__file__).resolve().parents[3] / "README.md"


def _blocks() -> tuple[str, str]:
    """The example's transcript (the README's ``jsonl`` block) and index (the ``json``
    block after it)."""
    text = README.read_text().split("\n### Mapping\n", 1)[1]
    transcript = text.split("```jsonl\n", 1)[1].split("```", 1)[0]
    index = text.split("```jsonl\n", 1)[1].split("```json\n", 1)[1].split("```", 1)[0]
    return transcript, index


def test_the_readme_example_imports_as_it_says(tmp_path: Path) -> None:
    transcript, index = _blocks()
    sessions = tmp_path / "state" / "agents" / "main" / "sessions"
    sessions.mkdir(parents=True)
    (sessions / "s1.jsonl").write_text(transcript)
    (sessions / "sessions.json").write_text(index)
    (tmp_path / "node").mkdir()
    with NodeProcess(tmp_path / "node") as node:
        done = run_cli(node, "openclaw", "import", "--state-dir", str(tmp_path / "state"))
        assert done.returncode == 0, done.stderr
        assert "5 records read: 5 new events, 0 already stored, 0 records or files " \
            "skipped" in done.stderr, done.stderr
        events = all_events(node, "/v1/sessions/agent%3Amain%3Aexplicit%3As1/events")
    kinds = [(event["kind"]["type"], event["kind"].get("content"),
              event["kind"].get("params"), event["kind"].get("result")) for event in events]
    assert kinds == [
        ("session_started", None, None, None),
        ("message_received", "please use the tool", None, None),
        ("tool_called", None, {"command": "echo hi"}, None),
        ("tool_result", None, None, "hi"),
        ("agent_response", "the tool said: hi", None, None)], json.dumps(kinds)
