"""Reading the older layout: ``agents/<id>/sessions/sessions.json`` (session key ->
``sessionId``, ``sessionFile``) and one ``<sessionId>.jsonl`` per session.

The cursor entry of a session (``jsonl:<session id>``) is the byte offset read up to.
A last line without its newline is being written: it is left for the next pass. A file
shorter than its offset was replaced: it is read again from the start (the events it
maps to are recognised, so nothing is stored twice).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from node.openclaw.source import RECORD_BYTES_MAX, Item, Problem, Record, parse_record

#: Bytes read from one file in one pass at most (a following pass goes on).
BYTES_PER_READ = 8 * 1024 * 1024


class AgentSessions:
    """One agent's ``sessions`` folder, read from a cursor."""

    def __init__(self, folder: Path, agent_id: str, shown: str) -> None:
        self.folder, self.agent_id, self.shown = folder, agent_id, shown
        self._stamp: tuple[int, ...] = ()

    def changed(self) -> bool:
        """True if a file of the folder changed size or time since the last call."""
        try:
            stamp = tuple(sorted((entry.stat().st_mtime_ns, entry.stat().st_size)
                                 for entry in self.folder.iterdir()))
        except OSError:
            stamp = ()
        flat = tuple(number for pair in stamp for number in pair)
        seen, self._stamp = self._stamp, flat
        return seen != flat

    def close(self) -> None:
        pass

    def read(self, cursor: dict[str, int]) -> Iterator[Item]:
        index, problem = self._index()
        if problem is not None:
            # Keys taken from the files' names meanwhile would be other sessions, for
            # good (the cursor moves on): wait for an index that reads.
            yield problem
            return
        files = {path.stem: path for path in sorted(self.folder.glob("*.jsonl"))}
        for session_id, (_key, path) in index.items():
            if session_id not in files and path.is_file():  # an entry may outlive its file
                files[session_id] = path
        keys = {session_id: key for session_id, (key, _path) in index.items()}
        for session_id, path in files.items():
            yield from self._read_file(path, session_id, keys.get(session_id),
                                       cursor.get("jsonl:" + session_id, 0))

    def _index(self) -> tuple[dict[str, tuple[str, Path]], Problem | None]:
        """``sessions.json`` as session id -> (session key, file)."""
        path = self.folder / "sessions.json"
        shown = f"{self.shown}/sessions.json"
        try:
            document = json.loads(path.read_bytes())
        except FileNotFoundError:
            return {}, None
        except (OSError, ValueError) as error:
            return {}, Problem(shown, f"cannot be read ({error}); this agent's transcripts "
                                      "are read again on the next pass")
        if not isinstance(document, dict):
            return {}, Problem(shown, "is not a JSON object; this agent's transcripts are "
                                      "read again on the next pass")
        index: dict[str, tuple[str, Path]] = {}
        for key, entry in document.items():
            if isinstance(entry, dict) and isinstance(entry.get("sessionId"), str):
                file = entry.get("sessionFile")
                session_id = entry["sessionId"]
                index[session_id] = (key, Path(file) if isinstance(file, str)
                                     else self.folder / f"{session_id}.jsonl")
        return index, None

    def _read_file(self, path: Path, session_id: str, session_key: str | None,
                   start: int) -> Iterator[Item]:
        shown = f"{self.shown}/{path.name}"
        entry = "jsonl:" + session_id
        try:
            with path.open("rb") as file:
                size = file.seek(0, 2)
                if size < start:
                    start = 0  # replaced by a shorter file: read it all again
                file.seek(start)
                data = file.read(BYTES_PER_READ)
                if len(data) == BYTES_PER_READ and b"\n" not in data:
                    data += file.readline(RECORD_BYTES_MAX)  # one long line (an image)
                    if not data.endswith(b"\n") and len(data) > RECORD_BYTES_MAX:
                        end = _line_end(file)
                        if end is not None:
                            yield Problem(f"{shown}, line at byte {start}",
                                          f"is longer than {RECORD_BYTES_MAX} bytes; skipped",
                                          entry, end)
                        return
        except FileNotFoundError:
            yield Problem(shown, "was moved away while being read (OpenClaw's import "
                                 "archives these files); read again on the next pass")
            return
        except OSError as error:
            yield Problem(shown, f"cannot be read ({error})")
            return
        offset = start
        lines = data.split(b"\n")
        complete, rest = lines[:-1], lines[-1]
        for line in complete:
            end = offset + len(line) + 1
            if line.strip():
                where = f"{shown}, line at byte {offset}"
                value = parse_record(line, "line skipped")
                if isinstance(value, str):
                    yield Problem(where, value, entry, end)
                else:
                    yield Record(self.agent_id, session_key, session_id, where, entry, end,
                                 value)
            offset = end
        if rest and start + len(data) >= size:
            yield Problem(f"{shown}, line at byte {offset}",
                          "ends without a newline (still being written, or cut short); "
                          "left for the next pass")


def _line_end(file: BinaryIO) -> int | None:
    """The offset after the newline that ends the line being read, or None if the file
    ends first (the line is still being written)."""
    while chunk := file.read(BYTES_PER_READ):
        at = chunk.find(b"\n")
        if at >= 0:
            return file.tell() - len(chunk) + at + 1
    return None
