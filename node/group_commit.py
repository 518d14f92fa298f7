"""Group commit: concurrent appends share one transaction and one fsync.

``AsyncStore.append`` queues each caller's events here; one committer task takes
everything queued (up to ``commit_events_max`` events), has it stored in ONE call, and
answers each caller with its own slice of the result, only once it is durable. Before it
takes a batch it gathers: appends that are ready to queue get a few turns of the event
loop, and under steady load it waits, briefly, for the callers the previous commit
answered, who come straight back with their next append.

A group commit that fails for one caller's events is committed again caller by caller,
so that the others are not blamed for it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog

from crdt.errors import StorageUnavailable, StoreError
from crdt.events import Draft, Event
from crdt.log.records import Appended
from node.text import counted

log = structlog.get_logger(__name__)

#: Turns of the event loop a commit waits, at most, for appends that are ready to queue.
GATHER_TURNS_MAX = 4
#: Longest wait, in seconds, of a commit for the callers the previous commit answered
#: (and never longer than that commit took): under load they come back at once with
#: their next append, and one commit for all of them shares one fsync, where otherwise
#: they would wait for the commit in flight first. A caller alone never waits. Not
#: waiting (0) was measured against this with 32 HTTP clients (``bench.http_append``):
#: commits of 10-16 events instead of 20-30, 20-55 us more CPU per event in every round,
#: and a lower rate in 8 of 11 paired rounds at load averages from 1.4 to 5. The extra
#: CPU is the commit's size, not the GIL: a commit costs ~0.8 ms whatever it holds
#: (transaction, WAL, session headers) plus ~40 us an event, so 12 events cost ~110 us
#: each and 32 ~70, measured with nothing else running; the writer fighting the event
#: loop for the GIL measured within noise (SQLite, fsync and signing release it).
RETURN_WAIT_MAX_S = 0.02

#: ``_wake_at`` while the committer does not wait for appends.
_NEVER = 2**62

#: Stores the events of one group commit in one transaction; returns their results in
#: order and the seconds the transaction took as the event loop saw it (the wait for the
#: writer thread included). ``AsyncStore`` also moves the head and tells the listeners.
StoreBatch = Callable[[list[Draft | Event]], Awaitable[tuple[list[Appended], float]]]


class StoreClosing(StoreError):
    """The store is shutting down and takes no more writes."""


class StoreBusy(StoreError):
    """More events wait for a commit than ``queue_events_max``: try again shortly."""


@dataclass(slots=True)
class _Pending:
    """One caller's append, waiting for the committer."""

    items: Sequence[Draft | Event]
    future: asyncio.Future[list[Appended]]


