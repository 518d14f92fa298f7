"""Writing a session back for OpenClaw, in the older layout its import reads:

    agents/<agent id>/sessions/<session id>.jsonl    one record per line, header first
    agents/<agent id>/sessions/sessions.json         {"<session key>": {"sessionId",
                                                      "updatedAt" (ms), "sessionFile"}}

The transcript's file is named after the session id trimmed as OpenClaw trims it
(``js_trimmed``), or is the file the key's own entry names through its ``sessionFile``
if that file is there and is this session's (``_own_file``: older OpenClaw's forum
topic ``<id>-topic-<n>.jsonl``, a fork's ``<ISO time>_<id>.jsonl``, or a header naming
the id): OpenClaw reads that one as the session, so it is continued and stays named.

``openclaw doctor --session-sqlite import`` (gateway stopped) then moves them into its
SQLite store. Each file is written whole to a temporary name and renamed into place, so a
failure leaves the old file or the new one, never half of one, and no folder it made;
``sessions.json`` goes first (and back if the transcript is not put in place), so a
reader never meets a transcript its index does not name yet. An existing transcript is
replaced only by one that continues it (its records first, in order; headers after the
first, which an earlier export wrote, do not count); an existing ``sessions.json`` is
merged into. Refused, with nothing written: a key it points at another session; a
session id another key of it points at (that key's transcript); another key whose
``sessionFile`` names the transcript's file (``_check_session_files``: OpenClaw would
import it as that key's session); the key's own ``sessionFile`` naming a file there that
is another session's (``_own_file``).

The agent id and the session id become names in those paths, and both come from events
that any device of the cluster may write (a damaged one, or an event made by hand): a
transcript whose ids are not names OpenClaw itself makes (``checked_names``), or whose
folder or files lead out of the state folder's ``agents/`` through a symbolic link (or
round in a loop of links), is refused like any other, with nothing written: export
writes one transcript, and a person who asked for it should hear why it is not there
rather than find another one written.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.folder import fsync_folder, make_folders, remove_empty
from node.openclaw.legacy_files import candidates, followed, js_trimmed, transcript_file
from node.openclaw.records import Transcript
from node.openclaw.source import RECORD_BYTES_MAX
from node.text import printable

#: Longest session id, in characters, and longest transcript file name
#: (``<session id>.jsonl``), in UTF-8 bytes: OpenClaw 2026.9.6's own bounds
#: (``validateSessionId``); 255 bytes is also the longest name most file systems take.
SESSION_ID_CHARS_MAX = 128
FILE_NAME_BYTES_MAX = 255
#: Random characters ``tempfile`` puts after a temporary file's prefix (Python's own
#: choice, 8 since 2.x): room kept for them in the temporary name beside a transcript.
TEMPORARY_RANDOM_CHARS = 8
#: Longest agent id, in characters: OpenClaw's own bound (``isValidAgentId``).
AGENT_ID_CHARS_MAX = 64
#: OpenClaw's agent folders: lower-case ASCII letters and digits, then also ``_`` and
#: ``-``. ``isValidAgentId`` takes upper case too, but the folder is named after
#: ``normalizeAgentId``, which lowers it: an upper-case id is no folder OpenClaw writes.
_AGENT_ID = re.compile(f"[a-z0-9][a-z0-9_-]{{0,{AGENT_ID_CHARS_MAX - 1}}}", re.ASCII)
#: OpenClaw's compaction checkpoints, ``<session id>.checkpoint.<uuid>.jsonl``, which
#: ``validateSessionId`` refuses as session ids for uuid versions 1 to 5, and which its
#: listing of transcripts (``isPrimarySessionTranscriptFileName``) leaves out for any
#: uuid's shape: refused for any, as a session OpenClaw would never list (JavaScript's
#: ``/i`` without ``/u`` folds ASCII only, as ``re.ASCII``).
_CHECKPOINT = re.compile(r"(.+)\.checkpoint\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-"
                         r"[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE | re.ASCII)
#: OpenClaw's generated session ids (``looksLikeGeneratedSessionId``: a uuid of
#: versions 1 to 8, either case) and a fork's transcript name, ``<ISO time>_<id>``
#: (JavaScript's ``\w`` and ``\d`` are ASCII, as ``re.ASCII``).
_GENERATED_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                           r"[0-9a-f]{12}", re.IGNORECASE | re.ASCII)
_FORK = re.compile(r"\d{4}-\d{2}-\d{2}T[\w-]+(?:Z|[+-]\d{2}(?:-\d{2})?)?_(.+)", re.ASCII)
#: Characters of a refused name shown in its error: an id may be long, and is quoted
#: escaped (``printable``), as anyone in the cluster may have written it.
SHOWN_CHARS_MAX = 80


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
    """Write ``transcript`` for agent ``agent_id`` of the state folder ``state``, into
    the file OpenClaw reads for it: ``<trimmed session id>.jsonl`` (``js_trimmed``), or
    the key's own entry's file (``_own_file``)."""
    checked_names(agent_id, transcript.session_id)
    session_id = js_trimmed(transcript.session_id)
    folder = state / "agents" / agent_id / "sessions"
    path = default = folder / f"{session_id}.jsonl"
    index_path = folder / "sessions.json"
    _check_inside(state / "agents", folder, index_path, path)
    index = _index(index_path)
    entry = index.get(transcript.session_key)
    if isinstance(entry, dict) and _entry_session_id(entry) not in (None, session_id):
        raise ExportRefused(
            f"{index_path} already maps session key {_shown(transcript.session_key)} to "
            f"session {_shown(entry.get('sessionId'))}, not {_shown(transcript.session_id)}: "
            "finish OpenClaw's import of it first (openclaw doctor --session-sqlite import), "
            "or move the file away; nothing was written")
    _check_unclaimed(index_path, index, transcript.session_key, session_id)
    if isinstance(entry, dict) and (own := _own_file(index_path, transcript.session_key,
                                                     entry, default)) is not None:
        path = own  # the file OpenClaw reads as the session: continued, still named
        _check_inside(state / "agents", path)
    _check_session_files(index_path, index, transcript.session_key, path)
    data = transcript_bytes(transcript.records)
    unchanged = _check_existing(path, transcript.records, data)
    made = make_folders(folder)
    try:
        try:
            old_index: bytes | None = index_path.read_bytes()
        except FileNotFoundError:
            old_index = None
        kept = entry if isinstance(entry, dict) else {}
        index[transcript.session_key] = {
            **kept, "sessionId": transcript.session_id, "updatedAt": updated_ms,
            "sessionFile": kept["sessionFile"] if path != default else str(path)}
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


def _entry_session_id(entry: dict[str, Any]) -> object:
    """An index entry's ``sessionId`` as OpenClaw reads it (trimmed, if text)."""
    value = entry.get("sessionId")
    return js_trimmed(value) if isinstance(value, str) else value


