"""What the readers of an OpenClaw state folder yield: records and problems.

Each carries the cursor entry to save once it is handled (``entry``, ``after``): a
session's next sequence number or byte offset. A problem that will not mend by itself (a
line that is not JSON, a row that does not decode) carries one too, so the import goes
on past it; one that may (a file being written or migrated) carries none, and the
session is read again from there on the next pass.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISDIR
from typing import Any, NamedTuple

#: A record (one row or line) larger than this is reported, not read.
RECORD_BYTES_MAX = 64 * 1024 * 1024
#: Records read of a session whose next record waits (for the node's clock), all that
#: is tried of it: that record and the one after it (a header's copy time needs it). The
#: SQLite reader reads this many rows of it, even past its ``ROWS_PER_READ``; the JSONL
#: reader keeps this many of its file's last read, given again while the file does not
#: change.
RECORDS_OF_WAITING = 2


class FileIdentity(NamedTuple):
    """Which file a session's transcript is: what tells a file only cut shorter (the same
    device, inode and first record) from another, or one rewritten in place."""

    device: int
    inode: int
    #: A short hash of its first record (``node.openclaw.file_marks.first_record``); None if
    #: none was complete when read, or for a file remembered by a release that kept none.
    first: str | None = None


@dataclass(frozen=True, slots=True)
class Record:
    """One transcript record of a session, parsed."""

    agent_id: str
    session_key: str | None  # OpenClaw's session key, when its index names one
    session_id: str
    where: str  # "agents/main/agent/openclaw-agent.sqlite, session S, seq 4"
    entry: str
    after: int
    value: dict[str, Any]
    written_ms: int = 0  # when the store says it was written: the time of a record without one
    mark: int | None = None  # of a file's: the ``file_marks.tail_mark`` before ``after``


@dataclass(frozen=True, slots=True)
class Problem:
    """Something that could not be read, and where."""

    where: str
    message: str
    entry: str | None = None  # None: nothing to skip, read it again next time
    after: int = 0
    mark: int | None = None  # as a ``Record``'s

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


Item = Record | Problem


def parse_record(text: str | bytes, skipped: str) -> dict[str, Any] | str:
    """One record's JSON as a dict, else what is wrong with it, ending ``skipped`` (how
    the reader goes on: "line skipped", "row skipped")."""
    try:
        value = json.loads(text)
    except ValueError as error:
        return f"the record is not JSON ({error}: a truncated or damaged record); {skipped}"
    if not isinstance(value, dict):
        return f"the record is not a JSON object; {skipped}"
    return value


def path_there(path: Path, folder: bool) -> bool:
    """Whether ``path`` is there (a folder, with ``folder``). False only if it is not
    (or a parent is no folder); ``OSError`` if it cannot be told (a folder on the way
    cannot be looked into, a link loops), which is not the same as not there.

    >>> path_there(Path("/"), True), path_there(Path("/nowhere/at/all"), False)
    (True, False)
    """
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return False
    return S_ISDIR(mode) or not folder
