"""The console's transcript pairs each OpenClaw tool call with its own result, by the
tool-call id the mapping keeps, also when calls of one tool run at once."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from node.openclaw.mapping import SessionRef, events_for
from tests.node.openclaw import transcript

STATIC = Path(__file__).resolve().parents[3] / "node" / "console" / "static"
# Folds events (JSON on stdin) as the console does; prints each tool entry's pair of ids.
FOLD = f"""
import {{ Transcript }} from {json.dumps((STATIC / "transcript.js").as_uri())};
let input = "";
for await (const chunk of process.stdin) input += chunk;
const entries = Transcript.of(JSON.parse(input)).entries.filter((e) => e.direction === "tool");
console.log(JSON.stringify(entries.map((e) => [
  e.call && e.call.tool_call_id, e.result && e.result.tool_call_id,
  e.result && e.result.result])));
"""


def folded(records: list[dict[str, Any]]) -> Any:
    ref = SessionRef(*transcript.ref_args())
    events = [e.to_json() for r in records for e in events_for(r, ref).events]
    done = subprocess.run(["node", "--input-type=module", "-e", FOLD], input=json.dumps(events),
                          capture_output=True, text=True, check=True, timeout=60)
    return json.loads(done.stdout)


def test_parallel_calls_of_one_tool_meet_their_own_results() -> None:
    records = transcript.records()[:5]
    call = {"type": "toolCall", "name": "exec"}
    records.append({"type": "message", "id": "000000c1", "parentId": "00000004",
                    "timestamp": "2026-12-01T10:00:02.000Z", "message": {
                        "role": "assistant", "model": "fake-model", "stopReason": "toolUse",
                        "content": [{**call, "id": "c_a", "arguments": {"command": "sleep 1"}},
                                    {**call, "id": "c_b", "arguments": {"command": "true"}}]}})
    for n, (call_id, output) in enumerate([("c_b", "b done"), ("c_a", "a done")]):
        records.append({"type": "message", "id": f"000000d{n}", "parentId": "000000c1",
                        "timestamp": f"2026-12-01T10:00:0{3 + n}.000Z", "message": {
                            "role": "toolResult", "toolCallId": call_id, "toolName": "exec",
                            "content": [{"type": "text", "text": output}], "isError": False}})
    assert folded(records) == [["c_a", "c_a", "a done"], ["c_b", "c_b", "b done"]]


def test_the_recorded_turn_reads_call_then_result() -> None:
    first, second, third = folded(transcript.records())
    assert first == ["call_1", "call_1", "hi\n"]
    assert second == ["call_2", "call_2", "Read image file [image/png]"]
    assert third == ["call_3", "call_3", "ls: permission denied"]
