"""What the OpenClaw command tests share: a store imported into a data folder and the
command run in this process; stand-in processes holding the locks OpenClaw takes (its
gateway's lock, its per-machine locks) and a look at whether one can be taken; and the
transcripts recorded from a real OpenClaw, read from its SQLite stores."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import zstandard
from click.testing import CliRunner, Result

from node.main import main
from node.openclaw.mapping import SessionRef
from tests.node.openclaw import transcript
from tests.support.openclaw import FakeGateway

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
