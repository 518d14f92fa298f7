"""OpenClaw state folders for tests: the per-agent SQLite store with OpenClaw 2026.9.6's
tables (the columns the bridge reads, and a few beside them), written in WAL mode by a
separate connection as OpenClaw's gateway does (``FakeGateway``, ``write_sessions``),
and the older JSONL layout; and ``clawsync openclaw watch`` run on one (``watching``)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import zstandard

from node.openclaw.state import cursor_name
from tests.support.processes import LineReader, NodeProcess, spawn_cli, stop_cli

SCHEMA = """
CREATE TABLE session_nodes (session_key TEXT PRIMARY KEY, current_session_id TEXT,
    entry_json TEXT, status TEXT, created_at INTEGER, updated_at INTEGER,
    parent_session_key TEXT, label TEXT, display_name TEXT, archived_at INTEGER);
CREATE TABLE session_windows (session_id TEXT PRIMARY KEY, session_key TEXT,
    previous_session_id TEXT, reason TEXT, created_at INTEGER, channel TEXT,
    model_provider TEXT, model TEXT);
CREATE TABLE transcript_events (session_id TEXT NOT NULL, seq INTEGER NOT NULL,
    event_json TEXT, event_zstd BLOB, event_utf8_bytes INTEGER, created_at INTEGER,
    PRIMARY KEY (session_id, seq));
CREATE TABLE transcript_event_identities (session_id TEXT, event_id TEXT, seq INTEGER,
    event_type TEXT, parent_id TEXT, PRIMARY KEY (session_id, event_id));
"""

#: OpenClaw 2026.9.6's tables of rewrites and cold storage, as its schema has them (less
#: the foreign keys): a rewrite puts a new generation in one transaction with its rows
#: (``rotateTranscriptGenerationInTransaction``), an append keeps the one there.
REWRITE_SCHEMA = """
CREATE TABLE session_transcript_cold_archives (session_id TEXT NOT NULL PRIMARY KEY,
    generation TEXT NOT NULL, archive_name TEXT NOT NULL UNIQUE,
    archive_sha256 TEXT NOT NULL CHECK (length(archive_sha256) = 64),
    event_count INTEGER NOT NULL CHECK (event_count >= 1),
    raw_bytes INTEGER NOT NULL CHECK (raw_bytes >= 0),
    archive_bytes INTEGER NOT NULL CHECK (archive_bytes >= 0),
    last_seq INTEGER NOT NULL, archived_at INTEGER NOT NULL,
    storage TEXT NOT NULL CHECK (storage IN ('file', 'sqlite')), archive_blob BLOB) STRICT;
CREATE TABLE transcript_rewrite_watermarks (session_id TEXT NOT NULL PRIMARY KEY,
    generation TEXT NOT NULL, updated_at INTEGER NOT NULL) STRICT;
