"""``AsyncStore``: the asyncio face of ``crdt.log.store.EventStore``.

``EventStore`` is synchronous and allows exactly one writing thread; its calls block on
SQLite and fsync. ``AsyncStore`` keeps all of that off the event loop:

* one dedicated writer thread runs every write;
* appends use *group commit* (``node.group_commit``): concurrent ``append`` calls queue
  up, and one committer task takes everything queued (up to ``commit_events_max``
  events) and commits it with ONE ``append_batch`` call, so N waiting clients share one
  fsync. Each caller is answered with its own slice of the result, and only after the
  commit returned (durable);
* reads run on a small separate thread pool (reads are safe from any thread);
* it tracks the head position, and ``wait_for_head`` lets long polls and live streams
  sleep until a commit moves the head past their cursor.

>>> import asyncio, tempfile
>>> from crdt.events import parse_event
>>> async def demo():
...     astore = await AsyncStore.open(tempfile.mkdtemp())
...     draft = parse_event({"agent_id": "main", "kind": {"type": "session_ended",
...         "reason": "done"}}, session_key="s1")
...     [appended] = await astore.append([draft])
...     await astore.close()
...     return appended.created, astore.head
>>> asyncio.run(demo())
(True, 1)
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple, TypeVar

import structlog

from crdt.automerge.documents import Documents
from crdt.events import Draft, Event
from crdt.log.forget import Forget
from crdt.log.projection import Projection
from crdt.log.records import Appended, StoredEvent
from crdt.log.store import EventStore, SessionRef
from crdt.signing import Signer
from node.group_commit import GroupCommit, StoreBusy, StoreClosing
from node.limits import Limits

# The errors of appends are raised by the group commit; callers know them from here.
__all__ = ["AsyncStore", "Commit", "CommitListener", "StoreBusy", "StoreClosing"]

T = TypeVar("T")

log = structlog.get_logger(__name__)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Commit(NamedTuple):
    """What one group commit did, for metrics."""

    events: int  # events in the commit, duplicates included
    created: int  # of which were new
    head: int  # head position after the commit
    seconds: float | None = None  # time of a group commit (transaction and fsync)
    #: The sessions of the commit's events; None when unknown (a ``write``, such as a
    #: peer's batch, or records the callers did not list, such as a first own event's
    #: key record), which listeners must read as "any session".
    sessions: frozenset[str] | None = None
    #: A group commit of client appends, not a ``write`` (a peer's batch, a forget):
    #: peer links pay for the writer only while clients append (``node.peers.budget``).
    appends: bool = False

    def touches(self, session_key: str) -> bool:
        """Whether the commit may have stored an event of ``session_key``: followers of
        one session skip the reads that the other commits would cost them."""
        return self.sessions is None or session_key in self.sessions


CommitListener = Callable[[Commit], None]


class AsyncStore:
    """Group-committing, non-blocking facade over one ``EventStore``.

    Create it inside a running event loop, normally with ``await AsyncStore.open(location)``.
    """

    def __init__(self, store: EventStore, writer: ThreadPoolExecutor,
                 limits: Limits = Limits()) -> None:
        self._store = store
        #: The sessions' Automerge documents: use them on the writer thread only
        #: (``write``), like every write to the store.
        self.documents = Documents(store, limits.documents_in_memory_max)
        self._writer = writer
        self._readers = ThreadPoolExecutor(max_workers=limits.read_threads,
                                           thread_name_prefix="clawsync-read")
        self._loop = asyncio.get_running_loop()
        self._head = store.head
        #: ``wait_for_head`` callers, woken together when the head moves.
        self._head_waiters: dict[asyncio.Future[None], None] = {}
        self._listeners: list[CommitListener] = []
        self._stopping = False
        self._released = False
        self._closed = False
        #: Number of ``append_batch`` calls made so far (group commit makes it smaller
        #: than the number of ``append`` calls).
        self.commits = 0
        store.erased_listeners.append(self._forgotten)
        self._appends = GroupCommit(self._store_batch, limits.commit_events_max,
                                    limits.queue_events_max)

    @classmethod
    async def open(cls, location: str | os.PathLike[str],
                   limits: Limits = Limits(), signer: Signer | None = None,
                   written_by: str | None = None) -> AsyncStore:
        """Open the store at ``location`` (a folder, or a storage URL such as ``memory:``)
        on the writer thread: opening writes files. ``signer``: the device's, which signs
        every event this node originates (``crdt.log.bound``). ``written_by``: this
        software's version, which the log records (``crdt.log.records.Meta.written_by``)."""
        writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clawsync-write")
        loop = asyncio.get_running_loop()
        try:
            store = await loop.run_in_executor(writer, lambda: EventStore.open(
                location, clock_drift_max_ms=limits.clock_drift_max_ms, signer=signer,
                written_by=written_by))
        except BaseException:
            writer.shutdown(wait=False)
            raise
        return cls(store, writer, limits)

    @property
    def node_id(self) -> str:
        """This node's origin; a new one once the cluster retired the old one
        (``crdt.log.retire``)."""
        return self._store.node_id

    def origin_device(self, origin: str) -> str | None:
        """The device id ``origin`` is bound to (None: unbound); any thread."""
        return self._store.origin_device(origin)

    @property
    def head(self) -> int:
        """Position of the newest committed event (0 when empty)."""
        return self._head

    @property
    def stopping(self) -> bool:
        """True once the node began to stop (``begin_stopping``): long polls and streams
        should finish, and new ones be refused."""
        return self._stopping

    @property
    def released(self) -> bool:
        """True once the site stops (``release_waiters``): followers should finish."""
        return self._released

    def add_commit_listener(self, listener: CommitListener) -> None:
        """Call ``listener`` (on the event loop) after every commit."""
        self._listeners.append(listener)

    def remove_commit_listener(self, listener: CommitListener) -> None:
        """Stop calling ``listener``; one that was never added is ignored (a part that
        failed to start is stopped like one that started)."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    # -- writes ---------------------------------------------------------------------

    async def append(self, items: Sequence[Draft | Event]) -> list[Appended]:
        """Store ``items`` (validated drafts or sealed events); return once durable.

        The items of one call are committed together, in one transaction, possibly with
        other callers' items. Duplicates come back with ``created=False``. A timestamp
        too far ahead of the clock raises ``TimestampAhead`` before anything is queued,
        so that it never fails a group commit shared with other callers.
        """
        if self._appends.closing:
            raise StoreClosing("the node is shutting down")
        if not items:
            return []
        self._store.check_timestamps(items)
        return await self._appends.add(items)

    async def write(self, call: Callable[[EventStore], T]) -> T:
        """Run ``call(store)`` on the writer thread (for writes other than appends, such
        as events ingested from a peer). If it stored events, waiters and commit
        listeners hear of them as of a group commit: also when ``call`` raised after
        storing some, or its caller was cancelled meanwhile (a peer link cut), and
        before the caller resumes."""
        if self._closed:
            raise StoreClosing("the store is closed")

        def run(store: EventStore) -> T:
            started = time.perf_counter()
            try:
                return call(store)
            finally:
                # From the writer thread, not after the await below: that never runs
                # for a cancelled caller. Scheduled before the call's result is, so
                # the head has moved when the caller resumes; and in the writer's
                # order with the group commits' notices (``_append_batch``).
                self._loop.call_soon_threadsafe(self._written, store.head,
                                                time.perf_counter() - started)

        return await self._loop.run_in_executor(self._writer, run, self._store)

    def _written(self, head: int, seconds: float) -> None:
        """On the event loop, after each ``write``: tell of the events it stored."""
        if head > self._head:
            stored = head - self._head
            self._move_head(head)
            # Timed as a group commit is: a node that mostly stores peers' batches (a
            # hub) shows its disk's latency too.
            self._notify(Commit(stored, stored, head, seconds))

    async def forget(self, session_key: str, events: Sequence[str] | None = None, *,
                     reason: str = "user", by: str = "") -> Appended:
        """Forget a session, or some of its events (``EventStore.forget``), on the
        writer thread; the record replicates like any new event."""
        return await self.write(
            lambda store: store.forget(session_key, events, reason=reason, by=by))

    def _forgotten(self, records: list[Forget]) -> None:
        """Every forget this node takes in, its own or a peer's, is logged with who
        asked (the record says; never a credential)."""
        for record in records:
            log.info("forgotten", session_key=record.session_key, record=record.id.hex(),
                     events="all before it" if record.events is None else len(record.events),
                     reason=record.reason, by=record.by or "unknown")

    async def after_queued_appends(self) -> None:
        """If client appends wait for a commit, wait for that one commit: background
        writers (peer links) call this first so that appends do not queue behind them.
        Only one commit, so that a steady stream of appends cannot starve them."""
        await self._appends.after_queued()

    async def automerge(self, session_key: str) -> bytes:
        """The session's saved Automerge document (materialising it is a write)."""
        return await self.write(lambda _store: self.documents.saved(session_key))

    async def _store_batch(self, items: list[Draft | Event]
                           ) -> tuple[list[Appended], float]:
        """Store the events of one group commit in one transaction on the writer thread
        (which has the head moved and the commit listeners told: ``_append_batch``); the
        results, and the seconds the commit took as the event loop saw it
        (``node.group_commit.StoreBatch``)."""
        started_s = self._loop.time()
        results = await self._loop.run_in_executor(self._writer, self._append_batch, items)
        return results, self._loop.time() - started_s

    def _appended(self, items: list[Draft | Event], results: list[Appended], head: int,
                  seconds: float) -> None:
        """On the event loop, after each group commit: move the head and tell of the
        events it stored."""
        self.commits += 1
        # New positions, with the records the store adds before the items (a first
        # append's ``device_key``): what ``clawsync_events_appended_total`` counts.
        # Every earlier notice ran before this one (all are scheduled by the writer
        # thread, in its order), so none of these positions is an earlier write's.
        stored = max(0, head - self._head)
        unlisted = stored - sum(1 for result in results if result.created)
        self._move_head(head)
        # The items' sessions name the commit only if they hold every new position:
        # not if the store added a key record (in the membership session).
        self._notify(Commit(len(items) + max(0, unlisted), stored, head, seconds,
                            frozenset(item.session_key for item in items)
                            if unlisted == 0 else None, appends=True))

    def _notify(self, commit: Commit) -> None:
        for listener in list(self._listeners):
            try:
                listener(commit)
            except Exception:
                # A broken metrics hook must not stop the committer: appends would hang.
                log.exception("commit listener failed")

    def _append_batch(self, items: list[Draft | Event]) -> list[Appended]:
        """On the writer thread: one transaction, whose notice (``_appended``) is
        scheduled from here, as a ``write``'s is: the loop then runs the notices in the
        order the writer stored their events, and the head never moves back; and before
        the results reach the loop, so the head has moved when the callers resume. Timed
        on this thread: the wait for the writer is not counted."""
        started = time.perf_counter()
        try:
            results = self._store.append_batch(items)
        except BaseException:
            # Raised after its transaction committed (a listener's panic: ``_after``
            # lets only ``Exception`` pass by): the events are durable all the same, so
            # they are told of as a ``write``'s are; no stored events, no notice.
            self._loop.call_soon_threadsafe(self._written, self._store.head,
                                            time.perf_counter() - started)
            raise
        self._loop.call_soon_threadsafe(self._appended, items, results, self._store.head,
                                        time.perf_counter() - started)
        return results

    def _move_head(self, head: int) -> None:
        if head > self._head:
            self._head = head
            self._wake_waiters()

    def _wake_waiters(self) -> None:
        waiters, self._head_waiters = self._head_waiters, {}
        for waiter in waiters:
            _wake(waiter)

    # -- reads ----------------------------------------------------------------------

    async def read(self, call: Callable[[EventStore], T]) -> T:
        """Run ``call(store)`` on a reader thread."""
        if self._closed:
            raise StoreClosing("the store is closed")
        return await self._loop.run_in_executor(self._readers, call, self._store)

    async def get_events_since(self, session_key: str, position: int = 0,
                               limit: int = 100) -> list[StoredEvent]:
        """A session's events after ``position``; ``NotFound`` for an unknown session."""
        return await self.read(lambda s: s.get_events_since(session_key, position, limit))

    async def events_after(self, position: int = 0, limit: int = 100) -> list[StoredEvent]:
        """Every event on this node after ``position``, in position order."""
        return await self.read(lambda s: s.events_after(position, limit))

    async def get_projection(self, session_key: str) -> Projection:
        """The session's projection; ``NotFound`` for an unknown session."""
        return await self.read(lambda s: s.get_projection(session_key))

    async def list_sessions(self, after: int = 0, limit: int = 100) -> list[SessionRef]:
        """Sessions in creation order after index ``after``."""
        return await self.read(lambda s: s.list_sessions(after, limit))

    async def stats(self) -> dict[str, int]:
        """Counts of events, sessions, origins and Automerge documents in memory."""
        stats = await self.read(lambda s: s.stats())
        return {**stats, "documents_in_memory": len(self.documents)}

    async def wait_for_head(self, after: int, timeout_s: float | None, *,
                            follower: bool = False) -> int:
        """Wait until the head passes ``after``, at most ``timeout_s`` (None: no limit);
        return the head.

        Returns early (with whatever the head is) once the node is stopping; a
        ``follower`` only once the waiters are released: it feeds clients that the site
        serves until it stops.
        """
        deadline = None if timeout_s is None else self._loop.time() + timeout_s
        while self._head <= after and not self._released \
                and (follower or not self._stopping):
            if deadline is not None and self._loop.time() >= deadline:
                break
            # A future and a timer of its own, not ``asyncio.timeout`` around an Event:
            # followers wait once per commit, and this is the cheaper wait.
            waiter: asyncio.Future[None] = self._loop.create_future()
            self._head_waiters[waiter] = None
            timer = None if deadline is None else self._loop.call_at(deadline, _wake, waiter)
            try:
                await waiter
            finally:
                self._head_waiters.pop(waiter, None)
                if timer is not None:
                    timer.cancel()
        return self._head

    # -- shutdown -------------------------------------------------------------------

    def begin_stopping(self) -> None:
        """The node stops: wake the ``wait_for_head`` callers that end then (not the
        followers)."""
        self._stopping = True
        self._wake_waiters()

    def release_waiters(self) -> None:
        """Wake every ``wait_for_head`` caller for good: the site stops."""
        self._stopping = self._released = True
        self._wake_waiters()

    async def close(self) -> None:
        """Refuse new appends, commit the queued ones, then close the store."""
        if self._closed:
            return
        await self._appends.close()
        self.release_waiters()
        self._closed = True
        # Let reads in flight finish before the store under them closes.
        await self._loop.run_in_executor(None, self._readers.shutdown, True)
        await self._loop.run_in_executor(self._writer, self._store.close)
        self._writer.shutdown(wait=False)
