"""One process per data folder: an exclusive OS lock, held while the folder is open.

Two nodes on one folder would each number their events from the same counters: the log
would hold two events at one position (measured before this lock: positions 1, 1, 2, 2,
3, 3). So opening a folder takes an exclusive ``flock`` on ``clawsync.lock`` inside it,
without waiting for a holder: a second ``clawsync serve`` or embedded ``EventStore`` on
the folder is refused at once, with a message naming the folder and the process that
holds it. Only another start's read of the folder (a shared lock, ``none_holds``, held
while it reads the log's meta record, changing nothing) is waited for, up to
``PEEK_WAIT_S``: such a read is short, and no process holds the folder meanwhile, so a
refusal then would name as the holder the last node that wrote the lock file, which may
have exited long ago. The operating system drops the lock when its holder exits, crashed
or not, so a killed node never leaves a stale lock behind.

The lock file says who holds it: a line naming the process. A holder that says what it
is (a ``Holder``: an ``openclaw watch`` on the folder is no node to stop) adds its
command to that line and, on a second, what makes way for it, which a refused start
says. A node's file is the one line an older release wrote, and reads; a file of one
line is a node's (``NODE_WAY``).

>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> first = FolderLock.acquire(folder)
>>> FolderLock.acquire(folder)
Traceback (most recent call last):
crdt.errors.FolderInUse: the data folder ... is in use by process ...
>>> first.release()
>>> FolderLock.acquire(folder).release()
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from crdt.errors import FolderInUse

#: The lock file inside a data folder; it also says who holds it.
LOCK_NAME = "clawsync.lock"
#: Most bytes of the holder's description read back for an error message.
HOLDER_BYTES_MAX = 512
#: Seconds ``acquire`` waits for another start's read of the folder (``none_holds``: a
#: shared lock, held while a log's meta record is read) to end, ``PEEK_POLL_S`` apart:
#: such a read is short, and refusing a start for it would name, as the holder, the
#: last node that wrote the lock file, which may have exited long ago.
PEEK_WAIT_S = 0.5
PEEK_POLL_S = 0.01
#: What makes way for a holder that said nothing of itself (no ``Holder``): a node, as
#: every holder was before other commands opened data folders, and a lock file of such a
#: release still says.
NODE_WAY = "stop that node first"


class Holder(NamedTuple):
    """What a holder that is no node says of itself in its lock file, for a process
    refused its folder to say."""

    #: Its command's name (``clawsync openclaw watch``), never its options: they may
    #: carry a token.
    what: str
    #: What makes way for it (``"stop that watch first"``).
    way: str


class FolderLock:
    """An exclusive lock on a folder for as long as this object is not released."""

    def __init__(self, folder: Path, fd: int) -> None:
        self.folder = folder
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, folder: str | os.PathLike[str],
                holder: Holder | None = None) -> FolderLock:
        """Lock ``folder`` (which must exist) or raise ``FolderInUse``: at once if a
        process holds it, after up to ``PEEK_WAIT_S`` if another start reads it. The
        lock file names this process as ``holder`` says, or else as a node."""
        path = Path(folder).resolve()
        fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _lock_waiting_for_reads(path, fd)
            # Who holds it, for the error message of the next one to try. Never the
            # command line: it may carry a token.
            # UTC, as the commands say every time to people: the reader may be
            # on another machine, or in another zone.
            since = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
            what = holder.what if holder else Path(sys.argv[0]).name or "python"
            said = f"process {os.getpid()} ({what}) on {os.uname().nodename}, since {since}"
            if holder:  # a node's stays one line: an older release adds its own way
                said += f"\n{holder.way}"
            os.ftruncate(fd, 0)
            os.pwrite(fd, said.encode(), 0)
        except BaseException:
            # Closing drops the lock too: a holder that could not be written (a full
            # disk) leaves no descriptor holding the folder for the rest of the process.
            # The file stays, even one made here: another process (an older clawsync
            # too) may have opened it meanwhile, and would lock it once unnamed, while a
            # later start locked a new one: two holders of one folder.
            os.close(fd)
            raise
        return cls(path, fd)

    @staticmethod
    @contextmanager
    def none_holds(folder: str | os.PathLike[str]) -> Iterator[None]:
        """While no process holds ``folder``: a shared lock on its lock file, taken
        without writing to it (``acquire`` writes who holds it), so that what is read
        from the folder meanwhile changes nothing there. A folder with no lock file was
        never opened by a node: nothing is locked. ``FolderInUse`` at once if a process
        holds it."""
        path = Path(folder).resolve()
        try:
            fd = os.open(path / LOCK_NAME, os.O_RDONLY)
        except FileNotFoundError:
            yield
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                raise _in_use(path, fd) from None
            yield
        finally:
            os.close(fd)

    def release(self) -> None:
        """Unlock (closing the file drops the lock); a second call does nothing."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _lock_waiting_for_reads(folder: Path, fd: int) -> None:
    """Lock ``fd`` (the lock file of ``folder``) exclusively. Refused while a process
    holds it; while only reads hold it (shared: ``none_holds``), tried again for up to
    ``PEEK_WAIT_S``, then refused as being read."""
    deadline = time.monotonic() + PEEK_WAIT_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        try:  # taken shared: no process holds it, only reads do
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _in_use(folder, fd) from None
        fcntl.flock(fd, fcntl.LOCK_UN)
        if time.monotonic() >= deadline:
            raise FolderInUse(f"the data folder {folder} is being read by another start "
                              f"(for more than {PEEK_WAIT_S} s); try again once it has "
                              "started or given up")
        time.sleep(PEEK_POLL_S)


def _in_use(folder: Path, fd: int) -> FolderInUse:
    """The refusal of ``folder``, whose lock file ``fd`` another process holds, naming it
    and what makes way for it, as it wrote them (a ``Holder``'s; a node's if one line)."""
    said = os.pread(fd, HOLDER_BYTES_MAX, 0).decode(errors="replace").strip()
    holder, _newline, way = said.partition("\n")
    return FolderInUse(f"the data folder {folder} is in use by {holder or 'another process'}; "
                       f"{way.strip() or NODE_WAY}, or give this one another folder")
