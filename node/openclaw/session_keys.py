"""The OpenClaw session key each session of an agent's files was stored under, kept by
the node beside the agent's cursor, so that reading a session again from its start
stores nothing twice.

A record's events carry its session's key (``node.openclaw.mapping``: part of their ids
and of the clawsync session they go to). The older layout's index (``sessions.json``)
names a key's current session only: after ``/new`` or a reset it names the new one, and
the old file, no longer named, is read under its session id (``units.mapping_events``).
Its records read while the index named it went under the key. Read again from its start
(its cursor entry dropped: a cursor reset, the session gone for a while), they would go
under the id: a second copy of the conversation. So the key a file's session was read
under is remembered here, and a session its store names no key for takes the one
remembered, which maps every record to the events stored before (answered as stored).
Each read of the files learns every session id its index names with that key (not only
those it reads records of): the files read before the keys were kept get theirs too.

A file read before its index named it has its first records stored under its session
id, the rest under the key. OpenClaw 2026.9.6 leaves none so (it writes no such file:
its SQLite store holds a session's key before its first record; ``export`` writes the
index first): only a writer of the folder that brings a file before its entry does (a
script, a copy, a restore). That split is not waited out, only kept as it was made
(``watch`` reads what is there, as ``import`` does): a session whose file is read
under its id is remembered as such, with the byte its file was stored up to (``mark``,
moved on as its cursor moves), and the key learnt for it later applies from there
(``since``; or from where its cursor says the file was read up to, if further): read
again from its start, even with its cursor entry dropped before the key was learnt, its
first records go under the id again and the rest under the key, the same events both.
The file of the byte is kept with it (its device, inode and first record,
``file_entry``), and one rule tells, for a mark as for a key, whether the file read now
is another (``another_file``, then ``restart``: read from its start, what was read of
it under its id no longer applies, and its key applies from its start): another first
record makes it another file, whatever its length, device and inode; with the same
first record, one shorter than its offset was only cut on the same device and inode
(what was read of it under its id stays so) and is another on others (or with no file
known for the byte: a release before kept none), and one grown is the same file. A
first record is a short hash (``file_marks.first_record``): a file rewritten in place that
keeps its first line byte for byte (an OpenClaw header names only its session and when
it began) is taken for cut, its records up to the byte under its id; an identity the
release before kept, with no hash, is taken for cut on its device and inode alone, as it
was there.
A session read under its id by a release that kept no such mark has its key apply from
its file's start: read again, its first records are stored a second time, under the key
(they stay under the id too), rather than the whole conversation a second time under
the id.

Kept as a cursor of its own (``keys_name``), not in the agent's cursor: an entry there
goes with its session's (dropped when its file looks gone, or when the cursor is reset),
which is just when the key is needed. A cursor holds names to integers, so each entry
names what it says (spelt by ``node.openclaw.key_entries``), and its value is the order
it was learnt in: a key, ``<length of the id>:<session id>:<session key>``, as the
releases before marks wrote it; the byte a file was read up to under its id,
``<byte>+<length of the id>:<session id>`` (with a key: where the key applies from;
without: a mark), and the file that byte is one of, ``<device>.<inode>.<first
record>@<length of the id>:<session id>``, in the key's order (the release before
wrote none with ``.<first record>``, and reads one with it as naming nothing: it drops
it at its next save, and remembers the file by device and inode at its next read; a
file whose first line is not complete yet is not remembered). A
release that knew only keys reads no other form and drops the others at its next save,
keeping the keys: after going back to it, a key learnt after a mark applies from its
file's start, as it did there. Marks are kept within ``MARKS_MAX``, forgotten before any
key, and once their file is gone from the folder (one that comes back and is named then
has its key apply from its start); the whole within ``SESSION_KEYS_MAX`` keys, the
node's cursor size (``crdt.log.cursors.CURSOR_BYTES_MAX``) and entries
(``CURSOR_ENTRIES_MAX``): past these, the sessions learnt first are forgotten first
(OpenClaw's own maintenance archives or deletes the oldest first), and past the node's
size or entries, what costs least to lose goes before any key: the files' identities,
then the marks, then the keys' bytes (``SessionKeys._trimmed`` says why), each the first
learnt first. A cursor equal to the one the node holds is not sent again: a run at the
limits that learns nothing new, only what the run before left out, sends none. A key
that cannot be an entry (over ``NAME_BYTES_MAX`` bytes, or with control characters) is
not remembered, and such a session is read as before; a byte past a cursor's values
(``BYTE_MAX``) names nothing.

SQLite's store is not learnt from: it keeps each session id's key itself
(``session_windows``); but a session whose rows name no key takes the key its file was
read under (``openclaw doctor`` moved it there), for all its rows: ``since`` is not
applied to rows (their offsets are not a file's bytes), so a session whose file was read
under its id before its key was learnt, then moved by ``openclaw doctor``, has its first
records stored a second time, under the key.

>>> keys = SessionKeys({})
>>> keys.learn("s1", "agent:main:main"), keys.learn("s1", "agent:main:main")
(True, False)
>>> keys.key_of("s1"), keys.key_of("s2")
('agent:main:main', None)
>>> SessionKeys(keys.saved()).key_of("s1")
'agent:main:main'
>>> keys.mark("s2", 80), keys.mark("s2", 120), keys.learn("s2", "agent:main:s2", read_to=0)
(True, True, True)
>>> keys.since("s2"), sorted(keys.saved())
(120, ['120+2:s2', '2:s1:agent:main:main', '2:s2:agent:main:s2'])
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import replace
from typing import NamedTuple

from crdt import codec
from crdt.log.cursors import CURSOR_BYTES_MAX, CURSOR_ENTRIES_MAX, VALUE_MAX
from node.openclaw.key_entries import BYTE_MAX, entry_of, file_entry, file_of, parts_of
from node.openclaw.source import FileIdentity, Item, Record

#: Sessions whose key is remembered, per agent, at most (and no more than fit in
#: ``CURSOR_BYTES_MAX`` encoded: about 60 bytes each for OpenClaw's usual ids and keys,
#: ``NAME_BYTES_MAX`` at most). Each ``/new`` or reset adds one: years of daily use.
SESSION_KEYS_MAX = 10_000
#: Sessions remembered as read under their id with no key known (``SessionKeys.mark``),
#: per agent, at most: forgotten before any key, the first marked first. A mark is of use
#: only till its key is learnt (a file written before its index named it: moments), so
#: an agent without an index, whose every file is marked, keeps these few.
MARKS_MAX = 1_000
#: The largest order a session is learnt in (a cursor's largest value): past it, the
#: orders are numbered anew from 0, so that the node never refuses the keys.
ORDER_MAX = VALUE_MAX
#: The entries of a session, in the order they are dropped past the node's limits
#: (``SessionKeys._trimmed`` says why).
_FILE, _MARK, _BYTE, _KEY = range(4)
#: What the name of an agent's cursor gets to name its remembered keys.
KEYS_SUFFIX = ":keys"


def keys_name(cursor_name: str) -> str:
    """The node-kept cursor of an agent's remembered keys, beside its cursor ``name``.

    >>> keys_name("openclaw:ab12:cd34")
    'openclaw:ab12:cd34:keys'
    """
    return cursor_name + KEYS_SUFFIX


def refused_keys_hint(name: str) -> str:
    """What to say of the node refusing the keys cursor ``name``: which cursor it is, and
    how to go on (its keys learnt again from each index; files no longer named read under
    their session id, as before the keys were kept).

    >>> refused_keys_hint("openclaw:ab12:cd34:keys")[:58]
    'that is the cursor of the keys remembered for the sessions'
    """
    return (f"that is the cursor of the keys remembered for the sessions of an agent's "
            f"files ({name}); saving it empty (PUT /v1/cursors/{name} with "
            '{"cursor": {}}) lets the import go on, learning the keys anew from '
            "sessions.json; but a file sessions.json no longer names that is read "
            "again from its start then has its records stored a second time, under "
            "its session id")


class Kept(NamedTuple):
    """What is remembered of a session."""

    key: str | None  # None: its file is read under its id (a mark)
    byte: int  # the byte its file was read up to under its id
    order: int  # the order it was learnt in


class SessionKeys:
    """An agent's remembered keys, as saved (``saved``) or read back from the node."""

    def __init__(self, saved: dict[str, int] | None) -> None:
        # Session id -> what is remembered of it. A saved entry that names none (written
        # otherwise) is left out, and so dropped at the next save.
        self._keys: dict[str, Kept] = {}
        # Session id -> the file its byte is one of (``another_file``).
        self._files: dict[str, FileIdentity] = {}
        for entry, order in sorted((saved or {}).items(), key=lambda item: item[1]):
            file = file_of(entry)
            if file is not None:
                self._files[file[0]] = file[1]
                continue
            parts = parts_of(entry)
            if parts is None:
                continue
            session_id, key, byte = parts
            was = self._keys.get(session_id, Kept(None, 0, 0))
            # A key entry and the entry of its byte go together, in either order.
            self._keys[session_id] = Kept(key or was.key, max(byte, was.byte), order)
        self._next = max(kept.order for kept in self._keys.values()) + 1 \
            if self._keys else 0
        self._renumber()
        #: Whether something was learnt since the last save that went through: set by
        #: ``learn`` and ``mark``, cleared by the caller once the node took ``saved()``. A
        #: save that fails leaves it set, so the next read saves them again.
        self.unsaved = False
        #: What the node holds, as last loaded or saved (``stored``): a ``saved()`` equal
        #: to it is not sent again. Past the node's limits what one run learns anew (a
        #: file left out for room by the run before) is left out again, the same cursor.
        self.on_node: dict[str, int] | None = saved
        # Session id -> key (None: read under its id), of those forgotten here for room
        # (``saved``): not learnt again with that key, or each read of an index naming
        # more than fit would learn them again, forget others, and save the keys anew
        # every time.
        self._forgotten: dict[str, str | None] = {}
        # Session ids whose file was left out for room (``_trimmed``): not remembered
        # again, or each read would remember it and each save leave it out anew.
        self._unfiled: set[str] = set()
        self._forget_files()  # a cursor may name the file of a byte it does not hold

    def key_of(self, session_id: str) -> str | None:
        kept = self._keys.get(session_id)
        return None if kept is None else kept.key

    def since(self, session_id: str) -> int:
        """The byte of its file up to which ``session_id`` was read under its id: its
        records ending there or before go under its id, its key applies after it."""
        kept = self._keys.get(session_id)
        return 0 if kept is None else kept.byte

    def learn(self, session_id: str, session_key: str, read_to: int = 0) -> bool:
        """Remember ``session_key`` as ``session_id``'s (the last named wins), its file
        read up to byte ``read_to`` so far: under its id if it was marked so (``mark``),
        and then the key applies from there on (or from where the mark says, if further:
        its cursor entry dropped since). Whether that changed anything (to save)."""
        if session_key in (self.key_of(session_id), self._forgotten.get(session_id)):
            return False
        if entry_of(session_id, session_key) is None:
            return False
        kept = self._keys.get(session_id)
        # Marked: read under its id up to now. Keyed before: from where that key did.
        since = 0 if kept is None else max(read_to, kept.byte) if kept.key is None else kept.byte
        self._keep(session_id, session_key, since)
        return True

    def marked(self, session_id: str) -> bool:
        kept = self._keys.get(session_id)
        return kept is not None and kept.key is None

    def mark(self, session_id: str, read_to: int) -> bool:
        """Remember that ``session_id``'s file, no key known for it, is read under its id,
        its records stored up to byte ``read_to`` (its cursor); whether that changed
        anything (to save)."""
        kept = self._keys.get(session_id)
        if session_id in self._forgotten or (kept is not None and (
                kept.key is not None or kept.byte >= read_to)):
            return False
        if entry_of(session_id, None, read_to) is None or read_to > BYTE_MAX:
            return False
        self._keep(session_id, None, read_to)
        return True

    def another_file(self, session_id: str, identity: FileIdentity | None,
                     shorter: bool = True) -> bool:
        """Whether ``session_id``'s file, of ``identity`` now, is another file than the
        one its byte is of (``restart``), the same rule for a mark and a key. Another
        first record than the one kept: another file, whatever its device, inode and
        length (rewritten in place, or replaced). The same first record, or none kept
        (the release before kept none): a file ``shorter`` than its offset is the same
        file, only cut, on the same device and inode, and another on others or with
        nothing kept of it; one not shorter is the same file, grown or copied through a
        rename."""
        kept = self._files.get(session_id)
        if kept is not None and kept.first is not None and identity is not None and \
                identity.first != kept.first:
            return True
        return shorter and (identity is None or kept is None or kept[:2] != identity[:2])

    def wants_first(self, session_id: str, session_key: str | None, device: int,
                    inode: int, grows: bool) -> bool:
        """Whether a reader is to hash the first record of ``session_id``'s file, on
        ``device`` and ``inode``, its index naming ``session_key`` (None: none), and
        ``grows`` (it holds bytes past its offset); one got shorter is hashed anyway.
        Wanted when the records read now may mark it (nothing remembered of it, no key
        named): to remember its file; and of a file whose byte is remembered, when it
        grew (another first record: another file, ``another_file``), is on another
        device or inode (a copy through a rename: remembered anew) or is kept without a
        first record (the release before's). Not otherwise: not every file of every
        pass, nor one whose key applies from its start."""
        kept = self._keys.get(session_id)
        if kept is None:
            return grows and session_key is None and session_id not in self._forgotten
        if not self._files_kept(session_id):
            return False
        file = self._files.get(session_id)
        return grows or file is None or file[:2] != (device, inode) or file.first is None

    def file_is(self, session_id: str, identity: FileIdentity) -> None:
        """``session_id``'s file, read now, is the one of ``identity``: remembered while
        a byte of it is (a mark, or where its key applies from). One whose first record
        is not known (its first line not complete yet) tells nothing: the one kept, if
        any, stays; an identity without one is only ever the release before's."""
        if not self._files_kept(session_id) or identity.first is None:
            return
        if self._files.get(session_id) != identity:
            self._files[session_id] = identity
            self.unsaved = True

    def _files_kept(self, session_id: str) -> bool:
        """Whether the file ``session_id`` is read from is remembered: that of a byte
        (a mark, or where its key applies from), not left out for room."""
        kept = self._keys.get(session_id)
        return kept is not None and (kept.key is None or kept.byte > 0) and \
            session_id not in self._unfiled

    def _forget_files(self) -> None:
        """Forget the files of the sessions no byte is remembered of (forgotten, or
        their key applying from their file's start): nothing is told by them any more,
        and a bridge that runs for months would keep one for each session it forgot."""
        self._files = {session_id: identity for session_id, identity in self._files.items()
                       if self._files_kept(session_id)}

    def restart(self, session_id: str) -> bool:
        """``session_id``'s file is read again from its start, another file now
        (``another_file``): what was read of it under its id no longer tells anything.
        Whether that changed anything (to save)."""
        self._files.pop(session_id, None)
        self._unfiled.discard(session_id)  # another file: room for it is tried anew
        kept = self._keys.get(session_id)
        if kept is None or not kept.byte:
            return False
        if kept.key is None:
            del self._keys[session_id]
        else:
            self._keys[session_id] = kept._replace(byte=0)
        self.unsaved = True
        return True

    def forget_gone(self, held: Collection[str]) -> None:
        """Forget what is kept of the sessions whose file the folder no longer holds (not
        among ``held``, session ids): their marks (a mark is of use only till its key is
        learnt, and a file gone will not be named to learn it), and which sessions were
        forgotten for room, keyed or not (kept so that an index naming more than fit does
        not learn them again at every read; a file gone is neither named nor read, and
        one that comes back under that name is a session learnt anew)."""
        self._forgotten = {session_id: key for session_id, key in self._forgotten.items()
                           if session_id in held}
        gone = [session_id for session_id, kept in self._keys.items()
                if kept.key is None and session_id not in held]
        for session_id in gone:
            del self._keys[session_id]
            self._unfiled.discard(session_id)
            self._files.pop(session_id, None)
        self.unsaved = self.unsaved or bool(gone)

    def _keep(self, session_id: str, key: str | None, byte: int) -> None:
        kept = self._keys.pop(session_id, None)
        if kept is not None and kept.key == key:
            order = kept.order  # a mark read further: learnt no later
        else:
            order, self._next = self._next, self._next + 1  # forgotten last
        self._keys[session_id] = Kept(key, byte, order)
        self.unsaved = True
        self._renumber()

    def _renumber(self) -> None:
        """With ``ORDER_MAX`` taken (loaded so, or reached while learning) no order is
        left to learn in, and one past it is a cursor the node refuses: the orders are
        numbered anew from 0, in the order they were learnt."""
        if self._next <= ORDER_MAX:
            return
        self._keys = {session_id: kept._replace(order=n) for n, (session_id, kept)
                      in enumerate(sorted(self._keys.items(), key=lambda kv: kv[1].order))}
        self._next = len(self._keys)

    def saved(self) -> dict[str, int]:
        """What to save: the marks, then the keys, learnt last, within ``MARKS_MAX``,
        ``SESSION_KEYS_MAX``, ``CURSOR_ENTRIES_MAX`` and ``CURSOR_BYTES_MAX``; past the
        node's entries or bytes, the entries that cost least to lose go first
        (``_trimmed``), and what is left out is forgotten here too."""
        by_order = sorted(self._keys.items(), key=lambda item: item[1].order)
        marks = [item for item in by_order if item[1].key is None]
        keyed_ = [item for item in by_order if item[1].key is not None]
        kept = dict(marks[max(0, len(marks) - MARKS_MAX):] + keyed_[-SESSION_KEYS_MAX:])
        cursor, dropped = self._trimmed(kept)
        for tier, session_id in dropped:
            if tier == _FILE:
                self._files.pop(session_id, None)
                self._unfiled.add(session_id)
            elif tier == _BYTE:
                kept[session_id] = kept[session_id]._replace(byte=0)
            else:
                del kept[session_id]
        self._forgotten.update((session_id, kept_key.key) for session_id, kept_key
                               in self._keys.items() if session_id not in kept)
        self._unfiled &= kept.keys()
        self._keys = kept
        self._forget_files()
        return cursor

    def stored(self, cursor: dict[str, int]) -> None:
        """The node took ``cursor`` (a ``saved()``): nothing is left to save."""
        self.on_node, self.unsaved = cursor, False

    def _trimmed(self, kept: dict[str, Kept]) -> tuple[dict[str, int], list[tuple[int, str]]]:
        """The cursor of ``kept`` within the node's entries and bytes, and what was left
        out for that: (tier, session id), each tier in the order its sessions were learnt.

        What costs least to lose goes first. A file's identity (``_FILE``) tells only
        whether a file got shorter than its offset was cut or replaced: without it, such
        a file is another, and its first records, if they went under its id, are stored
        a second time under its key; and a file seldom gets shorter. A mark (``_MARK``)
        says a file with no key known was read under its id: without it, the key learnt
        later applies from the file's start, the same few first records a second time if
        the file is read again from its start; and if no key comes, it costs nothing. A
        key's byte (``_BYTE``) costs the same few records, on the same condition, but its
        key is known for sure. A key (``_KEY``, with it every entry of its session) goes
        last: without it, a file no longer named read again from its start goes under its
        session id, the whole conversation a second time."""
        tiers: list[list[tuple[str, str, int]]] = [[], [], [], []]
        for session_id, (key, byte, order) in kept.items():
            if key is not None:
                entry = entry_of(session_id, key)
                if entry is not None:
                    tiers[_KEY].append((session_id, entry, order))
            if byte or key is None:
                entry = entry_of(session_id, None, byte)
                if entry is not None:
                    tiers[_BYTE if key is not None else _MARK].append((session_id, entry, order))
                identity = self._files.get(session_id)
                entry = None if identity is None else file_entry(session_id, identity)
                if entry is not None:
                    tiers[_FILE].append((session_id, entry, order))
        cursor = {entry: order for tier in tiers for _id, entry, order in tier}
        size = len(codec.encode_fast(cursor))
        dropped: list[tuple[int, str]] = []
        for n, tier in enumerate(tiers):
            for session_id, entry, order in sorted(tier, key=lambda item: item[2]):
                if size <= CURSOR_BYTES_MAX and len(cursor) <= CURSOR_ENTRIES_MAX:
                    return cursor, dropped
                # The map's head may shrink by a byte or two as entries leave: never grow.
                del cursor[entry]
                size -= len(codec.encode_fast(entry)) + len(codec.encode_fast(order))
                dropped.append((n, session_id))
        return cursor, dropped


