"""Whether an agent's cursor fits what the node keeps (``crdt.log.cursors``), and what to
say when it does not: the agent, the figure, and what to do (``CursorFull``).

The cursor keeps an entry per session (and one per rewind's copy, ``COPY_PREFIX``), so
its limits bound the sessions an agent may have. A cursor over them is never saved: the
bridge stops the command at the step that would take it over (``node.openclaw.bridge``),
having saved of it what fits (``what_fits``): the sessions it kept read on, and each new
one that fits, so that each run after reads again only those that do not. A ``.jsonl``'s
tail mark (``TAIL_PREFIX``) is kept beside its offset only while there is room, after
every other entry, the marks of the files a step read first (``with_marks``): it never
costs a session its offset.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from crdt import codec
from crdt.errors import Picklable
from crdt.keys import is_name
from crdt.log.cursors import CURSOR_BYTES_MAX, CURSOR_ENTRIES_MAX
from node.openclaw.file_marks import TAIL_MARK_BYTES
from node.openclaw.session_names import digest_of

#: The cursor entry keeping the time of a session's header that begins a rewind's copy:
#: the copy may span several reads, and a restart between them.
COPY_PREFIX = "copy:"
#: The cursor entry keeping, beside a ``.jsonl``'s offset, a hash of the bytes before it
#: (``file_marks.tail_mark``): what tells the file rewritten in place at that length or
#: longer, also after a restart. Saved in the same cursor as the offset it was taken at,
#: or not at all (``with_marks``); a file without one is told rewritten only as a cursor
#: without marks tells it. A release without it takes such an entry for a session gone
#: from the files (no file is named so) and drops it at its next save.
TAIL_PREFIX = "tail:"
#: What follows the prefix of an entry that would not be valid (over 256 bytes,
#: ``crdt.keys.NAME_BYTES_MAX``, say), before a hash of what it names (``within_limit``,
#: ``hashed``): ``tail:#<hash>``, ``copy:#<hash>``, ``db:#<hash>``, ``jsonl:#<hash>``,
#: ``jsonl-file:#<hash of the name>:<id>``. Each is found again from the cursor's other
#: entries (``entry_owners``) or made anew from what it names. The release before takes
#: a mark or a copy time so for the entry of a JSONL session gone, and drops it.
HASHED = "#"
#: What the entries of a ``.jsonl``'s offset begin with (``session_files.cursor_entry``):
#: those that may have a tail mark.
FILE_PREFIXES = ("jsonl:", "jsonl-file:")
#: What a session's entry begins with: a file's, or a SQLite session's (``db:<id>``,
#: ``sqlite.session_entry``); each may have a rewind's copy time (``copy_entry``).
SESSION_PREFIXES = (*FILE_PREFIXES, "db:")
#: The largest tail mark: room for one is room for a mark of this size.
TAIL_MARK_MAX = 2 ** (8 * TAIL_MARK_BYTES) - 1


def session_of(entry: str, owners: Mapping[str, str] | None = None) -> str:
    """The session entry a cursor entry goes with: itself, or the one a rewind's copy
    time or a file's tail mark is kept for (dropped, kept and counted with it); that of
    one under a hash (``copy:#``, ``tail:#``: ``within_limit``) is found in ``owners``
    (``entry_owners`` of the cursor), and is none of the cursor's without them.

    >>> session_of("tail:jsonl:s1"), session_of("copy:db:s1"), session_of("db:s1")
    ('jsonl:s1', 'db:s1', 'db:s1')
    """
    if owners is not None and entry in owners:
        return owners[entry]
    return entry.removeprefix(COPY_PREFIX).removeprefix(TAIL_PREFIX)


def within_limit(prefix: str, rest: str) -> str:
    """The cursor entry ``prefix`` and ``rest``, or, where that is not a valid entry
    (``crdt.keys.is_name``: over ``crdt.keys.NAME_BYTES_MAX``, or with a control
    character or a character that is not UTF-8, as a file's name may have, which the
    node would refuse at every save), ``prefix``, ``#`` and a hash of ``rest``
    (``session_names.digest_of``): an entry of the same kind, found again only by making it
    anew from what it names (``entry_owners``, ``session_files.cursor_entry``). A valid
    entry keeps its plain form, byte for byte.

    >>> within_limit("jsonl:", "s1")
    'jsonl:s1'
    >>> long = within_limit("jsonl-file:", "s" * 250)
    >>> long.startswith("jsonl-file:#"), len(long)
    (True, 44)
    >>> within_limit("jsonl:", "s" + chr(1)), within_limit("jsonl:", "s" + chr(0xDCFF))
    ('jsonl:#...', 'jsonl:#...')
    """
    return prefix + rest if is_name(prefix + rest) else prefix + hashed(rest)


def hashed(text: str) -> str:
    """``HASHED`` and a hash of ``text`` (``session_names.digest_of``): what an entry too
    long for what it names keeps in its place (``within_limit``).

    >>> hashed("s1")
    '#...'
    """
    return HASHED + digest_of(text)


def tail_entry(entry: str) -> str:
    """The entry of the tail mark of a file's cursor ``entry``: ``TAIL_PREFIX`` and
    ``entry``, or, where that is not a valid entry (an entry of more than 251 bytes),
    ``tail:#`` and a hash of ``entry`` (``within_limit``); the file's entry is
    found again from its cursor (``entry_owners``).

    >>> tail_entry("jsonl:s1")
    'tail:jsonl:s1'
    >>> long = tail_entry("jsonl:" + "s" * 246)
    >>> long.startswith(TAIL_PREFIX + HASHED), len(long)
    (True, 38)
    """
    return within_limit(TAIL_PREFIX, entry)


def copy_entry(entry: str) -> str:
    """The entry of the time of the header beginning a rewind's copy in the session of
    cursor ``entry``: ``COPY_PREFIX`` and ``entry``, or, where that is not a valid entry,
    ``copy:#`` and a hash of ``entry`` (``within_limit``), found again as a tail mark is
    (``entry_owners``).

    >>> copy_entry("db:s1"), copy_entry("jsonl:" + "s" * 246)[:6]
    ('copy:db:s1', 'copy:#')
    """
    return within_limit(COPY_PREFIX, entry)


def entry_owners(entries: Iterable[str]) -> dict[str, str]:
    """The entries kept for each session's entry among ``entries`` (a cursor's): its
    rewind's copy time (``copy_entry``) and, for a file, its tail mark (``tail_entry``),
    each to that session's entry: what one under a hash goes with (``session_of``)."""
    owners = {}
    for entry in entries:
        if entry.startswith(SESSION_PREFIXES):
            owners[copy_entry(entry)] = entry
            if entry.startswith(FILE_PREFIXES):
                owners[tail_entry(entry)] = entry
    return owners