"""


def cursor_read_to(node: NodeProcess, state: Path, next_seqs: dict[str, int],
                   agent_id: str = "main") -> bool:
    """Whether the cursor ``node`` keeps for the agent's SQLite store names, for each
    session id of ``next_seqs``, that seq as the next to read or a later one. Stored
    comes before the cursor's save: a watch stopped between the two reads those
    records again (as already stored)."""
    name = quote(cursor_name(state, agent_id), safe="")
    cursor = node.get(f"/v1/cursors/{name}")["cursor"]
    return all(cursor.get(f"db:{sid}", 0) >= seq for sid, seq in next_seqs.items())


#: Seconds a watch has to end once told to stop (``watching``), before it is killed.
WATCH_STOP_S = 30.0


@contextlib.contextmanager
def watching(node: NodeProcess, state: Path
             ) -> Iterator[tuple[subprocess.Popen[str], LineReader]]:
    """``clawsync openclaw watch`` of ``state`` into ``node``, running, and what it says
    on its standard error, read as it comes; stopped (SIGTERM, killed after
    ``WATCH_STOP_S``) as the block ends, if it has not ended."""
    watch = spawn_cli(node, "openclaw", "watch", "--state-dir", str(state))
    try:
        yield watch, LineReader(watch.stderr)  # type: ignore[arg-type]
    finally:
        stop_cli(watch, timeout_s=WATCH_STOP_S)


def write_sessions(state: Path, sessions: dict[tuple[str, str], list[dict[str, Any]]]
                   ) -> None:
    """An agent's SQLite store in ``state`` (``FakeGateway``) with ``sessions``, by session
    key and id, each with its records; all opened, then their records added in order."""
    gateway = FakeGateway(state)
    for key, session_id in sessions:
        gateway.open_session(key, session_id)
    for (_, session_id), records in sessions.items():
        gateway.add(session_id, records)
    gateway.close()


def database_path(state: Path, agent_id: str = "main") -> Path:
    return state / "agents" / agent_id / "agent" / "openclaw-agent.sqlite"


class FakeGateway:
    """Writes an agent's SQLite store as OpenClaw does: WAL mode, one commit per call.
    With ``rewrites``, it has OpenClaw 2026.9.6's rewrite generations and cold storage
    too (``REWRITE_SCHEMA``); without, it is the layout of the stores before them."""

    def __init__(self, state: Path, agent_id: str = "main", *, rewrites: bool = False
                 ) -> None:
        path = database_path(state, agent_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        if not self.db.execute("SELECT 1 FROM sqlite_master").fetchone():
            self.db.executescript(SCHEMA + (REWRITE_SCHEMA if rewrites else ""))
        self.rewrites = bool(self.db.execute(
            "SELECT 1 FROM sqlite_master WHERE name = 'transcript_rewrite_watermarks'"
        ).fetchone())
        path.chmod(0o600)

    def open_session(self, session_key: str, session_id: str) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("INSERT OR REPLACE INTO session_nodes (session_key, "
                            "current_session_id, status, created_at, updated_at) "
                            "VALUES (?, ?, 'active', 0, 0)", (session_key, session_id))
            self.db.execute("INSERT OR REPLACE INTO session_windows (session_id, session_key, "
                            "reason, created_at) VALUES (?, ?, 'new', 0)",
                            (session_id, session_key))

    def add(self, session_id: str, records: list[dict[str, Any]], *, zstd: bool = False,
            first_seq: int | None = None) -> None:
        """Append records in one commit (zstd rows for all but a header when ``zstd``)."""
        if first_seq is None:
            top = self.db.execute("SELECT MAX(seq) FROM transcript_events WHERE session_id = ?",
                                  (session_id,)).fetchone()[0]
            first_seq = 0 if top is None else top + 1
        self.db.execute("BEGIN")
        for seq, record in enumerate(records, first_seq):
            text = json.dumps(record)
            if zstd and record.get("type") != "session":
                packed = zstandard.ZstdCompressor().compress(text.encode())
                self.add_row(session_id, seq, None, packed, commit=False)
            else:
                self.add_row(session_id, seq, text, None, commit=False)
        if self.rewrites:  # ensureTranscriptGenerationInTransaction: an append keeps it
            self.db.execute("INSERT OR IGNORE INTO transcript_rewrite_watermarks VALUES "
                            "(?, ?, 0)", (session_id, uuid.uuid4().hex))
        self.db.execute("COMMIT")

    def rewrite(self, session_id: str, start_seq: int, records: list[dict[str, Any]]
                ) -> None:
        """Replace a session's rows from ``start_seq`` on (all of them from 0) by
        ``records`` from that seq, and give it a new generation, in one commit: as
        OpenClaw's replaceSqliteTranscriptSuffixInTransaction and
        replaceSqliteTranscriptEventsInTransaction do."""
        self.db.execute("BEGIN")
        self.db.execute("DELETE FROM transcript_events WHERE session_id = ? AND seq >= ?",
                        (session_id, start_seq))
        for seq, record in enumerate(records, start_seq):
            self.add_row(session_id, seq, json.dumps(record), None, commit=False)
        if self.rewrites:
            self.db.execute("INSERT OR REPLACE INTO transcript_rewrite_watermarks VALUES "
                            "(?, ?, 0)", (session_id, uuid.uuid4().hex))
        self.db.execute("COMMIT")

    def archive_cold(self, session_id: str) -> list[tuple[Any, ...]]:
        """Move a session's rows to cold storage as OpenClaw does (its archive row in, its
        rows out, its generation untouched, in one commit); the rows, to put back."""
        rows = self.db.execute("SELECT * FROM transcript_events WHERE session_id = ? "
                               "ORDER BY seq", (session_id,)).fetchall()
        generation = self.db.execute("SELECT generation FROM transcript_rewrite_watermarks "
                                     "WHERE session_id = ?", (session_id,)).fetchone()[0]
        self.db.execute("BEGIN")
        self.db.execute("INSERT INTO session_transcript_cold_archives VALUES (?, ?, ?, ?, ?, "
                        "0, 0, ?, 0, 'file', NULL)",
                        (session_id, generation, session_id + ".jsonl.zst", "0" * 64,
                         len(rows), rows[-1][1]))
        self.db.execute("DELETE FROM transcript_events WHERE session_id = ?", (session_id,))
        self.db.execute("COMMIT")
        return rows

    def restore_cold(self, session_id: str, rows: list[tuple[Any, ...]]) -> None:
        """Put a cold session's rows back with their seqs, its archive row out."""
        self.db.execute("BEGIN")
        self.db.executemany(f"INSERT INTO transcript_events VALUES "
                            f"({', '.join('?' * len(rows[0]))})", rows)
        self.db.execute("DELETE FROM session_transcript_cold_archives WHERE session_id = ?",
                        (session_id,))
        self.db.execute("COMMIT")

    def add_row(self, session_id: str, seq: int, text: str | None, packed: bytes | None,
                commit: bool = True) -> None:
        """One raw row, as given (a damaged one too)."""
        size = len(text.encode()) if text is not None else len(packed or b"")
        self.db.execute("INSERT INTO transcript_events (session_id, seq, event_json, "
                        "event_zstd, event_utf8_bytes, created_at) VALUES (?, ?, ?, ?, ?, 0)",
                        (session_id, seq, text, packed, size))

    def close(self) -> None:
        self.db.close()


