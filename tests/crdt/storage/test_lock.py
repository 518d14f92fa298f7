"""The folder lock: what its file says of the holder, for a start refused the folder to
say (a node's one line, as an older release wrote and reads it; a ``Holder``'s words);
and against another start's read of the folder (``FolderLock.none_holds``, a shared
lock): a start that meets one waits for it, briefly, and is refused as such, never in
the name of the last node that wrote the lock file."""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import sys
import threading
import time
import types
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crdt.errors import FolderInUse
from crdt.log.store import EventStore
from crdt.storage import lock
from crdt.storage.lock import LOCK_NAME, PEEK_WAIT_S, FolderLock, Holder

ROOT = Path(__file__).resolve().parents[3]
#: Seconds a test waits for a process or a thread to get where it is told to.
WAIT_S = 30

#: Locks the folder ``sys.argv[1]`` and exits: the lock file names a process gone.
LOCK_AND_EXIT = "import sys; from crdt.storage.lock import FolderLock; " \
                "FolderLock.acquire(sys.argv[1]).release()"
#: Reads the folder ``sys.argv[1]`` as a start does before it opens it, says so, and
#: ends the read once a line comes on stdin.
#: A holder that says what it is, as an ``openclaw import --data-dir`` does.
IMPORT = Holder("clawsync openclaw import", "let that import end first")
READING = """import sys
from crdt.storage.lock import FolderLock
with FolderLock.none_holds(sys.argv[1]):
    print("reading", flush=True)
    sys.stdin.readline()
"""


def python(code: str, folder: Path, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code, str(folder)], text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, **kwargs)


@contextmanager
def read_by_another(folder: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process reading ``folder``, until a line is written to its stdin or the
    block ends."""
    with python(READING, folder, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as reader:
        assert reader.stdin is not None and reader.stdout is not None
        try:
            assert reader.stdout.readline() == "reading\n"
            yield reader
        finally:
            if not reader.stdin.closed:
                reader.stdin.close()
            assert reader.wait(WAIT_S) == 0


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder whose lock file names a node that has exited."""
    assert python(LOCK_AND_EXIT, tmp_path).wait(WAIT_S) == 0
    return tmp_path


def test_a_start_that_meets_a_long_read_is_refused_as_such(folder: Path) -> None:
    with read_by_another(folder), pytest.raises(FolderInUse) as refused:
        FolderLock.acquire(folder)
    assert str(refused.value) == (
        f"the data folder {folder.resolve()} is being read by another start (for more than "
        f"{PEEK_WAIT_S} s); try again once it has started or given up")
    FolderLock.acquire(folder).release()  # the read over: taken


def test_a_read_that_ends_while_a_start_waits_lets_it_lock(
        folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    waiting = threading.Event()

    def sleep(seconds: float) -> None:
        waiting.set()  # the start met the read and waits for it
        time.sleep(seconds)

    monkeypatch.setattr(lock, "time", types.SimpleNamespace(
        monotonic=time.monotonic, sleep=sleep, strftime=time.strftime, gmtime=time.gmtime))
    monkeypatch.setattr(lock, "PEEK_WAIT_S", WAIT_S)  # however slow this machine is
    with read_by_another(folder) as reader, ThreadPoolExecutor(1) as pool:
        taking = pool.submit(FolderLock.acquire, folder)
        while not waiting.wait(0.01) and not taking.done():
            pass
        assert reader.stdin is not None
        reader.stdin.close()  # the read ends
        taking.result(WAIT_S).release()


def said(folder: Path) -> str:
    """What the lock file of ``folder`` says of its holder."""
    return (folder / LOCK_NAME).read_text()


def test_a_nodes_lock_file_is_the_one_line_an_older_release_writes(tmp_path: Path) -> None:
    """An older release refused a folder reads its whole lock file as the holder and adds
    its own "stop that node first": a second line would break its refusal in two and
    say that twice."""
    FolderLock.acquire(tmp_path).release()
    assert re.fullmatch(rf"process {os.getpid()} \([^)\n]+\) on [^\n]+, since [^\n]+",
                        said(tmp_path)), said(tmp_path)


def test_the_holders_start_is_said_in_utc_whatever_the_zone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The refusal is read by a person perhaps on another machine: its time is UTC, in
    the commands' style, not the holder's local time named by its zone."""
    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    try:
        before = datetime.now(UTC).replace(microsecond=0)
        FolderLock.acquire(tmp_path).release()
        after = datetime.now(UTC)
    finally:
        monkeypatch.undo()
        time.tzset()
    since = re.search(r", since (\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ)$", said(tmp_path))
    assert since, said(tmp_path)
    at = datetime.strptime(since[1], "%Y-%m-%d %H:%M:%SZ").replace(tzinfo=UTC)
    assert before <= at <= after


def test_the_one_line_lock_file_of_an_older_release_is_a_nodes(tmp_path: Path) -> None:
    fd = os.open(tmp_path / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held as an older release's node holds it
        os.write(fd, b"process 1 (clawsync) on h, since then")
        with pytest.raises(FolderInUse) as refused:
            FolderLock.acquire(tmp_path)
    finally:
        os.close(fd)
    assert str(refused.value) == (
        f"the data folder {tmp_path.resolve()} is in use by process 1 (clawsync) on h, "
        "since then; stop that node first, or give this one another folder")


def test_a_holder_is_said_only_in_the_lock_file_of_the_open_it_is_given_to(
        tmp_path: Path) -> None:
    """A start refused a store opened with a ``Holder`` is told the holder's words; a
    store opened without one, meanwhile or after, in the same process, or after an open
    with one that was refused, is a node's: its one line."""
    ours, other, held = tmp_path / "ours", tmp_path / "other", tmp_path / "held"
    with EventStore.open(ours, holder=IMPORT):
        with pytest.raises(FolderInUse) as refused:
            FolderLock.acquire(ours)
        with EventStore.open(other):
            assert "\n" not in said(other), said(other)
    assert f"in use by process {os.getpid()} (clawsync openclaw import) on " \
        in str(refused.value), refused.value
    assert str(refused.value).endswith(
        "; let that import end first, or give this one another folder"), refused.value
    held.mkdir()
    holding = FolderLock.acquire(held)
    with pytest.raises(FolderInUse):
        EventStore.open(held, holder=IMPORT)
    holding.release()
    for folder in (ours, held):
        with EventStore.open(folder):
            assert "\n" not in said(folder) and "import" not in said(folder), said(folder)
