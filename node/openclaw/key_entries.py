"""How the keys cursor (``node.openclaw.session_keys``) spells what it remembers of a
session, one entry each, and reads it back: its key (``entry_of``, ``pair_of``), the
byte its file was read up to under its id (``entry_of``, ``parts_of``), and the file
that byte is one of (``file_entry``, ``file_of``). An entry that names none of these
(written otherwise, or by a later release) reads as None, and is dropped at the next
save.
"""

from __future__ import annotations

from crdt.keys import is_name
from crdt.log.cursors import VALUE_MAX
from node.openclaw.source import FileIdentity

#: The largest byte an entry names (a cursor's largest value): one past it names none.
BYTE_MAX = VALUE_MAX


def entry_of(session_id: str, session_key: str | None, byte: int = 0) -> str | None:
    """The entry naming ``session_id``'s key, or with ``session_key`` None the one saying
    its file was read under its id up to ``byte``; None if it cannot be one.

    >>> entry_of("s:1", "agent:main:main"), entry_of("s:1", None, 120), entry_of("s:1", None)
    ('3:s:1:agent:main:main', '120+3:s:1', '3:s:1')
    >>> entry_of("s1", "k" * 300) is None  # over crdt.keys.NAME_BYTES_MAX
    True
    """
    if session_key is None:
        entry = f"{byte}+{len(session_id)}:{session_id}" if byte else \
            f"{len(session_id)}:{session_id}"
    else:
        entry = f"{len(session_id)}:{session_id}:{session_key}"
    return entry if is_name(entry) else None


def pair_of(entry: str) -> tuple[str, str] | None:
    """The session id and key an entry names (``entry_of``), or None if it names none.

    >>> pair_of("3:s:1:agent:main:main"), pair_of("9:s1:k"), pair_of("x"), pair_of("²:s:k")
    (('s:1', 'agent:main:main'), None, None, None)
    """
    parts = parts_of(entry)
    if parts is None or parts[1] is None or parts[2]:
        return None
    return parts[0], parts[1]


def file_entry(session_id: str, identity: FileIdentity) -> str | None:
    """The entry naming the file ``session_id``'s byte is one of: its device, inode and
    first record if known, ``<device>.<inode>[.<first record>]@<length of the
    id>:<session id>``; None if it cannot be one.

    >>> file_entry("s:1", FileIdentity(2049, 77, "5346f686"))
    '2049.77.5346f686@3:s:1'
    >>> file_entry("s:1", FileIdentity(2049, 77))
    '2049.77@3:s:1'
    """
    first = "" if identity.first is None else f".{identity.first}"
    entry = f"{identity.device}.{identity.inode}{first}@{len(session_id)}:{session_id}"
    return entry if is_name(entry) else None


def file_of(entry: str) -> tuple[str, FileIdentity] | None:
    """The session id and file a ``file_entry`` names, or None.

    >>> file_of("2049.77.5346f686@3:s:1")
    ('s:1', FileIdentity(device=2049, inode=77, first='5346f686'))
    >>> file_of("2049.77@3:s:1"), file_of("2049@3:s:1"), file_of("1.2@9:s1")
    (('s:1', FileIdentity(device=2049, inode=77, first=None)), None, None)
    """
    head, _colon, rest = entry.partition(":")
    identity, at, length = head.partition("@")
    device, dot, numbers = identity.partition(".")
    inode, dot_, first = numbers.partition(".")
    if not (at and dot and _number(device) and _number(inode) and _number(length)):
        return None
    if dot_ and not _first_hash(first):
        return None
    if not int(length) or len(rest) != int(length):
        return None
    return rest, FileIdentity(int(device), int(inode), first if dot_ else None)


def _first_hash(text: str) -> bool:
    """Whether ``text`` is a first record's hash as ``file_marks.first_record`` writes it:
    eight lowercase hexadecimal digits, one spelling per hash."""
    return len(text) == 8 and all(char in "0123456789abcdef" for char in text)


def parts_of(entry: str) -> tuple[str, str | None, int] | None:
    """The session id, key (None: the entry says its file was read under its id) and
    byte an entry names (``entry_of``), or None if it names none. Entries of the first
    release that kept marks read too: ``<byte>+<len>:<id>:<key>`` (the key, from that
    byte on) and ``<len>:<id>`` (read under its id, from byte 0).

    >>> parts_of("120+3:s:1"), parts_of("3:s:1:k"), parts_of("0+2:s1"), parts_of("3:s:1")
    (('s:1', None, 120), ('s:1', 'k', 0), None, ('s:1', None, 0))
    >>> parts_of("120+3:s:1:agent:main:main"), parts_of(f"{2**63}+2:s1")
    (('s:1', 'agent:main:main', 120), None)
    """
    head, _colon, rest = entry.partition(":")
    byte_text, plus, length = head.rpartition("+")
    # ASCII digits alone: "²".isdigit() is True, and int("²") raises. A byte of 0 is
    # written without it, and one past a cursor's values is none: one entry per meaning.
    if not _number(length) or (plus and not (_number(byte_text) and byte_text[0] != "0"
                                             and int(byte_text) <= BYTE_MAX)):
        return None
    size, byte = int(length), int(byte_text) if plus else 0
    if not size:  # no session has an empty id
        return None
    if len(rest) == size:
        return rest, None, byte
    if len(rest) < size or rest[size] != ":":
        return None
    return rest[:size], rest[size + 1:], byte


def _number(text: str) -> bool:
    return text.isascii() and text.isdigit()