class CursorFull(Picklable):
    """An agent's cursor would be over its limits: it has more sessions than the node
    keeps where they were read up to. Said with the agent, the figure and what to do."""


def room_over(cursor: dict[str, int]) -> str | None:
    """How far ``cursor`` is over what the node keeps (``crdt.log.cursors``), or None:
    found here, before the node refuses it in its own words (a cursor, a number), so
    that the agent is named and what to do said (``cursor_full``). A step asks it of its
    cursor without tail marks (``unmarked``): they are added after, while there is room."""
    entries = len(cursor)
    if entries > CURSOR_ENTRIES_MAX:
        owners = entry_owners(cursor)
        sessions = len({session_of(entry, owners) for entry in cursor})
        each = "an entry each" if entries == sessions else \
            f"{entries} entries: one each, and one per rewind's copy being read"
        return f"{sessions} sessions ({each}), over the limit of {CURSOR_ENTRIES_MAX} entries"
    size = len(codec.encode_fast(cursor))
    if size <= CURSOR_BYTES_MAX:
        return None
    return f"{size} bytes encoded (about one entry per session, longer for long " \
           f"session ids), over the limit of {CURSOR_BYTES_MAX}"


def unmarked(cursor: dict[str, int]) -> dict[str, int]:
    """``cursor`` without its files' tail marks: what the limits are checked on, as the
    release before them kept it."""
    return {entry: at for entry, at in cursor.items() if not entry.startswith(TAIL_PREFIX)}


