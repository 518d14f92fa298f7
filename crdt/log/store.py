"""``EventStore``: the seed's embedded API over the diskcache event log.

Synchronous and for one writer thread (``node.store.AsyncStore`` is the asyncio facade
that groups concurrent appends into one commit); reads are safe from any thread. Views
built on the log (``crdt.automerge.documents``) read it through ``EventStore.log``.

>>> import tempfile
>>> from crdt.events import parse_event
>>> store = EventStore.open(tempfile.mkdtemp())
>>> draft = parse_event({"agent_id": "main", "kind": {"type": "message_received",
...     "content": "Hello, agent!"}}, session_key="tg:alice")
>>> appended = store.append(draft)
>>> appended.created, appended.stored.position
(True, 1)
>>> store.append(appended.stored.event).created    # the same event again: no duplicate
False
>>> store.get_projection("tg:alice").to_json()["message_count"]
1
>>> [ref.session_key for ref in store.list_sessions()]
['tg:alice']
>>> store.close()
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from crdt import clock as clocks
from crdt.clock import DRIFT_MAX_MS, Clock
from crdt.errors import InvalidInput, NotFound, StoreError
from crdt.events import Draft, Event
from crdt.keys import check_name
from crdt.log import forget, retire
from crdt.log.eventlog import EventLog
from crdt.log.reads import PAGE_MAX as PAGE_MAX  # named here by the README: the API's limit
from crdt.log.reads import Reads
from crdt.log.reads import SessionRef as SessionRef  # what ``list_sessions`` returns
from crdt.log.records import META, Appended, Meta
from crdt.signing import Signer
from crdt.storage.backends import open_storage, peek
from crdt.storage.base import Storage
from crdt.storage.lock import Holder

logger = logging.getLogger(__name__)

#: A listener that raised after a commit is told again at the next commit, then, while
#: it keeps raising, at the first commit after a wait that doubles from the least to
#: the most: one that cannot succeed (a damaged record) does not cost every commit.
LISTENER_RETRY_MIN_S = 1.0
LISTENER_RETRY_MAX_S = 60.0


@dataclass(frozen=True, slots=True)
class _Due:
    """A listener's records it raised on, and when it may be told them again: the
    monotonic time, after a wait of ``wait_s`` (doubled at each failure)."""

    records: list[forget.Forget]
    retry_at: float
    wait_s: float


class EventStore(Reads):
    """A node's event store: append events, read them back, read projections."""

    def __init__(self, storage: Storage, *, clock_drift_max_ms: int = DRIFT_MAX_MS,
                 signer: Signer | None = None, written_by: str | None = None) -> None:
        """The store in ``storage`` (any ``crdt.storage`` backend), given a node id if
        it is new. It closes the storage when it is closed. ``clock_drift_max_ms``: how
        far ahead of this node's wall clock a timestamp may be stored, and the clock may
        run (``crdt.clock``). ``signer``: the device's, to write under origins bound to
        its key and sign every event this store originates (``crdt.log.bound``);
        without one, events are unsigned under a random origin. ``written_by``:
        the software writing, by its version, which the log records (``Meta.written_by``)
        so that a version that cannot read it can name the one to run."""
        self._log = EventLog.open(storage, secrets.token_hex(8), signer, written_by)
        self._clock = Clock(last=self._log.meta.clock, drift_max_ms=clock_drift_max_ms)
        self._clock.settle()
        self._closed = False
        #: Called on the writer thread after a commit that stored forget records, with
        #: those records: derived state, such as a session's Automerge document, must
        #: drop the content too. What they delete is purged with the log's erasure.
        self.erased_listeners: list[Callable[[list[forget.Forget]], None]] = []
        #: Called on the writer thread after every commit that stored events, with what
        #: the call appended (``created`` False: held already), before any later write:
        #: a follower of one session learns there whether it has anything to read.
        self.stored_listeners: list[Callable[[list[Appended]], None]] = []
        self._purge_due = False  # a purge after a forget could not finish: try again
        #: Listener -> what it raised on, told again later (``_after``), so that what it
        #: had to erase (an old document) leaves the file without a restart.
        self._listeners_due: dict[Callable[[list[forget.Forget]], None], _Due] = {}
        #: Listeners and purges after a commit that raised (each logged), since opening.
        self.after_commit_failures = 0
        if signer is not None:
            self._bind_own_origin(signer)

    @classmethod
    def open(cls, location: str | os.PathLike[str], *,
             clock_drift_max_ms: int = DRIFT_MAX_MS,
             signer: Signer | None = None, written_by: str | None = None,
             holder: Holder | None = None) -> EventStore:
        """Open the store at ``location``: a folder (created if missing; diskcache),
        or a storage URL such as ``memory:`` (``crdt.storage.backends``). A folder
        another process holds is refused with ``FolderInUse``; a folder's lock file
        names this process as ``holder`` says, or else as a node."""
        storage = open_storage(location, holder)
        try:
            return cls(storage, clock_drift_max_ms=clock_drift_max_ms, signer=signer,
                       written_by=written_by)
        except BaseException:
            storage.close()
            raise

    @staticmethod
    def check_format(location: str | os.PathLike[str]) -> None:
        """Read the meta record at ``location`` and change nothing: ``LogFormatError`` if
        ``open`` would refuse the log (another format, a damaged record), ``FolderInUse``
        if another process holds the folder. A store with no log yet passes. A folder
        is read without a byte of it written (``crdt.storage.backends.peek``): a log
        refused here is left as it was found."""
        raw = peek(location, META)
        if raw is not None:
            Meta.from_fields(Meta.fields(raw))

    def _bind_own_origin(self, signer: Signer) -> None:
        """A folder written under a random origin (before events were signed, or by
        another key) retires it at its last seq and continues under a bound origin
        (``OwnOrigin._take_new_origin``), so nothing new is written unsigned."""
        meta = self._log.meta
        if meta.origin_n is not None and signer.origin(meta.origin_n) == meta.node_id:
            return
        final_seq = meta.version.get(meta.node_id, 0)
        if final_seq == 0 and meta.local_seq == 0 and meta.node_id not in meta.retired:
            self._log.take_bound_origin()  # it never wrote: nothing to retire
            return
        self.append(retire.retirement(meta.node_id, max(final_seq, 1)))

    @property
    def log(self) -> EventLog:
        """The log underneath, for views that are built from it (Automerge documents)."""
        return self._log

    @property
    def node_id(self) -> str:
        """This node's origin id: it numbers the events it originates."""
        return self._log.meta.node_id

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def version(self) -> dict[str, int]:
        """Version vector: for each active origin, the highest sequence held without
        gaps (retired origins held up to their final seq are left out)."""
        return dict(self._log.meta.version)

    @property
    def retired(self) -> dict[str, int]:
        """Retired origins held up to their final seq (``crdt.log.retire``): final seq."""
        return dict(self._log.meta.retired)

    @property
    def retiring(self) -> dict[str, int]:
        """Retired origins not held up to their final seq yet (still active): final seq."""
        return dict(self._log.meta.retiring)

    @property
    def origins_room(self) -> int:
        """Active origins beyond which one known only from a retirement is not asked for."""
        return self._log.origins_room

    @origins_room.setter
    def origins_room(self, value: int) -> None:
        self._log.origins_room = value

    # -- writes (one thread) ---------------------------------------------------------

    def append(self, item: Draft | Event) -> Appended:
        """Append one event; a duplicate returns the stored one with ``created=False``."""
        return self.append_batch([item])[0]

    def append_batch(self, items: Sequence[Draft | Event]) -> list[Appended]:
        """Append events in one durable transaction; return once it is committed.

        Drafts without a timestamp are stamped by the node's clock; given timestamps
        move the clock forward (within its drift bound) so later events sort after them.
        A given timestamp beyond that bound fails the whole call with ``TimestampAhead``
        and stores nothing.
        """
        self._check_open()
        self.check_timestamps(items)
        sealed: list[tuple[Event, str | None, int | None]] = []
        stamped: list[bytes] = []  # ids of the events stamped here: none is stored
        for item in items:
            if isinstance(item, Draft) and item.timestamp is None:
                event = self._stamp(item)
                stamped.append(event.id)
            else:
                event = self._seal(item)
            sealed.append((event, None, None))
        return self._after(self._log.append(sealed, self._clock, unheld=stamped))

    def ingest(self, items: Iterable[tuple[Event, str, int]
                                      | tuple[Event, str, int, bytes | None]]
               ) -> list[Appended]:
        """Store events received from a peer with their ``(origin, seq)`` and, if it has
        one, the origin's signature (checked before: ``sync.peer.signatures``); one
        commit. An event beyond the clock's bound fails the call with ``TimestampAhead``:
        leave such events out (``ahead``) and take them when the peer sends them again."""
        self._check_open()
        batch = list(items)
        self.check_timestamps([item[0] for item in batch])
        if batch:  # observing the latest observes them all: each moves the clock up
            self._clock.observe(max(item[0].timestamp for item in batch))
        return self._after(self._log.append(batch, self._clock))

    def _after(self, results: list[Appended]) -> list[Appended]:
        """After every commit: tell the ``stored_listeners`` what it stored; and if it
        stored forget records, tell the erased listeners, then purge the storage of
        the bytes the log and they erased.

        The commit stands whatever happens here: its events are durable, and a caller
        told it failed would store them again (new drafts get new timestamps, so new
        ids: twice). So a listener that raises is logged and the next one told; it is
        told those records again after the next commit, until it takes them (a full
        disk that kept an old document from being deleted frees up), then, while it
        keeps raising, after waits that double (``LISTENER_RETRY_MIN_S`` to ``_MAX_S``)
        or with the next forget records. A purge that raises is logged and tried again
        after the next commit too. A stored listener that raises is logged, and the
        next one told."""
        if results:
            for stored_listener in list(self.stored_listeners):
                try:
                    stored_listener(results)
                except Exception:
                    self.after_commit_failures += 1
                    logger.exception("a listener failed after a commit; the commit stands")
        erased = self._log.erased
        told = False
        now = time.monotonic()
        for listener in self.erased_listeners:
            due = self._listeners_due.pop(listener, None)
            if due is not None and not erased and now < due.retry_at:
                self._listeners_due[listener] = due  # failed lately: told again later
                continue
            # Each record once, however many commits the listener failed after.
            records = list({record.id: record for record in
                            (due.records if due else []) + erased}.values())
            if not records:
                continue
            try:
                listener(records)
                told = True
            except Exception:
                self.after_commit_failures += 1
                wait_s = 0.0 if due is None else min(LISTENER_RETRY_MAX_S, max(
                    LISTENER_RETRY_MIN_S, 2 * due.wait_s))
                self._listeners_due[listener] = _Due(records, now + wait_s, wait_s)
                if due is None:
                    logger.exception("a listener failed after a commit that stored forget "
                                     "records; the commit stands, and it is told again "
                                     "after the next commit")
                else:
                    logger.warning("a listener failed again after a commit; told again "
                                   "in %.0f s or with the next forget records", wait_s)
        for listener in [one for one in self._listeners_due
                         if one not in self.erased_listeners]:  # taken off meanwhile
            del self._listeners_due[listener]
        if erased or told or self._purge_due:
            # Readers that held the WAL past the storage's patience delay it to the
            # next commit; the forget itself is committed, and the answer says so.
            try:
                self._purge_due = not self._log.storage.purge()
            except Exception:
                self._purge_due = True
                self.after_commit_failures += 1
                logger.exception("purging the storage after a forget failed; tried again "
                                  "after the next commit")
        return results

    def forget(self, session_key: str, events: Sequence[str] | None = None, *,
               reason: str = "user", by: str = "") -> Appended:
        """Forget the session ``session_key``, or only ``events`` (hex ids) of it: append
        a forget record (``crdt.log.forget``), which replicates to every node, and
        erase what it covers here, from storage too, before this returns (a derived
        document a full disk kept from being deleted goes after the next commit, see
        ``_after``; the forget is committed either way). ``NotFound``
        for a session this node does not hold; ``InvalidInput`` for a malformed id and
        for an id that is not an event of the session here.

        >>> import tempfile
        >>> from crdt.events import parse_event
        >>> store = EventStore.open(tempfile.mkdtemp())
        >>> said = store.append(parse_event({"agent_id": "main", "kind": {
        ...     "type": "message_received", "content": "my password"}}, session_key="s1"))
        >>> record = store.forget("s1", by="doctest")
        >>> store.get_projection("s1").to_json()["messages"]
        []
        >>> store.get_event(said.stored.event.id).event.to_json()["kind"]
        {'type': 'message_received'}
        >>> store.forget_generation("s1") == record.stored.event.id.hex()
        True
        >>> store.close()
        """
        self._check_open()
        self._log.session(session_key)  # NotFound
        if events is not None and not events:
            # An empty list built by mistake must not forget the whole session.
            raise InvalidInput("must list at least one event id (events=None forgets the "
                               "whole session)", field="events")
        # Checked here too: the answer below, for events each forgotten already, writes
        # no record, and a bad reason must not pass for that.
        check_name(reason, "reason", bytes_max=forget.TEXT_BYTES_MAX)
        ids = forget.parse_ids(list(events or []))
        fresh: list[bytes] = []
        covering: list[bytes] = []
        for index, held in enumerate(self._log.stored_or_none(ids)):
            if held is None or held.event.session_key != session_key:
                raise InvalidInput(f"{ids[index].hex()} is not an event of the session "
                                   f"{session_key!r} on this node", field=f"events[{index}]")
            if held.event.kind == forget.KIND:
                raise InvalidInput(f"{ids[index].hex()} is a forget record, which no "
                                   "forget covers", field=f"events[{index}]")
            if held.event.forgotten_by is not None:
                covering.append(held.event.forgotten_by)
            else:
                fresh.append(ids[index])
        if ids and not fresh:
            # Each is forgotten already, by records that replicate like this one would:
            # a new record would change nothing. The latest of them answers (not created).
            records = [record for record in self._log.stored_or_none(covering) if record]
            if records:
                return Appended(max(records, key=lambda record: record.position), False)
            fresh = ids  # (records not held here: forget them again, as asked)
        # ``fresh`` is never empty here: an empty list would be the whole session.
        draft = forget.forget(session_key, [event_id.hex() for event_id in fresh],
                              reason=reason, by=by)
        return self.append(draft)

    def forget_generation(self, session_key: str) -> str | None:
        """The hex id of the session's latest forget record stored here (whole or per
        event; ``crdt.log.forget.generation``), None if it has none. ``NotFound`` for
        an unknown session."""
        coverage = self._log.coverage(session_key)
        latest = coverage.latest if coverage is not None else None
        return None if latest is None else latest[2].hex()

    def ahead(self, event: Event) -> bool:
        """True if the event's timestamp lies further ahead of this node's wall clock
        than ``clock_drift_max_ms``: it cannot be stored now, but can once the wall
        clock has caught up with it (its id and content do not change)."""
        return self._clock.ahead(event.timestamp)

    def check_timestamps(self, items: Iterable[Draft | Event]) -> None:
        """Raise ``TimestampAhead`` if any given timestamp lies beyond the bound. Safe
        from any thread: it reads the wall clock and the bound only."""
        # One wall clock reading for the batch; a timestamp beyond it is checked again
        # with its own reading (and its field named) only then.
        limit_ms = clocks.wall_ms() + self._clock.drift_max_ms
        for index, item in enumerate(items):
            if item.timestamp is not None and item.timestamp.ms > limit_ms:
                self._clock.check_ahead(item.timestamp, f"events[{index}].timestamp")

    def _seal(self, item: Draft | Event) -> Event:
        if isinstance(item, Event):
            self._clock.observe(item.timestamp)
            return item
        if item.timestamp is None:
            return self._stamp(item)
        self._clock.observe(item.timestamp)
        return item.seal()

    def _stamp(self, draft: Draft) -> Event:
        """Seal ``draft`` with the clock's next timestamp. After the clock started again
        from a corrected wall clock it may repeat a timestamp it issued before; the same
        content at the same time would be the same id, and the new event would be taken
        for the old one. Stamp again until the id is new (only in that window).

        So the event it returns is not stored: every stored event's timestamp was
        issued or observed by the clock (or one it started from, ``meta.clock``), and
        ``now`` issues a timestamp above all of them, or one it checked here."""
        event = draft.seal(self._clock.now())
        while self._clock.may_repeat(event.timestamp) and self._log.holds(event.id):
            event = draft.seal(self._clock.now())
        return event

    def retire(self, origin: str,
               may_retire: Callable[[], None] | None = None) -> Appended | None:
        """Retire ``origin``, an origin that will never write again, at the highest seq
        held here without a gap: append the retirement, which replicates to every node
        (``crdt.log.retire``). None if a retirement at that seq or above is held
        already. ``NotFound`` for an origin this node does not hold; ``InvalidInput``
        for a name no origin can have, and for this node's own origin (it still writes
        under it). ``may_retire`` is called only when a retirement is about to be
        appended, after those answers, and may raise to refuse it: nothing is written.

        >>> import tempfile
        >>> store = EventStore.open(tempfile.mkdtemp())
        >>> store.retire(store.node_id)
        Traceback (most recent call last):
        crdt.errors.InvalidInput: origin: is this node's own origin, which it writes under
        >>> store.close()
        """
        self._check_open()
        check_name(origin, "origin", bytes_max=retire.ORIGIN_BYTES_MAX)
        if origin == self.node_id:
            raise InvalidInput("is this node's own origin, which it writes under",
                               field="origin")
        meta = self._log.meta
        final_seq = meta.version.get(origin, meta.retired.get(origin, 0))
        if final_seq == 0:
            raise NotFound(f"no events of origin {origin!r} on this node")
        known = retire.final_seq(meta, origin)
        if known is not None and known >= final_seq:
            return None
        if may_retire is not None:
            may_retire()
        return self.append(retire.retirement(origin, final_seq))

    def save_checkpoint(self, peer_key: str, version: dict[str, int],
                        check: Callable[[dict[str, int] | None], None] | None = None) -> None:
        """Remember what a peer is known to hold (its version vector), so replication
        resumes from there after a restart. ``peer_key`` names the link (a URL, a node
        id): the caller's choice. ``check`` is given what is saved there now (None if
        nothing), in the transaction that saves: raising, it saves nothing."""
        self._check_open()
        self._log.save_checkpoint(peer_key, version, check)

    def checkpoint(self, peer_key: str) -> dict[str, int] | None:
        """The version vector last saved under ``peer_key``, if any."""
        return self._log.checkpoint(peer_key)

    def renumber(self, event_ids: Sequence[bytes]) -> None:
        """Number stored events again under this node's origin, so that peers holding
        another event in their original (origin, seq) slot still receive them."""
        self._check_open()
        self._log.renumber(event_ids)

    def flush(self) -> None:
        """Nothing to do: every append is durable when it returns. Kept for the seed API."""
        self._check_open()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._log.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