def checked_names(agent_id: str, session_id: str) -> None:
    """Refuse an agent id or a session id that is not a name OpenClaw makes: in a path,
    ``..``, ``/``, an absolute path, NUL or a control character would write elsewhere
    than in the agent's sessions folder, or fail halfway.

    >>> checked_names("main", "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0")
    >>> checked_names("main", "../../.bashrc")
    Traceback (most recent call last):
    ...
    node.openclaw.export.ExportRefused: session id '../../.bashrc' is not one OpenClaw makes (...
    """
    if not (isinstance(agent_id, str) and _AGENT_ID.fullmatch(agent_id)):
        raise ExportRefused(
            f"agent id {_shown(agent_id)} is not one OpenClaw makes (lower-case ASCII "
            "letters, digits, '_' and '-', a letter or digit first, at most "
            f"{AGENT_ID_CHARS_MAX} characters: OpenClaw names agent folders in lower "
            "case), so not a folder name to write in; nothing was written")
    if not _session_id_fits(session_id):
        raise ExportRefused(
            f"session id {_shown(session_id)} is not one OpenClaw makes (a letter or digit, "
            "then letters, digits, marks, '.', '_' or '-', at most "
            f"{SESSION_ID_CHARS_MAX} characters, NFC; '<id>.jsonl' at most "
            f"{FILE_NAME_BYTES_MAX} UTF-8 bytes; not '<id>.checkpoint.<uuid>', a "
            "compaction checkpoint's name), so not a file name to write; nothing "
            "was written")


