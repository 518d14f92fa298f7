"""What the OpenClaw command tests share: a store imported into a data folder and the
command run in this process; stand-in processes holding the locks OpenClaw takes (its
gateway's lock, its per-machine locks) and a look at whether one can be taken; the
transcripts recorded from a real OpenClaw, read from its SQLite stores; and what the
tests of an agent's cursor share (``test_bridge_cursor*``): sessions deleted as OpenClaw
deletes them, moved into SQLite as its import does, and sinks that keep each cursor
saved or fail a save."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import zstandard
from click.testing import CliRunner, Result

from crdt.log.store import EventStore
from node.client.errors import ClientError
from node.main import main
from node.openclaw.bridge import Bridge
from node.openclaw.mapping import SessionRef
from node.openclaw.session_keys import KEYS_SUFFIX
from node.openclaw.state import StateFolder
from tests.node.openclaw import transcript
from tests.node.openclaw.waiting import CountingSink
from tests.support.openclaw import FakeGateway, turn_records, write_jsonl

SID, KEY = transcript.SESSION_ID, transcript.SESSION_KEY


def cli(*args: str) -> Result:
    """``clawsync openclaw`` run with ``args`` in this process."""
    return CliRunner().invoke(main, ["openclaw", *args], catch_exceptions=False)


def imported(tmp_path: Path) -> tuple[Path, Path]:
    """Device A's OpenClaw store imported into a data folder; device B's empty state."""
    gateway = FakeGateway(tmp_path / "a")
    gateway.open_session(KEY, SID)
    gateway.add(SID, transcript.records()[:5])
    gateway.add(SID, transcript.records()[5:], zstd=True)
    data = tmp_path / "data"
    result = cli("import", "--state-dir", str(tmp_path / "a"), "--data-dir", str(data))
    assert result.exit_code == 0, result.output
    (tmp_path / "b" / "agents").mkdir(parents=True)
    return data, tmp_path / "b"


#: A stand-in's code: says it runs (its command line is its own by then), then waits.
WAIT_PY = "import sys; print(flush=True); sys.stdin.read()"


def start_ticks(pid: int) -> int:
    """When ``pid`` started, as OpenClaw writes it in the lock on Linux: field 22 of
    ``/proc/<pid>/stat``."""
    stat = Path(f"/proc/{pid}/stat").read_bytes()
    return int(stat[stat.rfind(b")") + 2:].split()[19])


def gateway_lock(state: Path, pid: int, start: int | None, state_dir: Path | str | None = None
                 ) -> Path:
    """The lock OpenClaw 2026.9's gateway holds while it runs, as one wrote it (its
    ``startTime`` left out as an older or non-Linux one may)."""
    lock = state / "tmp" / f"openclaw-{os.getuid()}" / "gateway.state.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    payload = {"pid": pid, "ownerId": "6778bf67-e0a2-4f1c-8d27-26d23ef18194",
               "cronOwnerProjection": "dynamic-default-v1",
               "createdAt": "2026-12-05T13:20:18.608Z",
               "configPath": str(state / "openclaw.json"),
               "stateDir": str(state if state_dir is None else state_dir),
               "port": 58005, **({} if start is None else {"startTime": start})}
    lock.write_text(json.dumps(payload, indent=2) + "\n" + "\t \t\t " * 16)
    return lock


@contextmanager
def stand_in(*argv: str, executable: str | None = None) -> Iterator[int]:
    """A process running ``argv``, once it runs its own code (it has exec'd: its command
    line and start time are its own); its pid. Ended (stdin closed) on exit."""
    process = subprocess.Popen(list(argv), executable=executable, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == b"\n"
        yield process.pid
    finally:
        process.communicate()


def export(state: Path, data: Path) -> tuple[int, str]:
    """``clawsync openclaw export`` of ``KEY`` from ``data`` into ``state``: exit code, output."""
    result = cli("export", KEY, "--state-dir", str(state), "--data-dir", str(data))
    return result.exit_code, result.output


#: A stand-in for an OpenClaw process at work: it holds the lock file as OpenClaw does
#: (an open transaction on an empty SQLite file: exclusive, or a read for
#: ``state-handles``), says so, then waits.
HOLD_PY = """import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=0)
db.execute("PRAGMA journal_mode = MEMORY")
if sys.argv[2] == "state-handles":
    db.execute("BEGIN")
    db.execute("SELECT rootpage FROM sqlite_schema LIMIT 1").fetchall()
else:
    db.execute("BEGIN EXCLUSIVE")
print(flush=True)
sys.stdin.read()
"""


#: Try to take a lock as OpenClaw does, waiting for no one: prints "taken" or why not.
TAKE_PY = """import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=0)
try:
    db.execute("PRAGMA journal_mode = MEMORY")
    db.execute("BEGIN EXCLUSIVE")
    print("taken")
except sqlite3.OperationalError as error:
    print(error)
"""


def take(path: Path) -> str:
    """Whether another process can take the lock ``path`` now."""
    return subprocess.run([sys.executable, "-c", TAKE_PY, str(path)], check=True,
                          capture_output=True, text=True).stdout.strip()


#: A writer holding the locks of a state folder (argv[1]) under a lock root (argv[2]).
HOLDING_PY = """import sys
from pathlib import Path
from node.openclaw.state_locks import holding_state_locks
with holding_state_locks(Path(sys.argv[1]), Path(sys.argv[2])):
    print(flush=True)
    sys.stdin.read()
