"""The data folder's format: a marker file (``FORMAT_FILE``) that says which layout of
the folder (its files, and the log in it) the node that wrote it used, so that a node
refuses a folder written in a newer format than it reads, instead of misreading it.

A folder without the marker was written before it existed: it is format 1, read as it
is, and marked on its next start. The marker is written once, atomically (a new file,
fsynced, then linked into place: a crash leaves no marker or a whole one, and a spare
file that the next marking removes), after the node holds the folder. A version that
changes the layout raises ``DATA_FORMAT`` and rewrites the marker once it has converted
the folder; older versions then refuse it.

A marker that cannot be written for want of room or of a writable disk
(``MARK_LATER_ERRNOS``) does not stop the node: without it the folder is format 1, as it
is read, so the node goes on unmarked and tries again on its next start. Refusing would
block the very reads, and forgetting, that free space.

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> check_format(folder) is None, mark_format(folder, "0.3.0"), check_format(folder)
(True, Marking(written=True, later=None), 1)
>>> mark_format(folder, "0.3.0")
Marking(written=False, later=None)
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from crdt.errors import (
    CrdtError,
    FolderInUse,
    LogFormatError,
    StorageDamaged,
    StorageUnavailable,
    StoreError,
)
from crdt.log.store import EventStore
from node.folder import create_file

#: The data folder format this version writes and the newest it reads. 1: the layout of
#: every version before the marker (``crdt.log.records.LOG_FORMAT`` 1 for the log).
DATA_FORMAT = 1
#: Longest version name a refusal shows as the writer's (a marker's ``written_by``, or the
#: log meta record's); a longer one, or one that is not a version name (``WRITER_SHAPE``),
#: is not shown: both are read from disk.
WRITER_CHARS_MAX = 40
#: What a writer's version name is made of to be shown ("0.3.0", "1.0.0rc1",
#: "0.3.0+local.1"): letters and digits first, then those, ".", "+", "-", "_" or "!". Not
#: an empty or blank name, which would read "clawsync  or a later version", nor one with
#: characters that do not print or turn the line around.
WRITER_SHAPE = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+!_-]*")
#: Most characters of a damaged log format a refusal shows (``log_refusal``); a longer
#: one is cut there, its length said.
FOUND_SHOWN_CHARS_MAX = 40
#: The marker's file in the data folder.
FORMAT_FILE = "clawsync-format.json"
#: Largest marker read (it is some 50 bytes); a larger file is not a marker.
FORMAT_FILE_BYTES_MAX = 4096
#: Errors of a marker write after which the folder is used unmarked (format 1, as read)
#: and marked on a later start: a full disk, a full quota, a read-only file system.
#: Any other error of the write stops the start: it says something is wrong with the
#: folder itself.
MARK_LATER_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
#: The name of a marker being written (then linked to ``FORMAT_FILE``): one a crash left
#: behind is removed when the folder is next marked.
_SPARE_NAME = re.compile(rf"\.{re.escape(FORMAT_FILE)}\.[0-9a-f]{{8}}\.new")


class FolderFormatError(Exception):
    """The data folder is of a newer format than this version reads, or its marker is
    unreadable, or cannot be written. The message names the folder or the marker, and
    what to do, in one line."""


@dataclass(frozen=True)
class Marking:
    """What ``mark_format`` did: ``written``, True if it wrote the marker; ``later``, why
    it could not (in one line naming the file), if the folder is used unmarked for now."""

    written: bool = False
    later: str | None = None


def _damaged(path: Path, what: str) -> FolderFormatError:
    return FolderFormatError(
        f"the data folder's format marker {path} {what}: restore it from a backup "
        f"of the folder, or, if the folder was last used by this version, "
        f'replace it with a file holding {{"format": {DATA_FORMAT}}}')


def check_format(folder: Path, running: str = "") -> int | None:
    """The format of ``folder``'s marker; None if it has none (a folder of format 1, or
    a new one). ``FolderFormatError`` if it is newer than ``DATA_FORMAT`` or cannot be
    read; ``running`` names this version in that message."""
    path = Path(folder) / FORMAT_FILE
    try:
        with open(path, "rb") as file:
            data = file.read(FORMAT_FILE_BYTES_MAX + 1)
    except (FileNotFoundError, NotADirectoryError):
        if os.path.islink(path):  # it names a marker elsewhere, gone: not "no marker"
            raise _damaged(path, "is a symbolic link to no file") from None
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
        raise _damaged(path, "is damaged") from None
    if found > DATA_FORMAT:
        writer = marker.get("written_by")
        raise FolderFormatError(newer_format(
            f"the data folder {folder}", f"data folder format {found}", DATA_FORMAT,
            writer if isinstance(writer, str) else None, running))
    return int(found)


#: What a refusal of a newer format says was left as it was: nothing, for what was only
#: read; a log refused as it was opened (``log_refusal``'s ``opened``) only its records.
UNCHANGED = "nothing in it was changed"
OPENED_UNCHANGED = ("its records were not changed; the open that read them may have "
                    "rewritten SQLite's files")


def newer_format(what: str, format_named: str, known: int, writer: str | None,
                 running: str, unchanged: str = UNCHANGED) -> str:
    """The refusal of ``what`` (the folder, the log), of a newer format (``format_named``,
    as "data folder format 2") than ``known``, the newest this version (``running``, if
    known) reads: which version wrote it (``writer``, if known and fit to show), what to
    do, and what was left as it was (``unchanged``), in one line.

    >>> newer_format("the log in d", "log format 2", 1, None, "0.3.0")
    'the log in d was written by a newer clawsync (log format 2); clawsync 0.3.0 reads \
format 1 at most. Run a newer clawsync on it (nothing in it was changed)'
    """
    by = f"clawsync {writer}" if writer is not None and len(writer) <= WRITER_CHARS_MAX \
        and WRITER_SHAPE.fullmatch(writer) else None
    this = f"clawsync {running}" if running else "this clawsync"
    run = f"{by} or a later version" if by is not None else "a newer clawsync"
    return (f"{what} was written by {by or 'a newer clawsync'} ({format_named}); {this} "
            f"reads format {known} at most. Run {run} on it ({unchanged})")


def log_refusal(error: LogFormatError, location: object, running: str,
                opened: bool = False) -> FolderFormatError:
    """``error`` (the log's meta record is of another format) in words for people, naming
    the log's ``location``: a newer format as ``newer_format`` says it; any other, a
    damaged record (no version wrote it). ``opened``: refused as the log was opened to
    be written, not read before (a WAL without its index, which only the open recovers):
    its records are as they were, not every byte.

    >>> print(log_refusal(LogFormatError(2, 1, writer="0.5.0"), "d", "0.3.0"))
    the event log in d was written by clawsync 0.5.0 (log format 2); clawsync 0.3.0 reads \
format 1 at most. Run clawsync 0.5.0 or a later version on it (nothing in it was changed)
    >>> print(log_refusal(LogFormatError(None, 1), "d", "0.3.0"))
    the event log in d is damaged (its format reads None, not 1): restore the folder from a backup
    >>> print(log_refusal(LogFormatError("x" * 5000, 1), "d", "0.3.0"))  # doctest: +ELLIPSIS
    the event log in d is damaged (its format reads 'xxx...xxx'… (5000 characters), not 1): ...
    """
    what = f"the event log in {location}"
    if error.damage is not None:
        return FolderFormatError(f"{what} is damaged ({error.damage}): restore the "
                                 f"folder from a backup")
    if error.newer:
        # The writer's version as read from the log: shown only if fit (``newer_format``).
        return FolderFormatError(newer_format(
            what, f"log format {error.found}", error.known, error.writer, running,
            OPENED_UNCHANGED if opened else UNCHANGED))
    return FolderFormatError(f"{what} is damaged (its format reads {_found(error.found)}, "
                             f"not {error.known}): restore the folder from a backup")


def read_log_first(location: str | os.PathLike[str]) -> None:
    """Read the meta record of the log at ``location`` changing nothing
    (``EventStore.check_format``), before it is opened to be written: a log refused here
    is left byte for byte, and ``log_refusal`` can say nothing in it was changed.
    ``LogFormatError`` if the open would refuse the log (another format, a damaged
    record); ``StoreError`` if it cannot be read at all (SQLite finds no database, or a
    malformed one; a record that cannot be read): the open would fail the same way. What
    may pass, or only the open can read, is left to the open, which waits or says it:
    another process holding the folder, a lock held past the wait, a full disk, an I/O
    error, a WAL without its index."""
    try:
        EventStore.check_format(location)
    except LogFormatError:
        raise
    except StorageDamaged as error:
        if isinstance(error.__cause__, OSError):
            return  # an I/O error, which may pass
        raise  # no database, or a malformed one
    except (FolderInUse, StorageUnavailable):
        return
    except StoreError:
        raise
    except (CrdtError, OSError):
        return


def _found(value: object) -> str:
    """``value`` (a damaged log's format) as a refusal shows it: its first
    ``FOUND_SHOWN_CHARS_MAX`` characters, then its length if that cut it.

    >>> _found(2.5), _found("ab"), _found(list(range(30)))
    ('2.5', "'ab'", '[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 1…')
    """
    if isinstance(value, str | bytes) and len(value) > FOUND_SHOWN_CHARS_MAX:
        return f"{value[:FOUND_SHOWN_CHARS_MAX]!r}… ({len(value)} characters)"
    said = repr(value)
    return said if len(said) <= FOUND_SHOWN_CHARS_MAX else f"{said[:FOUND_SHOWN_CHARS_MAX]}…"


def mark_format(folder: Path, running: str) -> Marking:
    """Write ``folder``'s marker (``DATA_FORMAT``, and ``running``, the version writing
    it) unless it has one; called once the folder is held, it checks the marker again
    (``check_format``: a newer version may have converted the folder since the caller
    checked) and removes spare files a crash left. ``FolderFormatError`` if the marker
    is of a newer format, damaged, or cannot be written for a reason other than
    ``MARK_LATER_ERRNOS``."""
    folder = Path(folder)
    path = folder / FORMAT_FILE
    known = check_format(folder, running)  # first: a refused folder is left as it is
    _remove_spares(folder)
    if known is not None:
        return Marking(written=False)
    try:
        return Marking(written=_write(path, running))
    except OSError as error:
        said = f"cannot write the data folder's format marker {path}: " \
            f"{error.strerror or error}"
        if error.errno in MARK_LATER_ERRNOS:
            return Marking(written=False, later=f"{said}; the folder is used as it is "
                           f"(format 1) and marked on a later start")
        raise FolderFormatError(said) from None


def _remove_spares(folder: Path) -> None:
    """Remove the markers a crash left half made (``_SPARE_NAME``): the folder is held,
    so none is being written."""
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if _SPARE_NAME.fullmatch(entry.name):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _write(path: Path, running: str) -> bool:
    """Write the marker at ``path`` atomically; False if one was put there meanwhile."""
    body = json.dumps({"format": DATA_FORMAT, "written_by": running}).encode() + b"\n"
    return create_file(path, body, 0o644)