class GroupCommit:
    """The queue of appends and the committer task that stores them in groups.

    Create it inside a running event loop; ``close`` commits what is queued and ends it.
    """

    def __init__(self, store_batch: StoreBatch, commit_events_max: int,
                 queue_events_max: int) -> None:
        self._store_batch = store_batch
        self._loop = asyncio.get_running_loop()
        self._commit_events_max = commit_events_max
        self._queue: deque[_Pending] = deque()
        self._queue_events_max = queue_events_max
        self._queued_events = 0
        self._queued = asyncio.Event()
        #: Queued callers at which an ``add`` wakes the committer (``_queued``): 1
        #: while it is idle, the callers it gathers for, and never while it commits, so
        #: that appends arriving then cost it no wake-up each.
        self._wake_at = 1
        #: Callers a commit can expect under steady load: those the previous commit
        #: answered plus those that queued while it ran (``_gather``).
        self._expected_callers = 0
        self._last_commit_s = 0.0
        self._committed = asyncio.Event()  # set (and replaced) after each group commit
        #: Set by ``close``, or when the committer died: no more appends are taken.
        self.closing = False
        self._committer = asyncio.create_task(self._commit_loop(), name="clawsync-commit")
        self._committer.add_done_callback(self._committer_ended)

    async def add(self, items: Sequence[Draft | Event]) -> list[Appended]:
        """Queue ``items`` (not empty) for a group commit; their results once durable.
        ``StoreBusy`` at once if ``queue_events_max`` events would wait."""
        if self._queued_events + len(items) > self._queue_events_max:
            waiting = self._queued_events
            raise StoreBusy(f"{counted(waiting, 'event')} already "
                            f"{'waits' if waiting == 1 else 'wait'} for the disk; "
                            "try again shortly")
        future: asyncio.Future[list[Appended]] = self._loop.create_future()
        self._queue.append(_Pending(list(items), future))
        self._queued_events += len(items)
        if len(self._queue) >= self._wake_at:
            self._queued.set()
        return await future

    async def after_queued(self) -> None:
        """If appends wait for a commit, wait for that one commit (not for every one: a
        steady stream of appends cannot starve the caller)."""
        if self._queue and not self.closing and not self._committer.done():
            committed = self._committed
            await committed.wait()

    async def close(self) -> None:
        """Take no more appends, commit the queued ones, and end the committer."""
        self.closing = True
        self._queued.set()
        # Not ``await``: a committer that died was logged and failed its callers
        # (``_committer_ended``); raising it again here would leave the store unclosed.
        await asyncio.wait([self._committer])

    async def _commit_loop(self) -> None:
        """Take everything queued, commit it in one batch, repeat until closed."""
        while True:
            if not self._queue:
                if self.closing:
                    return
                self._queued.clear()
                self._wake_at = 1
                await self._queued.wait()
                continue
            await self._gather()
            self._wake_at = _NEVER
            batch = self._take_batch()
            try:
                await self._commit(batch)
            except BaseException:
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(StoreClosing("the writer failed"))
                raise
            finally:
                self._committed.set()
                self._committed = asyncio.Event()

    async def _gather(self) -> None:
        """Let requests that are ready to run (read, parsed) queue their events before
        a commit is taken: bigger commits share one fsync and the per-commit work. A few
        turns of the event loop at most, and none once the queue stops growing."""
        for _ in range(GATHER_TURNS_MAX):
            queued = self._queued_events
            await asyncio.sleep(0)
            if self._queued_events == queued:
                break
        if len(self._queue) >= self._expected_callers or self.closing:
            return
        # One wake-up: once the expected callers have all queued, at the deadline (one
        # timer for the whole wait), or at shutdown.
        self._queued.clear()
        self._wake_at = self._expected_callers
        timer = self._loop.call_later(min(self._last_commit_s, RETURN_WAIT_MAX_S),
                                      self._queued.set)
        try:
            await self._queued.wait()
        finally:
            timer.cancel()

    def _committer_ended(self, task: asyncio.Task[None]) -> None:
        """If the committer died of a bug, fail its waiting callers instead of leaving
        them hanging, and refuse further appends."""
        if task.cancelled() or task.exception() is None:
            return
        # Callers first, the log after: nothing that logging does may leave them waiting.
        self.closing = True
        while self._queue:
            pending = self._queue.popleft()
            if not pending.future.done():
                pending.future.set_exception(StoreClosing("the writer failed"))
        log.error("committer failed", exc_info=task.exception())

    def _take_batch(self) -> list[_Pending]:
        """Queued appends up to ``commit_events_max`` events; never split one caller."""
        batch = [self._queue.popleft()]
        size = len(batch[0].items)
        while self._queue and size + len(self._queue[0].items) <= self._commit_events_max:
            pending = self._queue.popleft()
            size += len(pending.items)
            batch.append(pending)
        self._queued_events -= size
        return batch

    async def _store(self, batch: list[_Pending]) -> list[Appended]:
        """Store the events of ``batch`` in one transaction, timed for ``_gather``; the
        callers are not answered here."""
        results, self._last_commit_s = await self._store_batch(
            [item for pending in batch for item in pending.items])
        return results

    async def _commit(self, batch: list[_Pending]) -> None:
        """Commit ``batch`` and answer its callers."""
        try:
            results = await self._store(batch)
        except Exception as exc:
            if len(batch) > 1 and not isinstance(exc, StorageUnavailable):
                await self._commit_split(batch)
                return
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            # Callers answered with an error do not come straight back as the answered
            # ones do: the next commit waits for none of them, only for those queued.
            self._expected_callers = len(self._queue)
            return
        # A caller that gave up (client disconnected, cancelled) still had its events
        # stored, but is not answered and does not come back: the next commit expects
        # only those answered (none of whom runs, and queues again, before the count).
        answered = 0
        start = 0
        for pending in batch:
            end = start + len(pending.items)
            if not pending.future.done():
                pending.future.set_result(results[start:end])
                answered += 1
            start = end
        self._expected_callers = answered + len(self._queue)

    async def _commit_split(self, batch: list[_Pending]) -> None:
        """Commit each caller of a failed group commit alone, so one caller's failure is
        not blamed on the others whose events would have been fine (a full or failing
        disk fails them all alike: they all hear of it at once, in ``_commit``).

        The callers are answered only once every part ran, as one commit answers them:
        one answered as soon as its own part was stored could queue its next append
        while later parts still write, and count both as stored and as queued, so the
        next commit would wait out its bound for a caller that never comes."""
        answers: list[tuple[_Pending, list[Appended] | Exception]] = []
        try:
            for pending in batch:
                try:
                    answers.append((pending, await self._store([pending])))
                except Exception as exc:
                    answers.append((pending, exc))
        finally:
            # Also when the writer died in a later part: the callers stored before hear
            # of their events, not of the failure (the commit loop fails the others).
            # The next commit expects the callers answered with success, as after one
            # commit (not those that gave up), plus those queued meanwhile (none of the
            # batch's callers yet).
            answered = 0
            for pending, answer in answers:
                if pending.future.done():
                    continue
                if isinstance(answer, Exception):
                    pending.future.set_exception(answer)
                else:
                    pending.future.set_result(answer)
                    answered += 1
            self._expected_callers = answered + len(self._queue)
