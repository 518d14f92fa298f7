"""The data folder's format: a marker file (``FORMAT_FILE``) that says which layout of
the folder (its files, and the log in it) the node that wrote it used, so that a node
refuses a folder written in a newer format than it reads, instead of misreading it.

A folder without the marker was written before it existed: it is format 1, read as it
is, and marked on its next start. The marker is written once, atomically (a new file,
fsynced, then linked into place: a crash leaves no marker or a whole one), after the
node holds the folder. A version that changes the layout raises ``DATA_FORMAT`` and
rewrites the marker once it has converted the folder; older versions then refuse it.

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> check_format(folder) is None, mark_format(folder, "0.3.0"), check_format(folder)
(True, True, 1)
>>> mark_format(folder, "0.3.0")
False
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path

from node.folder import fsync_folder

#: The data folder format this version writes and the newest it reads. 1: the layout of
#: every version before the marker (``crdt.log.records.LOG_FORMAT`` 1 for the log).
DATA_FORMAT = 1
#: The marker's file in the data folder.
FORMAT_FILE = "clawsync-format.json"
#: Largest marker read (it is some 50 bytes); a larger file is not a marker.
FORMAT_FILE_BYTES_MAX = 4096


class FolderFormatError(Exception):
    """The data folder is of a newer format than this version reads, or its marker is
    unreadable. The message names the folder, both versions and what to do, in one line;
    nothing in the folder was changed."""


def check_format(folder: Path, running: str = "") -> int | None:
    """The format of ``folder``'s marker; None if it has none (a folder of format 1, or
    a new one). ``FolderFormatError`` if it is newer than ``DATA_FORMAT`` or cannot be
    read; ``running`` names this version in that message."""
    path = Path(folder) / FORMAT_FILE
    try:
        with open(path, "rb") as file:
            data = file.read(FORMAT_FILE_BYTES_MAX + 1)
    except (FileNotFoundError, NotADirectoryError):
        return None  # no marker, or no folder: what makes the folder tells of that
    except OSError as error:
        raise FolderFormatError(f"cannot read the data folder's format marker {path}: "
                                f"{error.strerror or error}") from None
    try:
        if len(data) > FORMAT_FILE_BYTES_MAX:
            raise ValueError
        marker = json.loads(data)
        found = marker["format"]
        if not isinstance(found, int) or isinstance(found, bool) or found < 1:
            raise ValueError
    except (ValueError, TypeError, KeyError):
        raise FolderFormatError(
            f"the data folder's format marker {path} is damaged: restore it from a backup "
            f"of the folder, or, if the folder was last used by this version, "
            f'write {{"format": {DATA_FORMAT}}} into it') from None
    if found > DATA_FORMAT:
        writer = marker.get("written_by")
        by = f"clawsync {writer}" if isinstance(writer, str) and writer.isprintable() \
            and len(writer) <= 40 else "a newer clawsync"
        this = f"clawsync {running}" if running else "this clawsync"
        raise FolderFormatError(
            f"the data folder {folder} was written by {by} (data folder format {found}); "
            f"{this} reads format {DATA_FORMAT} at most. Run {by} or a later version on "
            f"it (nothing in the folder was changed)")
    return int(found)


def mark_format(folder: Path, running: str) -> bool:
    """Write ``folder``'s marker (``DATA_FORMAT``, and ``running``, the version writing
    it) unless it has one; True if this call wrote it. ``OSError`` if it cannot."""
    path = Path(folder) / FORMAT_FILE
    if os.path.lexists(path):
        return False
    body = json.dumps({"format": DATA_FORMAT, "written_by": running}).encode() + b"\n"
    spare = path.with_name(f".{path.name}.{secrets.token_hex(4)}.new")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) \
        | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(spare, flags, 0o644)
        try:
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            # A link never replaces: a marker written meanwhile is kept.
            os.link(spare, path)
            made = True
        except FileExistsError:
            made = False
        fsync_folder(path.parent)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(spare)
    return made
