"""What tells a session file rewritten in place from one only appended to: the hash of
its first record, and what a read saw of it (``Seen``): its stamp, and a hash of the
bytes before where the read ended. ``node.openclaw.jsonl`` keeps these per file; the
session keys remember first records across runs (``node.openclaw.session_keys``), and
the cursor a short hash of the bytes before each file's offset (``tail_mark``), saved
with it: a file rewritten while no bridge ran is told too.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

#: Bytes of a file's start read to find its first record (``first_record``): an
#: OpenClaw header is about 200; a first line longer than this is hashed up to here.
FIRST_RECORD_BYTES = 4096
#: Bytes before where a file was read up to hashed (``Seen``), at most: the end of the
#: records last read, which a file only appended to never changes.
TAIL_BYTES = 4096
#: Bytes of the hash the cursor keeps of the ``TAIL_BYTES`` before a file's offset
#: (``tail_mark``): an integer, as cursor values are; 5 bytes of CBOR each.
TAIL_MARK_BYTES = 4


def first_record(head: bytes) -> str | None:
    """A short hash of the first record of a file starting with ``head`` (its first
    ``FIRST_RECORD_BYTES``): its first line with its newline, or all of ``head`` if it
    holds no newline and is that long; None if no first line is complete yet. A file
    rewritten in place with other records has another (its records up to a byte kept
    under its session id are not those read before); one only cut shorter keeps it.

    >>> first_record(b'{"type":"session"}\\n{"type":"message"}\\n')
    '5346f686'
    >>> first_record(b'{"type":"sess') is None
    True
    >>> long = b"x" * FIRST_RECORD_BYTES  # a first line that long: hashed up to there
    >>> first_record(long) == first_record(long + b"y\\n") != first_record(long[1:] + b"\\n")
    True
    """
    head = head[:FIRST_RECORD_BYTES]
    end = head.find(b"\n")
    if end < 0 and len(head) < FIRST_RECORD_BYTES:
        return None
    line = head if end < 0 else head[:end + 1]
    return hashlib.blake2b(line, digest_size=4).hexdigest()


@dataclass(frozen=True, slots=True)
class Seen:
    """What this process saw of a file, to tell whether it was rewritten since (the same
    path, other records: OpenClaw rewrites a transcript so) as long as its cursor's
    offset, or longer: one got shorter is read again from its start anyway. A file only
    appended to keeps its first record and the bytes before where it was read up to;
    one whose stamp changed is rewritten if either differs, hashed again (two reads of at
    most 4 KiB, never the whole file). Taken where a read ended (from the bytes it read)
    and, if known, where it began: a cursor left elsewhere (partly stored) is told only
    by the first record. The bytes after the offset are not looked at: not read into
    the cursor yet, they are read as they are now. Kept in memory; a file rewritten
    while no bridge ran is told by the mark its cursor keeps (``tail_mark``), or, from a
    cursor saved without one, only if the keys remember its first record
    (``session_keys``); nor is one rewritten, its first record kept, between the stamp a
    read took and the bytes it read (what it read is of the new file)."""

    stamp: tuple[int, int, int, int]  # its ``file_stamp`` when seen
    first: str | None  # ``first_record`` of its start
    tails: dict[int, bytes]  # offset -> a hash of the ``TAIL_BYTES`` before it (or all)


@dataclass(slots=True)
class Head:
    """The first record (``first_record``) of the open file ``fd``, read at most once
    (``FIRST_RECORD_BYTES``), not at all if what was seen of it at its stamp tells it."""

    fd: int
    known: tuple[str | None] | None = None

    def first(self) -> str | None:
        if self.known is None:
            self.known = (first_record(os.pread(self.fd, FIRST_RECORD_BYTES, 0)),)
        return self.known[0]


@dataclass(slots=True)
class BytesBefore:
    """The bytes of the open file ``fd`` before ``offset`` (``TAIL_BYTES`` at most), read
    at most once: what tells it rewritten there, what a read remembers of it, and what
    the marks of the records read first take in."""

    fd: int
    offset: int
    known: bytes | None = None

    def since(self, since: int | None = None) -> bytes:
        """Those bytes from ``since`` (all of them by default)."""
        if self.known is None:
            self.known = before(self.fd, self.offset)
        if since is None:
            return self.known
        return self.known[len(self.known) - (self.offset - since):] if since < self.offset \
            else b""


def before(fd: int, offset: int, since: int | None = None) -> bytes:
    """The bytes of ``fd`` before ``offset`` from ``since`` (``TAIL_BYTES`` at most)."""
    since = max(0, offset - TAIL_BYTES) if since is None else since
    return os.pread(fd, offset - since, since) if since < offset else b""


def tail_mark(data: bytes) -> int:
    """The hash the cursor keeps of ``data``, the ``TAIL_BYTES`` (or fewer, from the
    file's start) before a file's offset: what a file rewritten in place at that length
    or longer no longer has there, whether a bridge ran meanwhile or not.

    >>> tail_mark(b'{"type":"session"}\\n')
    1397159558
    """
    return int.from_bytes(hashlib.blake2b(data, digest_size=TAIL_MARK_BYTES).digest(), "big")


def digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def file_stamp(info: os.stat_result) -> tuple[int, int, int, int]:
    """What tells that a file changed: its inode, size, modification and change time
    (which any write, and os.utime, moves and nothing sets back)."""
    return info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns
