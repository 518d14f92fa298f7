"""The data folder's format marker (``node.data_format``): written on a first start and on
the first start of a folder an earlier version wrote; a folder of a newer format is
refused, in one line naming both versions, and left as it was."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from crdt import codec
from crdt.log.records import LOG_FORMAT, META
from crdt.log.store import EventStore
from crdt.storage.disk import DiskStorage
from crdt.storage.lock import LOCK_NAME
from node.config import software_version
from node.data_format import DATA_FORMAT, FORMAT_FILE
from node.device import KEY_FILE
from tests.support.log_formats import bump_log_format, damage_log, files_of, serve_on
from tests.support.processes import (
    CLI_TIMEOUT_S,
    NodeProcess,
    child_env,
    free_port,
    one_error_line,
    run_cli,
)


def test_a_new_folder_is_marked_with_this_versions_format(tmp_path: Path) -> None:
    with NodeProcess(tmp_path) as node:
        marker = json.loads((node.data_dir / FORMAT_FILE).read_text())
    assert marker == {"format": DATA_FORMAT, "written_by": software_version()}


def test_a_folder_without_a_marker_starts_as_before_and_is_marked(tmp_path: Path) -> None:
    with NodeProcess(tmp_path) as node:
        assert run_cli(node, "append", "s1", "message_received", "content=hi").returncode == 0
    # A folder an earlier version wrote: all of it but the marker.
    (node.data_dir / FORMAT_FILE).unlink()
    with node:
        assert [e["session_key"] for e in node.get("/v1/events")["events"]][-1] == "s1"
        assert json.loads((node.data_dir / FORMAT_FILE).read_text())["format"] == DATA_FORMAT


def test_a_folder_of_a_newer_format_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    with NodeProcess(tmp_path) as node:
        assert run_cli(node, "append", "s1", "message_received", "content=hi").returncode == 0
    (node.data_dir / FORMAT_FILE).write_text(
        json.dumps({"format": DATA_FORMAT + 1, "written_by": "9.1.0"}))
    before = files_of(node.data_dir)
    for storage in ([], ["--storage", str(tmp_path / "elsewhere")]):
        started = subprocess.run(
            [*node.command()[:4], "--data-dir", str(node.data_dir), "--host", "127.0.0.1",
             "--port", str(free_port()), *storage],
            capture_output=True, text=True, env=child_env(), timeout=CLI_TIMEOUT_S)
        line = one_error_line(started)
        assert f"written by clawsync 9.1.0 (data folder format {DATA_FORMAT + 1})" in line
        assert f"clawsync {software_version()} reads format {DATA_FORMAT} at most" in line
        assert "Run clawsync 9.1.0 or a later version on it" in line
        assert files_of(node.data_dir) == before
    assert not (tmp_path / "elsewhere").exists()


def openclaw_import(node: NodeProcess, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``clawsync openclaw import`` into ``node``'s data folder (the node stopped), from
    an OpenClaw state folder with no agent's files."""
    state = tmp_path / "openclaw"
    (state / "agents").mkdir(parents=True)
    return subprocess.run(
        [*node.command()[:3], "openclaw", "import", "--data-dir", str(node.data_dir),
         "--state-dir", str(state)],
        capture_output=True, text=True, env=child_env(), timeout=CLI_TIMEOUT_S)


def test_openclaw_import_refuses_a_folder_of_a_newer_format(tmp_path: Path) -> None:
    with NodeProcess(tmp_path) as node:
        pass
    (node.data_dir / FORMAT_FILE).write_text(json.dumps({"format": DATA_FORMAT + 1}))
    before = files_of(node.data_dir)
    imported = openclaw_import(node, tmp_path)
    line = one_error_line(imported)
    assert "written by a newer clawsync" in line, line
    assert files_of(node.data_dir) == before


def test_a_marker_writer_that_is_no_version_is_not_shown(tmp_path: Path) -> None:
    """The marker's ``written_by`` is shown as the log's is: an empty or blank name, or
    one that is not a version's, reads "a newer clawsync"."""
    with NodeProcess(tmp_path) as node:
        pass
    for writer in ("", "   ", "9.1 beta"):
        (node.data_dir / FORMAT_FILE).write_text(
            json.dumps({"format": DATA_FORMAT + 1, "written_by": writer}))
        read = subprocess.run(
            [*node.command()[:3], "device", "--data-dir", str(node.data_dir)],
            capture_output=True, text=True, env=child_env(), timeout=CLI_TIMEOUT_S)
        line = one_error_line(read)
        assert f"written by a newer clawsync (data folder format {DATA_FORMAT + 1}); " \
            in line, line
        assert "Run a newer clawsync on it" in line, line


def test_device_data_dir_refuses_a_folder_of_a_newer_format(tmp_path: Path) -> None:
    with NodeProcess(tmp_path) as node:
        pass
    (node.data_dir / FORMAT_FILE).write_text(
        json.dumps({"format": DATA_FORMAT + 1, "written_by": "9.1.0"}))
    before = files_of(node.data_dir)
    for shown in ([], ["--id"], ["--json"]):
        read = subprocess.run(
            [*node.command()[:3], "device", "--data-dir", str(node.data_dir), *shown],
            capture_output=True, text=True, env=child_env(), timeout=CLI_TIMEOUT_S)
        line = one_error_line(read)
        assert f"written by clawsync 9.1.0 (data folder format {DATA_FORMAT + 1})" in line
        assert read.stdout == ""
    assert files_of(node.data_dir) == before


def _meta(folder: Path) -> dict[str, object]:
    """The log's meta record in ``folder``, as stored."""
    storage = DiskStorage.open(folder)
    try:
        meta: dict[str, object] = codec.decode_trusted(storage.get(META))
        return meta
    finally:
        storage.close()


def test_openclaw_import_says_which_version_wrote_the_log(tmp_path: Path) -> None:
    """An import into a fresh folder writes the log as a node does: its meta record
    names this version (``written_by``), as the marker does."""
    state = tmp_path / "openclaw"
    (state / "agents").mkdir(parents=True)
    folder = tmp_path / "fresh"
    imported = subprocess.run(
        [sys.executable, "-m", "node.main", "openclaw", "import", "--data-dir", str(folder),
         "--state-dir", str(state)],
        capture_output=True, text=True, env=child_env(), timeout=CLI_TIMEOUT_S)
    assert imported.returncode == 0, imported.stderr
    assert _meta(folder)["written_by"] == software_version()
    marker = json.loads((folder / FORMAT_FILE).read_text())
    assert marker["written_by"] == software_version()


def test_a_log_of_a_newer_format_is_refused_in_words(tmp_path: Path) -> None:
    """A log of a newer format in a folder whose marker says no newer one (a marker
    lost, a log moved in): the log's own check says what the marker's does."""
    with NodeProcess(tmp_path) as node:
        assert run_cli(node, "append", "s1", "message_received", "content=hi").returncode == 0
    bump_log_format(node.data_dir, written_by=None)  # no writer said: "a newer clawsync"
    before = _held(node.data_dir)
    started = subprocess.run(
        [*node.command()[:4], "--data-dir", str(node.data_dir), "--host", "127.0.0.1",
         "--port", str(free_port())],
        capture_output=True, text=True, env=child_env(), timeout=CLI_TIMEOUT_S)
    imported = openclaw_import(node, tmp_path)
    for line in (one_error_line(started), one_error_line(imported)):
        assert f"the event log in {node.data_dir} was written by a newer clawsync " \
            f"(log format {LOG_FORMAT + 1}); clawsync {software_version()} reads format " \
            f"{LOG_FORMAT} at most. Run a newer clawsync on it" in line, line
    assert _held(node.data_dir) == before


def test_openclaw_import_leaves_a_log_of_a_newer_format_as_it_is(tmp_path: Path) -> None:
    """``openclaw import --data-dir`` reads the log's meta record, changing nothing,
    before it opens the log to write (as ``serve`` does): a log of a newer format is
    refused with every byte of the folder as it was, and says so."""
    with NodeProcess(tmp_path) as node:
        assert run_cli(node, "append", "s1", "message_received", "content=hi").returncode == 0
    bump_log_format(node.data_dir, written_by=None)
    before = files_of(node.data_dir)
    line = one_error_line(openclaw_import(node, tmp_path))
    assert line == (f"Error: the event log in {node.data_dir} was written by a newer clawsync "
                    f"(log format {LOG_FORMAT + 1}); clawsync {software_version()} reads "
                    f"format {LOG_FORMAT} at most. Run a newer clawsync on it (nothing in it "
                    "was changed)\n")
    assert files_of(node.data_dir) == before


