"""What one step of a bridge's read of a store (``node.openclaw.bridge``) is made of: a
unit per item read (a record's events and the cursor entries it moves once handled, or a
problem skipped), a session whose next record the node refused for its time, and what
the step tallies; and a record's events (``mapping_events``). The bridge decides what
becomes of each."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crdt.events import Event
from node.openclaw.cursor_room import CursorFull
from node.openclaw.mapping import Mapped, SessionRef, events_for
from node.openclaw.source import Record
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
