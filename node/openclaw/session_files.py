"""Which files of the older layout's ``sessions`` folder are its sessions, under which
key, and each one's cursor entry: what ``node.openclaw.jsonl`` reads, from the index
``sessions.json`` (session key -> ``sessionId``, ``sessionFile``) and the folder's
listing. Each entry's file is the one OpenClaw's import reads for it (``legacy_files``:
none if that file is not there); a file no entry names is a session of its own, its
name the session id. An id or key that is not valid text is hashed
(``session_names.nameable``).
"""

from __future__ import annotations

import json
from pathlib import Path

from crdt.keys import is_name
from node.openclaw.cursor_room import hashed, within_limit
from node.openclaw.legacy_files import followed, js_trimmed, opened, transcript_file
from node.openclaw.session_names import nameable
from node.openclaw.source import Problem

#: Session id -> (its session key, its file if it is there), as the index names them.
Index = dict[str, tuple[str, Path | None]]
#: Session id -> (its file, its key: None for a file no entry names).
Files = dict[str, tuple[Path, str | None]]


def read_index(folder: Path, shown: str) -> tuple[Index, Problem | None]:
    """``sessions.json`` of ``folder`` (``shown`` so in what is said of it) as session
    id -> (session key, its file if it is there); a problem if it does not read."""
    path = folder / "sessions.json"
    shown = f"{shown}/sessions.json"
    try:
        with opened(path) as file:
            document = json.loads(file.read())
    except FileNotFoundError:
        return {}, None
    except (OSError, ValueError) as error:
        return {}, Problem(shown, f"cannot be read ({error}); this agent's transcripts "
                                  "are read again on the next pass")
    if not isinstance(document, dict):
        return {}, Problem(shown, "is not a JSON object; this agent's transcripts are "
                                  "read again on the next pass")
    index: Index = {}
    for key, entry in document.items():
        if isinstance(entry, dict) and isinstance(entry.get("sessionId"), str):
            index[nameable(entry["sessionId"])] = (nameable(key), transcript_file(folder, entry))
    return index, None


def session_files(folder: Path, index: Index) -> tuple[Files, bool]:
    """Session id -> (its file, its key), and whether ``folder`` was listed."""
    # Each entry's file as OpenClaw reads it (``transcript_file``); a file is keyless,
    # read under its name's session id, only when no entry names it: the file of an
    # entry whose id has spaces around it ('<trimmed>.jsonl') or a forum topic's
    # ('<id>-topic-<n>.jsonl') would otherwise be read twice, once as a session
    # of its own. Nor is one whose name is an entry's session id though the entry
    # names another file, or one that is not there: OpenClaw archives it unread.
    files: Files = {}
    named: set[Path] = set()
    for session_id, (key, path) in index.items():
        if path is not None:  # an entry may outlive its file
            files[session_id] = (path, key)
            named.add(followed(path))
    try:
        # Listed so, not by glob alone, which takes a folder it cannot list for one
        # without files: its sessions would be taken for deleted.
        listed = sorted(entry for entry in folder.iterdir()
                        if entry.name.endswith(".jsonl"))
    except OSError:
        listed, known = [], False
    else:
        known = True
    for path in listed:
        session_id = nameable(path.stem)
        if session_id not in index and followed(path) not in named:
            files[session_id] = (path, None)
    return files, known


def cursor_entry(folder: Path, session_id: str, path: Path) -> str:
    """The cursor entry of session ``session_id`` read from the file ``path``: the
    offset is one in that file, so the file's name is kept with it. ``jsonl:<id>`` for
    ``<trimmed id>.jsonl`` (as a cursor written before names were kept means), else
    ``jsonl-file:<length of the name>:<name>:<id>`` (the name's length first, as a name
    and an id may both hold ':'). One that is not a valid entry (over an entry's 256
    bytes, ``crdt.keys.NAME_BYTES_MAX``, as a forum topic's file with a long name; or a
    name with a control character or a byte not UTF-8) is kept as ``jsonl-file:#<hash of
    the name>:<id>`` (``cursor_room.hashed``), made anew from the file at each read: the id
    kept, as a session in both stores is told by it (``cursor_room.in_both_stores``), or
    hashed too where it does not fit (``cursor_room.within_limit``). An entry that comes
    to name another file is read from that file's start, not from the other file's
    offset (its records are recognised, so nothing is stored twice).

    >>> cursor_entry(Path("s"), "a", Path("s/sub/a-topic-4.jsonl"))
    'jsonl-file:19:sub/a-topic-4.jsonl:a'
    >>> long = cursor_entry(Path("s"), "a", Path("s/a-topic-" + "4" * 240 + ".jsonl"))
    >>> long[:12], long[-2:], len(long)
    ('jsonl-file:#', ':a', 46)
    >>> cursor_entry(Path("s"), " " * 9 + "a" * 245, Path("s/" + "a" * 245 + ".jsonl"))[:7]
    'jsonl:#'
    """
    name = str(path.relative_to(folder))
    if name == f"{js_trimmed(session_id)}.jsonl":
        return within_limit("jsonl:", session_id)
    plain = f"jsonl-file:{len(name)}:{name}:{session_id}"
    return plain if is_name(plain) else within_limit(f"jsonl-file:{hashed(name)}:", session_id)


def entries(folder: Path, files: Files) -> set[str]:
    """The cursor entries of ``files``."""
    return {cursor_entry(folder, session_id, file) for session_id, (file, _key) in files.items()}
