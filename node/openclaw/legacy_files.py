"""Which transcript file OpenClaw's import reads for an entry of the older layout's
``sessions.json`` (``resolveLegacyTranscriptPaths``, OpenClaw 2026.9.6), written once
for the reader (``jsonl``) and the writer (``export``).

Its candidates, in order: the entry's ``sessionFile`` (trimmed as JavaScript trims) if
it is within the sessions folder (``resolvePathWithinSessionsDir``: a relative path not
leading out of it, an absolute one whose real path is in it, or one under another
``agents/<id>/sessions/`` whose rest is a file of it), else
``<trimmed session id>.jsonl``; then a file of the folder with ``sessionFile``'s last
name (the folder moved). The first that is there is read; if none is, nothing is.

OpenClaw also follows an absolute ``sessionFile`` into another agent's sessions folder;
that is left out here: an agent's files are read only from its own folder.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

#: What JavaScript's ``String.prototype.trim`` takes off both ends (ECMAScript's
#: WhiteSpace and LineTerminator: Unicode's spaces, category Zs, and these), which
#: OpenClaw's ``validateSessionId`` applies before its checks. Not Python's
#: ``str.strip``: that also takes U+001C to U+001F and U+0085, and leaves U+FEFF.
JS_TRIMMED = ("\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
              "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff")
#: ``sessionFile``'s start when the transcript is in OpenClaw's SQLite store, no file.
SQLITE_SESSION_FILE = "sqlite:"


def js_trimmed(value: str) -> str:
    """``value`` trimmed as JavaScript's ``String.prototype.trim`` does (``JS_TRIMMED``),
    as OpenClaw trims ids and paths: its ``validateSessionId`` checks a session id
    trimmed and names its file ``<trimmed>.jsonl``. Its import keeps the index's
    ``sessionId`` as it is, spaces and all, as the session's id in its store (and gives
    it to the header): so the index names the id as the events do, and only the file's
    name is trimmed.

    >>> js_trimmed("\\u3000 s1\\n\\ufeff")
    's1'
    >>> js_trimmed("s1\\x85")  # NEL: Python's strip takes it, JavaScript's not
    's1\\x85'
    """
    return value.strip(JS_TRIMMED)


def candidates(folder: Path, entry: dict[str, object]) -> list[Path]:
    """The files OpenClaw's import may read for ``entry``, in its order (none for a
    transcript in its SQLite store)."""
    file = entry.get("sessionFile")
    file = file if isinstance(file, str) else None
    if file is not None and js_trimmed(file).startswith(SQLITE_SESSION_FILE):
        return []
    places = []
    within = _within(folder, js_trimmed(file)) if file is not None else None
    session_id = entry.get("sessionId")
    if within is not None:
        places.append(within)
    elif isinstance(session_id, str) and (default := _within(
            folder, f"{js_trimmed(session_id)}.jsonl")) is not None:
        places.append(default)
    if file is not None and js_trimmed(file):
        # JavaScript's path.basename of the untrimmed value, as OpenClaw takes it.
        name = file.rstrip("/").rsplit("/", 1)[-1]
        if name not in ("", ".", ".."):
            places.append(folder / name)
    return places


def transcript_file(folder: Path, entry: dict[str, object]) -> Path | None:
    """The file OpenClaw's import reads for ``entry``: its first candidate that is there,
    else None (it reads nothing for that entry)."""
    return next((place for place in candidates(folder, entry) if _is_file(place)), None)


def _within(folder: Path, file: str) -> Path | None:
    """``file`` as a path within ``folder`` (``resolvePathWithinSessionsDir``), or None
    where OpenClaw's throws: empty, leading out, a NUL."""
    if not file or "\0" in file:
        return None
    if os.path.isabs(file):
        try:
            real, base = Path(file).resolve(), folder.resolve()
        except (OSError, RuntimeError):
            return None
        if real.is_relative_to(base) and real != base:
            return folder / real.relative_to(base)
        return _rerooted(folder, file)
    # Relative: taken as it is written (links not followed), refused if it leads out.
    normal = os.path.normpath(file)
    if normal == "." or normal.startswith("..") or file.startswith(".."):
        return None
    return folder / normal


def _rerooted(folder: Path, file: str) -> Path | None:
    """An absolute ``file`` under some ``agents/<id>/sessions/`` (the state folder moved
    or copied from elsewhere) taken as the same path under ``folder``, if that file is
    there (OpenClaw's ``resolveRerootedSessionPath``), else None.

    >>> _rerooted(Path("/nowhere"), "/old/agents/main/sessions/sub/t.jsonl") is None
    True
    """
    parts = Path(os.path.normpath(file)).parts
    at = max((n for n, part in enumerate(parts) if part == "sessions"), default=-1)
    if at < 2 or parts[at - 2] != "agents" or at == len(parts) - 1:
        return None
    place = folder.joinpath(*parts[at + 1:])
    return place if _is_file(place) else None


def followed(path: Path) -> Path:
    """``path`` with its links followed, to tell whether two paths are one file (a loop
    of links: a file of its own)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path


def opened(path: Path) -> BinaryIO:
    """``path`` open for reading, ``OSError`` if it is not a regular file. Opened without
    blocking and then looked at: a FIFO would block the open till something wrote to
    it, and a device's read may never end, each stopping every agent's import at every
    run."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError("is not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False