def keyed(items: list[Item], keys: SessionKeys, named: Mapping[str, str] | None = None,
          read_to: Mapping[str, int] | None = None,
          restarted: Iterable[str] = (), held: Collection[str] | None = None,
          identities: Mapping[str, FileIdentity] | None = None) -> list[Item]:
    """``items`` with each record whose store names no key given the one remembered for
    its session (if any), after learning the keys ``named`` (session id -> key: what a
    read of files found its index naming; None for a store of rows), each file read up
    to ``read_to`` (session id -> byte: its cursor before this read, what of it is
    stored). A file's records up to where its key applies from (``SessionKeys.since``)
    go under its id, as they were first read; a file whose records go under its id is
    marked so, up to what of it is stored; a file read again from its start
    (``restarted``: session ids; it got shorter than its offset, or grew and is another
    file) is another file, read as new, unless it is the same file, only cut
    (``another_file`` of its ``identities``: session id -> device, inode and first
    record of each file whose first record ``jsonl`` read): what was stored of it stays
    so; what is kept of a session whose file the folder no longer holds (not among
    ``held``, if known) is forgotten (``forget_gone``). Whatever was learnt
    (``keys.unsaved``) is to be saved before the records' events are stored, so that a
    cursor never passes a record whose key is not remembered."""
    identities = identities or {}
    restarted = {session_id for session_id in restarted
                 if keys.another_file(session_id, identities.get(session_id))}
    for session_id in restarted:
        keys.restart(session_id)
    if held is not None:
        keys.forget_gone(held)
    # A file read again from its start: its records stored up to 0 of this file.
    stored_to = {session_id: 0 if session_id in restarted else byte
                 for session_id, byte in (read_to or {}).items()}
    for session_id, session_key in (named or {}).items():
        keys.learn(session_id, session_key, stored_to.get(session_id, 0))
    for session_id, byte in stored_to.items():
        if keys.marked(session_id):  # its cursor moved on since: what it stored so
            keys.mark(session_id, byte)
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
                    keys.mark(item.session_id, stored_to.get(item.session_id, 0))
        out.append(item)
    for session_id, identity in identities.items():
        keys.file_is(session_id, identity)
    return out
