"""What import passes did (``Tally``), and a pass stopped by agents over their cursor's
limits with what it did all the same (``PassFull``): what ``node.openclaw.bridge``
reports to the command that runs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from node.openclaw.cursor_room import CursorFull


@dataclass
class Tally:
    """What passes did: records read, events new and already stored, problems (what
    was skipped), warnings (what was imported in a stated, lesser form) and what waits
    for the node's clock (``waiting``: records not imported yet, each named once).
    Counted per read: records read again from a cursor reset on the node meanwhile are
    counted again (as already stored)."""

    records: int = 0
    events: int = 0
    created: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    #: Of ``waiting``, those dated too far ahead for waiting to mend (a wrong timestamp
    #: or clock, ``refusals.Refusal.beyond_waiting``).
    beyond_waiting: int = 0
    #: Records waiting for the node's clock once the pass ended, those named in earlier
    #: passes too (one per session: the records after it wait with it); set by the pass.
    still_waiting: int = 0

    def add(self, other: Tally) -> None:
        self.records += other.records
        self.events += other.events
        self.created += other.created
        self.problems += other.problems
        self.warnings += other.warnings
        self.waiting += other.waiting
        self.beyond_waiting += other.beyond_waiting


class PassFull(CursorFull):
    """A pass stopped by agents over their cursor's limits (each named, with what to do),
    and what it read (``tally``): the other agents' records, imported all the same."""

    def __init__(self, said: str, tally: Tally) -> None:
        super().__init__(said)
        self.tally = tally
