"""Reading OpenClaw's per-agent SQLite store without disturbing OpenClaw.

OpenClaw writes ``agents/<id>/agent/openclaw-agent.sqlite`` in WAL mode. This reader:

* opens it through a ``file:...?mode=ro`` URI: it never writes the database. A WAL
  reader still needs the ``-shm`` index; SQLite creates it (and an empty ``-wal``) when
  the writer is not running, as the same user; ``immutable=1`` is never used, as it
  would read a live database wrong;
* polls ``PRAGMA data_version``, which changes when another connection commits, and
  reads only then;
* reads in one short read transaction (a WAL reader blocks no writer; it only holds
  back checkpoints while it lasts) at most ``ROWS_PER_READ`` rows, and decodes (zstd,
  JSON) after the transaction ended.

Rows are ``transcript_events(session_id, seq, event_json | event_zstd)``; a session's key
comes from ``session_windows`` (or ``session_nodes.current_session_id``).

OpenClaw rewrites a session's transcript in one transaction: it deletes its rows from a
seq on (``replaceSqliteTranscriptSuffixInTransaction``) or all of them
(``replaceSqliteTranscriptEventsInTransaction``) and inserts the new ones from that seq
(0 for all), so new rows may take seqs below the cursor. A session whose last row is now
before its cursor less one (it got shorter than what was read) is read again from seq 0
(``reread``); its records map to the same events as before, which the node answers as
already stored. A rewrite that leaves a session as long as what was read, or longer, and
a record edited in place at its seq (OpenClaw does that to an assistant reply after a
media reply) are not seen: such an edit is not imported, and the records read before
stay. A session with no row left that OpenClaw's cold storage holds
(``session_transcript_cold_archives``, which moves all of a session's rows out and puts
them back with their seqs) is not read and keeps its cursor; one with no row left that
cold storage does not hold either (deleted, or emptied: replaced with no events, its
``session_windows`` row left) is not in ``present``: the bridge drops its cursor entry,
and reads it from seq 0 if rows come back, which for one emptied is harmless (what of
it was stored is answered as stored).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import zstandard

from node.openclaw.cursor_room import within_limit
from node.openclaw.source import (
    RECORD_BYTES_MAX,
    RECORDS_OF_WAITING,
    Item,
    Problem,
    Record,
    parse_record,
    path_there,
)

#: Rows one read transaction takes at most (keeps it short, and memory bounded).
ROWS_PER_READ = 500
#: Of a session whose next record waits (for the node's clock), ``RECORDS_OF_WAITING``
#: rows are read, so that the waiting session, read again at every pass, leaves the rest
#: of ``ROWS_PER_READ`` to the others. These are read even past ``ROWS_PER_READ`` (so a
#: read may take that many more rows per waiting session): a waiting session a read
#: finds no row of is taken for one gone.
#: How long a read waits on a lock before giving up until the next pass (ms).
BUSY_TIMEOUT_MS = 200
#: Errors of a database being created, migrated or recovered: read it again later.
_TRANSIENT = ("no such table", "no such column", "locked", "busy", "schema")


#: Each session's last seq, found through the primary key's index one session at a time
#: (a skip scan: time grows with the sessions, not with the rows as GROUP BY would).
_TOPS = """
WITH RECURSIVE ids(id) AS (
    SELECT MIN(session_id) FROM transcript_events
    UNION ALL
    SELECT (SELECT MIN(session_id) FROM transcript_events WHERE session_id > ids.id)
    FROM ids WHERE ids.id IS NOT NULL)