def test_the_log_says_which_version_wrote_it(tmp_path: Path) -> None:
    """The meta record names this version once the node has written (``written_by``);
    a log a newer version wrote is refused naming that version, as the marker's is;
    a name too long, empty or blank, or not a version's (it does not print, holds a
    space) is not shown."""
    with NodeProcess(tmp_path) as node:
        assert run_cli(node, "append", "s1", "message_received", "content=hi").returncode == 0
    assert _meta(node.data_dir)["written_by"] == software_version()
    for writer, said in [("9.1.0", "clawsync 9.1.0"), (None, "a newer clawsync"),
                         ("9" * 41, "a newer clawsync"), ("9.1\x1b[2J", "a newer clawsync"),
                         ("9.1\u202e0", "a newer clawsync"), ("", "a newer clawsync"),
                         ("   ", "a newer clawsync"), ("9.1 rm -rf", "a newer clawsync")]:
        bump_log_format(node.data_dir, written_by=writer)
        started = subprocess.run(
            [*node.command()[:4], "--data-dir", str(node.data_dir), "--host", "127.0.0.1",
             "--port", str(free_port())],
            capture_output=True, text=True, env=child_env(), timeout=CLI_TIMEOUT_S)
        line = one_error_line(started)
        assert f"the event log in {node.data_dir} was written by {said} (log format " \
            f"{LOG_FORMAT + 1}); clawsync {software_version()} reads format {LOG_FORMAT} " \
            f"at most. Run {said}" in line, line
        assert "\x1b" not in started.stderr and "\u202e" not in started.stderr
        if writer == "9.1.0":
            assert "Run clawsync 9.1.0 or a later version on it" in line, line


@pytest.mark.parametrize(("how", "said"), [
    ("bytes", "is damaged (it is not CBOR)"),
    ("no_node_id", "is damaged (it has no node_id field)"),
    ("true", "is damaged (its format reads True, not 1)"),
    ("list", "is damaged (it is not a map)"),
    ("seq_null", "is damaged (its seq field is not a whole number)"),
    ("sessions_text", "is damaged (its sessions field is not a whole number)"),
    ("no_format", "is damaged (it has no format field)"),
    ("long", f"is damaged (its format reads {'x' * 40!r}… (5000 characters), not 1)")],
    ids=lambda value: value if " " not in value else "")
def test_a_damaged_log_is_refused_in_one_line_and_left_as_it_is(
        tmp_path: Path, how: str, said: str) -> None:
    """No traceback, and exit 1 from both ``serve`` and ``openclaw``, as for a newer
    format: a damaged log is not the user's input (exit 2) and is never rewritten."""
    log = tmp_path / "log"
    damage_log(log, how)
    before = _held(log)
    started = serve_on(tmp_path / "data", log)
    state = tmp_path / "openclaw"
    (state / "agents").mkdir(parents=True)
    imported = subprocess.run(
        [sys.executable, "-m", "node.main", "openclaw", "import", "--data-dir", str(log),
         "--state-dir", str(state)],
        capture_output=True, text=True, env=child_env(), timeout=CLI_TIMEOUT_S)
    for line in (one_error_line(started), one_error_line(imported)):
        assert f"the event log in {log} {said}: restore the folder from a backup" in line
    assert _held(log) == before
    assert not (tmp_path / "data").exists()  # the new data folder is not made


def test_a_refused_log_leaves_no_device_key_behind(tmp_path: Path) -> None:
    """A folder holding only a log of a newer format (moved in): the key is made before
    the log is read (the log signs with it), and is removed again as the log is refused,
    so that no later start takes it for the folder's identity."""
    folder = tmp_path / "moved"
    EventStore.open(folder).close()
    bump_log_format(folder)
    before = _held(folder)
    started = subprocess.run(
        [sys.executable, "-m", "node.main", "serve", "--data-dir", str(folder),
         "--host", "127.0.0.1", "--port", str(free_port())],
        capture_output=True, text=True, env=child_env(), timeout=CLI_TIMEOUT_S)
    assert "(nothing in it was changed)" in one_error_line(started)
    assert _held(folder) == before
    assert not (folder / KEY_FILE).exists()


