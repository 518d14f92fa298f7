"""Reading the older layout: one transcript file per session of an agent's ``sessions``
folder, which ``node.openclaw.session_files`` finds (from ``sessions.json`` and the
folder's listing), read from its cursor entry (``session_files.cursor_entry``: its id
and its file's name), the byte offset read up to.
A last line without its newline is being written: it is left for the next pass. A file
shorter than its offset was replaced or cut: it is read again from the start (the events
it maps to are recognised, so nothing is stored twice); its device, inode and first
record (``first_record``) tell the keys which (``session_keys``). So is one that grew
but whose first record is not the one the keys remember of it: another file
(``SessionKeys.another_file``); and one rewritten in place as long as its offset or
longer, told by its first record or the bytes before where a read ended (``Seen``),
or, at a first look, by the hash of the bytes before its offset its cursor keeps
(``file_marks.tail_mark``, in each record's ``mark``): rewritten while no bridge ran.
A file's first line is read only to tell that, or to be remembered: when the file got
shorter, changed since this process read it (or was not read by it yet: each file at
``watch``'s first pass), or when the keys ask for it (``SessionKeys.wants_first``); not
every file of every pass. The file of a
session whose next record waits (for the node's clock) is read again only once it
changed (inode, size, modification or change time) or the index gives it another key;
until then, what its last read found of it is given again. The entry of a session
whose file a read no longer finds (deleted, or renamed aside as OpenClaw does) is not in
``present``: the bridge drops it, and the file is read from its start if it comes back.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO, Protocol

from node.openclaw.cursor_room import tail_entry
from node.openclaw.file_marks import (
    TAIL_BYTES,
    BytesBefore,
    Head,
    Seen,
    before,
    digest,
    file_stamp,
    first_record,
    tail_mark,
)
from node.openclaw.legacy_files import opened
from node.openclaw.session_files import (
    cursor_entry,
    entries,
    read_index,
    session_files,
)
from node.openclaw.source import (
    RECORD_BYTES_MAX,
    RECORDS_OF_WAITING,
    FileIdentity,
    Item,
    Problem,
    Record,
    parse_record,
)

#: Bytes read from one file in one pass at most (a following pass goes on).
BYTES_PER_READ = 8 * 1024 * 1024


class KeptFiles(Protocol):
    """What a read asks of the files whose bytes the keys remember (``SessionKeys``):
    whether to hash a file's first record, and whether a file that grew is another."""

    def wants_first(self, session_id: str, session_key: str | None, device: int,
                    inode: int, grows: bool) -> bool: ...

    def another_file(self, session_id: str, identity: FileIdentity | None,
                     shorter: bool = True) -> bool: ...


class _NoneKept:
    """No file remembered: a first record is hashed only of a file got shorter."""

    def wants_first(self, session_id: str, session_key: str | None, device: int,
                    inode: int, grows: bool) -> bool:
        return False

    def another_file(self, session_id: str, identity: FileIdentity | None,
                     shorter: bool = True) -> bool:
        return shorter


#: What a read is asked without keys: nothing kept of any file.
NONE_KEPT: KeptFiles = _NoneKept()


