"""OpenClaw's per-machine locks on a state folder's database (OpenClaw 2026.9).

Besides the gateway's own lock in the state folder (``state.running_gateway``), every
OpenClaw process that works on a state folder coordinates with the others through SQLite
files in a folder it hard-codes per user, ``/tmp/openclaw-state-locks-<uid>/`` (mode
0700)::

    <family>.<first 8 hex of SHA-256 of the real path of <state>/state/openclaw.sqlite>.lock.sqlite

The files stay empty: what counts is the lock an open transaction holds on them
(``BEGIN EXCLUSIVE``, or a read for ``state-handles``), which the system drops when the
process ends, however it ends. A file with no lock on it is left over and means nothing.
As measured with ``openclaw@2026.9.6``: a running gateway holds ``gateway-lifecycle``
from its start to its stop; an ``openclaw agent --local`` turn holds
``gateway-lifecycle`` and ``state-lifecycle`` (exclusive) and ``state-handles`` (shared)
while it runs; ``setup`` and ``doctor`` take them while they work. Neither an ``agent
--local`` turn nor a gateway in another pid namespace shows in the gateway's own lock;
both show here.

Whether a lock is held, and by whom, is asked without taking it (``lock_holders``):
OpenClaw, trying to take one meanwhile, is never refused because of this look.

OpenClaw uses the folder only if it is a real folder (not a symbolic link) that belongs
to the user it runs as (the ``<uid>`` of its name); it makes its mode 0700 if it is not.
A folder that is not so holds no lock of that user's OpenClaw, whatever is in it: another
user may have made it first, and it must not stop every export.

A look is only true when it is made: an OpenClaw process may start right after it. A
writer of the state folder therefore takes the locks of its own user as OpenClaw does and
holds them while it writes (``holding_state_locks``). Measured with ``openclaw@2026.9.6``:
while any one of the three is held so, ``openclaw doctor --session-sqlite import`` gives
up and touches nothing (for ``gateway-lifecycle``: "another SQLite maintenance command
owns this OpenClaw state directory"), and a gateway or an ``agent`` turn cannot start.
Locks of other users can only be looked at: their folders are theirs (mode 0700), and a
file made there by this user would keep their OpenClaw from opening it. If this user's
folder is not there and cannot be made (a read-only or full ``/tmp``, a sandbox), no
OpenClaw process of this user can hold a lock in it either: nothing is taken then, and
the writer is told why.

Two writers are kept apart by a lock on the state folder itself, taken before OpenClaw's
and let go after them (``flock`` on the folder opened read-only: no file is made, the
system drops it when the process ends, and every writer of the folder on this machine,
of any user, asks for the same one, whatever path it was given). OpenClaw takes no such
lock, but any other process may (``flock STATE command``, say): the process holding it
is named a writer's only when it is known to be one (``lock_holders``). It holds where
OpenClaw's cannot be taken (this user's lock folder not there and not to be made). If it
cannot be taken for another reason than another process holding it (a file system
without ``flock`` on folders), OpenClaw's three are taken all the same, which keep out
OpenClaw processes and other writers alike. So that another writer is told apart there
too, and an older writer without the folder lock, a writer also marks each of OpenClaw's
lock files it holds with a record lock of its own on a byte past those SQLite locks
(``lock_holders.WRITER_MARK_OFFSET``); and the state folder so too, once it holds the
folder's lock, with a lock of the descriptor that holds it (``lock_holders.mark_folder``):
on Linux that one lasts however the writer opens and closes the folder meanwhile.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from node.openclaw.lock_holders import (
    WRITER_MARK_OFFSET,
    HeldLock,
    StateLockUnreadable,
    folder_lock_holder,
    lock_file_holder,
    mark_folder,
    unreadable,
)
from node.openclaw.state import StateFolderError

#: Where OpenClaw keeps them, for each user (``/tmp`` on every system but Windows).
LOCKS_ROOT = Path("/tmp")
LOCK_FOLDER_PREFIX = "openclaw-state-locks-"
#: The lock families, in the order they are looked at: the one a gateway holds first.
LOCK_FAMILIES = ("gateway-lifecycle", "state-lifecycle", "state-handles")
#: The database whose real path names the locks, inside the state folder.
STATE_DATABASE = Path("state") / "openclaw.sqlite"


class StateLockHeld(StateFolderError):
    """Another process held one of the per-machine locks, or the state folder's own
    (``path`` the folder then, and ``folder`` true), when this one tried to take it:
    ``held``, that process, unless it let go before it could be named, or the system does
    not say (``flock`` where there is no ``/proc/locks``). ``writer``: ``held`` is another
    writer (``holding_state_locks``), not an OpenClaw process; for the folder's lock,
    only when that is known, as any process may take it."""

    def __init__(self, path: Path, held: HeldLock | None, *, folder: bool = False) -> None:
        self.path, self.held, self.folder = path, held, folder
        who = ("another writer" if self.writer else "a process" if folder
               else "an OpenClaw process")
        super().__init__(f"{who} holds {'a lock on ' if folder else ''}{path}")

    @property
    def writer(self) -> bool:
        return self.held is not None and self.held.writer


def lock_paths(state: Path, uid: int, root: Path = LOCKS_ROOT) -> list[Path]:
    """The lock files of the state folder ``state`` for the user ``uid``.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     state = Path(os.path.realpath(folder)) / "claw"
    ...     digest = hashlib.sha256(f"{state}/state/openclaw.sqlite".encode()).hexdigest()
    ...     paths = lock_paths(state, 1000)
    ...     paths[0].name == f"gateway-lifecycle.{digest[:8]}.lock.sqlite"
    True
    >>> str(paths[0].parent)
    '/tmp/openclaw-state-locks-1000'
    """
    # OpenClaw's path is the real one, through symbolic links, as far as it exists.
    database = os.path.realpath(state / STATE_DATABASE)
    digest = hashlib.sha256(database.encode()).hexdigest()[:8]
    folder = root / f"{LOCK_FOLDER_PREFIX}{uid}"
    return [folder / f"{family}.{digest}.lock.sqlite" for family in LOCK_FAMILIES]


def held_state_lock(state: Path, root: Path | None = None, *,
                    own_held: bool = False) -> HeldLock | None:
    """A lock a live OpenClaw process holds on ``state``; None if none is held. Looked
    for in the lock folders (under ``root``, ``LOCKS_ROOT`` if None) of each user OpenClaw
    may run as on it: the one running this, the owner of its database (OpenClaw writes
    it), and the owner of the folder. ``StateLockUnreadable`` if a lock file or its
    folder is there but cannot be looked at: skipping it would say that nothing runs
    when something may. Except the folder owner's lock folder, closed to this user, when
    the database exists and is another user's: the folder made by root, say, and
    OpenClaw run as the database's owner, whose lock folder is the one that counts;
    refusing there would refuse every export. ``own_held``: this process holds the locks
    of the user it runs as (``holding_state_locks``), which are not looked at then: a
    lock of SQLite's is the process's, and closing any descriptor of its file drops it.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     held_state_lock(Path(folder), Path(folder)) is None
    True
    """
    root = LOCKS_ROOT if root is None else root
    try:
        database_owner: int | None = (state / STATE_DATABASE).stat().st_uid
    except (FileNotFoundError, NotADirectoryError):
        database_owner = None  # not made yet: OpenClaw would run as the folder's owner
    except OSError as error:
        raise unreadable(state / STATE_DATABASE, error) from None
    folder_owner = state.stat().st_uid
    # Users whose locks must be looked at: whether one can be is the question.
    needed = {os.getuid(), folder_owner if database_owner is None else database_owner}
    for uid in dict.fromkeys([os.getuid(), database_owner, folder_owner]):
        if uid is None or (own_held and uid == os.getuid()):
            continue
        try:
            held = _held_by(state, uid, root)
        except StateLockUnreadable as error:
            if uid in needed or not error.denied:
                raise
            continue
        if held is not None:
            return held
    return None


@contextmanager
def holding_state_locks(state: Path, root: Path | None = None) -> Iterator[str | None]:
    """Take the per-machine locks on ``state`` of the user running this, as an OpenClaw
    process takes them (an exclusive transaction on each lock file, the folder and the
    files made as OpenClaw makes them), and hold them until the block ends: an OpenClaw
    process of this user that starts meanwhile waits or gives up instead of working
    beside the writer. The lock on the state folder itself is taken first
    (``_take_folder_lock``), which keeps out every other writer of the folder, even where
    OpenClaw's are not taken. ``StateLockHeld`` if a process holds one already (nothing
    is held then); ``StateLockUnreadable`` if one of OpenClaw's cannot be taken for
    another reason. None of OpenClaw's is taken in a lock folder OpenClaw would not use,
    nor when the folder is not there and cannot be made: no OpenClaw of this user works
    there. The folder's lock, if it cannot be taken for another reason than a writer
    holding it, is gone without. Gives None when every lock is held, or else, for a
    person, what is not held and what still keeps out whom. Within the block, look at
    the other users' locks with ``held_state_lock(..., own_held=True)``, and open no
    lock file of this user's: closing it would drop SQLite's lock on it. The state
    folder may be opened and closed: its lock is the descriptor's, and so is its mark on
    Linux (``F_OFD_SETLK``); elsewhere the mark is a record lock of the process
    (``lockf``), which closing any descriptor of the folder drops (the lock holds, the
    writer is then told apart by its command line only).

    >>> with holding_state_locks(Path("."), Path("/proc")) as none_held:
    ...     print(none_held)  # doctest: +ELLIPSIS
    /proc/openclaw-state-locks-... cannot be made (No such file or directory): ... export
    """
    paths = lock_paths(state, os.getuid(), LOCKS_ROOT if root is None else root)
    taken: list[sqlite3.Connection] = []
    marks: list[int] = []
    writer: int | None = None
    try:
        writer, unlocked = _take_folder_lock(state, paths)
        told = _lock_folder_made(paths[0].parent)
        if told is None:
            for path in paths:
                taken.append(_take(path))
                mark = _mark(path)
                if mark is not None:
                    marks.append(mark)
        yield _what_is_not_held(told, unlocked)
    finally:
        for connection in reversed(taken):
            connection.close()  # the transaction, and its lock, end with it
        for mark in marks:  # after the transactions: closing it would have ended them
            os.close(mark)
        if writer is not None:
            os.close(writer)  # and the folder's, last


def _lock_folder_made(folder: Path) -> str | None:
    """Make this user's lock folder as OpenClaw does (mode 0700); None if it is there so,
    or else why no lock of this user's OpenClaw can be in it: OpenClaw would refuse it (a
    symbolic link, a file, another user's), or it is not there and cannot be made."""
    refused = (f"{folder} is not a folder of this user's, which OpenClaw would not use: "
               "no OpenClaw process of this user holds a lock there, and none is taken")
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:
        return refused  # a file, or a link to nothing
    except OSError as error:
        if not os.path.lexists(folder):
            return (f"{folder} cannot be made ({error.strerror or error}): no OpenClaw "
                    "process of this user can hold a lock there either, and none is "
                    "taken")
        raise unreadable(folder, error) from None
    try:
        found = os.lstat(folder)
        if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid():
            return refused
        if stat.S_IMODE(found.st_mode) != 0o700:
            os.chmod(folder, 0o700)
    except OSError as error:
        raise unreadable(folder, error) from None
    return None


