"""Writing a session back for OpenClaw, in the older layout its import reads:

    agents/<agent id>/sessions/<session id>.jsonl    one record per line, header first
    agents/<agent id>/sessions/sessions.json         {"<session key>": {"sessionId",
                                                      "updatedAt" (ms), "sessionFile"}}

``openclaw doctor --session-sqlite import`` (gateway stopped) then moves them into its
SQLite store. Each file is written whole to a temporary name and renamed into place, so a
failure leaves the old file or the new one, never half of one, and no folder it made;
``sessions.json`` goes first (and back if the transcript is not put in place), so a
reader never meets a transcript its index does not name yet. An existing transcript is
replaced only by one that continues it (its records first, in order; headers after the
first, which an earlier export wrote, do not count); an existing ``sessions.json`` is
merged into, and a key it points at another session is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.folder import fsync_folder, make_folders, remove_empty
from node.openclaw.records import Transcript


class ExportRefused(Exception):
    """Writing would overwrite something different; nothing was written."""


@dataclass(frozen=True, slots=True)
class Written:
    path: Path
    records: int
    unchanged: bool  # the same transcript was there already


def transcript_bytes(records: list[dict[str, Any]]) -> bytes:
    """JSON lines as OpenClaw writes them (``JSON.stringify``: compact, UTF-8)."""
    return b"".join(json.dumps(record, ensure_ascii=False, separators=(",", ":"))
                    .encode() + b"\n" for record in records)


def export(state: Path, transcript: Transcript, agent_id: str, updated_ms: int) -> Written:
    """Write ``transcript`` for agent ``agent_id`` of the state folder ``state``."""
    folder = state / "agents" / agent_id / "sessions"
    path = folder / f"{transcript.session_id}.jsonl"
    index_path = folder / "sessions.json"
    index = _index(index_path)
    entry = index.get(transcript.session_key)
    if isinstance(entry, dict) and entry.get("sessionId") not in (None, transcript.session_id):
        raise ExportRefused(
            f"{index_path} already maps session key {transcript.session_key!r} to session "
            f"{entry.get('sessionId')!r}, not {transcript.session_id!r}: finish OpenClaw's "
            "import of it first (openclaw doctor --session-sqlite import), or move the file "
            "away; nothing was written")
    data = transcript_bytes(transcript.records)
    unchanged = _check_existing(path, transcript.records, data)
    made = make_folders(folder)
    try:
        try:
            old_index: bytes | None = index_path.read_bytes()
        except FileNotFoundError:
            old_index = None
        index[transcript.session_key] = {**(entry if isinstance(entry, dict) else {}),
                                         "sessionId": transcript.session_id,
                                         "updatedAt": updated_ms, "sessionFile": str(path)}
        # The index first: a reader (a running ``watch``) that found the transcript
        # without its entry would import it under a key made of its session id, for good.
        _write_whole(index_path,
                     json.dumps(index, ensure_ascii=False, indent=2).encode() + b"\n")
        if unchanged:  # the transcript its entry names is there already
            fsync_folder(folder)
        else:
            _write_transcript(folder, path, data, index_path, old_index)
    except BaseException:
        remove_empty(made)  # a refused or failed write leaves no folder behind either
        raise
    return Written(path, len(transcript.records), unchanged)


def _write_transcript(folder: Path, path: Path, data: bytes, index_path: Path,
                      old_index: bytes | None) -> None:
    """Flush the index's rename, then write the transcript ``data`` to ``path`` and flush
    its rename. If the index's flush or the transcript's write fails, the index is put
    back as it was (``old_index``; removed if there was none): it would otherwise name a
    transcript never written."""
    try:
        fsync_folder(folder)  # the index's name on disk before the transcript's
        _write_whole(path, data)
    except BaseException:  # leave the index as it was: nothing half-written
        if old_index is None:
            index_path.unlink(missing_ok=True)
        else:
            _write_whole(index_path, old_index)
        with contextlib.suppress(OSError):  # what failed first is what is told
            fsync_folder(folder)
        raise
    # Not undone if it fails: both are in place, the index naming the transcript; the
    # old index back would leave a transcript that no entry names. Exporting again
    # finds the transcript there and flushes the folder anew.
    try:
        fsync_folder(folder)
    except OSError as error:
        raise OSError(error.errno, f"{error.strerror}: {folder}: {path.name} and its entry "
                      f"in {index_path.name} are written in that folder, but a crash may "
                      "lose them; run the export again to finish it") from None


def _index(path: Path) -> dict[str, Any]:
    try:
        index = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise ExportRefused(f"{path} cannot be read ({error}); nothing was written") from None
    if not isinstance(index, dict):
        raise ExportRefused(f"{path} is not a JSON object; nothing was written")
    return index


def _check_existing(path: Path, records: list[dict[str, Any]], data: bytes) -> bool:
    """True if ``path`` holds this transcript already; refuse if it holds another."""
    try:
        old = path.read_bytes()
    except FileNotFoundError:
        return False
    except OSError as error:
        raise ExportRefused(f"{path} cannot be read ({error}); nothing was written") from None
    if old == data:
        return True
    try:
        old_records = _one_header([json.loads(line) for line in old.splitlines()
                                   if line.strip()])
    except ValueError:
        old_records = None
    wanted = json.loads(json.dumps(records))
    if old_records is None or old_records != wanted[:len(old_records)]:
        raise ExportRefused(f"{path} holds a different transcript of session "
                            f"{path.stem!r}; it is left as it is and nothing was written "
                            "(move it away to export this one)")
    return False


def _one_header(records: list[Any]) -> list[Any]:
    """The records but for every header after the first: an earlier export wrote a
    session id begun on several devices with a header from each, which this one leaves
    out (``records._one_header``); the rest is the same transcript, and is replaced.

    >>> [r["id"] for r in _one_header([{"type": "session", "id": "a"},
    ...                                {"type": "session", "id": "b"}, {"id": "1"}])]
    ['a', '1']
    """
    first = next((n for n, record in enumerate(records)
                  if isinstance(record, dict) and record.get("type") == "session"), None)
    return [record for n, record in enumerate(records)
            if n == first or not (isinstance(record, dict) and record.get("type") == "session")]


def _write_whole(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, flush it to disk, and rename it into
    place; the caller flushes the rename to disk (``fsync_folder``) before it writes the
    next file: the files reach the disk in the order they are written, the index before
    its transcript."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
        except OSError as error:  # a write names no file: the one being written is named
            raise OSError(error.errno, f"{error.strerror} (writing it to disk)",
                          str(path)) from None
        os.chmod(temporary, 0o600)  # as OpenClaw keeps its transcripts
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
