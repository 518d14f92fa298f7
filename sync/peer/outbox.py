"""The sending half of ``PeerSync``: what one peer is known to hold, which batches are on
their way to it, and the next batch of what it lacks.

A batch stays in flight until the peer's version vector (from an ack, a hello, or the
events it sends us) covers every event in it; an ack alone proves nothing, because a
peer that missed an earlier batch cannot count a later one as held (versions count only
sequences without gaps). A batch not covered within the ack timeout was lost: sending
starts again from what the peer is known to hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple, Protocol

from crdt.events import Event
from crdt.log.records import Appended, Outgoing, Sealed, StoredEvent
from sync.errors import ProtocolMisuse
from sync.peer.limits import BATCH_BYTES_MAX, BATCH_EVENTS_MAX, ORIGINS_MAX, PROOF_OVERHEAD, SEQ_MAX
from sync.peer.messages import Batch, item_bytes, takes_origin
from sync.peer.quota import OriginQuota
from sync.peer.retired import sendable

#: Events read from the store per call while a batch is filled: a batch that closes on
#: its byte limit reads at most this many events it does not send.
READ_PAGE = 64


class Log(Protocol):
    """What ``PeerSync`` needs from the event store (``crdt.log.store.EventStore`` has it)."""

    @property
    def node_id(self) -> str: ...

    @property
    def version(self) -> dict[str, int]: ...

    @property
    def retired(self) -> dict[str, int]: ...

    @property
    def retiring(self) -> dict[str, int]: ...

    def origin_outgoing(self, origin: str, seq: int, limit: int = ...) -> list[Outgoing]: ...

    def ingest(self, items: Iterable[tuple[Event, str, int, bytes | None]]
               ) -> list[Appended]: ...

    def origin_key(self, origin: str) -> bytes | None: ...

    def ahead(self, event: Event) -> bool: ...

    def id_at(self, origin: str, seq: int) -> bytes | None: ...

    def ids_at(self, origin: str, seqs: Sequence[int]) -> list[bytes | None]: ...

    def holds(self, event_id: bytes) -> bool: ...

    def get_event(self, event_id: bytes) -> StoredEvent: ...

    def append_batch(self, items: Sequence[Event]) -> list[Appended]: ...

    def renumber(self, event_ids: Sequence[bytes]) -> None: ...


class InFlight(NamedTuple):
    """A batch the peer is not known to hold yet: when it went out, and the highest seq
    it carries per origin."""

    sent_at: float
    ends: dict[str, int]


class Outbox:
    """Per-peer sending state over ``store``; at most ``window`` batches in flight."""

    def __init__(self, store: Log, window: int,
                 checkpoint: Mapping[str, int] | None = None,
                 batch_events_max: int = BATCH_EVENTS_MAX,
                 origins_quota: OriginQuota | None = None) -> None:
        self.store = store
        #: New origins the peer takes from us (its quota mirrored); None: no limit.
        self.origins_quota = origins_quota
        self.window = window
        self.batch_events_max = batch_events_max
        #: The peer's version vector as far as we know; None until it is known.
        self.known: dict[str, int] | None = (
            None if checkpoint is None else checked_vector(checkpoint))
        self.sent: dict[str, int] = {}  # highest seq per origin sent, maybe not yet held
        self.inflight: list[InFlight] = []  # oldest first
        #: The peer takes forgotten events (skeletons with proofs; its hello said so).
        #: Else an origin is sent up to its first forgotten event only.
        self.skeletons = False
        #: The peer takes signatures (its hello said so): items carry them. ``ready``:
        #: whether it does is known (else nothing is sent yet).
        self.signatures = False
        self.ready = True
        #: The peer drops retired origins from its version vector (its hello said so):
        #: one it does not name, it holds in full (``sync.peer.retired.sendable``).
        self.peer_retires = False

    def replace(self, version: Mapping[str, int]) -> None:
        """The peer says it holds exactly ``version`` (a hello): it may hold less than
        we thought, for instance after it was restored from a backup. Then the batches
        in flight were sent from what it no longer holds (a stale checkpoint): it would
        store nothing of them past the gap, so they are given up at once and sending
        starts again from ``version``, instead of after the ack timeout."""
        before = self.known or {}
        self.known = dict(version)
        if any(version.get(origin, 0) < seq for origin, seq in before.items()):
            self.forget()
            return
        self.learn({})
        if not self.inflight:
            self.sent = {}  # nothing on its way: the hello is the whole truth

    def learn(self, version: Mapping[str, int]) -> None:
        """The peer holds at least ``version``: raise what we know, retire covered batches.
        Acks may arrive out of order, so this only ever raises."""
        # A new dict rather than an update in place: status() reads ``known`` from the
        # event loop while the writer thread runs this.
        known = dict(self.known or {})
        # At most ``ORIGINS_MAX`` origins, as a hello holds, and ours beyond them: acks
        # of made-up origins, each of its own, must not grow this (nor the checkpoint
        # saved from it) without end.
        room, ours = ORIGINS_MAX - len(known), None
        for origin, seq in version.items():
            if origin in known:
                if seq > known[origin]:
                    known[origin] = seq
                continue
            if room <= 0:
                ours = self.store.version if ours is None else ours
                if origin not in ours:
                    continue
            known[origin] = seq  # 0 too: the peer asks for it
            room -= 1
        self.known = known
        self.inflight = [batch for batch in self.inflight
                         if any(seq > known.get(o, 0) for o, seq in batch.ends.items())]

    def stalled(self, now: float, timeout_s: float) -> bool:
        return bool(self.inflight) and now - self.inflight[0].sent_at >= timeout_s

    def forget(self) -> None:
        """Take the batches in flight as lost: the next one starts from ``known``."""
        self.inflight = []
        self.sent = {}

    def batches(self, now: float, through: Mapping[str, int] | None = None) -> list[Batch]:
        """Batches of what the peer lacks, while the window has room (none while we do
        not know what it holds). That includes the peer's own events, if it lost them.
        ``through``: a link's last push (``PeerSync.push_through``): only of those
        origins, up to those seqs (what an event there needs to be stored: the peer
        takes none beyond a gap); up to a window of batches past those in flight, whose
        acks the link will not wait for."""
        out: list[Batch] = []
        while self.known is not None and self.ready \
                and len(self.inflight if through is None else out) < self.window:
            items, proofs = self._next_batch(self.known, now, through)
            if not items:
                break
            ends = {item.origin: item.seq for item in items}  # seqs rise within an origin
            self.sent.update(ends)
            self.inflight.append(InFlight(now, ends))
            out.append(Batch(tuple(items), tuple(proofs.values())))
        return out

    def _next_batch(self, known: dict[str, int], now: float,
                    through: Mapping[str, int] | None = None
                    ) -> tuple[list[Outgoing], dict[bytes, Event]]:
        """Up to the batch limits of events past what the peer holds or was sent, origin
        by origin (sorted, so successive batches walk every origin), and the forget
        records that prove its skeletons. Only events within our own version are sent,
        so a receiver may take a batch as proof that we hold every earlier event of
        those origins.

        Origins retired here come last, in batches of their own: the retirement that
        set our final seq travels in another origin, and a peer that retired the origin
        at a lower seq refuses the events past it until that retirement is stored (a
        batch is judged before any of it is stored), so it has to arrive first."""
        ours = self._sendable(known)
        if through is not None:
            ours = {origin: min(seq, through[origin]) for origin, seq in ours.items()
                    if origin in through}
        final = self.store.retired.keys() | self.store.retiring.keys()
        items: list[Outgoing] = []
        proofs: dict[bytes, Event] = {}
        size = 0
        for origin in sorted(ours, key=lambda o: (o in final, o)):
            if origin in final and items and items[-1].origin not in final:
                return items, proofs
            cursor = max(known.get(origin, 0), self.sent.get(origin, 0))
            if origin not in known and cursor == 0 \
                    and not self._peer_takes(origin, len(known), now):
                continue  # it would skip them: its table or its quota is full
            bound: bool | None = None  # the origin's binding, read once if needed
            while cursor < ours[origin] and len(items) < self.batch_events_max:
                limit = min(ours[origin] - cursor, self.batch_events_max - len(items), READ_PAGE)
                page = self.store.origin_outgoing(origin, cursor, limit)
                if not page:
                    break
                for stored in page:
                    sendable, proof = self._proof(stored.event, proofs)
                    if sendable and stored.signature is None and self.signatures:
                        if bound is None:
                            bound = self.store.origin_key(origin) is not None
                        # A bound origin's event we hold unsigned (stored before we
                        # knew the binding): a peer that checks signatures never
                        # takes it, and would leave the batch unacknowledged.
                        sendable = not bound
                    if not sendable:
                        break  # the peer cannot take it: this origin stops here
                    size += item_bytes(stored.event)
                    if proof is not None:
                        size += len(proof.canonical) + PROOF_OVERHEAD
                    if items and size > BATCH_BYTES_MAX:
                        return items, proofs
                    if proof is not None:
                        proofs[proof.id] = proof
                    items.append(stored if self.signatures or stored.signature is None
                                 else stored._replace(signature=None))
                else:
                    cursor = page[-1].seq
                    continue
                break
            if len(items) >= self.batch_events_max:
                break
        return items, proofs

    def _proof(self, event: Event | Sealed, proofs: dict[bytes, Event]
               ) -> tuple[bool, Event | None]:
        """Whether ``event`` can be sent (a skeleton cannot when the peer does not take
        them, or we lack its forget record), and the record that proves a skeleton if
        the batch lacks it yet."""
        by = event.forgotten_by
        if by is None or by in proofs:
            return True, None
        if not self.skeletons or not self.store.holds(by):
            return False, None
        return True, self.store.get_event(by).event

    def _sendable(self, known: Mapping[str, int]) -> dict[str, int]:
        return sendable(self.store.version, retired=self.store.retired,
                        retiring=self.store.retiring, known=known,
                        peer_retires=self.peer_retires)

    def _peer_takes(self, origin: str, held: int, now: float) -> bool:
        """Whether the peer, holding ``held`` origins, takes a new ``origin`` from us."""
        if not takes_origin(held, origin, self.store.node_id):
            return False
        return self.origins_quota is None or self.origins_quota.take(now)

    def lag(self) -> tuple[int, int | None]:
        """(events the peer holds that we lack, events we hold that it lacks), summed
        over origins; the second is None while we do not know what it holds."""
        theirs = self.known or {}
        held = {**self.store.retired, **self.store.version}
        we_lack = sum(max(0, seq - held.get(o, 0)) for o, seq in theirs.items())
        if self.known is None:
            return we_lack, None
        ours = self._sendable(theirs)
        return we_lack, sum(max(0, seq - theirs.get(o, 0)) for o, seq in ours.items())


def checked_vector(vector: Mapping[str, int]) -> dict[str, int]:
    """A copy of a persisted checkpoint; ``ProtocolMisuse`` if it is not a version vector."""
    out = dict(vector)
    for origin, seq in out.items():
        if (not isinstance(origin, str) or isinstance(seq, bool) or not isinstance(seq, int)
                or not 0 <= seq <= SEQ_MAX):
            raise ProtocolMisuse(f"checkpoint entry {origin!r}: {seq!r} is not origin: seq")
    return out
