"""The real OpenClaw (``tests/openclaw/install``) against the per-machine locks that
``clawsync openclaw export`` holds while it writes (``holding_state_locks``): its import
gives up and touches nothing while they are held, and imports once they are not.
Skipped where OpenClaw is not installed; about 45 s."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node.openclaw.state_locks import holding_state_locks
from tests.openclaw.device import AGENT_ID, Device, installed

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not installed(), reason="run tests/openclaw/install")]

SESSION_ID = "5e55104d-0000-4000-8000-000000000001"
#: A transcript of the older layout, as export writes it: header, then one user message.
RECORDS = [
    {"type": "session", "version": 3, "id": SESSION_ID,
     "timestamp": "2026-12-05T20:00:00.000Z", "cwd": "/"},
    {"type": "message", "id": "0000aaaa", "parentId": None,
     "timestamp": "2026-12-05T20:00:01.000Z",
     "message": {"role": "user", "content": "hello", "timestamp": 1796500801000}},
]


def write_legacy(device: Device) -> Path:
    device.sessions_dir.mkdir(parents=True, exist_ok=True)
    transcript = device.sessions_dir / f"{SESSION_ID}.jsonl"
    transcript.write_text("".join(json.dumps(record) + "\n" for record in RECORDS))
    (device.sessions_dir / "sessions.json").write_text(json.dumps({
        f"agent:{AGENT_ID}:explicit:s1": {"sessionId": SESSION_ID, "updatedAt": 1796500801000,
                                          "sessionFile": str(transcript)}}))
    return transcript


def test_openclaw_import_waits_for_the_locks_export_holds(tmp_path: Path) -> None:
    # The model is never asked: an unused loopback port of this test's own.
    device = Device(tmp_path / "device", "http://127.0.0.1:9/v1").setup()
    transcript = write_legacy(device)
    with holding_state_locks(device.state_dir):
        held = device.run("doctor", "--session-sqlite", "import", check=False)
        assert held.returncode != 0, held.stdout + held.stderr
        assert "another OpenClaw process owns" in held.stderr \
            or "another SQLite maintenance command owns" in held.stderr, held.stderr
        assert transcript.exists() and (device.sessions_dir / "sessions.json").exists()
    done = device.run("doctor", "--session-sqlite", "import")
    assert not transcript.exists(), done.stdout  # imported, and moved to its archive