def write_jsonl(state: Path, session_key: str, session_id: str, records: list[dict[str, Any]],
                agent_id: str = "main", tail: bytes = b"") -> Path:
    """The older layout: ``<session id>.jsonl`` (plus ``tail`` raw bytes) and its entry in
    ``sessions.json``."""
    folder = state / "agents" / agent_id / "sessions"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{session_id}.jsonl"
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in records) + tail)
    index_path = folder / "sessions.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    index[session_key] = {"sessionId": session_id, "updatedAt": 0, "sessionFile": str(path)}
    index_path.write_text(json.dumps(index))
    return path


def replaced_anew(path: Path) -> None:
    """``path`` replaced by a copy of itself: another file (another inode), as a rewrite
    through a temporary file and a rename makes it."""
    fresh = path.with_name(path.name + ".tmp")
    fresh.write_bytes(path.read_bytes())
    os.replace(fresh, path)


def iso_ms(ms: int) -> str:
    """``ms`` (since the epoch) as a record's ``timestamp``: UTC, to the millisecond."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def turn_records(session_id: str, times_ms: list[int]) -> list[dict[str, Any]]:
    """A header, then one user message per time."""
    out: list[dict[str, Any]] = [{"type": "session", "version": 3, "id": session_id,
                                  "timestamp": iso_ms(times_ms[0]), "cwd": "/w"}]
    for n, ms in enumerate(times_ms):
        out.append({"type": "message", "id": f"{session_id[-4:]}{n:04x}",
                    "parentId": out[-1]["id"] if n else None, "timestamp": iso_ms(ms),
                    "message": {"role": "user", "content": f"turn {n}", "timestamp": ms}})
    return out


#: Transcripts recorded from a real OpenClaw 2026.9.6 (tests/data/openclaw/README.md).
RECORDED = Path(__file__).resolve().parents[1] / "data" / "openclaw"


class RecordedGateway:
    """A copy of a recorded OpenClaw store, turned live: WAL mode, and the recorded rows
    from ``keep`` on taken out, to be committed again (``replay``) as OpenClaw did."""

    def __init__(self, state: Path, scenario: str = "basic", keep: int = 0,
                 agent_id: str = "main") -> None:
        path = database_path(state, agent_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes((RECORDED / scenario / "openclaw-agent.sqlite").read_bytes())
        self.rows = [row for row in json.loads((RECORDED / scenario / "rows.json").read_text())
                     ["transcript_events"] if row["seq"] >= keep]
        self.db = sqlite3.connect(path, isolation_level=None)
        # A CHECK of OpenClaw's schema calls octet_length (SQLite >= 3.43 has it built in).
        self.db.create_function("octet_length", 1,
                                lambda value: None if value is None else len(
                                    value.encode() if isinstance(value, str) else value),
                                deterministic=True)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("DELETE FROM transcript_events WHERE seq >= ?", (keep,))

    def replay(self, count: int) -> list[dict[str, Any]]:
        """Commit the next ``count`` recorded rows, one transaction each; their records."""
        done, self.rows = self.rows[:count], self.rows[count:]
        columns = ("session_id", "seq", "event_json", "event_zstd", "event_utf8_bytes",
                   "created_at", "navigation_json")
        for row in done:
            values = [row[name] for name in columns]
            if values[3] is not None:
                values[3] = base64.b64decode(values[3])
            self.db.execute(f"INSERT INTO transcript_events ({', '.join(columns)}) "
                            f"VALUES ({', '.join('?' * len(columns))})", values)
        return [row["record"] for row in done]

    def close(self) -> None:
        self.db.close()
