"""One import pass over an OpenClaw state folder, and the follow loop of ``watch``.

For each agent store: read the records after the node-kept cursor, map each to events
(``node.openclaw.mapping``), append them, and only then save the cursor. A crash between
the append and the cursor save reads those records again on restart; their events have
the same ids (the mapping is deterministic), so the node answers "already stored" and
nothing is duplicated. A record that cannot be read or mapped is reported (file and
record named) and skipped; the rest is imported.

A record the node refuses for its time (dated further ahead of the node's clock than
``[limits] clock_drift_max_ms``: the gateway's clock is fast, or the node's slow) is not
bad input and is never skipped: it waits, named once, with the records after it in its
session (the cursor never passes it), and is tried again once the node's clock should
have caught up with it (``node.openclaw.refusals``); the other sessions' records go in
meanwhile. A problem after it in its session is reported once
the cursor passes it. A waiting session that is gone (its file deleted, its rows
removed, its whole store deleted) waits no longer; what was imported of it stays. A
record that waits replaced by one that does not read (its line rewritten, its row
damaged) is skipped and said as any such, and the wait ends with it: the record after it
is tried at once, and waits in its own name if the node refuses it too. So does a wait
whose session is read again from elsewhere (its file cut shorter than the cursor, read
from its start), or whose row is deleted (the rows after it are read): the wait ends,
said, and what is read is tried at once; as does a waiting record rewritten in place as
another record that reads. Each wait that ends so, or with its session
gone, is said once, and not counted with what was skipped (``Tally.problems``): the
record that waited is not imported, but OpenClaw deleted or replaced it, which is
nothing for the user to mend; as for a session read again as it got shorter.

The cursor keeps an entry per session: those of sessions gone from their store are
dropped as a pass sees them, before any step reads records for an agent with two stores
(``node.openclaw.cursor_entries``). Each step then saves the cursor only under its limits,
and stops the command (``CursorFull``) at once otherwise: nothing over them is saved, but
what fits is (the sessions already kept read on, each new one that fits,
``cursor_room.what_fits``), nothing unsaved is kept, and the next run reads again only
the records of the sessions that did not fit (one JSONL step reads every file), answered
as stored. A file its index no longer names (after ``/new``) read again from its start
goes under the key it was read under before (``node.openclaw.session_keys``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

from crdt.errors import InvalidInput
from crdt.events import Event
from node.client.errors import ClientError
from node.openclaw.cursor_entries import (
    gone_entries,
    of_store,
    step_cursor,
    without_gone,
)
from node.openclaw.cursor_room import (
    TAIL_PREFIX,
    CursorFull,
    cursor_full,
    entry_owners,
    marks_lacking,
    marks_lacking_said,
    session_of,
)
from node.openclaw.held import (
    CURSOR_CHANGED_MAX,
    CursorChangedOnNode,
    CursorChangedTooOften,
    CursorStore,
    HeldCursors,
)
from node.openclaw.jsonl import AgentSessions
from node.openclaw.pace import POLL_S
from node.openclaw.session_keys import keyed
from node.openclaw.source import Item, Problem
from node.openclaw.sqlite import AgentDatabase
from node.openclaw.state import Source, StateFolder, cursor_name
from node.openclaw.tally import PassFull, Tally
from node.openclaw.told import Reading, Told
from node.openclaw.units import Step, units_of
from node.openclaw.waits import Waits


class Sink(CursorStore, Protocol):
    """Where events go and cursors are kept: a node over HTTP, or an embedded store."""

    async def events(self, session_key: str) -> tuple[list[Event], int]:
        """The events of one session whose content is held, and how many others it has
        whose content was forgotten (they hold no record any more)."""
        ...

    async def append(self, events: list[Event]) -> int:
        """Append events (any sessions); returns how many were new."""
        ...


class Bridge:
    """Feeds a node from a state folder. ``tell`` hears each problem, once."""

    def __init__(self, state: StateFolder, sink: Sink,
                 tell: Callable[[str], None] = lambda _text: None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.state, self._sink, self.tell = state, sink, tell
        self._held = HeldCursors(sink, state.path, tell)
        self._told = Told()
        # Stores to read again even if unchanged: a pass over them failed (the node was
        # down) or met something that may mend (a line still being written).
        self._again: set[Source] = set()
        # The sessions whose next record the node refused for its time.
        self._waits = Waits(tell, monotonic)
        # Agent id -> its folder that could not be read, and why, as last said.
        self._unreadable: dict[str, tuple[str, str]] = {}
        # The cursors saved without room for some of their files' tail marks, said (once
        # a run: each run that saves one says it, ``_say_marks_lacking``).
        self._marks_said: set[str] = set()
        # Whether it follows the stores (``watch``): then its reads remember what they
        # see of every file at their first look, to tell it rewritten at the next.
        self._follows = False

    @property
    def sink(self) -> Sink:
        return self._sink

    @sink.setter
    def sink(self, sink: Sink) -> None:  # its cursors are then read from and saved there
        self._sink = self._held.sink = sink

    async def run_pass(self, only_changed: bool = False) -> Tally:
        """Import everything new now; with ``only_changed``, skip stores that did not
        change since the last look."""
        tally = Tally()
        self._waits.new_pass()
        sources = self.state.sources()
        if sources is None:  # not listed: no store is known gone, none read; next look
            return tally
        self._say_unreadable(sources, tally)
        self._forget_stores_gone(sources)
        stores: dict[str, list[Source]] = {}
        due: dict[str, list[Source]] = {}
        changed: set[str] = set()  # agents one of whose stores changed
        for agent_id, source in sources:
            stores.setdefault(agent_id, []).append(source)
            if source.changed() or not only_changed:  # at every look: it compares
                changed.add(agent_id)
                due.setdefault(agent_id, []).append(source)
            elif source in self._again:
                due.setdefault(agent_id, []).append(source)
        full: list[str] = []
        for agent_id, reads in due.items():
            name = cursor_name(self.state.path, agent_id)
            self._again.update(reads)  # till read through: a failed request reads them again
            # Not for a look that only finds a record still waiting or a line still being
            # written: its cursors are read once that record is tried (``node.openclaw.held``).
            load, refused = agent_id in changed or self._waits.due(name), 0
            while True:
                try:
                    await self._read_agent(name, load, reads, stores[agent_id], tally)
                except CursorChangedOnNode as changed_there:  # meanwhile: on from the node's
                    tally.add(changed_there.read)
                    load, refused = True, refused + 1
                    if refused >= CURSOR_CHANGED_MAX:
                        raise CursorChangedTooOften(self.state.path, changed_there.name,
                                                    refused, tally) from None
                    continue
                except CursorFull as error:  # the other agents are imported, and named too
                    full.append(str(error))
                break
            self._held.done(name)
        # Before a pass over the limits ends: its summary counts earlier passes' too.
        tally.still_waiting = len(self._waits.waiting)
        if full:
            said = "\n".join(full)
            if len(due) > len(full):
                said += "\nThe other agents are imported."
            raise PassFull(said, tally)
        return tally

    async def _read_agent(self, name: str, load: bool, reads: list[Source],
                          stores: list[Source], tally: Tally) -> None:
        """Read agent ``name``'s stores ``reads`` (of all its ``stores``), from its
        cursors as the node holds them (read from it again if ``load``)."""
        if await self._held.load(name, load):
            self._waits.drop(name)
        others = [source for source in stores if source is not reads[0]]
        kept = without_gone(self._held.main[name], others, reads, self._waits.of(name))
        if kept is not None:  # fewer entries: under the limits
            await self._held.save(name, kept)
            self._say_marks_lacking(name, reads[0].agent_id, kept)
        for source in reads:
            await self._read_store(name, source, tally)

    def _say_marks_lacking(self, name: str, agent_id: str, saved: dict[str, int]) -> None:
        """Say, once a run, that agent ``name``'s cursor as saved lacks some of its files'
        tail marks for want of room (``cursor_room.marks_lacking``): at each run that saves
        it so, whether its save left a mark out or kept a cursor that lacked them."""
        if name not in self._marks_said and marks_lacking(saved):
            self._marks_said.add(name)  # once a run: it stays so while they are many
            self.tell(marks_lacking_said(f"{self.state.path}/agents/{agent_id}", agent_id))

    async def _read_store(self, name: str, source: Source, tally: Tally) -> None:
        """Read one store step by step, each saving the cursor, till nothing moves."""
        unsettled = False
        reading, whole = self._told.reading(source), False
        try:
            while True:
                step = await self._step(name, source, reading)
                tally.add(step)  # what a step over the limits stored is counted all the same
                if step.full is not None:
                    raise step.full
                unsettled = unsettled or step.unsettled
                if not step.moved:  # nothing new, or only what waits for the node's clock
                    break
            whole = True
        finally:
            reading.end(whole)
        if not unsettled:
            self._again.discard(source)

    async def watch(self, poll_s: float = POLL_S,
                    on_pass: Callable[[Tally], None] = lambda _tally: None) -> None:
        """Import, then follow the stores forever."""
        self._follows = True
        while True:
            on_pass(await self.run_pass(only_changed=True))
            await asyncio.sleep(poll_s)

    async def _step(self, name: str, source: Source, reading: Reading) -> Step:
        cursor = self._held.main[name]
        step = Step()
        waits = {entry for entry in self._waits.of(name)  # this store's waiting ones
                 if of_store(entry, source)}
        # A waiting session is looked at at every pass: of SQLite's, only what is tried
        # is read, so that it does not take the read's row budget from the sessions after
        # it; a JSONL file (read on a budget of its own) only once it changed.
        keys = self._held.keys[name]
        if isinstance(source, AgentSessions):
            read = list(source.read(cursor, waits, keys, self._follows))
            items = keyed(read, keys, source.named, source.read_to(cursor),
                          source.restarted, source.held, source.identities)
        else:
            items = keyed(list(source.read(cursor, waits)), keys)
        if keys.unsaved:  # till a save goes through: one that fails is tried again
            await self._held.save_keys(name)
        for entry in sorted(waits & source.reread):
            # Got shorter than its waiting row (rewritten, or its end deleted): that row
            # is gone from OpenClaw's store, so there is nothing left to import of it, and
            # the session is read again from its first row. No problem.
            wait = self._waits.waiting.pop((name, entry))
            waits.discard(entry)
            self.tell(f"{wait.where}: its session got shorter (OpenClaw rewrote or cut it) "
                      "and the row is gone; the wait ends, and the session is read again "
                      "from its first row")
        self._forget_gone(name, waits, items, source)
        gone = set(gone_entries(cursor, source, source.present, self._waits.of(name)))
        units, problems = units_of(items, cursor)
        for problem in problems:  # of the whole read (a line still being written)
            self._tell(reading, step.problems, problem)
            step.unsettled = True
        try:
            held = await self._waits.append(self.sink.append, name, units, step)
        except BaseException:
            self._waits.say_untold()  # the wait is held, and would not be said again
            raise
        # The cursor moves past what is stored, never past a record that waits; what is
        # said of a record (skipped, imported in a lesser form) is said once it is passed.
        moved: dict[str, int] = {}
        # Sessions read again from their first row: on from what of them is stored now.
        moved.update(dict.fromkeys(source.reread, 0))
        for n, unit in enumerate(units):
            if n < held.get(unit.entry, n + 1):
                moved.update(unit.moves)
                step.records += unit.record is not None
                step.events += len(unit.events)
                if unit.problem is not None:
                    self._tell(reading, step.problems, unit.problem)
                for warning in unit.warnings:
                    self._tell(reading, step.warnings, warning)
            elif n == held[unit.entry] and unit.entry in self._waits.untold:
                self.tell(self._waits.untold.pop(unit.entry))
        self._waits.say_untold()
        # A tail mark goes with the offset it was taken at: one equal to the mark kept
        # (the same bytes before the new offset as before the old) moves with its offset.
        changed = {entry for entry, after in moved.items() if cursor.get(entry) != after}
        owners = entry_owners(moved)
        moved = {entry: after for entry, after in moved.items()
                 if entry in changed or session_of(entry, owners) in changed}
        step.unsettled = step.unsettled or bool(held)
        if moved or gone:
            saved, over = step_cursor(cursor, gone, moved)
            shown = f"{self.state.path}/agents/{source.agent_id}"
            if saved != cursor:
                try:
                    await self._held.save(name, saved)  # held once saved
                except CursorChangedOnNode as refused:
                    refused.read = step
                    raise
                except (ClientError, InvalidInput) as refused:
                    # The node's words, or a data folder's store's, name the entry alone:
                    # which agent's cursor it is tells where the file or session it
                    # names is.
                    hint = f"that is the cursor of agent {source.agent_id!r} ({shown})"
                    if isinstance(refused, InvalidInput):  # its class tells the exit
                        raise type(refused)(f"{refused.reason}; {hint}",
                                            field=refused.field) from None
                    if refused.status not in (400, 413):  # refused what was sent, or not
                        raise
                    raise refused.with_hint(hint) from None
            if over is not None:
                step.full = cursor_full(shown, source.agent_id, over)
                return step
            self._say_marks_lacking(name, source.agent_id, saved)
            # Read on only if an offset moved: a tail mark alone (a rewrite read again
            # from its start up to where it was read to) leaves nothing new to read.
            step.moved = any(not entry.startswith(TAIL_PREFIX) for entry in moved)
        if isinstance(source, AgentSessions):
            # A rewrite read again from its start stays to be read again only where none
            # of it was stored (its first record waits): the cursor still counts in the
            # old file. Past that, it counts in the new one.
            firsts: dict[str, int] = {}
            for n, unit in enumerate(units):
                firsts.setdefault(unit.entry, n)
            source.stored({entry for entry, n in held.items() if firsts[entry] == n})
        return step

    def _say_unreadable(self, sources: list[tuple[str, Source]], tally: Tally) -> None:
        """Name each agent folder that cannot be read (``StateFolder.unreadable``) and
        why, as a problem: once, and again only if why changes or it was read meanwhile
        (said too, so that a log shows when it mended). One readable again but with no
        store yet is said read once it has one (the log says it skipped till then); one
        no longer listed is forgotten."""
        now = self.state.unreadable
        for agent_id, (shown, why) in sorted(now.items()):
            if self._unreadable.get(agent_id) != (shown, why):
                text = (f"{shown}: cannot be read ({why}); this agent's stores are skipped "
                        "until it can be (run clawsync as the user OpenClaw runs as)")
                tally.problems.append(text)
                self.tell(text)
        read = {agent_id for agent_id, _source in sources}
        kept = {}
        for agent_id, (shown, why) in sorted(self._unreadable.items()):
            if agent_id in now:
                continue
            if agent_id in read:
                self.tell(f"{shown}: can be read again; its stores are read")
            elif agent_id in self.state.listed:
                kept[agent_id] = (shown, why)
        self._unreadable = {**kept, **now}

    def _forget_gone(self, name: str, waits: set[str], items: list[Item],
                     source: Source) -> None:
        """A waiting session of which a whole read found nothing waits no longer, said
        once: gone (its file deleted or moved away, its rows removed), or still there
        with nothing from its waiting record on (``source.emptied``: that row deleted,
        the last of its session; its file emptied), said so. What was stored of it
        stays, and so does its cursor entry while its session is in the store (emptied,
        or in cold storage): if it comes back, it is read (and may wait) again from
        there; one deleted loses its entry (``gone_entries``) and is read from its start. A
        read that met trouble of its own (an entry-less problem) may have missed it: it
        waits on."""
        if any(isinstance(item, Problem) and item.entry is None for item in items):
            return
        for entry in sorted(waits - {item.entry for item in items}):
            self._waits.stop(name, entry, source.emptied.get(entry))

    def _forget_stores_gone(self, sources: list[tuple[str, Source]]) -> None:
        """Forget what is held of the stores gone (the agent's SQLite file deleted, its
        ``sessions`` folder removed): to read again, said, cursors. A waiting session
        whose whole store is gone is never read again to find it gone: it waits no
        longer, as in ``_forget_gone``. One of an agent whose folder could not be looked
        into is not known gone: what is held of it stays, and it waits on."""
        held = self.state.held()
        self._again &= held
        self._told.keep(held)
        listed = {(cursor_name(self.state.path, agent_id), isinstance(source, AgentDatabase))
                  for agent_id, source in sources}
        unknown = {cursor_name(self.state.path, agent_id) for agent_id in self.state.unreadable}
        self._held.keep({name for name, _database in listed} | unknown)
        for name, entry in sorted(self._waits.waiting):
            if name not in unknown and (name, entry.startswith("db:")) not in listed:
                self._waits.stop(name, entry)

    def _tell(self, reading: Reading, into: list[str], text: str) -> None:
        """Say it once while its store's reads meet it (``node.openclaw.told``)."""
        if reading.first(text):
            into.append(text)
            self.tell(text)