#: A node started on the data folder ``sys.argv[1]`` that says on stdout when it makes a
#: device key there.
SERVE_SAYING_KEYS_MADE = """import sys
from pathlib import Path
from node import device
from node.config import Config
from node.server.run import run
real_create = device.create_file
def create_file(path, *args, **kwargs):
    print("made", path, flush=True)
    return real_create(path, *args, **kwargs)
device.create_file = create_file
run(Config(data_dir=Path(sys.argv[1]), host="127.0.0.1", port=0))
"""


@pytest.mark.parametrize("refused", ["newer", "damaged"])
def test_a_refused_log_is_refused_before_a_key_is_made(tmp_path: Path, refused: str) -> None:
    """A key made first, and removed after the refused open let go of the folder, left a
    moment in which another start (its log elsewhere, ``--storage``) could lock the
    folder, take that key, and run with it once it was removed: the log is read first."""
    folder = tmp_path / "moved"
    if refused == "newer":
        EventStore.open(folder).close()
        bump_log_format(folder)
    else:
        damage_log(folder, "seq_null")
    started = subprocess.run([sys.executable, "-c", SERVE_SAYING_KEYS_MADE, str(folder)],
                             capture_output=True, text=True, env=child_env(),
                             timeout=CLI_TIMEOUT_S)
    assert started.returncode == 1, started.stderr[-500:]
    assert "made" not in started.stdout, started.stdout
    assert not (folder / KEY_FILE).exists()


def _held(folder: Path) -> tuple[dict[str, bytes], list[str]]:
    """What ``folder`` holds: its files but the lock (which each start rewrites) and the
    log, and the log's rows (opening it rewrites SQLite pages, not what they hold)."""
    files = {name: data for name, (_, _, data) in files_of(folder).items()
             if name not in (LOCK_NAME, "cache.db")}
    with contextlib.closing(sqlite3.connect(folder / "cache.db")) as log:
        return files, list(log.iterdump())


#: A node serving on ``sys.argv[1]`` whose marker files all fail as on a full disk (the
#: rest of the folder is written as before).
SERVE_ON_A_FULL_DISK = """import errno, os, sys
from pathlib import Path
from node.config import Config
from node.data_format import FORMAT_FILE
from node.server.run import run
real_open = os.open
def open_(path, flags, *args, **kwargs):
    if FORMAT_FILE in os.fspath(path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(path))
    return real_open(path, flags, *args, **kwargs)
os.open = open_
run(Config(data_dir=Path(sys.argv[1]), host="127.0.0.1", port=0, log_format="json"))
"""


def test_a_node_that_cannot_write_the_marker_serves_and_says_so(tmp_path: Path) -> None:
    """No marker means format 1, as the folder is read: a full disk does not stop the
    start (which would block the reads and forgetting that free space). The node warns,
    after its "serving" line, and marks the folder on a later start."""
    with NodeProcess(tmp_path) as node:
        assert run_cli(node, "append", "s1", "message_received", "content=hi").returncode == 0
    (node.data_dir / FORMAT_FILE).unlink()  # a folder an earlier version wrote
    with subprocess.Popen([sys.executable, "-c", SERVE_ON_A_FULL_DISK, str(node.data_dir)],
                          stderr=subprocess.PIPE, text=True, env=child_env()) as served:
        assert served.stderr is not None
        serving = json.loads(served.stderr.readline())
        warned = json.loads(served.stderr.readline())
        served.send_signal(signal.SIGTERM)
        served.stderr.read()
        assert served.wait(CLI_TIMEOUT_S) == 0
    assert serving["event"] == "serving" and serving["head"] >= 1, serving
    assert "data_format_marked" not in serving
    assert warned["event"] == "data folder not marked", warned
    assert warned["reason"].startswith(
        f"cannot write the data folder's format marker {node.data_dir / FORMAT_FILE}: "
        f"{os.strerror(errno.ENOSPC)}; "), warned
    assert not (node.data_dir / FORMAT_FILE).exists()
    with node:  # room again: marked
        assert json.loads((node.data_dir / FORMAT_FILE).read_text())["format"] == DATA_FORMAT
