"""What one step of a bridge's read of a store (``node.openclaw.bridge``) is made of: a
unit per item read (a record's events and the cursor entries it moves once handled, or a
problem skipped), a session whose next record the node refused for its time, and what
the step tallies; the units of what a step read (``units_of``), and a record's events
(``mapping_events``). The bridge decides what becomes of each."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crdt.events import Event
from node.openclaw.cursor_entries import rewind_copy_ms
from node.openclaw.cursor_room import CursorFull, copy_entry, tail_entry
from node.openclaw.mapping import Mapped, SessionRef, events_for
from node.openclaw.source import Item, Problem, Record
from node.openclaw.tally import Tally


@dataclass
class Unit:
    """What one item read adds: the cursor entries to move once it is handled, the
    record and its events (none for a problem skipped), and what to say once passed."""

    entry: str
    moves: dict[str, int]
    record: Record | None = None
    events: list[Event] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    problem: str | None = None
    where: str = ""  # of its record or problem


@dataclass
class Wait:
    """A session whose next record the node refused for its time."""

    where: str  # that record
    value: dict[str, Any]  # and what it held: one rewritten there is another record
    retry_s: float  # when (``monotonic``) to try it again


@dataclass
class Step(Tally):
    """What one step of a store's read did (its tally), and how the read goes on."""

    moved: bool = False  # the cursor moved: read on
    unsettled: bool = False  # something may mend by itself: look again next time
    full: CursorFull | None = None  # stored, but the cursor would be over its limits


def mapping_events(record: Record, copy_ms: int | None = None) -> Mapped:
    """The clawsync events of one record (``node.openclaw.mapping``, which never refuses
    a record: one it does not know is kept whole, with a warning). A session no index
    names a key for, nor remembers one for (``session_keys``), is keyed by its session
    id."""
    ref = SessionRef(record.agent_id, record.session_key or record.session_id,
                     record.session_id)
    return events_for(record.value, ref, fallback_ms=record.written_ms, copy_ms=copy_ms)


def units_of(items: list[Item], cursor: dict[str, int]) -> tuple[list[Unit], list[str]]:
    """A unit per item a step read from ``cursor`` (a record mapped to its events, with
    the copy time of a rewind it is in; a problem of one record, skipped), and the
    problems of no record (of the whole read: a line still being written), said."""
    units: list[Unit] = []
    problems: list[str] = []
    moves: dict[str, int] = {}  # as read: the copy times of rewinds for what follows
    for n, item in enumerate(items):
        if isinstance(item, Problem):
            if item.entry is not None:
                moves[item.entry] = item.after
                units.append(Unit(item.entry, _moves(item.entry, item.after, item.mark),
                                  problem=str(item), where=item.where))
            else:
                problems.append(str(item))
            continue
        copy_ms = rewind_copy_ms(item, items[n + 1:], cursor, moves)
        mapped = mapping_events(item, copy_ms)
        moves[item.entry] = item.after
        unit_moves = _moves(item.entry, item.after, item.mark)
        if item.value.get("type") == "session" and copy_ms is not None:
            unit_moves[copy_entry(item.entry)] = copy_ms
        units.append(Unit(item.entry, unit_moves, item, mapped.events,
                          [f"{item.where}: {warning}" for warning in mapped.warnings],
                          where=item.where))
    return units, problems


def _moves(entry: str, after: int, mark: int | None) -> dict[str, int]:
    """The cursor entries an item moves once handled: its session's, and with a file's
    offset the mark of the bytes before it (``cursor_room.TAIL_PREFIX``, saved with it
    while there is room): a rewrite while no bridge runs is told at the next read."""
    if mark is None:
        return {entry: after}
    return {entry: after, tail_entry(entry): mark}