SELECT id, (SELECT MAX(seq) FROM transcript_events WHERE session_id = ids.id)
FROM ids WHERE id IS NOT NULL
"""


class AgentDatabase:
    """One agent's SQLite store, read from a cursor; keep one per agent while watching."""

    def __init__(self, path: Path, agent_id: str, shown: str) -> None:
        self.path, self.agent_id, self.shown = path, agent_id, shown
        self._db: sqlite3.Connection | None = None
        self._version: int | None = None
        self._inode = 0  # of the file opened: a new file (restored, recreated) is reopened
        #: Of the waiting entries the last read was given, those of sessions still in the
        #: store with no row from their cursor on, each with what became of that row.
        self.emptied: dict[str, str] = {}
        #: Of the last read, the entries of sessions read again from their first row (rows
        #: removed from before their last row read: rewritten shorter): their cursor is
        #: saved from 0 on, whatever their records become.
        self.reread: set[str] = set()
        #: Of the last read, the entries of every session the store holds (rows, or in
        #: cold storage); None if that read failed: which sessions are gone is unknown.
        self.present: set[str] | None = None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        self._version = None  # data_version counts per connection: a new one starts over

    def changed(self) -> bool:
        """True if another connection committed since the last call (or on the first)."""
        try:
            if self._db is not None and self.path.stat().st_ino != self._inode:
                self.close()
        except OSError:
            self.close()
            return True
        try:
            # fetchall: a statement left unfinished would hold a read transaction open.
            version = int(self._connection().execute("PRAGMA data_version").fetchall()[0][0])
        except (sqlite3.Error, OSError):
            self.close()
            return True  # let read() explain
        seen, self._version = self._version, version
        return seen != version

    def read(self, cursor: dict[str, int],
             waiting: Collection[str] = ()) -> Iterator[Item]:
        """The records after ``cursor`` (entries ``session_entry`` -> next seq), at most
        ``ROWS_PER_READ`` of them, and ``RECORDS_OF_WAITING`` of each session whose entry is
        in ``waiting`` (past ``ROWS_PER_READ`` too); problems in their place."""
        self.emptied, self.reread, self.present = {}, set(), None
        try:
            rows, keys, present = self._fetch(cursor, waiting)
        except (sqlite3.Error, OSError) as error:
            self.close()
            yield Problem(self.shown, _explain(error))
            return
        self.present = present
        for session_id, seq, text, packed, created in rows:
            where = f"{self.shown}, session {session_id}, seq {seq}"
            entry = session_entry(session_id)
            value = _decode(text, packed)
            if isinstance(value, str):
                yield Problem(where, value, entry, seq + 1)
            else:
                yield Record(self.agent_id, keys.get(session_id), session_id, where, entry,
                             seq + 1, value, created if isinstance(created, int) else 0)

    def sessions(self) -> set[str] | None:
        """The entries of every session the store holds now (rows, or in cold storage),
        read in a short transaction of its own, no record read; None if the store cannot
        be read now: none is known gone. ``read`` says why."""
        try:
            db = self._connection()
            db.execute("BEGIN")
            try:
                return _present(db, db.execute(_TOPS).fetchall())
            finally:
                db.execute("COMMIT")
        except (sqlite3.Error, OSError):
            self.close()
            return None

    # -- plumbing ----------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self._inode = self.path.stat().st_ino
            uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
            db = sqlite3.connect(uri, uri=True, isolation_level=None,
                                 check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
            self._db = db
        return self._db

    def _fetch(self, cursor: dict[str, int],
               waiting: Collection[str]) -> tuple[list[Any], dict[str, str], set[str]]:
        db = self._connection()
        db.execute("BEGIN")
        try:
            keys = dict(db.execute("SELECT current_session_id, session_key FROM session_nodes "
                                   "WHERE current_session_id IS NOT NULL"))
            keys.update(db.execute("SELECT session_id, session_key FROM session_windows"))
            rows: list[Any] = []
            tops = db.execute(_TOPS).fetchall()
            # Read in the same transaction as the rows: a session moved to cold storage
            # (its archive row in, its rows out, in one commit) is never seen in neither.
            present = _present(db, tops)
            for session_id, top in tops:
                entry = session_entry(session_id)
                start = cursor.get(entry, 0)
                waits = entry in waiting
                # OpenClaw numbers a session's next row MAX(seq) + 1 (readNextTranscriptSeq):
                # rows removed from before the last one read give their seqs again, maybe
                # to rows a rewrite inserts in the same commit, below the cursor.
                if top + 1 < start:
                    start = 0
                    self.reread.add(entry)
                elif top < start and waits:
                    self.emptied[entry] = (
                        "its row is gone (deleted), the last of its session, whose earlier "
                        "rows are still there")
                if top < start or (len(rows) >= ROWS_PER_READ and not waits):
                    continue
                # Two rows at least: a header comes with the record after it, which
                # tells whether it begins a rewind's copy (mapping.copy_ms_of).
                limit = RECORDS_OF_WAITING if waits else max(2, ROWS_PER_READ - len(rows))
                rows += db.execute(
                    "SELECT session_id, seq, event_json, event_zstd, created_at "
                    "FROM transcript_events WHERE session_id = ? AND seq >= ? "
                    "ORDER BY seq LIMIT ?", (session_id, start, limit)).fetchall()
        finally:
            db.execute("COMMIT")
        return rows, {str(k): str(v) for k, v in keys.items() if v}, present


def _present(db: sqlite3.Connection, tops: list[Any]) -> set[str]:
    """The entries of the sessions with rows (``tops``) or in cold storage; read in the
    transaction ``tops`` was: a session moved to cold storage (its archive row in, its
    rows out, in one commit) is never seen in neither."""
    present = {session_entry(str(session_id)) for session_id, _top in tops}
    if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = "
                  "'session_transcript_cold_archives'").fetchall():
        present.update(session_entry(str(session_id)) for (session_id,) in db.execute(
            "SELECT session_id FROM session_transcript_cold_archives"))
    return present


