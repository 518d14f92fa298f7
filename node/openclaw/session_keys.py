"""The OpenClaw session key each session of an agent's files was stored under, kept by
the node beside the agent's cursor, so that reading a session again from its start
stores nothing twice.

A record's events carry its session's key (``node.openclaw.mapping``: part of their ids
and of the clawsync session they go to). The older layout's index (``sessions.json``)
names a key's current session only: after ``/new`` or a reset it names the new one, and
the old file, no longer named, is read under its session id (``bridge.mapping_events``).
Its records read while the index named it went under the key. Read again from its start
(its cursor entry dropped: a cursor reset, the session gone for a while), they would go
under the id: a second copy of the conversation. So the key a file's session was read
under is remembered here, and a session its store names no key for takes the one
remembered, which maps every record to the events stored before (answered as stored).
Each read of the files learns every session id its index names with that key (not only
those it reads records of): the files read before the keys were kept get theirs too.

A file read before its index named it (OpenClaw wrote it first) has its first records
stored under its session id, the rest under the key. So a session whose file is read
under its id is remembered as such (``mark``), and the key learnt for it later applies
from where its file had been read up to then (``since``): read again from its start,
its first records go under the id again and the rest under the key, the same events
both. A session read under its id by a release that kept no such mark has its key apply
from its file's start: read again, its first records are stored a second time, under
the key (they stay under the id too), rather than the whole conversation a second time
under the id.

Kept as a cursor of its own (``keys_name``), not in the agent's cursor: an entry there
goes with its session's (dropped when its file looks gone, or when the cursor is reset),
which is just when the key is needed. A cursor holds names to integers, so each entry
names both, ``<length of the id>:<session id>:<session key>``, and its value is the order
it was learnt in; ``<since>+<length of the id>:<session id>:<session key>`` when the key
applies from byte ``since`` of its file on; ``<length of the id>:<session id>`` for a
session read under its id (a release that knew neither form leaves them out, and reads
as before it did). It stays within ``SESSION_KEYS_MAX`` entries and the node's cursor size
(``crdt.log.cursors.CURSOR_BYTES_MAX``): past either, the sessions learnt first are
forgotten first (OpenClaw's own maintenance archives or deletes the oldest first). A pair
that cannot be an entry (over ``NAME_BYTES_MAX`` bytes, or with control characters) is
not remembered, and such a session is read as before. SQLite's store is not learnt from:
it keeps each session id's key itself (``session_windows``); but a session whose rows
name no key takes the key its file was read under (``openclaw doctor`` moved it there).

>>> keys = SessionKeys({})
>>> keys.learn("s1", "agent:main:main"), keys.learn("s1", "agent:main:main")
(True, False)
>>> keys.key_of("s1"), keys.key_of("s2")
('agent:main:main', None)
>>> SessionKeys(keys.saved()).key_of("s1")
'agent:main:main'
>>> keys.mark("s2"), keys.learn("s2", "agent:main:s2", read_to=120), keys.since("s2")
(True, True, 120)
>>> sorted(keys.saved())
['120+2:s2:agent:main:s2', '2:s1:agent:main:main']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from crdt import codec
from crdt.errors import InvalidInput
from crdt.keys import check_name
from crdt.log.cursors import CURSOR_BYTES_MAX
from node.openclaw.source import Item, Record

#: Sessions whose key is remembered, per agent, at most (and no more than fit in
#: ``CURSOR_BYTES_MAX`` encoded: about 60 bytes each for OpenClaw's usual ids and keys,
#: ``NAME_BYTES_MAX`` at most). Each ``/new`` or reset adds one: years of daily use.
SESSION_KEYS_MAX = 10_000
#: What the name of an agent's cursor gets to name its remembered keys.
KEYS_SUFFIX = ":keys"


def keys_name(cursor_name: str) -> str:
    """The node-kept cursor of an agent's remembered keys, beside its cursor ``name``.

    >>> keys_name("openclaw:ab12:cd34")
    'openclaw:ab12:cd34:keys'
    """
    return cursor_name + KEYS_SUFFIX


def entry_of(session_id: str, session_key: str | None, since: int = 0) -> str | None:
    """The entry naming ``session_id`` and its key (from byte ``since`` of its file on;
    None: read under its id), or None if it cannot be one.

    >>> entry_of("s:1", "agent:main:main"), entry_of("s:1", "agent:main:main", 120)
    ('3:s:1:agent:main:main', '120+3:s:1:agent:main:main')
    >>> entry_of("s:1", None)
    '3:s:1'
    >>> entry_of("s1", "k" * 300) is None  # over crdt.keys.NAME_BYTES_MAX
    True
    """
    if session_key is None:
        entry = f"{len(session_id)}:{session_id}"
    elif since:
        entry = f"{since}+{len(session_id)}:{session_id}:{session_key}"
    else:
        entry = f"{len(session_id)}:{session_id}:{session_key}"
    try:
        return check_name(entry, "entry")
    except InvalidInput:
        return None


def pair_of(entry: str) -> tuple[str, str] | None:
    """The session id and key an entry names from its file's start (``entry_of``), or
    None if it names none so.

    >>> pair_of("3:s:1:agent:main:main"), pair_of("9:s1:k"), pair_of("x"), pair_of("²:s:k")
    (('s:1', 'agent:main:main'), None, None, None)
    """
    parts = parts_of(entry)
    if parts is None or parts[1] is None or parts[2]:
        return None
    return parts[0], parts[1]


def parts_of(entry: str) -> tuple[str, str | None, int] | None:
    """The session id, key (None: read under its id) and ``since`` an entry names
    (``entry_of``), or None if it names none.

    >>> parts_of("120+3:s:1:agent:main:main"), parts_of("3:s:1"), parts_of("0+2:s1:k")
    (('s:1', 'agent:main:main', 120), ('s:1', None, 0), None)
    """
    head, _colon, rest = entry.partition(":")
    since_text, plus, length = head.rpartition("+")
    # ASCII digits alone: "²".isdigit() is True, and int("²") raises. A ``since`` of 0
    # is written without it: one entry per meaning.
    if not _number(length) or (plus and not (_number(since_text) and since_text[0] != "0")):
        return None
    size = int(length)
    if len(rest) == size:
        return None if plus else (rest, None, 0)
    if len(rest) < size or rest[size] != ":":
        return None
    return rest[:size], rest[size + 1:], int(since_text) if plus else 0


def _number(text: str) -> bool:
    return text.isascii() and text.isdigit()


class SessionKeys:
    """An agent's remembered keys, as saved (``saved``) or read back from the node."""

    def __init__(self, saved: dict[str, int] | None) -> None:
        # Session id -> (its key, None if read under its id; since; its entry; the order
        # it was learnt in). A saved entry that names none (written otherwise) is left
        # out, and so dropped at the next save.
        self._keys: dict[str, tuple[str | None, int, str, int]] = {}
        for entry, order in sorted((saved or {}).items(), key=lambda item: item[1]):
            parts = parts_of(entry)
            if parts is not None:
                self._keys[parts[0]] = (parts[1], parts[2], entry, order)
        self._next = max((order for order in (saved or {}).values()), default=-1) + 1
        #: Whether something was learnt since the last save that went through: set by
        #: ``learn`` and ``mark``, cleared by the caller once the node took ``saved()``. A
        #: save that fails leaves it set, so the next read saves them again.
        self.unsaved = False
        # Session id -> key (None: read under its id), of those forgotten here for room
        # (``saved``): not learnt again with that key, or each read of an index naming
        # more than fit would learn them again, forget others, and save the keys anew
        # every time.
        self._forgotten: dict[str, str | None] = {}

    def key_of(self, session_id: str) -> str | None:
        kept = self._keys.get(session_id)
        return None if kept is None else kept[0]

    def since(self, session_id: str) -> int:
        """The byte of its file from which ``session_id``'s key applies: its records
        ending there or before were read under its id."""
        kept = self._keys.get(session_id)
        return 0 if kept is None else kept[1]

    def learn(self, session_id: str, session_key: str, read_to: int = 0) -> bool:
        """Remember ``session_key`` as ``session_id``'s (the last named wins), its file
        read up to byte ``read_to`` so far: under its id if it was marked so (``mark``),
        and then the key applies from there on. Whether that changed anything (to save)."""
        if session_key in (self.key_of(session_id), self._forgotten.get(session_id)):
            return False
        kept = self._keys.get(session_id)
        # Marked: read under its id up to now. Keyed before: from where that key did.
        since = 0 if kept is None else read_to if kept[0] is None else kept[1]
        entry = entry_of(session_id, session_key, since)
        if entry is None and since:
            # No room for ``since`` in the name: from the file's start, as before it was
            # kept, rather than not at all (the whole conversation under the id).
            since, entry = 0, entry_of(session_id, session_key)
        if entry is None:
            return False
        self._keep(session_id, (session_key, since, entry))
        return True

    def mark(self, session_id: str) -> bool:
        """Remember that ``session_id``'s file is read under its id (no key known for
        it); whether that changed anything (to save)."""
        if session_id in self._keys or session_id in self._forgotten:
            return False
        entry = entry_of(session_id, None)
        if entry is None:
            return False
        self._keep(session_id, (None, 0, entry))
        return True

    def _keep(self, session_id: str, kept: tuple[str | None, int, str]) -> None:
        self._keys.pop(session_id, None)  # re-learnt: last in order, forgotten last
        self._keys[session_id] = (*kept, self._next)
        self._next += 1
        self.unsaved = True

    def saved(self) -> dict[str, int]:
        """What to save: the entries learnt last, within ``SESSION_KEYS_MAX`` and
        ``CURSOR_BYTES_MAX``; the ones left out are forgotten here too."""
        kept = sorted(self._keys.items(), key=lambda item: item[1][3])[-SESSION_KEYS_MAX:]
        cursor = {entry: order for _id, (_key, _since, entry, order) in kept}
        size = len(codec.encode_fast(cursor))
        for _id, (_key, _since, entry, order) in kept:
            if size <= CURSOR_BYTES_MAX:
                break
            del cursor[entry]
            size -= len(codec.encode_fast(entry)) + len(codec.encode_fast(order))
        # The map's head may have shrunk by a byte or two as entries left: never grown.
        kept_now = {session_id: kept_key for session_id, kept_key in kept
                    if kept_key[2] in cursor}
        self._forgotten.update((session_id, kept_key[0]) for session_id, kept_key
                               in self._keys.items() if session_id not in kept_now)
        self._keys = kept_now
        return cursor


def keyed(items: list[Item], keys: SessionKeys, named: Mapping[str, str] | None = None,
          read_to: Mapping[str, int] | None = None) -> list[Item]:
    """``items`` with each record whose store names no key given the one remembered for
    its session (if any), after learning the keys ``named`` (session id -> key: what a
    read of files found its index naming; None for a store of rows), each file read up
    to ``read_to`` (session id -> byte: its cursor before this read). A file's records
    up to where its key applies from (``SessionKeys.since``) go under its id, as they
    were first read; a file whose records go under its id is marked so. Whatever was
    learnt (``keys.unsaved``) is to be saved before the records' events are stored, so
    that a cursor never passes a record whose key is not remembered."""
    for session_id, session_key in (named or {}).items():
        keys.learn(session_id, session_key, (read_to or {}).get(session_id, 0))
    out: list[Item] = []
    for item in items:
        if isinstance(item, Record):
            if named is not None and item.after <= keys.since(item.session_id):
                item = replace(item, session_key=None)
            elif item.session_key is None:
                key = keys.key_of(item.session_id)
                if key is not None:
                    item = replace(item, session_key=key)
                elif named is not None:
                    keys.mark(item.session_id)
        out.append(item)
    return out