def _session_id_fits(value: object) -> bool:
    """OpenClaw's ``validateSessionId``: trimmed (``js_trimmed``), then
    ``[\\p{L}\\p{N}][\\p{L}\\p{N}\\p{M}._-]{0,127}``, NFC, the file name within bounds,
    not a compaction checkpoint's name.

    The categories are Python's (``unicodedata``: Unicode 14.0 in Python 3.11), not
    those of the Node that runs OpenClaw (newer: Unicode 17.0 in Node 26): an id with a
    letter added to Unicode since is refused here though OpenClaw takes it. That way is
    the safe one: refusing writes nothing, while taking a name OpenClaw refuses would
    write a file it does not import.

    >>> _session_id_fits("s1.checkpoint.0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0")
    False
    """
    if not isinstance(value, str):
        return False
    value = js_trimmed(value)  # as validateSessionId does first
    if not 0 < len(value) <= SESSION_ID_CHARS_MAX:
        return False
    if unicodedata.category(value[0])[0] not in "LN" or not all(
            unicodedata.category(char)[0] in "LNM" or char in "._-" for char in value[1:]):
        return False  # lone surrogates (category Cs) too, before they are encoded
    return (unicodedata.is_normalized("NFC", value)
            and len(f"{value}.jsonl".encode()) <= FILE_NAME_BYTES_MAX
            and not _CHECKPOINT.fullmatch(value))


def _check_unclaimed(index_path: Path, index: dict[str, Any], key: str,
                     session_id: str) -> None:
    """Refuse if another key of the index maps to ``session_id``: its transcript is that
    key's, and events under ``key`` (any device may write them, with any session id)
    would otherwise write over it, and leave two keys naming one transcript."""
    for other, entry in index.items():
        if other != key and isinstance(entry, dict) and _entry_session_id(entry) == session_id:
            raise ExportRefused(
                f"{index_path} maps session key {_shown(other)} to session "
                f"{_shown(session_id)} already, which {_shown(key)} would write over; "
                "nothing was written")


def _check_session_files(index_path: Path, index: dict[str, Any], key: str,
                         path: Path) -> None:
    """Refuse if another key's entry (its ``sessionFile`` hand-edited, or left by a copy)
    may be read from ``path`` (``legacy_files.candidates``): OpenClaw's import reads the
    file an entry names, whatever session that file holds, and gives its header the
    entry's session id, so it would import the events written there as that key's
    session."""
    here = followed(path)
    for other, entry in index.items():
        if other != key and isinstance(entry, dict) and any(
                followed(place) == here for place in candidates(path.parent, entry)):
            raise ExportRefused(
                f"{index_path} maps session key {_shown(other)} (session "
                f"{_shown(entry.get('sessionId'))}) to the file {_shown(path.name)} through "
                f"its sessionFile {_shown(entry.get('sessionFile'))}: OpenClaw would import "
                f"what {_shown(key)} writes there as that session; nothing was written")


def _own_file(index_path: Path, key: str, entry: dict[str, Any],
              default: Path) -> Path | None:
    """The file OpenClaw's import reads for ``key``'s own entry
    (``legacy_files.transcript_file``) if it is one other than ``default``
    (``<session id>.jsonl``, or a link to it), None otherwise. OpenClaw reads that file
    as the session (older OpenClaw wrote ``<id>-topic-<n>.jsonl`` for a forum topic, in
    a subfolder too, and a fork ``<ISO time>_<id>.jsonl``), so export continues it
    (where its links lead: a link is kept) and keeps the entry naming it; written beside
    it, the file would be left unnamed (OpenClaw's import then archives it unread).
    Refused if that file is another session's: its header names another id and its
    name is not one OpenClaw makes for this one."""
    file = transcript_file(index_path.parent, entry)
    if file is None or followed(file) == followed(default):
        return None
    session_id = js_trimmed(default.name[:-len(".jsonl")])
    if not _holds_session(file, session_id):
        raise ExportRefused(
            f"{index_path} maps session key {_shown(key)} to the file "
            f"{_shown(str(file.relative_to(index_path.parent)))} through its sessionFile "
            f"{_shown(entry.get('sessionFile'))}, which holds another session than "
            f"{_shown(session_id)}: OpenClaw reads that file as the session; import it "
            "first (openclaw doctor --session-sqlite import) or move it away; nothing "
            "was written")
    return followed(file)


