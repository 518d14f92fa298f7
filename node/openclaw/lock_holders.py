"""Who holds a lock on a state folder or on one of OpenClaw's lock files, and whether
it is a writer of the folder (``clawsync openclaw export``) or some other process.

Whether a lock is held is asked with ``F_GETLK``, which takes no lock: OpenClaw, trying
to take one meanwhile, is never refused because of this look. It names the process
holding a record lock (SQLite's, on OpenClaw's lock files). A ``flock``, as on the state
folder itself, it does not see: ``/proc/locks`` names that process (Linux), matched by
the device of the folder's mount as that file numbers it (``/proc/self/fdinfo`` and
``/proc/self/mountinfo``; not ``st_dev``, which differs on btrfs subvolumes).

A writer marks what it holds with a shared lock of its own on a byte far past SQLite's
(``WRITER_MARK_OFFSET``): each of OpenClaw's lock files whose transaction it holds (a
record lock: a lock held by the process holding the mark on the same file is a
writer's), and the state folder once it holds the folder's lock (``mark_folder``: a
lock of the descriptor holding the folder's, which names no process; only a holder of
the folder's lock takes it). OpenClaw takes no
lock on the folder, but any other process may (``flock STATE command``): the process
holding it is named a writer's only when it is known to be one: it holds a writer's
mark, or its command line is an export's (``is_export_command``) and it has the folder
open (``has_open``). A writer of another
pid namespace, whose lock ``/proc/locks`` leaves out, is told by the folder's mark alone.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

from node.openclaw.state import ZOMBIE, StateFolderError, command_line, stat_fields

#: The byte of each of OpenClaw's lock files a writer holds a shared record lock on
#: while it holds the file's transaction: its mark (``state_locks._mark``); and of the
#: state folder while it holds the folder's lock (``mark_folder``).
#: SQLite locks the bytes from 2**30 to 2**30 + 511 (pending, reserved, shared); this
#: one is far past them, so that it is in no one's way, and a look at it tells a writer
#: apart without its own lock.
WRITER_MARK_OFFSET = 2**31
#: How many of a process's open descriptors ``has_open`` looks at (``/proc/<pid>/fd``),
#: each a ``stat`` that may wait on a hung network mount: past them, whether it has a
#: file open is not told (None), and the holder is named as where ``/proc`` does not
#: say. An export holds a few dozen; a server may hold tens of thousands, and looking
#: at each would hold up the refusal for as long.
PROC_FDS_SCANNED_MAX = 4096
#: ``struct flock`` as F_GETLK fills it: (type, whence, start, length, pid) on Linux;
#: (start, length, pid, type, whence) on the BSDs and macOS.
_FLOCK_LINUX = "@hhqqi4x"
_FLOCK_BSD = "@qqihh"


class StateLockUnreadable(StateFolderError):
    """A per-machine lock (or its folder) is there but cannot be looked at: whether an
    OpenClaw process works on the state folder cannot be told. ``path`` is what could
    not be looked at; ``errno`` the system's reason (``EACCES``: another user's)."""

    def __init__(self, message: str, path: Path, code: int | None) -> None:
        super().__init__(message)
        self.path, self.errno = path, code

    @property
    def denied(self) -> bool:
        """Refused by permissions: another user's, whom OpenClaw may run as."""
        return self.errno in (errno.EACCES, errno.EPERM)


