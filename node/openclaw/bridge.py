"""One import pass over an OpenClaw state folder, and the follow loop of ``watch``.

For each agent store: read the records after the node-kept cursor, map each to events
(``node.openclaw.mapping``), append them, and only then save the cursor. A crash between
the append and the cursor save reads those records again on restart; their events have
the same ids (the mapping is deterministic), so the node answers "already stored" and
nothing is duplicated. A record that cannot be read or mapped is reported (file and
record named) and skipped; the rest is imported.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from crdt.events import Event
from node.openclaw.mapping import Mapped, SessionRef, copy_ms_of, events_for
from node.openclaw.source import Item, Problem, Record
from node.openclaw.state import Source, StateFolder, cursor_name

#: Seconds between two looks at the stores while watching: a commit reaches the node
#: within about this plus one append.
POLL_S = 0.2


class Sink(Protocol):
    """Where events go and cursors are kept: a node over HTTP, or an embedded store."""

    async def cursor(self, name: str) -> dict[str, int] | None: ...

    async def save_cursor(self, name: str, cursor: dict[str, int]) -> None: ...

    async def events(self, session_key: str) -> tuple[list[Event], int]:
        """The events of one session whose content is held, and how many others it has
        whose content was forgotten (they hold no record any more)."""
        ...

    async def append(self, events: list[Event]) -> int:
        """Append events (any sessions); returns how many were new."""
        ...


@dataclass
class Tally:
    """What passes did: records read, events new and already stored, problems (what
    was skipped) and warnings (what was imported in a stated, lesser form)."""

    records: int = 0
    events: int = 0
    created: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.records += other.records
        self.events += other.events
        self.created += other.created
        self.problems += other.problems
        self.warnings += other.warnings


class Bridge:
    """Feeds a node from a state folder. ``tell`` hears each problem, once."""

    def __init__(self, state: StateFolder, sink: Sink,
                 tell: Callable[[str], None] = lambda _text: None) -> None:
        self.state, self.sink, self.tell = state, sink, tell
        self._cursors: dict[str, dict[str, int]] = {}
        self._told: set[str] = set()
        # Stores to read again even if unchanged: a pass over them failed (the node was
        # down) or met something that may mend (a line still being written).
        self._again: set[object] = set()

    async def run_pass(self, only_changed: bool = False) -> Tally:
        """Import everything new now; with ``only_changed``, skip stores that did not
        change since the last look."""
        tally = Tally()
        for agent_id, source in self.state.sources():
            changed = source.changed()
            if only_changed and not changed and source not in self._again:
                continue
            self._again.add(source)
            name = cursor_name(self.state.path, agent_id)
            if name not in self._cursors:
                self._cursors[name] = dict(await self.sink.cursor(name) or {})
            unsettled = False
            while True:
                step = await self._step(name, source)
                tally.add(step)
                unsettled = unsettled or step.unsettled
                if step.records == 0 and not step.moved:
                    break
            if not unsettled:
                self._again.discard(source)
        return tally

    async def watch(self, poll_s: float = POLL_S,
                    on_pass: Callable[[Tally], None] = lambda _tally: None) -> None:
        """Import, then follow the stores forever."""
        while True:
            on_pass(await self.run_pass(only_changed=True))
            await asyncio.sleep(poll_s)

    async def _step(self, name: str, source: Source) -> _Step:
        cursor = self._cursors[name]
        events: list[Event] = []
        moves: dict[str, int] = {}
        step = _Step()
        items = list(source.read(cursor))
        for n, item in enumerate(items):
            if isinstance(item, Problem):
                self._tell(step.problems, str(item))
                if item.entry is not None:
                    moves[item.entry] = item.after
                else:
                    step.unsettled = True
                continue
            step.records += 1
            copy_ms = _copy_ms(item, items[n + 1:], cursor, moves)
            mapped = mapping_events(item, copy_ms)
            events += mapped.events
            for warning in mapped.warnings:
                self._tell(step.warnings, f"{item.where}: {warning}")
            moves[item.entry] = item.after
        if events:
            step.events = len(events)
            step.created = await self.sink.append(events)
        moved = {entry: after for entry, after in moves.items() if cursor.get(entry) != after}
        if moved:
            cursor.update(moved)
            await self.sink.save_cursor(name, cursor)
            step.moved = True
        return step

    def _tell(self, into: list[str], text: str) -> None:
        """Say it once (a file still being written is seen again at every look)."""
        if text not in self._told:
            self._told.add(text)
            into.append(text)
            self.tell(text)


@dataclass
class _Step(Tally):
    moved: bool = False  # the cursor moved: read on
    unsettled: bool = False  # something may mend by itself: look again next time


#: The cursor entry keeping the time of a session's header that begins a rewind's copy:
#: the copy may span several reads, and a restart between them.
COPY_PREFIX = "copy:"


def _copy_ms(record: Record, rest: list[Item], cursor: dict[str, int],
             moves: dict[str, int]) -> int | None:
    """The time of ``record``'s header if it begins a rewind's copy: found at the header
    (from the record after it; readers yield the two together) and kept in the cursor."""
    name = COPY_PREFIX + record.entry
    if record.value.get("type") == "session":
        following = next((item.value for item in rest if isinstance(item, Record)
                          and item.entry == record.entry), None)
        copy_ms = copy_ms_of(record.value, following)
        if copy_ms is not None:
            moves[name] = copy_ms
        return copy_ms
    return moves.get(name, cursor.get(name))


def mapping_events(record: Record, copy_ms: int | None = None) -> Mapped:
    """The clawsync events of one record (``node.openclaw.mapping``, which never refuses
    a record: one it does not know is kept whole, with a warning). A session no index
    names a key for is keyed by its session id."""
    ref = SessionRef(record.agent_id, record.session_key or record.session_id,
                     record.session_id)
    return events_for(record.value, ref, fallback_ms=record.written_ms, copy_ms=copy_ms)
