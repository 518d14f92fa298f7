"""The real OpenClaw (``tests/openclaw/install``) importing what ``export`` wrote for a
session id with spaces around it: its import reads ``<trimmed id>.jsonl`` and keeps the
id as the index names it, so the session comes back under the id its events carry.
Skipped where OpenClaw is not installed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from node.openclaw.export import export, transcript_bytes
from node.openclaw.records import Transcript
from tests.node.openclaw import transcript
from tests.openclaw.device import Device, installed

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not installed(), reason="run tests/openclaw/install")]

#: Spaces JavaScript's trim takes off (an ideographic space, a byte order mark, a line
#: separator, a tab) around a plain id.
SPACED_ID = "\u3000\ufeffs1\u2028\t"


def test_openclaw_imports_a_session_id_with_spaces_around_as_exported(tmp_path: Path) -> None:
    # The model is never asked: an unused loopback port.
    device = Device(tmp_path / "device", "http://127.0.0.1:9/v1").setup()
    records = transcript.records()
    records[0] = {**records[0], "id": SPACED_ID}
    written = export(device.state_dir, Transcript("main", transcript.SESSION_KEY, SPACED_ID,
                                                  records), "main", 1796500801000)
    assert written.path.name == "s1.jsonl"
    done = device.run("doctor", "--session-sqlite", "import", "--json")
    assert not written.path.exists(), done.stdout  # imported, and moved to its archive
    with sqlite3.connect(f"file:{device.store_path}?mode=ro", uri=True) as db:
        assert db.execute("SELECT session_key, current_session_id FROM session_nodes"
                          ).fetchall() == [(transcript.SESSION_KEY, SPACED_ID)]
        rows = db.execute("SELECT event_json FROM transcript_events WHERE session_id = ? "
                          "AND event_json IS NOT NULL ORDER BY seq", (SPACED_ID,)).fetchall()
        count, = db.execute("SELECT count(*) FROM transcript_events").fetchone()
    assert count == len(records)
    assert json.loads(rows[0][0])["id"] == SPACED_ID


def test_openclaw_imports_the_file_an_entry_names_as_that_entrys_session(
        tmp_path: Path) -> None:
    """Why export refuses an index whose ``sessionFile`` names another session's
    transcript (``_check_session_files``): OpenClaw's import reads the file an entry
    names, whatever session it holds, and imports it under the entry's session id."""
    device = Device(tmp_path / "device", "http://127.0.0.1:9/v1").setup()
    written = export(device.state_dir, Transcript("main", transcript.SESSION_KEY, "s1",
                                                  transcript.records()), "main", 1)
    index_path = device.sessions_dir / "sessions.json"
    index = json.loads(index_path.read_text())
    index["agent:main:explicit:other"] = {"sessionId": "s2", "updatedAt": 2,
                                          "sessionFile": str(written.path)}
    index_path.write_text(json.dumps(index))
    device.run("doctor", "--session-sqlite", "import", "--json")
    with sqlite3.connect(f"file:{device.store_path}?mode=ro", uri=True) as db:
        counts = dict(db.execute("SELECT session_id, count(*) FROM transcript_events "
                                 "GROUP BY session_id").fetchall())
    assert counts == {"s1": len(transcript.records()), "s2": len(transcript.records())}


def test_openclaw_imports_a_topic_file_export_continued(tmp_path: Path) -> None:
    """Older OpenClaw named a forum topic's transcript ``<id>-topic-<n>.jsonl``, and its
    entry names that file: export continues it there, and OpenClaw imports the whole
    session from it."""
    device = Device(tmp_path / "device", "http://127.0.0.1:9/v1").setup()
    sessions = device.sessions_dir
    sessions.mkdir(parents=True, exist_ok=True)
    key = "agent:main:telegram:group:-1001:topic:42"
    sid = transcript.SESSION_ID
    records = transcript.records()
    topic = sessions / f"{sid}-topic-42.jsonl"
    topic.write_bytes(transcript_bytes(records[:2]))
    (sessions / "sessions.json").write_text(json.dumps(
        {key: {"sessionId": sid, "updatedAt": 1, "sessionFile": str(topic)}}))
    written = export(device.state_dir, Transcript("main", key, sid, records), "main", 2)
    assert written.path == topic
    assert sorted(path.name for path in sessions.iterdir()) == [topic.name, "sessions.json"]
    done = device.run("doctor", "--session-sqlite", "import", "--json")
    assert not topic.exists(), done.stdout  # imported, and moved to its archive
    with sqlite3.connect(f"file:{device.store_path}?mode=ro", uri=True) as db:
        assert db.execute("SELECT session_key, current_session_id FROM session_nodes"
                          ).fetchall() == [(key, sid)]
        counts = dict(db.execute("SELECT session_id, count(*) FROM transcript_events "
                                 "GROUP BY session_id").fetchall())
    assert counts == {sid: len(records)}
