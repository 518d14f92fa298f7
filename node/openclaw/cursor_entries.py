"""The entries of an agent's cursor beside where each session was read up to: the ones a
pass drops, of sessions gone from their store (``without_gone``, ``gone_entries``), and a
rewind's copy time, kept while the copy is read (``rewind_copy_ms``).

The cursor keeps an entry per session (``crdt.log.cursors``, whose limits bound how many
sessions an agent may have): the entries of a session with nothing left of it in its
store (its file gone; no row left, deleted or emptied, and not moved to cold storage:
the readers' ``present``) are dropped as a pass sees it, so the cursor holds only the
sessions its stores hold. One that comes back under the same id, or fills again, is read
from its start; what was stored of it is answered as stored. OpenClaw mostly archives
sessions rather than deleting them, and an archived one keeps its entry: the cursor
still grows by one per durable conversation.

An agent's two stores share its cursor, and a session OpenClaw moves from one to the
other (``openclaw doctor --session-sqlite import``: its rows in SQLite first, its file
moved away after) is in both for a while. So each pass over an agent with two stores
first drops the entries of the sessions the store it reads second no longer holds (the
files moved away), before any step reads records (``without_gone``); the store read
first drops its own in its step, as does an agent's only store (a look apart from the
read would cost about as much again). Each step then saves the cursor only under its
limits (``node.openclaw.cursor_room``), and stops the command otherwise. A look midway
through the move (rows in, files still there) counts those sessions twice, and is said
so.
"""

from __future__ import annotations

from node.openclaw.cursor_room import (
    copy_entry,
    entry_owners,
    room_over,
    session_of,
    unmarked,
    what_fits,
    with_marks,
)
from node.openclaw.mapping import copy_ms_of
from node.openclaw.source import Item, Record
from node.openclaw.sqlite import AgentDatabase
from node.openclaw.state import Source


def without_gone(cursor: dict[str, int], stores: list[Source], due: list[Source],
                 waiting: set[str]) -> dict[str, int] | None:
    """``cursor`` without the entries of the sessions that ``stores`` (the agent's other
    stores than the one its pass reads first, the unchanged too) no longer hold, or None
    if none is gone: dropped, and saved, before any step reads records, so that the files
    OpenClaw's import moved out of the JSONL folder lose their entries before the SQLite
    step adds those of their rows, whichever store changed last, and a session is never
    counted twice against the limits. The store read first (an agent's only one, mostly)
    drops its own in its step (``gone_entries``). A store that
    changed since its last read (``due``) is looked at now (``sessions``, in a snapshot
    of its own); one that did not is what that read found (``present``), and looked at
    only if it has not been read (its ``sessions`` folder empty since before the command
    started, say). A store that cannot be read now drops nothing. A session created after
    this look has no entry to drop: its step reads it as a new one. One deleted after it
    keeps its entry until its store's step reads without it (``gone_entries``), or the
    next pass: one entry too many for a while, which at worst stops a pass that the next
    lets through. ``waiting``: the cursor's sessions that wait (``gone_entries``)."""
    gone: set[str] = set()
    for source in stores:
        present = source.present
        if source in due or present is None:
            present = source.sessions()
        gone.update(gone_entries(cursor, source, present, waiting))
    if not gone:
        return None
    return {entry: after for entry, after in cursor.items() if entry not in gone}


def step_cursor(cursor: dict[str, int], gone: set[str], moved: dict[str, int]
                ) -> tuple[dict[str, int], dict[str, int] | None]:
    """What a step saves of ``cursor``: without the entries ``gone``, with those
    ``moved``; and that cursor, without its tail marks, if it is over the limits
    (``cursor_room.room_over``; else None), which is then not saved. The limits are
    checked without the marks, which are kept only while there is room, after every
    other entry (``cursor_room.with_marks``). Every entry of a session gone from any of
    the agent's stores was dropped before this pass's first step (``without_gone``): over
    the limits now is over them for good, or until OpenClaw's move between its stores is
    done. Never saved over them: what fits is (the sessions it had read on, each new one
    that fits, ``cursor_room.what_fits``), and the command stops; each run after reads
    again only the records of the sessions that did not fit (one JSONL step reads them
    all)."""
    kept = {entry: at for entry, at in cursor.items() if entry not in gone}
    after = unmarked({**kept, **moved})
    if room_over(after) is None:
        return with_marks(after, kept, moved), None
    return with_marks(what_fits(unmarked(kept), after), kept, moved), after


def gone_entries(cursor: dict[str, int], source: Source, present: set[str] | None,
                 waiting: set[str]) -> list[str]:
    """The entries of ``cursor`` of sessions of ``source`` it no longer holds (deleted
    by OpenClaw, or moved to its other store: not in ``present``; None: unknown),
    their rewinds' copy times and their files' tail marks with them. A session that
    still waits (in ``waiting``) keeps its entry: its wait ends first (the bridge's
    ``_forget_gone``, which a read that met trouble of its own puts off), and the entry
    goes at the next pass."""
    if present is None:
        return []
    gone = []
    owners = entry_owners(cursor)
    for entry in cursor:
        session = session_of(entry, owners)
        if of_store(session, source) and session not in present and session not in waiting:
            gone.append(entry)
    return gone


def of_store(entry: str, source: Source) -> bool:
    """Whether cursor ``entry`` is a session of ``source``: an agent's two stores share
    its cursor, whose entries are "db:" for its SQLite store, others for its files."""
    return entry.startswith("db:") == isinstance(source, AgentDatabase)


def rewind_copy_ms(record: Record, rest: list[Item], cursor: dict[str, int],
                   moves: dict[str, int]) -> int | None:
    """The time of ``record``'s header if it begins a rewind's copy: found at the header
    (from the record after it; readers yield the two together) and kept in the cursor."""
    name = copy_entry(record.entry)
    if record.value.get("type") == "session":
        following = next((item.value for item in rest if isinstance(item, Record)
                          and item.entry == record.entry), None)
        found = copy_ms_of(record.value, following)
        if found is not None:
            moves[name] = found
        return found
    return moves.get(name, cursor.get(name))
