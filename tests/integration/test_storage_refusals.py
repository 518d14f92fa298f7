"""A ``--storage DIR`` log refused at start (another version's, damaged, no database):
refused before the data folder is made, and its folder left byte for byte as it was;
what only the open can read (a WAL without its index, a lock held a while) goes on to
the open, and is said truthfully there."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from crdt.log.store import EventStore
from node.data_format import FORMAT_FILE, OPENED_UNCHANGED
from tests.support.log_formats import bump_log_format, damage_log, files_of, serve_on
from tests.support.ports import free_port
from tests.support.processes import CLI_TIMEOUT_S, child_env, one_error_line


def test_a_refused_storage_log_leaves_the_data_folder_as_it_was(tmp_path: Path) -> None:
    """``--storage`` naming a log of a newer format: no data folder made, none of its
    parents, and no lock file left in one that exists."""
    log = tmp_path / "log"
    EventStore.open(log).close()
    bump_log_format(log)
    empty = tmp_path / "empty"
    empty.mkdir()
    for data_dir in (tmp_path / "new" / "data", empty):
        line = one_error_line(serve_on(data_dir, log))
        assert line.rstrip().endswith("(nothing in it was changed)"), line
    assert not (tmp_path / "new").exists()
    assert list(empty.iterdir()) == []


def test_a_storage_log_that_is_no_database_leaves_no_data_folder(tmp_path: Path) -> None:
    """``--storage`` naming a folder whose ``cache.db`` is not a database (random bytes):
    refused before the data folder is made, no device key, no lock."""
    log = tmp_path / "log"
    log.mkdir()
    (log / "cache.db").write_bytes(random.Random(7).randbytes(5000))
    empty = tmp_path / "empty"
    empty.mkdir()
    for data_dir in (tmp_path / "new" / "data", empty):
        line = one_error_line(serve_on(data_dir, log))
        assert "file is not a database" in line, line
        assert "this start made" not in line, line
    assert not (tmp_path / "new").exists()
    assert list(empty.iterdir()) == []


def test_a_storage_that_is_a_file_is_a_usage_error_with_no_data_folder(
        tmp_path: Path) -> None:
    """``--storage`` naming a file, not a folder: a usage error that says so (exit 2, as
    for ``--data-dir``), before the data folder and its key are made; the open once
    failed on the file with "File exists", after making them."""
    log = tmp_path / "log"
    log.write_text("notes\n")
    result = serve_on(tmp_path / "data", log)
    assert_refused_before_anything_made(result, tmp_path / "data", log)
    assert f"--storage '{log}' is a file, not a folder" in result.stderr, result.stderr


def test_a_storage_inside_a_file_is_a_usage_error_with_no_data_folder(
        tmp_path: Path) -> None:
    """``--storage f/sub`` with ``f`` a file: the folder cannot be made, which is said as a
    usage error before the data folder is made; the open once failed on "Not a
    directory" (exit 1), leaving the data folder and its lock behind."""
    file = tmp_path / "f"
    file.write_text("notes\n")
    result = serve_on(tmp_path / "data", file / "sub" / "log")
    assert_refused_before_anything_made(result, tmp_path / "data", file)
    assert f"--storage '{file / 'sub' / 'log'}' is in '{file}', a file, not a folder" \
        in result.stderr, result.stderr


def test_a_data_dir_inside_a_file_is_a_usage_error_with_nothing_made(
        tmp_path: Path) -> None:
    """``--data-dir f/sub`` with ``f`` a file: said as a usage error (exit 2) naming the
    file, as ``--storage``'s is, before the event log's folder is made; the data folder
    once failed to be made with "Not a directory" (exit 1)."""
    file = tmp_path / "f"
    file.write_text("notes\n")
    result = serve_on(file / "sub", tmp_path / "log")
    assert_refused_before_anything_made(result, tmp_path / "log", file)
    assert f"--data-dir '{file / 'sub'}' is in '{file}', a file, not a folder" \
        in result.stderr, result.stderr


def test_a_data_dir_in_a_folder_that_cannot_be_entered_is_said_as_the_open_says_it(
        tmp_path: Path) -> None:
    """``--data-dir locked/x/y`` with ``locked`` a folder this user may not enter
    (mode 000; root without its capabilities, ``setpriv``, as root enters any folder):
    ``serve`` and ``openclaw import`` each end with the one line of a folder they cannot
    read (exit 1), not the traceback of looking for a file on the way in."""
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux) to drop root's capabilities")
    as_user = ["setpriv", "--inh-caps=-all", "--bounding-set=-all"] \
        if os.getuid() == 0 else []
    locked = tmp_path / "locked"
    locked.mkdir()
    (tmp_path / "openclaw" / "agents").mkdir(parents=True)
    data_dir = locked / "x" / "y"
    commands = (
        ("serve", "--data-dir", str(data_dir), "--host", "127.0.0.1", "--port",
         str(free_port())),
        ("openclaw", "import", "--data-dir", str(data_dir), "--state-dir",
         str(tmp_path / "openclaw")))
    locked.chmod(0)
    try:
        for command in commands:
            result = subprocess.run(
                [*as_user, sys.executable, "-m", "node.main", *command],
                capture_output=True, text=True, env=child_env(), timeout=CLI_TIMEOUT_S)
            assert one_error_line(result) == (
                "Error: cannot read the data folder's format marker "
                f"{data_dir / FORMAT_FILE}: Permission denied\n"), command
    finally:
        locked.chmod(0o700)
    assert list(locked.iterdir()) == []