def session_entry(session_id: str) -> str:
    """The cursor entry of SQLite session ``session_id``: ``db:<id>``, or ``db:#<hash>``
    for an id too long for it (``cursor_room.within_limit``), as one a JSONL session of
    such an id moved into SQLite has.

    >>> session_entry("s1"), session_entry("s" * 254)[:4]
    ('db:s1', 'db:#')
    """
    return within_limit("db:", session_id)


def rows_of_session(path: Path, session_id: str) -> int:
    """How many transcript rows OpenClaw's store at ``path`` holds for ``session_id``
    (0 if it has no such store or table); read-only, as everything here. ``OSError`` if
    whether the store is there cannot be told (a folder on the way cannot be looked into):
    looked at with ``path_there``, as ``exists()`` says False for that from Python 3.14 on."""
    if not path_there(path, folder=False):
        return 0
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True,
                                                timeout=BUSY_TIMEOUT_MS / 1000)) as db:
            return int(db.execute("SELECT COUNT(*) FROM transcript_events WHERE session_id = ?",
                                  (session_id,)).fetchone()[0])
    except sqlite3.Error:
        return 0


def _decode(text: str | None, packed: bytes | None) -> dict[str, Any] | str:
    """A row's record, or a sentence saying why it cannot be read."""
    if text is None and packed is None:
        return "the row has neither event_json nor event_zstd"
    if text is None:
        packed = bytes(packed or b"")
        try:
            size = zstandard.frame_content_size(packed)  # -1: not in the frame header
            if size > RECORD_BYTES_MAX:
                return f"event_zstd holds {size} bytes, over {RECORD_BYTES_MAX}; row skipped"
            raw = zstandard.ZstdDecompressor().decompress(packed,
                                                          max_output_size=RECORD_BYTES_MAX)
        except zstandard.ZstdError as error:
            return f"event_zstd does not decode as zstd ({error}); row skipped"
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            return f"event_zstd is not UTF-8 text ({error}); row skipped"
    return parse_record(text, "row skipped")


def _explain(error: sqlite3.Error | OSError) -> str:
    if isinstance(error, FileNotFoundError):
        return "is gone (moved or deleted while being followed); read again on the next pass"
    text = str(error)
    if any(word in text.lower() for word in _TRANSIENT):
        return (f"not readable now ({text}): OpenClaw may be creating or migrating it; "
                "read again on the next pass")
    if "unable to open" in text.lower():
        return (f"cannot open it ({text}): check that it exists and that clawsync runs as "
                "the user OpenClaw runs as")
    return f"cannot read it ({text}); read again on the next pass"
