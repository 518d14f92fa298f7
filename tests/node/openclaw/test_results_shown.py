"""A tool's result as ``clawsync events`` and ``projection`` show it once a real OpenClaw
transcript is imported into a node: a text result (its text blocks) as the text, not in
JSON's quotes; a result kept as its blocks (one neither text nor image) as JSON."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.openclaw import RECORDED, write_jsonl
from tests.support.processes import NodeProcess, run_cli

KEY = "agent:main:explicit:s1"


def test_a_text_result_shows_as_its_text_and_blocks_as_json(tmp_path: Path) -> None:
    records = [json.loads(line) for line in
               (RECORDED / "basic" / "legacy" / "s1.jsonl").read_text().splitlines()]
    [result] = [r for r in records if r.get("message", {}).get("role") == "toolResult"]
    assert result["message"]["content"] == [{"type": "text", "text": "hi"}]
    # The same result again, with a block neither text nor image: kept as its blocks.
    blocks = [{"type": "text", "text": "hi"}, {"type": "audio", "data": "AA=="}]
    records.append({**result, "id": "00000000-0000-4000-8000-0000000000b1",
                    "parentId": records[-1]["id"],
                    "message": {**result["message"], "content": blocks}})
    write_jsonl(tmp_path / "state", KEY, "s1", records)
    (tmp_path / "node").mkdir()
    with NodeProcess(tmp_path / "node") as node:
        done = run_cli(node, "openclaw", "import", "--state-dir", str(tmp_path / "state"))
        assert done.returncode == 0, done.stderr
        shown = run_cli(node, "events", KEY)
        projection = run_cli(node, "projection", KEY)
    assert projection.returncode == 0, projection.stderr
    # (The two results share a time: the projection orders them by event id.)
    assert sorted(line.split("exec ok: ", 1)[1].strip()
                  for line in projection.stdout.splitlines() if "exec ok:" in line) == sorted(
        ["hi", json.dumps(blocks, separators=(",", ":"), sort_keys=True)]), projection.stdout
    assert shown.returncode == 0, shown.stderr
    lines = [line for line in shown.stdout.splitlines() if "exec ok:" in line]
    assert [line.split("exec ok: ", 1)[1].strip() for line in lines] == [
        "hi", json.dumps(blocks, separators=(",", ":"), sort_keys=True)], shown.stdout