def what_fits(kept: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Of ``after`` (``kept``, a cursor under the limits, with a step's moves; neither
    with tail marks), over the limits: what can be saved. The moves of the sessions
    ``kept`` holds, then each new session's entries, in their order, that fit with those
    taken before it: one that does not fit is passed over, not stopped at, as a later
    one with a shorter id may fit still, so that every session that fits is read on. A
    session's entry and its rewind's copy time (``COPY_PREFIX``) go together or not at
    all, as the one read on without the other would map the copy wrong. Only ``kept`` if
    even the moves do not fit (longer integers, in bytes).
    """
    sessions: dict[str, dict[str, int]] = {}
    owners = entry_owners(after)
    for entry, at in after.items():
        if kept.get(entry) != at:
            sessions.setdefault(session_of(entry, owners), {})[entry] = at
    fits = dict(kept)
    grows = []
    for moves in sessions.values():
        if moves.keys() <= kept.keys():
            fits.update(moves)
        else:
            grows.append(moves)
    if room_over(fits) is not None:
        return dict(kept)
    return _while_room(fits, grows)


def with_marks(saved: dict[str, int], kept: dict[str, int], moved: dict[str, int]
               ) -> dict[str, int]:
    """``saved`` (a step's cursor under the limits, without marks: ``what_fits``) with the
    tail marks of ``kept`` (the cursor the step began from) and ``moved`` (the step's) that
    are of the offsets it saves, each while there is room, after every other entry: those
    of the files the step read (or read again) first, then those kept, as the sessions
    still written (hence rewritten) are the newest. A mark goes only with the offset it
    was taken at: one whose file's offset moved without it (its new one not saved for
    want of room, or none taken) is dropped, as a mark of another offset would tell the
    file rewritten at each read."""
    marks = _marks_of(saved, kept, moved)
    if room_over({**saved, **marks}) is None:
        return {**saved, **marks}
    return _while_room(dict(saved), [{entry: mark} for entry, mark in marks.items()])


def marks_lacking(cursor: dict[str, int]) -> int:
    """How many files whose offsets ``cursor`` (as saved) holds have no tail mark in it,
    and no room left for one: such a file is told rewritten while no bridge ran only as
    a cursor without marks tells it. Asked of every cursor saved, not only of the saves
    that leave a mark out: a cursor lacking marks stays so at the saves after it (of
    another store's session, of a session gone) while no room is made. A file without
    a mark in a cursor with room for it lacks one only as no read of it took one yet
    (a cursor of the release before): not for want of room."""
    lacking = [mark for mark in entry_owners(cursor)
               if mark.startswith(TAIL_PREFIX) and mark not in cursor]
    if not lacking:
        return 0
    body = _body(cursor)
    return sum(not _fits(body + _size(mark, TAIL_MARK_MAX), len(cursor) + 1)
               for mark in lacking)


def _marks_of(saved: dict[str, int], kept: dict[str, int], moved: dict[str, int]
              ) -> dict[str, int]:
    """The tail marks of ``kept`` and ``moved`` that go with the offsets ``saved`` holds
    (``with_marks``): the step's first, in their order, each over the one kept for its
    file."""
    marks = {}
    owners = entry_owners({**saved, **kept, **moved})
    for entry, mark in {**moved, **{entry: mark for entry, mark in kept.items()
                                    if entry not in moved}}.items():
        offset = owners.get(entry)
        if offset is not None and entry.startswith(TAIL_PREFIX):
            taken_at = (moved if entry in moved else kept).get(offset, kept.get(offset))
            if taken_at is not None and saved.get(offset) == taken_at:
                marks[entry] = mark
    return marks


def _while_room(fits: dict[str, int], groups: list[dict[str, int]]) -> dict[str, int]:
    """``fits`` (under the limits) with each of ``groups`` that fits with those taken
    before it, in their order; one that does not is passed over."""
    # Its size is summed as entries are taken (``_body``), not encoded again for each.
    body = _body(fits)
    for moves in groups:
        count = len(fits) + sum(entry not in fits for entry in moves)
        grown = body + sum(_size(entry, at) - (_size(entry, fits[entry]) if entry in fits
                                               else 0) for entry, at in moves.items())
        if _fits(grown, count):
            fits.update(moves)
            body = grown
    return fits


def _body(cursor: dict[str, int]) -> int:
    """The bytes of ``cursor``'s encoding but its head: a map's encoding is its head (its
    count) and each entry's key and value encoded in turn (``_size``)."""
    return len(codec.encode_fast(cursor)) - len(codec.head(5, len(cursor)))


def _fits(body: int, count: int) -> bool:
    """Whether a cursor of ``count`` entries whose encoding but its head is ``body`` bytes
    (``_body``) is under the limits."""
    return count <= CURSOR_ENTRIES_MAX and body + len(codec.head(5, count)) <= CURSOR_BYTES_MAX


def _size(entry: str, at: int) -> int:
    """The bytes one cursor entry takes in the cursor's encoding."""
    return len(codec.encode_fast(entry)) + len(codec.encode_fast(at))


def cursor_full(shown: str, agent_id: str, cursor: dict[str, int]) -> CursorFull:
    """The agent's cursor is over the limits (``room_over``): said with what to do. If
    it holds sessions twice, in both stores (``openclaw doctor --session-sqlite import``
    under way: rows in SQLite, files not moved yet), and would fit with each once, the
    move is said, to wait for; else, deleting sessions."""
    figure = room_over(cursor)
    assert figure is not None
    said = (f"agent {agent_id!r} ({shown}): where its sessions were read up to would take "
            f"{figure}, more than can be saved; ")
    twice, owners = in_both_stores(cursor), entry_owners(cursor)
    if twice and room_over({entry: at for entry, at in cursor.items()
                             if session_of(entry, owners) not in twice}) is None:
        said += (f"{len(twice)} of its sessions are in both its SQLite store and its "
                 "sessions folder: OpenClaw is moving them into SQLite (openclaw doctor "
                 "--session-sqlite import), and this agent fits once their files are "
                 "moved away; run the command again once the move is done (the systemd "
                 "unit restarts watch by itself)")
    else:
        said += ("delete in OpenClaw the sessions of this agent it no longer needs (a "
                 "deleted session's entry is dropped at the next import or watch pass; "
                 "OpenClaw's own maintenance archives them, which keeps them), or start new "
                 "sessions under another agent, then import again")
    return CursorFull(said + ". What is stored stays, and so does where the sessions that "
                             "fit were read up to: each run reads again the records of those "
                             "that do not, answered as already stored")


def marks_lacking_said(shown: str, agent_id: str) -> str:
    """What is said, once a run, of an agent at the first save of its cursor that lacks
    some of its files' tail marks for want of room (``marks_lacking``; a run that saves
    nothing of it says nothing): what it costs, and what makes room."""
    return (f"agent {agent_id!r} ({shown}): its cursor has no room left for the tail marks "
            "of some of its files (it keeps every session's offset, and a mark per file "
            "while there is room, those of the files read last first): such a file "
            "rewritten in place while no watch or import runs is read again only if it got "
            "shorter or its first line changed; deleting in OpenClaw the sessions this "
            "agent no longer needs makes room")


def in_both_stores(cursor: dict[str, int]) -> set[str]:
    """The JSONL entries of ``cursor`` whose session has a SQLite entry too: each has
    its session id, or the hash of one too long (``within_limit``), which a SQLite entry
    of that id holds too, or is made from it here.

    >>> sorted(in_both_stores({"db:a": 3, "jsonl:a": 90, "jsonl:b": 40, "db:c": 1,
    ...                         "jsonl-file:17:sub/c-topic.jsonl:c": 7}))
    ['jsonl-file:17:sub/c-topic.jsonl:c', 'jsonl:a']
    >>> long = "s" * 252  # too long for "jsonl:" before it, not for "db:"
    >>> in_both_stores({"db:" + long: 1, within_limit("jsonl:", long): 2})
    {'jsonl:#...'}
    """
    ids: set[str] = set()
    for entry in cursor:
        if entry.startswith("db:"):
            session = entry.removeprefix("db:")
            ids.update((session, hashed(session)))  # a file's entry may hash a long id
    return {entry for entry in cursor if _file_session(entry) in ids}


def _file_session(entry: str) -> str | None:
    """The session id (or its hash) in a ``.jsonl``'s cursor ``entry``
    (``session_files.cursor_entry``), or None."""
    if entry.startswith("jsonl:"):
        return entry.removeprefix("jsonl:")
    if not entry.startswith("jsonl-file:"):
        return None
    rest = entry.removeprefix("jsonl-file:")
    if rest.startswith(HASHED):  # jsonl-file:#<hash of the name>:<id>
        return rest.partition(":")[2] or None
    length, _colon, rest = rest.partition(":")  # jsonl-file:<length>:<name>:<id>
    return rest[int(length) + 1:] if length.isdigit() else None
