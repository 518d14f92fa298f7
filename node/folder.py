"""The size of the node's data folder, and of its log's if kept elsewhere (``GET /v1/node``;
metrics may show it too); folders made, and removed again while empty; a folder's new
names made durable (``fsync_folder``).

It is a walk of the folder on a worker thread, done at most once every
``STORAGE_SIZE_TTL_S``: consoles polling every two seconds, however many, cost one walk
per period, and the event loop never waits on the disk.

>>> import asyncio, tempfile
>>> from pathlib import Path
>>> folder = Path(tempfile.mkdtemp())
>>> _ = (folder / "a").write_bytes(b"12345")
>>> asyncio.run(FolderSize(folder).bytes())
5
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import secrets
from pathlib import Path

#: Seconds a measured data folder size is answered again before the folder is walked anew.
STORAGE_SIZE_TTL_S = 5.0


class FolderSize:
    """The bytes of the files under a folder, measured at most every ``ttl_s``; with
    ``also``, under that one too (the log kept elsewhere: ``--storage DIR``), unless it is
    within the first."""

    def __init__(self, folder: Path, ttl_s: float = STORAGE_SIZE_TTL_S,
                 also: Path | None = None) -> None:
        self._folders = [folder]
        if also is not None and not also.resolve().is_relative_to(folder.resolve()):
            self._folders.append(also)
        self._ttl_s = ttl_s
        self._value = 0
        self._measured_at: float | None = None
        self._walk: asyncio.Future[int] | None = None

    async def bytes(self) -> int:
        loop = asyncio.get_running_loop()
        if self._measured_at is not None and loop.time() - self._measured_at < self._ttl_s:
            return self._value
        if self._walk is None:  # callers that come during a walk share it
            self._walk = asyncio.ensure_future(asyncio.to_thread(
                lambda: sum(folder_bytes(folder) for folder in self._folders)))
            self._walk.add_done_callback(self._measured)
        # Shielded: a caller that goes away does not stop the walk the others wait for.
        return await asyncio.shield(self._walk)

    def _measured(self, walk: asyncio.Future[int]) -> None:
        self._walk = None
        if not walk.cancelled() and walk.exception() is None:
            self._value = walk.result()
            self._measured_at = asyncio.get_running_loop().time()


def folder_bytes(folder: Path) -> int:
    """The sizes of every file under ``folder`` added up; files that vanish while it is
    walked (SQLite's journal) count as nothing."""
    total = 0
    for root, _dirs, names in os.walk(folder):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(root, name), follow_symlinks=False).st_size
    return total


def make_folders(folder: Path) -> list[Path]:
    """Make ``folder`` and its missing parents; exactly the ones this call made,
    outermost first. Each is made by name, as the path is written: ``new/../log`` makes
    ``new`` and nothing else when ``log`` exists, and a folder made meanwhile by someone
    else is theirs, not listed. Each one made is made durable in its parent
    (``fsync_folder``), where this process may open that: a crash does not lose it once
    files are written in it. On failure, what it made is removed and the error raised.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "log").mkdir()
    >>> [made.name for made in make_folders(root / "new" / ".." / "log")]
    ['new']
    """
    missing = []
    for one in (folder, *folder.parents):
        if one.is_dir():
            break
        missing.append(one)
    made: list[Path] = []
    try:
        for one in reversed(missing):
            try:
                one.mkdir()
            except FileExistsError:  # made meanwhile by someone else, or a ``..``: not ours
                continue
            made.append(one)
            # Its name on disk before anything is written in it; where the parent may
            # not be opened (write and search permission make a folder in it, reading
            # opens it), it is made all the same, its name left to the file system.
            fsync_folder(one.parent, openable_only=True)
    except BaseException:
        remove_empty(made)
        raise
    return made


def remove_empty(made: list[Path]) -> None:
    """Remove the folders of ``made`` (``make_folders``) that are still empty, innermost
    first; one that something wrote to meanwhile stays, and so do those outside it. Each
    is tried: ``new/../log`` made ``new`` and ``log`` side by side, and a ``log`` that
    holds a file keeps no empty ``new``.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> made = make_folders(root / "new" / ".." / "log")
    >>> (root / "log" / "kept").touch()
    >>> remove_empty(made)
    >>> sorted(one.name for one in root.iterdir())
    ['log']
    """
    for one in reversed(made):
        try:
            one.rmdir()
        except OSError:
            continue  # not empty (or not ours to remove): those inside it stay too


def fsync_folder(folder: Path, *, openable_only: bool = False) -> None:
    """Make the names made or replaced in ``folder`` durable (a rename into place, a link,
    a folder made): ``fsync`` of a file makes its data so, not its name. Nothing where
    folders cannot be opened (not POSIX) or a file system does not sync folders (it
    answers ``EINVAL``, as some network and FUSE ones do). With ``openable_only``,
    nothing either for a folder this process may not open (``EACCES``, ``EPERM``: one it
    may write and search in but not read). SQLite goes on in both cases too: its
    ``unixSync`` leaves out a folder it cannot open, and ignores what the folder's
    ``fsync`` answers (here only ``EINVAL`` is). ``OSError`` naming ``folder`` if it
    cannot be done otherwise.

    >>> import tempfile
    >>> fsync_folder(Path(tempfile.mkdtemp()))
    """
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except PermissionError:
        if openable_only:
            return
        raise
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno != errno.EINVAL:
            # fsync names no file: the folder is named, for the person told of it.
            raise OSError(error.errno, f"{error.strerror} (flushing the names in a folder "
                          "to disk)", str(folder)) from None
    finally:
        os.close(fd)


def create_file(path: Path, data: bytes, mode: int) -> bool:
    """Write ``data`` to a new file at ``path`` (permission bits ``mode``, which the
    umask can only take away) unless one appears there first; True if ours did. Written
    to a spare file (``.NAME.<8 hex>.new``), fsynced, then linked into place: a crash
    leaves no file or a whole one (and perhaps the spare), and a link, unlike a rename,
    never replaces: a file another process put there meanwhile is kept. ``OSError`` if it
    cannot be written."""
    spare = path.with_name(f".{path.name}.{secrets.token_hex(4)}.new")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) \
        | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(spare, flags, mode)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(spare, path)
            made = True
        except FileExistsError:
            made = False
        fsync_folder(path.parent)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(spare)
    return made
