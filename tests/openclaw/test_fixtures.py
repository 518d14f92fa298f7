"""The recorded fixtures in tests/data/openclaw agree with themselves: each scenario's
SQLite file, its rows.json and its older layout hold the same records."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.openclaw.record_fixtures import OUT, decode, dump_rows

SCENARIOS = sorted(p.parent for p in OUT.glob("*/openclaw-agent.sqlite"))


def test_every_scenario_is_there() -> None:
    assert {p.name for p in SCENARIOS} >= {"basic", "rich", "handwritten"}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.name)
def test_sqlite_and_rows_json_hold_the_same_rows(scenario: Path) -> None:
    written = json.loads((scenario / "rows.json").read_text())
    assert json.loads(json.dumps(dump_rows(scenario / "openclaw-agent.sqlite"))) == written
    for row in written["transcript_events"]:
        assert (row["event_json"] is None) != (row["event_zstd"] is None)
        if row["event_json"] is not None:
            assert decode(row) == row["record"]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.name)
def test_older_layout_holds_each_keys_current_session(scenario: Path) -> None:
    rows = json.loads((scenario / "rows.json").read_text())
    index = json.loads((scenario / "legacy" / "sessions.json").read_text())
    current = {n["session_key"]: n["current_session_id"] for n in rows["session_nodes"]}
    assert {key: entry["sessionId"] for key, entry in index.items()} == current
    for entry in index.values():
        lines = (scenario / "legacy" / Path(entry["sessionFile"]).name).read_text()
        records = [json.loads(line) for line in lines.splitlines()]
        stored = [r["record"] for r in rows["transcript_events"]
                  if r["session_id"] == entry["sessionId"]]
        assert records == stored
        assert records[0]["type"] == "session"


def test_zstd_rows_decode_to_their_records() -> None:
    rows = json.loads((OUT / "rich" / "rows.json").read_text())
    packed = [r for r in rows["transcript_events"] if r["event_zstd"] is not None]
    assert packed, "the rich recording has no zstd row"
    for row in packed:
        raw = dict(row, event_zstd=base64.b64decode(row["event_zstd"]))
        assert decode(raw) == row["record"]
