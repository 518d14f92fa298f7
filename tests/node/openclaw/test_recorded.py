"""Every record of the transcripts recorded from a real OpenClaw (tests/data/openclaw: its
SQLite stores and any ``.jsonl`` transcripts) maps onto events and comes back equal."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crdt.events import EVENT_BYTES_MAX
from crdt.log.projection import rebuild
from node.openclaw.mapping import SessionRef, events_for
from node.openclaw.records import records_for
from tests.node.openclaw.support import DATA, Recorded, agent_of, from_sqlite


def _from_jsonl(path: Path) -> Iterator[Recorded]:
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    index = path.parent / "sessions.json"
    keys = {entry.get("sessionId"): key for key, entry in
            (json.loads(index.read_text()).items() if index.exists() else [])}
    yield SessionRef(agent_of(path), keys.get(path.stem, path.stem), path.stem), records


def recorded() -> list[Recorded]:
    found: list[Recorded] = []
    for path in sorted(DATA.rglob("*")) if DATA.exists() else []:
        if path.suffix == ".sqlite":
            found += from_sqlite(path)
        elif path.suffix == ".jsonl":
            found += _from_jsonl(path)
    return found


@pytest.mark.parametrize("ref, records", recorded(),
                         ids=lambda value: getattr(value, "session_id", ""))
def test_every_recorded_record_comes_back_equal(ref: SessionRef, records: list[Any]) -> None:
    events = []
    for record in records:
        mapped = events_for(record, ref)
        assert mapped.warnings == []
        events += mapped.events
    assert all(len(event.canonical) <= EVENT_BYTES_MAX for event in events)
    assert records_for(events, ref.session_id) == records
    again = [event.id for record in records for event in events_for(record, ref).events]
    assert again == [event.id for event in events]


@pytest.mark.parametrize("ref, records", recorded(),
                         ids=lambda value: getattr(value, "session_id", ""))
def test_the_projection_reads_as_the_conversation(ref: SessionRef, records: list[Any]) -> None:
    """Each user message is an inbound message, each answer with text an outbound one,
    each tool result a tool message, in the order OpenClaw wrote them."""
    events = [event for record in records for event in events_for(record, ref).events]
    roles = {"user": "inbound", "assistant": "outbound", "toolResult": "tool"}
    expected = [roles[record["message"]["role"]] for record in records
                if record["type"] == "message" and (
                    record["message"]["role"] != "assistant"
                    or any(block.get("type") == "text" for block in
                           record["message"]["content"]))]
    view = rebuild(events[0].session_key, events)
    assert [message.role for message in view.messages] == expected