def _refused_log(log: Path, how: str) -> str:
    """A log in ``log`` that a start refuses, ``how``: of a newer format; its meta record
    damaged; no database; or of a newer format said only in the WAL a crash left (with
    its index), which the open would have checkpointed. What the refusal says."""
    if how == "no_database":
        log.mkdir()
        (log / "cache.db").write_bytes(random.Random(7).randbytes(5000))
        return "file is not a database"
    if how == "damaged":
        damage_log(log, "bytes")
        return "is damaged (it is not CBOR)"
    EventStore.open(log).close()
    if how == "newer":
        bump_log_format(log)
        return "(nothing in it was changed)"
    # A reader left open keeps the WAL (its last connection would checkpoint it): the
    # files copied meanwhile are what a node killed after the bump leaves.
    live = log.with_name("live")
    log.rename(live)
    with contextlib.closing(sqlite3.connect(live / "cache.db")) as reader:
        reader.execute("SELECT count(*) FROM Cache").fetchone()
        bump_log_format(live)
        log.mkdir()
        for path in live.iterdir():
            (log / path.name).write_bytes(path.read_bytes())
    assert {"cache.db-wal", "cache.db-shm"} <= {path.name for path in log.iterdir()}
    return "(nothing in it was changed)"


@pytest.mark.parametrize("how", ["newer", "damaged", "no_database", "newer_in_wal"])
def test_a_refused_storage_log_is_left_byte_for_byte(tmp_path: Path, how: str) -> None:
    """``--storage`` naming a log that is refused: not a byte of its folder changes, not
    the database (a writable open rewrites its pages and settings), nor the lock file,
    and no WAL file or index is made or written (the check opens nothing writable)."""
    log = tmp_path / "log"
    said = _refused_log(log, how)
    before = files_of(log)
    line = one_error_line(serve_on(tmp_path / "data", log))
    assert said in line, line
    assert files_of(log) == before
    assert not (tmp_path / "data").exists()


def test_a_storage_log_whose_wal_lost_its_index_is_refused_by_the_open(tmp_path: Path
                                                                       ) -> None:
    """``--storage`` naming a log of a newer format said only in a WAL left without its
    index (``-shm``: a backup that copied the database and its WAL alone). Only a
    writable open reads such a WAL, recovering it, so the start goes on to the open,
    which refuses the log: it says that the log's records were not changed, not that
    nothing was, and that it made the data folder."""
    log = tmp_path / "log"
    _refused_log(log, "newer_in_wal")
    (log / "cache.db-shm").unlink()
    line = one_error_line(serve_on(tmp_path / "data", log))
    assert f"on it ({OPENED_UNCHANGED}) (this start made {tmp_path / 'data'}" in line, line
    assert "nothing in it was changed" not in line, line

    def rows(folder: Path) -> list[str]:
        with contextlib.closing(sqlite3.connect(folder / "cache.db")) as connection:
            return list(connection.iterdump())
    assert rows(log) == rows(log.with_name("live"))  # the records the copy was made of


#: A node serving on the data folder ``sys.argv[1]``, its log in ``sys.argv[2]``
#: (``--storage``), whose check of that log before the folder is made gives up on a held
#: lock after some 0.2 s, not diskcache's 60 s (its clock runs 300 times as fast during
#: the check), and says on stdout when the check is done; the open after it waits as
#: long as ever.
SERVE_WITH_A_SHORT_LOG_CHECK = """import sys, time, types
from pathlib import Path
import diskcache.core
from node.config import Config
from node.server import run as running
real_check = running.check_storage_log
def check_storage_log(config):
    diskcache.core.time = types.SimpleNamespace(time=lambda: time.time() * 300,
                                                sleep=time.sleep)
    try:
        real_check(config)
    finally:
        diskcache.core.time = time
        print("checked", flush=True)
running.check_storage_log = check_storage_log
running.run(Config(data_dir=Path(sys.argv[1]), storage=sys.argv[2], host="127.0.0.1",
                   port=0, log_format="json"))
"""


def test_a_storage_log_locked_a_while_is_not_refused_before_the_open(tmp_path: Path
                                                                      ) -> None:
    """``--storage`` naming a log another process holds locked (a backup, a ``sqlite3``
    shell) past the check's wait: the check lets it through, and the open, which waits
    for the lock, serves once it is let go. Refused there, the start failed for good."""
    log = tmp_path / "log"
    EventStore.open(log).close()
    locker = sqlite3.connect(log / "cache.db", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        with subprocess.Popen(
                [sys.executable, "-c", SERVE_WITH_A_SHORT_LOG_CHECK,
                 str(tmp_path / "data"), str(log)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env=child_env()) as served:
            assert served.stdout is not None and served.stderr is not None
            assert served.stdout.readline() == "checked\n"
            locker.rollback()
            line = served.stderr.readline()
            assert json.loads(line)["event"] == "serving", line[-500:]
            served.send_signal(signal.SIGTERM)
            said = served.stderr.read()
            assert served.wait(CLI_TIMEOUT_S) == 0, said[-500:]
    finally:
        locker.close()


def assert_refused_before_anything_made(result: subprocess.CompletedProcess[str],
                                        unmade: Path, file: Path) -> None:
    """``result`` is a usage error (exit 2), not a traceback: ``unmade``
    was not made, and the ``file`` in the way holds what it held ("notes")."""
    assert result.returncode == 2, result.stderr[-1000:]
    assert "Traceback" not in result.stderr
    assert not unmade.exists()
    assert file.read_text() == "notes\n"