def _holds_session(path: Path, session_id: str) -> bool:
    """True if OpenClaw takes the file ``path`` for session ``session_id``: its name is
    one OpenClaw makes for it (``generated_session_id``), or its header names it
    (trimmed)."""
    if generated_session_id(path.name) == session_id:
        return True
    try:
        with path.open("rb") as file:
            header = json.loads(file.readline(RECORD_BYTES_MAX))
    except (OSError, ValueError):
        return False
    return (isinstance(header, dict) and header.get("type") == "session"
            and isinstance(header.get("id"), str) and js_trimmed(header["id"]) == session_id)


def generated_session_id(name: str) -> str | None:
    """The session id OpenClaw 2026.9.6 takes a transcript's file name ``name`` for
    (``extractGeneratedTranscriptSessionId``): ``<uuid>.jsonl``, a forum topic's
    ``<uuid>-topic-<n>.jsonl`` or a fork's ``<ISO time>_<uuid>.jsonl``, for a uuid of
    the shape it makes; None for any other name.

    >>> generated_session_id("0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0-topic-42.jsonl")
    '0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0'
    >>> generated_session_id("2026-01-02T03-04-05-678Z_0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0.jsonl")
    '0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0'
    >>> generated_session_id("s1-topic-42.jsonl") is None
    True
    """
    if not name.endswith(".jsonl"):
        return None
    stem = name[:-len(".jsonl")]
    if (topic := stem.find("-topic-")) > 0:
        stem = stem[:topic]
    elif fork := _FORK.fullmatch(stem):
        stem = fork[1]
    return stem if _GENERATED_ID.fullmatch(stem) else None


def _check_inside(agents: Path, *paths: Path) -> None:
    """Refuse if one of ``paths`` leads out of the folder ``agents`` once its symbolic
    links are followed (an ``agents/<id>`` or a ``sessions`` folder, ``sessions.json``
    or the transcript linked elsewhere), or if its links go round in a loop. Checked
    before writing: a process that may write in the state folder could swap a link
    after the check, but such a process can write OpenClaw's files itself, so that is
    no threat this check is for."""
    root = _resolved(agents)
    for path in paths:
        where = _resolved(path)
        if not where.is_relative_to(root):
            raise ExportRefused(
                f"{printable(str(path))} leads out of {printable(str(root))} (to "
                f"{printable(str(where))}) through a symbolic link; nothing was written")


def _resolved(path: Path) -> Path:
    """``path`` with its symbolic links followed; refused if they cannot be: a loop
    (``agents/main`` linked to itself: Python 3.11 says so with a RuntimeError, later
    ones with an OSError, ELOOP), or another error of the system's, named as it is."""
    try:
        return path.resolve()
    except (RuntimeError, OSError) as error:
        loop = isinstance(error, RuntimeError) or getattr(error, "errno", None) == errno.ELOOP
        cause = "a symbolic link loop" if loop else "it could not be read"
        raise ExportRefused(
            f"{printable(str(path))} cannot be followed ({printable(str(error))}): "
            f"{cause}; nothing was written") from None


def _shown(value: object) -> str:
    """``value`` quoted, escaped and cut short, for an error message."""
    if not isinstance(value, str):
        return f"of type {type(value).__name__}"
    if len(value) <= SHOWN_CHARS_MAX:
        return printable(repr(value))
    return f"{printable(repr(value[:SHOWN_CHARS_MAX]))}... ({len(value)} characters)"


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


def _temporary_prefix(name: str) -> str:
    """``.<name>.``, ``name`` cut short (whole characters) so that the temporary file's
    name, the prefix and ``tempfile``'s random characters, is no longer than a name the
    file system takes: a session id within bounds makes a name of up to 255 bytes.

    >>> _temporary_prefix("s1.jsonl")
    '.s1.jsonl.'
    >>> len(_temporary_prefix("\u4e2d" * 83 + ".jsonl").encode()) + TEMPORARY_RANDOM_CHARS
    253
    """
    room = FILE_NAME_BYTES_MAX - len("..") - TEMPORARY_RANDOM_CHARS
    return f".{name.encode()[:room].decode(errors='ignore')}."


def _write_whole(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, flush it to disk, and rename it into
    place; the caller flushes the rename to disk (``fsync_folder``) before it writes the
    next file: the files reach the disk in the order they are written, the index before
    its transcript."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=_temporary_prefix(path.name))
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