"""


#: The transcripts recorded from a real OpenClaw.
DATA = Path(__file__).resolve().parents[2] / "data" / "openclaw"
Recorded = tuple[SessionRef, list[Any]]


def agent_of(path: Path) -> str:
    """The agent a recorded store or transcript belongs to, by its folder."""
    parts = path.parts
    return parts[parts.index("agents") + 1] if "agents" in parts[:-1] else "main"


def from_sqlite(path: Path) -> Iterator[Recorded]:
    """Every session of a recorded SQLite store, with its records in order."""
    with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True) as db:
        keys = dict(db.execute("SELECT session_id, session_key FROM session_windows"))
        rows = db.execute("SELECT session_id, event_json, event_zstd FROM transcript_events "
                          "ORDER BY session_id, seq").fetchall()
    sessions: dict[str, list[Any]] = {}
    for session_id, text, packed in rows:
        if text is None:
            text = zstandard.ZstdDecompressor().decompressobj().decompress(packed)
        sessions.setdefault(session_id, []).append(json.loads(text))
    for session_id, records in sessions.items():
        yield SessionRef(agent_of(path), keys.get(session_id, session_id), session_id), records


def look_as_python_314(monkeypatch: pytest.MonkeyPatch) -> None:
    """``Path.exists`` and ``Path.is_dir`` as from Python 3.14 on: False for any
    ``OSError`` (a folder that cannot be looked into too), where 3.11 to 3.13 raise it."""

    def exists(path: Path, *, follow_symlinks: bool = True) -> bool:
        try:
            path.stat() if follow_symlinks else path.lstat()
        except OSError:
            return False
        return True

    def is_dir(path: Path, *, follow_symlinks: bool = True) -> bool:
        try:
            mode = path.stat().st_mode if follow_symlinks else path.lstat().st_mode
        except OSError:
            return False
        return stat.S_ISDIR(mode)

    monkeypatch.setattr(Path, "exists", exists)
    monkeypatch.setattr(Path, "is_dir", is_dir)


def records(session_id: str, turns: int = 2) -> list[dict[str, Any]]:
    now_ms = int(time.time() * 1000)
    return turn_records(session_id, [now_ms - 9000 + n * 1000 for n in range(turns)])


def delete_session(gateway: FakeGateway, session_id: str) -> None:
    """What deleting a session leaves of it in OpenClaw's store: nothing, in one commit."""
    gateway.db.execute("BEGIN")
    tables = ["transcript_events", "transcript_event_identities", "session_windows"]
    for table in tables + (["transcript_rewrite_watermarks"] if gateway.rewrites else []):
        gateway.db.execute(f"DELETE FROM {table} WHERE session_id = ?", (session_id,))
    gateway.db.execute("DELETE FROM session_nodes WHERE current_session_id = ?", (session_id,))
    gateway.db.execute("COMMIT")


def delete_transcript(state: Path, session_key: str, session_id: str) -> None:
    """As OpenClaw deletes a session of the older layout: its entry out of the index, its
    file renamed aside (``<id>.jsonl.deleted.<time>``, which no reader takes)."""
    folder = state / "agents" / "main" / "sessions"
    index = json.loads((folder / "sessions.json").read_text())
    del index[session_key]
    (folder / "sessions.json").write_text(json.dumps(index))
    (folder / f"{session_id}.jsonl").rename(folder / f"{session_id}.jsonl.deleted.2026-12-06")


#: The cursor's limit of entries in the tests of sessions moved into SQLite: an agent of
#: this many sessions fits, and each of them in both stores does not. A file's tail mark
#: (``cursor_room.TAIL_PREFIX``) is not counted: it is kept only while there is room.
SMALL = 4


class SavingSink(CountingSink):
    """An embedded store that keeps each agent's cursor saved (not the keys remembered
    beside it, ``node.openclaw.session_keys``: a cursor of their own, in their limits)."""

    def __init__(self, store: EventStore) -> None:
        super().__init__(store)
        self.saved: list[dict[str, int]] = []

    async def save_cursor(self, name: str, cursor: dict[str, int]) -> None:
        if not name.endswith(KEYS_SUFFIX):
            self.saved.append(dict(cursor))
        await super().save_cursor(name, cursor)


def saving_bridge(state: Path, store: EventStore) -> tuple[Bridge, SavingSink, StateFolder]:
    sink, folder = SavingSink(store), StateFolder(state)
    return Bridge(folder, sink), sink, folder


def small_agent(state: Path) -> list[str]:
    """``SMALL`` sessions in the agent's JSONL folder."""
    ids = [f"{n:08d}-0000-4000-8000-000000000000" for n in range(SMALL)]
    for n, session_id in enumerate(ids):
        write_jsonl(state, f"agent:main:s{n}", session_id, records(session_id))
    return ids


def into_sqlite(state: Path, ids: list[str]) -> FakeGateway:
    """The first half of ``openclaw doctor --session-sqlite import``: each session's rows
    in the agent's SQLite store (its JSONL file still there)."""
    gateway = FakeGateway(state)
    for n, session_id in enumerate(ids):
        gateway.open_session(f"agent:main:s{n}", session_id)
        gateway.add(session_id, records(session_id))
    return gateway


def files_moved_away(state: Path, ids: list[str]) -> None:
    """Its second half: the JSONL files moved out of the sessions folder, the index
    emptied."""
    sessions = state / "agents" / "main" / "sessions"
    for session_id in ids:
        (sessions / f"{session_id}.jsonl").rename(state / f"{session_id}.jsonl.imported")
    (sessions / "sessions.json").write_text("{}")


class FailingSink(SavingSink):
    """Its ``fail_at``-th cursor save from now (1: the next) fails as a node that is
    down does; ``watch`` then runs the same bridge again."""

    fail_at = 0

    async def save_cursor(self, name: str, cursor: dict[str, int]) -> None:
        self.fail_at -= 1
        if self.fail_at == 0:
            raise ClientError("cannot reach the node", status=None)
        await super().save_cursor(name, cursor)