def _take_folder_lock(state: Path, paths: list[Path]) -> tuple[int | None, str | None]:
    """Hold the lock on the state folder itself (``flock``, exclusive, through the folder
    opened read-only), then marked as a writer's (``mark_folder``: a shared lock on
    ``WRITER_MARK_OFFSET`` of the folder, through the same descriptor): that descriptor,
    which holds both until closed, and None; or None and why it cannot be taken (for a
    person): the folder cannot be opened so (no read permission) or its file system has
    no such lock (``ENOLCK``, ``EBADF`` on some network file systems). ``StateLockHeld``
    if another process holds it: named a writer's only if it is known to be one
    (``folder_lock_holder``; ``paths``: OpenClaw's lock files of this user)."""
    try:
        fd = os.open(state, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as error:
        return None, _folder_lock_lost(state, error)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        try:
            if error.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                held = folder_lock_holder(state, fd, paths)
                raise StateLockHeld(state, held, folder=True) from None
            return None, _folder_lock_lost(state, error)
        finally:
            os.close(fd)
    # Marked once held, not before: where flock is made of record locks on the whole
    # file (NFS), a mark taken first would be in its way. Unmarked (there, say), a
    # writer is told apart by its command line only.
    with contextlib.suppress(OSError):
        mark_folder(fd)
    return fd, None


def _folder_lock_lost(state: Path, error: OSError) -> str:
    return (f"the lock on the state folder {state} itself cannot be taken "
            f"({error.strerror or error})")


def _what_is_not_held(folder_told: str | None, unlocked: str | None) -> str | None:
    """For a person: which locks are not held (``folder_told``: OpenClaw's, and why;
    ``unlocked``: the folder's own, and why), and so what still keeps out whom."""
    if unlocked is None:
        return folder_told and (f"{folder_told}; a lock on the state folder itself keeps "
                                "out another export")
    if folder_told is None:
        return (f"{unlocked}: OpenClaw's locks are held all the same, so neither this "
                "user's OpenClaw processes nor another export work beside this one")
    return f"{folder_told}; and {unlocked}: nothing keeps out another export at once"


def _take(path: Path) -> sqlite3.Connection:
    """Hold ``path`` as OpenClaw holds a lock: a transaction, ``BEGIN EXCLUSIVE``,
    waiting for no one (OpenClaw waits up to 5 s; a writer here refuses at once)."""
    try:
        connection = sqlite3.connect(path, timeout=0, isolation_level=None)
    except sqlite3.Error as error:
        raise unreadable(path, OSError(None, str(error))) from None
    try:
        connection.execute("PRAGMA journal_mode = MEMORY")  # OpenClaw's: no journal file
        connection.execute("BEGIN EXCLUSIVE")
    except sqlite3.Error as error:
        connection.close()
        if error.sqlite_errorcode == sqlite3.SQLITE_BUSY:
            held = lock_file_holder(path)
            raise StateLockHeld(path, held) from None
        raise unreadable(path, OSError(None, str(error))) from None
    return connection


def _mark(path: Path) -> int | None:
    """Mark ``path``, a lock file this process holds the transaction of, as a writer's: a
    shared record lock on ``WRITER_MARK_OFFSET``, through a descriptor of its own, which
    must stay open until the transaction ends (closing any descriptor of the file drops
    every lock of the process on it, SQLite's too). None if it cannot be opened; if it
    opens but the mark cannot be taken, its descriptor all the same (to be closed then).
    The mark only names: without it, the lock is still held."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with contextlib.suppress(OSError):  # unmarked: named as an OpenClaw process's
        fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, 1, WRITER_MARK_OFFSET)
    return fd


def _held_by(state: Path, uid: int, root: Path) -> HeldLock | None:
    """A lock that an OpenClaw process of ``uid`` holds on ``state``; None if none."""
    paths = lock_paths(state, uid, root)
    folder = paths[0].parent
    try:
        found = os.lstat(folder)
    except (FileNotFoundError, NotADirectoryError):
        return None  # no OpenClaw process of this user has used it
    except OSError as error:
        raise unreadable(folder, error) from None
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != uid:
        return None  # a symbolic link, a file, another user's: OpenClaw refuses it
    for path in paths:
        held = lock_file_holder(path)
        if held is not None:
            return held
    return None
