"""The records of an OpenClaw import that the node refused for their time, as the bridge
(``node.openclaw.bridge``) keeps them: which sessions wait and from which record, when
each is tried again, what is said of each and when, and how a wait ends (its record
taken, replaced, or gone)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from crdt.errors import InvalidInput
from crdt.events import Event
from node.client.errors import ClientError
from node.openclaw.refusals import refused_time, retry_s, said_ended, said_moved, said_waiting
from node.openclaw.units import Step, Unit, Wait

#: How the bridge appends events (its sink's ``append``): how many were new.
Send = Callable[[list[Event]], Awaitable[int]]


class Waits:
    """The sessions whose next record the node refused for its time, by (cursor name,
    entry). ``tell`` hears what is said of them."""

    def __init__(self, tell: Callable[[str], None], monotonic: Callable[[], float]) -> None:
        self.tell, self._monotonic = tell, monotonic
        # (cursor name, entry) -> the sessions whose next record the node refused for its
        # time, told once: where, and when to try it again.
        self.waiting: dict[tuple[str, str], Wait] = {}
        # (cursor name, record) of the waits this pass counted: named anew, not counted anew.
        self.counted: set[tuple[str, str]] = set()
        # Entry -> what to say of its record the node refused for its time, said where
        # the step's units reach it: in the order of the store, after what came before it.
        self.untold: dict[str, str] = {}

    def new_pass(self) -> None:
        """A pass begins: the waits it meets are counted in its tally anew."""
        self.counted = set()

    def drop(self, name: str) -> None:
        """End cursor ``name``'s waits, unsaid: it was changed on the node meanwhile
        (``HeldCursors.load``), and a record the node refuses for its time, read again
        from there, waits anew."""
        for waiting in [waiting for waiting in self.waiting if waiting[0] == name]:
            del self.waiting[waiting]

    def due(self, name: str) -> bool:
        """Whether a record waiting in agent ``name``'s stores is to be tried again now."""
        now = self._monotonic()
        return any(cursor_of == name and now >= wait.retry_s
                   for (cursor_of, _entry), wait in self.waiting.items())

    def of(self, name: str) -> set[str]:
        """The entries of cursor ``name`` whose session waits: they keep their entry."""
        return {entry for cursor_of, entry in self.waiting if cursor_of == name}

    async def append(self, send: Send, name: str, units: list[Unit],
                     step: Step) -> dict[str, int]:
        """Append the units' events; the entries (sessions) held back, each with the
        index of the unit the node refused for its time (it and the entry's later units
        wait). A session that waits is tried with its first record alone, once its time
        to try again has come (else it is held untried); the rest go in one append, and
        record by record only if the node refuses it for a time (to find which record,
        and let the others in)."""
        held: dict[str, int] = {}
        taken: set[int] = set()  # waiting records the node took now: not sent again
        for entry in dict.fromkeys(unit.entry for unit in units):
            wait = self.waiting.get((name, entry))
            if wait is None:
                continue
            head = next(unit for unit in units if unit.entry == entry)
            if head.problem is not None:
                # A record that does not read (its line rewritten, its row damaged):
                # skipped and said as any such, and the wait ends with it. The record
                # after it is tried now, and waits (said anew) if the node refuses it
                # too. Where the record that waited was, nothing more is said; read from
                # elsewhere (its row deleted, its file cut shorter and read from its
                # start), that is said as below.
                del self.waiting[name, entry]
                if head.where != wait.where:
                    self._say_moved(entry, wait, head.where)
                continue
            first = next((n for n, unit in enumerate(units)
                          if unit.entry == entry and unit.events), None)
            if first is None:
                continue
            record = units[first].record
            if record is not None and (record.where, record.value) != (wait.where, wait.value):
                # What is read of it no longer begins at the record that waited: its row
                # was deleted (the rows after it are read), or its file was cut shorter
                # than where it was read up to (replaced), and is read from its start;
                # or it was rewritten in place as another record (OpenClaw rewrites a
                # session's end at the same seqs). The wait was that record's: it ends,
                # and what is read is tried now (a record ahead in it waits, said in its
                # own name).
                del self.waiting[name, entry]
                self._say_moved(entry, wait, record.where)
                continue
            if self._monotonic() < wait.retry_s or not await self._try(send, name,
                                                                       units[first], step):
                held[entry] = first
            else:
                taken.add(first)
        rest = [(n, unit) for n, unit in enumerate(units)
                if unit.entry not in held and unit.events and n not in taken]
        try:
            if rest:
                step.created += await send(
                    [event for _n, unit in rest for event in unit.events])
            return held
        except (ClientError, InvalidInput) as error:
            if refused_time(error) is None:
                raise
        for n, unit in rest:
            if unit.entry not in held and not await self._try(send, name, unit, step):
                held[unit.entry] = n
        return held

    def _say_moved(self, entry: str, wait: Wait, where: str) -> None:
        """Say that a session's wait ended as it is now read on from ``where`` (in the
        same file), not from the record that waited (or there, but another record now),
        which is not imported. Not counted as a problem (with what was skipped): OpenClaw
        deleted or replaced that record, as when a session got shorter
        (``Bridge._step``); the user has nothing to mend, and a summary that counted it
        would say otherwise."""
        self.tell(said_moved(entry, wait.where, where))

    async def _try(self, send: Send, name: str, unit: Unit, step: Step) -> bool:
        """Append one record's events: False if the node refuses them for their time
        (said once per session while it waits, where its step reaches it), True once
        stored (said if it waited)."""
        assert unit.record is not None or not unit.events
        try:
            if unit.events:
                step.created += await send(unit.events)
        except (ClientError, InvalidInput) as error:
            refused = refused_time(error)
            if refused is None or unit.record is None:
                raise
            if (name, unit.entry) not in self.waiting:
                text = said_waiting(unit.record, unit.events, refused)
                if (name, unit.record.where) not in self.counted:
                    self.counted.add((name, unit.record.where))
                    step.waiting.append(text)
                    step.beyond_waiting += refused.beyond_waiting(unit.events)
                self.untold[unit.entry] = text
            self.waiting[name, unit.entry] = Wait(
                unit.record.where, unit.record.value,
                self._monotonic() + retry_s(unit.events, refused))
            return False
        wait = self.waiting.pop((name, unit.entry), None)
        if wait is not None:
            # The record taken is the one that waited: a session read on from another
            # record (or problem) had its wait ended before it was tried (``append``).
            self.tell(f"{wait.where}: the node has taken it now")
        return True

    def say_untold(self) -> None:
        """Say what is left to say of the records the node refused for their time."""
        for text in self.untold.values():
            self.tell(text)
        self.untold.clear()

    def stop(self, name: str, entry: str, why: str | None = None) -> None:
        """End a session's wait, said (its record is not imported) but not counted as a
        problem: OpenClaw deleted it (``_say_moved``); ``why``: what became of that
        record, its session still in the store (else the session is gone)."""
        self.tell(said_ended(self.waiting.pop((name, entry)).where, why))
