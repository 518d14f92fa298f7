"""Taking a peer's batch in: which of its events ``PeerSync`` stores, and what it counts."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence, Set

from crdt.events import Event
from sync.peer import messages, signatures
from sync.peer.counters import Counters
from sync.peer.messages import Ack, Events
from sync.peer.outbox import Log, Outbox
from sync.peer.quota import OriginQuota
from sync.peer.retired import Verdict, verdict


class Intake:
    """The part of ``PeerSync`` (``sync.peer.machine``) that handles an ``events``
    message: the machine's state it reads and writes, and the machine's methods it
    calls, are declared here, and set by ``PeerSync`` (mypy cannot see that they are:
    ``tests/sync/peer/test_intake.py`` checks that a new ``PeerSync`` has them all)."""

    store: Log
    counters: Counters
    peer_node: str | None
    peer_key: bytes | None
    require_signatures: bool
    _keys: dict[str, bytes]
    _origins_in: OriginQuota
    _outbox: Outbox
    #: Our version vector for the peer (``PeerSync._vector``), which an ack carries.
    _vector: Callable[[Set[str]], dict[str, int]]
    #: Keep bound origins' keys for ``prepare`` (``PeerSync._remember``).
    _remember: Callable[[Mapping[str, bytes | None]], None]

    def _on_events(self, batch: Events, now: float,
                   verified: signatures.Verified) -> list[messages.Message | messages.Batch]:
        """Store a batch: each event in its (origin, seq) slot when the slot is free.

        Sequence numbers are not signed: a faulty or hostile peer can put a valid event
        in another node's slot, and a node restored from a backup reuses its own. Two
        nodes may then hold different events in one (origin, seq) slot, and each would
        take the other's as held. The node that sees such a conflict keeps the incoming
        event and numbers both events again under its own origin, so that each reaches
        the nodes that hold the other one in that slot: every node ends with the same
        event set, whoever filled the slot first. Our own origin is no exception: events
        of ours that we lost (a restored node) come back into their free slots.

        An event is stored only right after what we hold of its origin (or in a slot we
        hold): one beyond a gap is skipped, not stored and not acknowledged, and comes
        again once the gap is filled. So an origin never has a gap here, every event we
        hold lies within our version and is forwarded, and no peer can take a number of
        our own origin ahead of us (our next event would wait behind the gap forever).
        Events of a new origin are skipped too once the origins table is nearly full,
        unless they are the sender's own (``messages.takes_origin``), and past the
        link's quota of new origins (``sync.peer.quota``). Retired origins: see
        ``sync.peer.retired`` (late copies dropped, events past the final seq refused).
        """
        # An event stamped too far ahead of our clock would win every last-writer-wins
        # field until then: leave it out, keep the rest. The peer's version vector says
        # it holds it, ours does not, so the peer sends it again (ack timeout) and it is
        # taken once our wall clock has caught up: delayed, never lost.
        proven = self._take_proofs(batch)
        retired, retiring = self.store.retired, self.store.retiring  # copies: read once
        items = [(item, verdict(item.origin, item.seq, retired=retired, retiring=retiring))
                 for item in batch.items if not self.store.ahead(item.event)
                 and (item.event.forgotten_by is None or item.event.forgotten_by in proven)]
        self.counters.events_ahead += len(batch.items) - len(items)
        items = self._verified(items, verified, retired.keys() | retiring.keys())
        fresh: list[tuple[Event, str, int, bytes | None]] = []
        strays: list[Event] = []
        holders: list[bytes] = []
        ends = self.store.version  # per origin, the last seq held or taken in this batch
        holders_now = self._holders([item for item, _ in items])
        for item, judged in items:
            if judged == "refuse":
                self.counters.events_refused += 1  # the sender's fault; the link goes on
                continue
            if judged == "late":
                self._late(item, holders_now[item.origin, item.seq], strays, holders)
                continue
            if item.seq > ends.get(item.origin, 0) + 1:
                self.counters.events_skipped += 1  # beyond a gap: sent again later
                continue
            if item.origin not in ends and not (
                    messages.takes_origin(len(ends), item.origin, self._sender(item.origin))
                    and self._origins_in.take(now)):
                self.counters.origins_refused += 1  # kept for nodes' own, or over quota
                continue
            ends[item.origin] = max(ends.get(item.origin, 0), item.seq)
            holder = holders_now[item.origin, item.seq]
            if holder is None:
                fresh.append((item.event, item.origin, item.seq, item.signature))
            elif holder != item.event.id and not self.store.holds(item.event.id):
                strays.append(item.event)
                holders.append(holder)
        if fresh:
            self.counters.events_new += sum(a.created for a in self.store.ingest(fresh))
        if strays:
            self.counters.events_conflicting += len(strays)
            self.counters.events_new += sum(a.created for a in self.store.append_batch(strays))
            self.store.renumber(holders)
        self.counters.events_received += len(batch.items)
        # A sender only sends within its own version, so it holds everything up to here.
        self._outbox.learn({item.origin: item.seq for item in batch.items})
        return [Ack(self._vector({item.origin for item in batch.items}))]

    def _sender(self, origin: str) -> str | None:
        """The node the peer is, as ``messages.takes_origin`` asks about a new ``origin``.
        On a link proven by a device key, it is ``origin`` if that origin is bound to the
        key (this batch's ``device_key`` record or the store says so, ``_verified``), and
        no node otherwise: the name a hello gives is a claim, and a member could name
        each origin of fresh keys in turn. Else, the node its hello names."""
        if self.peer_key is None:
            return self.peer_node
        return origin if self._keys.get(origin) == self.peer_key else None

    def _holders(self, items: Sequence[messages.Item]) -> dict[tuple[str, int], bytes | None]:
        """The ids we hold in the batch's slots, read per origin in one go (a batch of
        512 costs a few index reads, not three reads per event)."""
        seqs: dict[str, list[int]] = {}
        for item in items:
            seqs.setdefault(item.origin, []).append(item.seq)
        return {(origin, seq): held for origin, numbers in seqs.items()
                for seq, held in zip(numbers, self.store.ids_at(origin, numbers),
                                     strict=True)}

    def _verified(self, items: list[tuple[messages.Item, Verdict]],
                  verified: signatures.Verified, dropped_origins: Set[str]
                  ) -> list[tuple[messages.Item, Verdict]]:
        """The items (with their ``sync.peer.retired`` verdicts) whose signatures pass
        (``sync.peer.signatures``; ``verified``: the ones ``prepare`` checked); the
        others are counted, and neither stored nor acknowledged. Those of a retired
        origin that are not taken anyway (``dropped_origins``: retired and retiring
        origins) are left to that rule."""
        store = self.store
        checked = [item for item, judged in items if judged == "take"]
        keys = signatures.raw_keys(checked, store.origin_key)
        self._remember(keys)
        judged = signatures.judge(
            checked, keys=keys,
            held=store.version.keys() | dropped_origins,
            require=self.require_signatures, verified=verified)
        self.counters.events_forged += judged.count("forged")
        self.counters.events_unsigned += judged.count("unsigned")
        dropped = {id(item) for item, said in zip(checked, judged, strict=True)
                   if said != "take"}
        return [pair for pair in items if id(pair[0]) not in dropped]

    def _take_proofs(self, batch: Events) -> set[bytes]:
        """Store the forget records that prove the batch's skeletons, if we lack them
        (as our own, like a conflicting event: their own slots come later), so that we
        can prove those skeletons to our other peers, and erase what they cover here.
        Returns the ids of the proofs held now; one stamped too far ahead of our clock
        waits, with its skeletons, for the batch to come again."""
        held = {proof.id for proof in batch.proofs if self.store.holds(proof.id)}
        new = [proof for proof in batch.proofs
               if proof.id not in held and not self.store.ahead(proof)]
        if new:
            self.store.append_batch(new)
        return held | {proof.id for proof in new}

    def _late(self, item: messages.Item, holder: bytes | None, strays: list[Event],
              holders: list[bytes]) -> None:
        """An event of an origin we dropped, within its final seq: a copy of what we
        hold, or (a slot holding another event: ``holder``) a conflict, kept as any
        conflict is."""
        if holder is None or holder == item.event.id or self.store.holds(item.event.id):
            self.counters.events_late += 1
        else:
            strays.append(item.event)
            holders.append(holder)