class AgentSessions:
    """One agent's ``sessions`` folder, read from a cursor."""

    def __init__(self, folder: Path, agent_id: str, shown: str) -> None:
        self.folder, self.agent_id, self.shown = folder, agent_id, shown
        self._stamp: tuple[int, ...] = ()
        #: Of the waiting entries the last read was given, those whose file is there but
        #: holds nothing from their offset on, each with what became of it.
        self.emptied: dict[str, str] = {}
        #: Never any: a file cut shorter than its offset is read again from its start
        #: through its own record's place (``AgentDatabase.reread`` is the rows' case).
        self.reread: frozenset[str] = frozenset()
        #: Of the last read, session id -> the device, inode and first record of each
        #: file it read whose first record it hashed (what tells another file from one
        #: only cut shorter: ``session_keys``).
        self.identities: dict[str, FileIdentity] = {}
        #: Of the last read, the session ids whose file was read again from its start
        #: because it got shorter than its offset (replaced, or its end cut), or grew
        #: and is another file than the one the keys remember (``KeptFiles``).
        self.restarted: set[str] = set()
        #: The files the index named at the last read that are not among the folder's
        #: own entries (``sub/one.jsonl``): stamped by ``changed`` too.
        self._named_elsewhere: list[Path] = []
        #: Of the last read, the entries of every session file it found; None if it
        #: could not tell (the index or the folder did not read): none is known gone.
        self.present: set[str] | None = None
        #: Of the last read, the session ids of those files; None if it could not tell.
        self.held: set[str] | None = None
        #: Of the last read, session id -> key of every file the index names (none if
        #: it did not read): what the bridge remembers (``session_keys``).
        self.named: dict[str, str] = {}
        # Of the last read, session id -> the cursor entry of every file it read.
        self._read_entries: dict[str, str] = {}
        # Waiting entry -> (its session's key and id as the index gave them, its offset
        # and file's inode, size and times at its last read; what that read found of it).
        self._kept: dict[str, tuple[tuple[object, ...], list[Item]]] = {}
        # Entry -> what this process's last read of its file found (``Seen``): what tells
        # it rewritten in place as long as where it was read up to, or longer.
        self._seen: dict[str, Seen] = {}
        # Entry -> the offset of a file a read found rewritten (and read from its start)
        # whose records are not stored yet (``stored``).
        self._restarts: dict[str, int] = {}
        # Whether the read follows the files (``watch``), to look at them again.
        self._follows = False

    def changed(self) -> bool:
        """True if a file of the folder changed since the last call: its inode, size,
        modification or change time. The change time too: ``sessions.json`` rewritten
        at the same size with its modification time put back (os.utime, as a restore or
        a sync tool does) differs only in it (or in its inode, if it was replaced), which
        no one can set back. The files the index names in a subfolder as well: growing,
        they change nothing of the folder's own entries."""
        try:
            stamp = tuple(sorted(_entry_stamp(entry) for entry in self.folder.iterdir()))
        except OSError:
            stamp = ()
        flat = tuple(number for numbers in stamp for number in numbers)
        for path in self._named_elsewhere:
            try:
                flat += file_stamp(path.stat())
            except OSError:
                flat += (-1,) * 4  # gone or unreadable since: read, which says so
        seen, self._stamp = self._stamp, flat
        return seen != flat

    def close(self) -> None:
        pass

    def read(self, cursor: Mapping[str, int], waiting: Collection[str] = (),
             keys: KeptFiles = NONE_KEPT, follows: bool = False) -> Iterator[Item]:
        """The records after ``cursor``, problems in their place; of a session whose
        entry is in ``waiting``, its file unchanged since its last read, what that read
        found (its first ``RECORDS_OF_WAITING`` records), without reading it again. In
        ``identities``, each file read that got shorter, or whose first record ``keys``
        asks for (``SessionKeys``); a file that grew and is another than the one
        ``keys`` remembers (another first record) is read from its start, as one got
        shorter. ``follows``: the files are looked at again (``watch``), so what is
        seen of each is remembered at its first look, also of one with nothing to read."""
        self._kept = {entry: kept for entry, kept in self._kept.items() if entry in waiting}
        self.emptied, self.present, self.named, self._read_entries = {}, None, {}, {}
        self.held = None
        self.restarted, self.identities, self._follows = set(), {}, follows
        index, problem = read_index(self.folder, self.shown)
        if problem is not None:
            # Keys taken from the files' names meanwhile would be other sessions, for
            # good (the cursor moves on): wait for an index that reads.
            yield problem
            return
        files, known = session_files(self.folder, index)
        self.named = {session_id: key for session_id, (_file, key) in files.items()
                      if key is not None}
        self._read_entries = {session_id: cursor_entry(self.folder, session_id, file)
                              for session_id, (file, _key) in files.items()}
        self._named_elsewhere = sorted({path for path, _key in files.values()
                                        if path.parent != self.folder})
        read = set(self._read_entries.values())
        self._seen = {entry: seen for entry, seen in self._seen.items() if entry in read}
        self._restarts = {entry: at for entry, at in self._restarts.items() if entry in read}
        if known:
            self.present, self.held = entries(self.folder, files), set(files)
        for session_id, (file, session_key) in files.items():
            entry = cursor_entry(self.folder, session_id, file)
            start = cursor.get(entry, 0)
            mark = cursor.get(tail_entry(entry))
            if entry in waiting:
                items = list(self._read_waiting(file, session_id, session_key, entry,
                                                start, keys, mark))
                if not items:
                    self._emptied(file, entry)
                yield from items
            else:
                yield from self._read_file(file, session_id, session_key, entry, start,
                                           keys, mark)

    def read_to(self, cursor: dict[str, int]) -> dict[str, int]:
        """Of the last read, session id -> the byte ``cursor`` says its file was read up
        to, of every file it read: where a key learnt then applies from, if the file was
        read under its id so far, and how far a file read under its id was (``session_keys``)."""
        return {session_id: cursor.get(entry, 0)
                for session_id, entry in self._read_entries.items()}

    def sessions(self) -> set[str] | None:
        """The entries of every session file the folder holds now (the index and the
        folder's listing read, no transcript); None if that cannot be told (the index or
        the folder does not read): none is known gone. ``read`` says why."""
        index, problem = read_index(self.folder, self.shown)
        if problem is not None:
            return None
        files, known = session_files(self.folder, index)
        return entries(self.folder, files) if known else None

    def _read_waiting(self, path: Path, session_id: str, session_key: str | None,
                      entry: str, start: int, keys: KeptFiles, mark: int | None
                      ) -> Iterator[Item]:
        """A waiting session's file, read only if it (or its key) changed since its last
        read: a waiting session is looked at at every pass, and its file read up to
        ``BYTES_PER_READ`` each time otherwise."""
        try:
            # Taken before the read: a change during it is seen at the next look.
            info = path.stat()
            # The records carry the session's key (part of their events' ids): an index
            # that names the file anew is a change too. The file's change time as well
            # (``file_stamp``): one rewritten in place at the same size and its modification
            # time put back differs only in it.
            stamp: tuple[object, ...] | None = (session_key, session_id, start,
                                                *file_stamp(info))
        except OSError:
            stamp = None  # read, which says what is wrong
        kept = self._kept.get(entry)
        if kept is not None and kept[0] == stamp:
            yield from kept[1]
            return
        items = list(self._read_file(path, session_id, session_key, entry, start, keys,
                                     mark))
        self._kept.pop(entry, None)
        if stamp is not None and any(isinstance(item, Record) for item in items):
            # What the bridge tries of it; a problem of the whole file (a line still
            # being written) was said by this read.
            first: list[Item] = []
            records = 0
            for item in items:
                if records == RECORDS_OF_WAITING:
                    break
                if item.entry is not None:
                    first.append(item)
                    records += isinstance(item, Record)
            self._kept[entry] = (stamp, first)
        yield from items

    def _emptied(self, path: Path, entry: str) -> None:
        """A waiting session's file read with nothing found: if it is there, say what
        became of it in ``emptied`` (else it is gone)."""
        try:
            size = path.stat().st_size
        except OSError:
            return
        self.emptied[entry] = ("its transcript was emptied" if size == 0 else
                               "its transcript was cut short before it and holds no record")

    def _rewritten(self, entry: str, stamp: tuple[int, int, int, int], start: int,
                   head: Head, bytes_before: BytesBefore, mark: int | None) -> bool:
        """Whether the file of ``entry``, as long as ``start`` or longer, was rewritten
        in place (``Seen``) since this process read it up to there: not if its stamp
        stayed; or, not read by it there, since the cursor's ``mark`` of its bytes before
        ``start`` was saved (``file_marks.tail_mark``), whoever read it. A rewrite seen
        by a read whose records are not stored yet (the step failed) is still one while
        the cursor stays at the old offset."""
        if self._restarts.get(entry) == start:
            return True
        self._restarts.pop(entry, None)
        seen = self._seen.get(entry)
        if seen is not None:
            if seen.stamp == stamp:
                return False
            if head.first() != seen.first:
                return True
            tail = seen.tails.get(start)
            if tail is not None:
                return digest(bytes_before.since()) != tail
        # Not seen by this process at that offset (its first look since it started, or
        # a cursor changed on the node): the mark saved with the offset tells, if any.
        return mark is not None and tail_mark(bytes_before.since()) != mark

    def _remember(self, entry: str, stamp: tuple[int, int, int, int], start: int,
                  data: bytes, head: Head, bytes_before: BytesBefore) -> None:
        """Remember what was seen of the file of ``entry`` (``Seen``) at the offset this
        read of ``data`` from ``start`` ended (the end of its last complete line), and
        at ``start`` if known: what the next look compares. Nothing is remembered of a
        file nothing was read of unless this read ``follows`` the files (a one-shot
        import never looks again). A file that changed during the read is remembered
        with the stamp taken before it, so the next look hashes it again: an append
        keeps the hashes of what was read, a rewrite after the read changes them."""
        end = start + data.rfind(b"\n") + 1
        seen = self._seen.get(entry)
        if seen is not None and seen.stamp == stamp and end in seen.tails:
            return  # unchanged, nothing new read: nothing to read to remember it
        if end == start and not self._follows and seen is None:
            return
        since = max(0, end - TAIL_BYTES)
        tail = digest(bytes_before.since(since) + data[max(0, since - start):end - start])
        if start == 0:
            head.known = (first_record(data),)
        first = head.first()
        # The bytes before ``start``, if known of this file as it is now: where the
        # cursor stays if the node takes none of what was read (a record waits).
        kept = {start: seen.tails[start]} if seen is not None and start in seen.tails and (
            seen.stamp == stamp or seen.first == first) else {}
        self._seen[entry] = Seen(stamp, first, {**kept, end: tail})

    def stored(self, untouched: Collection[str]) -> None:
        """The last read's records are stored, its cursor saved, but for the entries in
        ``untouched`` (their first record waits, so nothing of them was stored): a
        rewrite it read again from the start is no longer to be read again from there."""
        self._restarts = {entry: at for entry, at in self._restarts.items()
                          if entry in untouched}

    def _read_file(self, path: Path, session_id: str, session_key: str | None,
                   entry: str, start: int, keys: KeptFiles, mark: int | None
                   ) -> Iterator[Item]:
        """The records of ``path`` from ``start`` (or its start: see the module), each
        with its ``tail_mark`` (``mark``: the one saved with ``start``)."""
        shown = f"{self.shown}/{path.relative_to(self.folder)}"
        try:
            with opened(path) as file:
                info = os.fstat(file.fileno())
                stamp = file_stamp(info)
                size = file.seek(0, 2)
                seen = self._seen.get(entry)
                head = Head(file.fileno(), (seen.first,) if seen is not None
                             and seen.stamp == stamp else None)
                anew = size < start  # got shorter: replaced, or cut
                bytes_before = BytesBefore(file.fileno(), start)
                if not anew and start and self._rewritten(entry, stamp, start, head,
                                                          bytes_before, mark):
                    anew = True
                    self._restarts[entry] = start  # till read again and stored
                # Its first line only when the keys are to tell or remember its file:
                # 4 KiB more of each file at each pass otherwise.
                if anew or keys.wants_first(session_id, session_key, info.st_dev,
                                            info.st_ino, start < size):
                    identity = FileIdentity(info.st_dev, info.st_ino, head.first())
                    self.identities[session_id] = identity
                    # Grown, but another file (rewritten or replaced): its records from
                    # the old offset on are not what follows what was read.
                    anew = anew or keys.another_file(session_id, identity, False)
                if anew:
                    start = 0  # replaced, cut, or another file: read it all again
                    bytes_before = BytesBefore(file.fileno(), start)
                    self.restarted.add(session_id)
                file.seek(start)
                data = file.read(BYTES_PER_READ)
                if len(data) == BYTES_PER_READ and b"\n" not in data:
                    data += file.readline(RECORD_BYTES_MAX)  # one long line (an image)
                    if not data.endswith(b"\n") and len(data) > RECORD_BYTES_MAX:
                        end = _line_end(file)
                        if end is not None:
                            yield Problem(f"{shown}, line at byte {start}",
                                          f"is longer than {RECORD_BYTES_MAX} bytes; skipped",
                                          entry, end, tail_mark(before(file.fileno(), end)))
                        return
                self._remember(entry, stamp, start, data, head, bytes_before)
                # The bytes before ``start`` that the mark of a record in the first
                # ``TAIL_BYTES`` read takes in; none read if no line is complete.
                kept_before = bytes_before.since() if b"\n" in data else b""
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
                # What the cursor keeps with ``end``: read from what is in memory.
                since = end - start - TAIL_BYTES
                end_mark = tail_mark(data[since:end - start] if since >= 0 else
                                     kept_before[max(0, len(kept_before) + since):]
                                     + data[:end - start])
                if isinstance(value, str):
                    yield Problem(where, value, entry, end, end_mark)
                else:
                    yield Record(self.agent_id, session_key, session_id, where, entry, end,
                                 value, mark=end_mark)
            offset = end
        if rest and start + len(data) >= size:
            yield Problem(f"{shown}, line at byte {offset}",
                          "ends without a newline (still being written, or cut short); "
                          "left for the next pass")


def _entry_stamp(entry: Path) -> tuple[int, int, int, int]:
    """The ``file_stamp`` of a folder's entry, where its links lead; a link's own where
    they lead nowhere (a file gone, a loop), and none for an entry gone since listed. A
    stat failing so failed the whole folder's: it was seen unchanged at every look, and
    ``watch`` read none of its agent's files again."""
    for follow in (True, False):
        try:
            return file_stamp(entry.stat(follow_symlinks=follow))
        except OSError:
            continue
    return (-1, -1, -1, -1)


def _line_end(file: BinaryIO) -> int | None:
    """The offset after the newline that ends the line being read, or None if the file
    ends first (the line is still being written)."""
    while chunk := file.read(BYTES_PER_READ):
        at = chunk.find(b"\n")
        if at >= 0:
            return file.tell() - len(chunk) + at + 1
    return None