@dataclass(frozen=True)
class HeldLock:
    """A lock held on a file, and who holds it: the pid of a process, as ``F_GETLK``
    names the holder of a record lock (which was alive when it was asked); 0 for one
    this process cannot see, of another pid namespace perhaps (``F_GETLK`` gives 0 for
    one of another pid namespace; a writer that only the folder's mark shows, which
    ``/proc/locks`` did not name, is of another pid namespace, or that file could not be
    read or matched); -1 for a lock held through an open file description
    (``F_OFD_SETLK``), which belongs to no one process. ``taker``: the pid is that of
    the process that took a ``flock``, as ``/proc/locks`` names it, which may have ended
    since, having handed its descriptor on to a process it started (``flock STATE
    command``, flock killed), its pid taken by another process since: ``holder`` says
    so, and names no process that does not have ``path`` open. ``writer``: the holder
    is a writer (``state_locks.holding_state_locks``), not an OpenClaw process."""

    path: Path
    pid: int
    writer: bool = False
    taker: bool = False

    def holder(self) -> str:
        """The process, for a person: its pid and its name (``openclaw-agent``).

        >>> HeldLock(Path("x"), -1).holder()
        'a process, through an open file description (no pid)'
        >>> HeldLock(Path("x"), 0).holder()
        'a process this one cannot see, of another pid namespace perhaps'
        """
        if self.pid == 0:  # of another pid namespace, likely, but not known to be (``pid``)
            return "a process this one cannot see, of another pid namespace perhaps"
        if self.pid < 0:
            return "a process, through an open file description (no pid)"
        handed_on = "a process it handed the lock to, one it started, may hold it"
        if _ended(self.pid):
            if self.taker:  # the lock outlives its taker when it was handed on
                return f"pid {self.pid}, which has ended: {handed_on}"
            return f"pid {self.pid}, which has ended since"
        if has_open(self.pid, self.path) is False:
            # Not the process that took the lock: that one ended, and its pid is another
            # process's now (or it closed its descriptor), which is not to be named.
            if self.taker:
                return (f"pid {self.pid}, which no longer has it open (it has ended, or "
                        f"closed it): {handed_on}")
            return f"pid {self.pid}, which has let go of it since"
        try:  # argv[0], as the process sets it: comm cuts "openclaw-gateway" short
            name = os.path.basename(command_line(self.pid)[0])
        except OSError:
            name = ""  # no /proc, or one that hides another user's processes
        return f"pid {self.pid}" + (f", {name}" if name else "")


def _ended(pid: int) -> bool:
    """Whether the process ``pid`` has ended, as the system says: it is gone, or it has
    exited and is not reaped yet (``ZOMBIE``: a killed ``flock`` whose parent has not
    waited for it), whose files are closed. A live one that ``/proc`` hides (hidepid),
    or another user's (``EPERM``), has not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        pass  # alive, and another user's (EPERM)
    try:
        return stat_fields(pid)[:1] == [ZOMBIE]
    except OSError:
        return False  # no /proc, or hidden: alive, as the signal said


def has_open(pid: int, path: Path) -> bool | None:
    """Whether the process ``pid`` has ``path`` open: a descriptor of it among
    ``/proc/<pid>/fd`` (the same file, however it was opened); None if that cannot be
    told: no ``/proc``, a process of another user (``EACCES``) or hidden (hidepid),
    ``path`` not there, or not among the first ``PROC_FDS_SCANNED_MAX`` descriptors of a
    process with more. A process holding a lock has the file open (``flock``, or a
    record lock, which closing any of its descriptors of the file drops), unless it
    handed its descriptor on to a process it started and closed its own.

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as file:
    ...     has_open(os.getpid(), Path(file.name))
    True
    >>> has_open(os.getpid(), Path("/"))
    False
    """
    try:
        wanted = os.stat(path)
        with os.scandir(f"/proc/{pid}/fd") as listing:
            # One past the bound: whether there were more than it is told.
            fds = [entry.path for entry in itertools.islice(listing, PROC_FDS_SCANNED_MAX + 1)]
    except OSError:
        return None
    for fd in fds[:PROC_FDS_SCANNED_MAX]:
        try:
            found = os.stat(fd)
        except FileNotFoundError:
            continue  # closed meanwhile
        except OSError:
            return None
        if (found.st_dev, found.st_ino) == (wanted.st_dev, wanted.st_ino):
            return True
    return None if len(fds) > PROC_FDS_SCANNED_MAX else False


def lock_file_holder(path: Path) -> HeldLock | None:
    """The process holding a lock on ``path``, one of OpenClaw's lock files, marked a
    writer's if it holds a writer's mark there too (whether or not that writer holds the
    state folder's lock); None if none is held (or the file is not there).
    ``StateLockUnreadable`` if it cannot be looked at."""
    held = _held(path)
    return held and _marked_writer(held)


def folder_lock_holder(state: Path, fd: int, paths: list[Path]) -> HeldLock | None:
    """The process holding the ``flock`` on the state folder ``state`` (open at ``fd``),
    as ``/proc/locks`` names it; None if the system does not say (not Linux), or it let
    go meanwhile. Named a writer's only if it is known to be one (``_is_writer``;
    ``paths``: OpenClaw's lock files of this user). A writer of another pid namespace,
    whose lock ``/proc/locks`` leaves out (it lists only the locks of processes it can
    name), is told by its mark alone (``mark_folder``), which names no process: pid 0; so
    is one that file does not name for another reason (it cannot be read, no line of it
    can be told to be this folder's)."""
    pid = _flock_holder(fd)
    if pid is None:
        mark = _folder_mark(state, fd)  # only a holder of the folder's lock takes it
        if mark is not None and mark.pid == -1:
            return HeldLock(state, 0, writer=True)
        return None
    return HeldLock(state, pid, writer=_is_writer(state, fd, pid, paths), taker=True)


def _folder_mark(state: Path, fd: int) -> HeldLock | None:
    """The writer's mark on the state folder (open at ``fd``): of an open file
    description, named -1 (``mark_folder``, Linux), or the record lock of a process;
    None if there is none, or it cannot be looked at."""
    try:
        return _ask(fd, state, WRITER_MARK_OFFSET, 1, mark=True)
    except OSError:
        return None


def _is_writer(state: Path, fd: int, pid: int, paths: list[Path]) -> bool:
    """Whether the process ``pid``, holding the lock on the state folder (open at
    ``fd``), is a writer of it, not any process taking a lock there (``flock STATE
    command``): the writer's mark on the folder is held, or it holds the mark on one of
    OpenClaw's lock files of this user (``paths``), or its command line is an export's
    (``is_export_command``) and it has the folder open (``has_open``), as far as
    ``/proc`` shows it."""
    mark = _folder_mark(state, fd)
    with contextlib.suppress(OSError):
        # A writer's mark is taken only by the holder of the folder's lock, and let go
        # before it: an open file description's, named -1 (``mark_folder``), or the
        # record lock of an older writer, named as its process. Still the same holder
        # after the look: the one before may have let go, and a writer taken both since.
        if mark is not None and mark.pid in (pid, -1) and _flock_holder(fd) == pid:
            return True
    if any(_marked_by(path, pid) for path in paths):
        return True
    try:  # and has it open: not a process that took the pid of the one that ended
        return is_export_command(command_line(pid)) and has_open(pid, state) is not False
    except OSError:
        return False


def is_export_command(argv: list[str]) -> bool:
    """Whether a command line runs ``clawsync openclaw export``: ``clawsync`` (or
    ``python [options] .../clawsync``, ``python -m node.main``) with ``openclaw export``
    among its arguments. Another command running one (``flock STATE clawsync ...``) is
    not one.

    >>> is_export_command(["/venv/bin/clawsync", "openclaw", "export", "s1"])
    True
    >>> is_export_command(["python3", "-m", "node.main", "openclaw", "export", "s1"])
    True
    >>> is_export_command(["flock", "/state", "clawsync", "openclaw", "export", "s1"])
    False
    >>> is_export_command(["/venv/bin/clawsync", "openclaw", "import", "export"])
    False
    """
    names = [os.path.basename(arg) for arg in argv]
    if names[:1] == ["clawsync"]:
        rest = argv[1:]
    elif names[:1] and names[0].startswith("python"):
        options = 1
        while options < len(argv) and argv[options].startswith("-") \
                and argv[options] != "-m":
            options += 1
        if names[options:options + 1] == ["clawsync"]:
            rest = argv[options + 1:]
        elif argv[options:options + 2] == ["-m", "node.main"]:
            rest = argv[options + 2:]
        else:
            return False
    else:
        return False
    return any(rest[i:i + 2] == ["openclaw", "export"] for i in range(len(rest)))


def _flock_holder(fd: int) -> int | None:
    """The process holding a ``flock`` on the file open at ``fd``, as ``/proc/locks``
    names it; None without ``/proc/locks`` (not Linux), or if it let go meanwhile, or if
    no line there can be told to be this file, or if that file leaves it out: it lists
    the locks of the processes of its reader's pid namespace only (a lock of a process
    outside it, or one whose taker has ended, is not there for a reader in a
    container)."""
    try:
        lines = Path("/proc/locks").read_text()
    except OSError:
        return None
    found = os.fstat(fd)
    device, inode = found.st_dev, found.st_ino
    with contextlib.suppress(OSError, ValueError):
        fdinfo = Path(f"/proc/self/fdinfo/{fd}").read_text()
        mounted = _mount_device(fdinfo, Path("/proc/self/mountinfo").read_text())
        device = device if mounted is None else mounted
        inode = _fdinfo_field(fdinfo, "ino") or inode
    return _flock_pid(lines, device, inode)


def _mount_device(fdinfo: str, mountinfo: str) -> int | None:
    """The device of the file system a descriptor is on, as the kernel numbers it in
    ``/proc/locks`` (the superblock's): that of its mount (``mnt_id`` in its
    ``/proc/self/fdinfo``) in ``/proc/self/mountinfo``, whose third field it is. Not
    ``st_dev``, which differs on some file systems (a btrfs subvolume's own number).
    None if either does not say.

    >>> mountinfo = "29 1 0:26 / / rw - btrfs /dev/vda2 rw\\n31 29 0:5 / /dev rw - devtmpfs x rw"
    >>> _mount_device("pos:\\t0\\nflags:\\t02200000\\nmnt_id:\\t29\\nino:\\t256\\n", mountinfo)
    26
    >>> _mount_device("pos:\\t0\\nflags:\\t02200000\\n", mountinfo) is None
    True
    """
    mount = _fdinfo_field(fdinfo, "mnt_id")
    if mount is None:
        return None
    for fields in map(str.split, mountinfo.splitlines()):
        if len(fields) > 2 and fields[0] == str(mount):
            major, minor = fields[2].split(":")
            return os.makedev(int(major), int(minor))
    return None


def _fdinfo_field(fdinfo: str, name: str) -> int | None:
    """A number ``/proc/self/fdinfo/<fd>`` gives (``mnt_id``, ``ino``); None if not."""
    for line in fdinfo.splitlines():
        key, _, value = line.partition(":")
        if key == name:
            return int(value)
    return None


def _flock_pid(locks: str, device: int, inode: int) -> int | None:
    """The pid of the process holding a ``flock`` on the file ``inode`` of ``device`` in
    ``locks``, the text of ``/proc/locks``; None if none. A line reads ``1: FLOCK
    ADVISORY  WRITE <pid> <major>:<minor>:<inode> 0 EOF`` (the numbers of the device in
    hex); a waiter's has ``->`` after its number.

    >>> locks = "1: FLOCK  ADVISORY  WRITE 4242 00:1a:256 0 EOF\\n"
    >>> _flock_pid(locks, os.makedev(0, 26), 256), _flock_pid(locks, os.makedev(0, 27), 256)
    (4242, None)
    """
    key = f"{os.major(device):02x}:{os.minor(device):02x}:{inode}"
    for fields in map(str.split, locks.splitlines()):
        if len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == key:
            return int(fields[4])
    return None


def _marked_writer(held: HeldLock) -> HeldLock:
    """``held``, marked a writer's if its process holds a writer's mark on its file
    (``state_locks._mark``), whether or not that writer holds the state folder's lock."""
    if held.pid <= 0 or not _marked_by(held.path, held.pid):
        return held  # no process to compare with, or not a writer's
    return HeldLock(held.path, held.pid, writer=True)


def _marked_by(path: Path, pid: int) -> bool:
    """Whether the process ``pid`` holds the writer's mark on the lock file ``path``."""
    try:
        mark = _held(path, WRITER_MARK_OFFSET)
    except StateLockUnreadable:
        return False
    return mark is not None and mark.pid == pid


def _held(path: Path, start: int = 0) -> HeldLock | None:
    """The first lock some other process holds on ``path``: on the whole file, or on
    the byte ``start`` alone when given; None if none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None  # no OpenClaw process of this user has used the folder
    except OSError as error:
        raise unreadable(path, error) from None
    try:
        return _ask(fd, path, start, 1 if start else 0)
    except OSError as error:
        raise unreadable(path, error) from None
    finally:
        os.close(fd)


def mark_folder(fd: int) -> None:
    """Take the writer's mark on the state folder open at ``fd`` (whose lock it holds): a
    shared lock on ``WRITER_MARK_OFFSET``, of the open file description where the system
    has such locks (``F_OFD_SETLK``, Linux), as the folder's lock (``flock``) is. A record
    lock of the process (``lockf``, elsewhere) is dropped as soon as the process closes
    any descriptor of the folder, however it opened it (a listing of the folder, say);
    this one lasts until ``fd`` is closed. ``OSError`` if it cannot be taken."""
    command = getattr(fcntl, "F_OFD_SETLK", None)
    if command is None:
        fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, 1, WRITER_MARK_OFFSET)
    else:
        fcntl.fcntl(fd, command, _flock_struct(fcntl.F_RDLCK, WRITER_MARK_OFFSET, 1))


def _flock_struct(kind: int, start: int, length: int) -> bytes:
    """``struct flock`` for a lock of ``kind`` on ``length`` bytes from ``start``."""
    if sys.platform != "linux":
        return struct.pack(_FLOCK_BSD, start, length, 0, kind, os.SEEK_SET)
    return struct.pack(_FLOCK_LINUX, kind, os.SEEK_SET, start, length, 0)


def _ask(fd: int, path: Path, start: int = 0, length: int = 0, *,
         mark: bool = False) -> HeldLock | None:
    """F_GETLK for a write lock on ``length`` bytes from ``start`` (0: to the end, the
    whole file by default): the first lock another process holds that would be in its
    way (any lock, as a write lock conflicts with every other); or any open file
    description's lock (``F_OFD_SETLK``), this process's too, named -1. ``mark``: only
    if that lock is a writer's mark (shared, on ``WRITER_MARK_OFFSET`` alone); another
    lock over it, which any process may take, is none, and may hide one."""
    bsd = sys.platform != "linux"
    layout = _FLOCK_BSD if bsd else _FLOCK_LINUX
    asked = _flock_struct(fcntl.F_WRLCK, start, length)
    answer = struct.unpack(layout, fcntl.fcntl(fd, fcntl.F_GETLK, asked))
    if bsd:
        (held_start, held_length, pid, kind, _whence) = answer
    else:
        (kind, _whence, held_start, held_length, pid) = answer
    if kind == fcntl.F_UNLCK:
        return None
    if mark and (kind, held_start, held_length) != (fcntl.F_RDLCK, WRITER_MARK_OFFSET, 1):
        return None
    return HeldLock(path, pid)


def unreadable(path: Path, error: OSError) -> StateLockUnreadable:
    """``path`` cannot be looked at (``error`` says why), for a person."""
    return StateLockUnreadable(
        f"{path} cannot be looked at ({error.strerror or error}), so whether an OpenClaw "
        "process works on the folder cannot be told", path, error.errno)
