"""``PeerSync``: anti-entropy with one peer, as a sans-I/O state machine.

The transport feeds it bytes and events (``start``, ``receive``, ``tick``,
``local_appended``, ``connection_failed``) and sends the bytes it returns; ``now`` is
passed in, so nothing here reads a clock, sleeps or touches a socket. Two machines that
exchange their output until neither has more converge (see ``tests/sync``).

How the protocol runs (message formats in ``sync.peer.messages``):

* ``start`` sends a hello: our version vector. A hello from the peer says what it holds,
  so we stream what it lacks in ``events`` batches, at most ``inflight_batches_max``
  unacknowledged at a time; each ``ack`` carries the peer's version vector after it
  stored a batch, which retires the batches it covers and lets the next ones go
  (``sync.peer.outbox``).
* ``local_appended`` pushes new events at once (call it after local appends, and after
  a ``receive`` that stored new events, on the machines of the other peers, so events
  travel on without waiting for a pull); ``tick`` re-sends the hello every
  ``pull_interval_s`` (a pull: the peer answers with what we lack), which repairs lost
  messages. Between nodes in sync that is the only traffic: a hello, whose size grows
  with the number of origins, not of sessions or events.
* ``checkpoint`` is what the peer is known to hold; persist it and pass it back after a
  restart so that sending resumes there instead of waiting for the peer's hello.
* ``connection_failed`` returns when to try again: exponential back-off with jitter.

>>> import random, tempfile
>>> from crdt.log.store import EventStore
>>> from crdt.events import parse_event
>>> a, b = (EventStore.open(tempfile.mkdtemp()) for _ in "ab")
>>> _ = a.append(parse_event({"agent_id": "main", "hlc": [1, 0],
...     "kind": {"type": "session_ended", "reason": "done"}}, session_key="s1"))
>>> to_b = PeerSync(a, "b", now=0.0, rng=random.Random(1))
>>> to_a = PeerSync(b, "a", now=0.0, rng=random.Random(2))
>>> hello_a, hello_b = to_b.start(0.0), to_a.start(0.0)
>>> batch = to_b.receive(hello_b[0], 0.0)        # b's hello: b lacks a's event
>>> to_b.receive(to_a.receive(batch[0], 0.0)[0], 0.0)   # b stores it and acks
[]
>>> b.version == a.version
True
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any, NamedTuple

from crdt import device
from crdt.events import Event
from sync.errors import PeerFault
from sync.peer import messages, signatures
from sync.peer.config import SyncConfig, backoff_delay_s
from sync.peer.limits import ORIGINS_MAX
from sync.peer.messages import About, Ack, Events, Hello
from sync.peer.outbox import Log, Outbox
from sync.peer.quota import OriginQuota
from sync.peer.retired import Verdict, verdict

__all__ = ["Counters", "Log", "Parsed", "PeerSync", "Prepared"]


class Parsed(NamedTuple):
    """A message from the peer, parsed, with the keys its batch's signatures are
    checked with (``PeerSync.parse``), for ``PeerSync.verify``."""

    size: int  # bytes received
    message: messages.Message | None  # None if it was refused:
    fault: PeerFault | None  # why, raised by ``receive``
    keys: signatures.Keys  # of a batch's origins (``signatures.raw_keys``); else empty


class Prepared(NamedTuple):
    """A message from the peer, parsed and its signatures verified ahead
    (``PeerSync.prepare``), for ``PeerSync.receive``."""

    size: int  # bytes received
    message: messages.Message | None  # None if it was refused:
    fault: PeerFault | None  # why, raised by ``receive``
    verified: signatures.Verified


@dataclass
class Counters:
    """Traffic with one peer, for metrics."""

    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    events_sent: int = 0
    events_received: int = 0  # in valid batches, held before or not
    events_new: int = 0  # of those, the ones this node did not hold yet
    events_conflicting: int = 0  # sent for a slot that holds another event; kept anyway
    faults: int = 0  # messages refused as a PeerFault
    events_ahead: int = 0  # left out for a timestamp too far ahead of our clock, for now
    resends: int = 0  # times in-flight batches were given up as lost
    batches_resent: int = 0  # batches given up as lost: what they held goes again
    events_skipped: int = 0  # beyond a gap in their origin: not stored, sent again later
    origins_refused: int = 0  # events of a new origin past the table's free part: skipped
    events_late: int = 0  # copies of a retired origin's events, held already: dropped
    events_refused: int = 0  # numbered past a retired origin's final seq: refused
    events_forged: int = 0  # of a bound origin, its signature wrong: refused
    events_unsigned: int = 0  # of a bound origin without a signature, or new unbound
    last_contact: float | None = None  # ``now`` of the last message received


class PeerSync:
    """The anti-entropy state machine for one peer (see the module docstring).

    ``store`` is this node's event log; ``peer`` names the peer (for status only);
    ``rng`` supplies back-off jitter; ``checkpoint`` is a version vector from an earlier
    ``checkpoint``. Calls that return ``list[bytes]`` return messages to send, in order.

    Not thread-safe, and ``receive`` commits a batch to the store (a blocking, fsynced
    write): call it where the store's writes run, one call at a time per store.
    """

    def __init__(self, store: Log, peer: str, *, now: float, rng: random.Random,
                 config: SyncConfig | None = None,
                 checkpoint: Mapping[str, int] | None = None,
                 about: About | None = None, require_signatures: bool = False,
                 origins_in: OriginQuota | None = None) -> None:
        self.store = store
        #: Refuse events of unbound origins not held here yet (``sync.peer.signatures``).
        self.require_signatures = require_signatures
        self.peer = peer
        self.config = config or SyncConfig()
        self.counters = Counters()
        self.peer_node: str | None = None  # the node id the peer's hello gave
        #: The raw public key the peer proved on this link (device keys), or None (a
        #: cluster secret, a CA certificate): its hello may not name an origin bound to
        #: another key. Set it per link, before ``start``.
        self.peer_key: bytes | None = None
        #: What this node runs, told to peers that read it; what the peer runs, once its
        #: hello said (None for a peer of version 0.1, which does not say).
        self.about = about
        self.peer_about: About | None = None
        #: Events the peer's last hello said it holds and we do not (its claim): a node
        #: may get ready to check that many signatures before the batches come.
        self.lacking = 0
        self._peer_reads_about = False
        self._rng = rng
        self._outbox = Outbox(store, self.config.inflight_batches_max, checkpoint,
                              self.config.batch_events_max,
                              OriginQuota(self.config.origins_new_max,
                                          self.config.origins_new_interval_s, now))
        #: New origins the peer may bring: ``origins_in`` if given (a node keeps one per
        #: peer across its links, so that a peer does not get a new quota by linking
        #: again), else this machine's own.
        self._origins_in = origins_in or OriginQuota(self.config.origins_new_max,
                                                     self.config.origins_new_interval_s, now)
        self._up = False
        self._said_hello = False
        self._own_resent = False  # our origin was sent again after a claim beyond it
        self._next_pull_at = now
        self._failures = 0
        self._retry_at = now
        #: Public keys of bound origins seen in batches, for ``prepare`` to read on
        #: other threads.
        self._keys: dict[str, bytes] = {}
        #: Whether calls send the peer events (pushes, resends, answers to its hellos
        #: and acks). A node sets it False while the peer's device is removed, before
        #: each call, where the store's writes run, so that nothing decided after the
        #: commit that stored the removal sends the device what it is no longer to
        #: have. Hellos and acks still go, and ``push_through``, the link's last push.
        self.pushing = True

    # -- transport events ------------------------------------------------------------

    def start(self, now: float, *, peer_reads_about: bool = False) -> list[bytes]:
        """The link is (re)established: say hello, and resume from a checkpoint.
        ``peer_reads_about``: the peer said, as it dialed, that its hello parser takes
        ``about`` (else we wait for its own hello to show it)."""
        self._up = True
        self._peer_reads_about = peer_reads_about
        # A peer that reads ``about`` says in its hello whether it takes signatures:
        # wait for that hello before sending, or what we send unsigned is not taken.
        self._outbox.ready = not peer_reads_about
        self._outbox.forget()
        self._next_pull_at = now + self.config.pull_interval_s
        self._said_hello = True
        return self._send([self._hello(), *self._pump(now)])

    def prepare(self, data: bytes,
                verify_many: signatures.VerifyMany = device.verifies_many) -> Prepared:
        """The part of ``receive`` that needs neither the store nor the machine's state,
        and costs the most: parse the message and verify its signatures, with the keys
        of origins seen before (``sync.peer.signatures.verify_ahead``, which checks them
        with ``verify_many``: a node may pass one that runs in a worker process). Safe
        to call on another thread while ``receive`` handles the message before, so that
        a node overlaps the two. It is ``verify(parse(data))``; a node may run the two
        steps apart, to parse the next message while this one's signatures are checked.
        """
        return self.verify(self.parse(data), verify_many)

    def parse(self, data: bytes) -> Parsed:
        """``prepare``'s first step: parse the message and find its origins' keys,
        remembering those a batch binds for the messages after it. Call it for the
        link's messages one at a time and in the order they arrived (on any thread, and
        while ``receive`` or ``verify`` handle earlier ones): a batch's keys may come from
        the batch before it."""
        try:
            message = messages.parse(data)
        except PeerFault as exc:
            return Parsed(len(data), None, exc, {})
        keys: signatures.Keys = {}
        if isinstance(message, Events):
            # A key the batch binds (its origin's seq 1) is remembered now, not once the
            # writer has stored the batch: the next one, parsed meanwhile, uses it.
            keys = signatures.raw_keys(message.items, self._keys.get)
            self._remember(keys)
        return Parsed(len(data), message, None, keys)

    def verify(self, parsed: Parsed,
               verify_many: signatures.VerifyMany = device.verifies_many) -> Prepared:
        """``prepare``'s second step: verify a parsed batch's signatures ahead with
        ``verify_many``. It reads nothing of the machine's, so messages may be verified
        in any order and at once; ``receive`` still takes them in order."""
        verified: signatures.Verified = {}
        if isinstance(parsed.message, Events):
            verified = signatures.verify_ahead(parsed.message.items, parsed.keys,
                                               verify_many)
        return Prepared(parsed.size, parsed.message, parsed.fault, verified)

    def receive(self, data: bytes | Prepared, now: float) -> list[bytes]:
        """Handle one message from the peer (its bytes, or what ``prepare`` made of
        them); return the replies.

        Raises ``PeerFault`` if the message is refused (nothing from it is stored).
        """
        prepared = self.prepare(data) if isinstance(data, bytes) else data
        self.counters.messages_in += 1
        self.counters.bytes_in += prepared.size
        self.counters.last_contact = now
        try:
            if prepared.fault is not None:
                raise prepared.fault
            message = prepared.message
            if isinstance(message, Hello):
                replies = self._on_hello(message, now)
            elif isinstance(message, Events):
                replies = self._on_events(message, now, prepared.verified)
            else:
                assert isinstance(message, Ack)
                replies = self._on_ack(message, now)
            self._failures = 0  # a message handled: the link works
            return self._send(replies)
        except PeerFault:
            self.counters.faults += 1
            raise

    def local_appended(self, now: float) -> list[bytes]:
        """The store has new events (appended here or ingested from another peer):
        push them now if the link is up and the window has room."""
        return self._send(self._pump(now)) if self._up else []

    def push_through(self, through: Mapping[str, int], now: float) -> list[bytes]:
        """Push, if the link is up, only what the peer lacks of ``through``'s origins up
        to those seqs: a link's last push to a removed device carries the record of its
        removal (and what comes before it in its origin, which the peer needs to store
        it), not whatever else it lacks. Up to a window of batches (``batch_events_max``
        events each) past those in flight: the link ends after it, so a window full of
        batches not acknowledged yet does not hold it back. Plain batches: a node of any
        version takes them."""
        return self._send(self._outbox.batches(now, through)) if self._up else []

    def tick(self, now: float) -> list[bytes]:
        """Call at ``wakeup_at`` (or more often): pulls and resends when they are due."""
        if not self._up:
            return []
        out: list[messages.Message] = []
        if now >= self._next_pull_at:
            self._next_pull_at = now + self.config.pull_interval_s
            out.append(self._hello())
        self._give_up_stalled(now)
        return self._send([*out, *self._pump(now)])

    def connection_failed(self, now: float) -> float:
        """The transport could not reach the peer (or lost it); returns when to call
        ``start`` again. Unacknowledged batches will be sent again."""
        self._up = False
        self._said_hello = False
        self._outbox.forget()
        self._failures += 1
        self._retry_at = now + backoff_delay_s(self._failures, self.config, self._rng)
        return self._retry_at

    # -- what the node reads -----------------------------------------------------------

    @property
    def failures(self) -> int:
        """Connections lost or refused since a message from the peer was last handled: a
        dead address, one that answers as this very node, and a peer whose every message
        is refused count up alike."""
        return self._failures

    @property
    def checkpoint(self) -> dict[str, int] | None:
        """The peer's version vector as last declared or acknowledged (None if unknown):
        persist it, and pass it back as ``checkpoint`` after a restart."""
        known = self._outbox.known
        return None if known is None else dict(known)

    @property
    def wakeup_at(self) -> float:
        """When ``tick`` (or ``start``, while the link is down) should next be called."""
        if not self._up:
            return self._retry_at
        deadline = self._next_pull_at
        if self._outbox.inflight:
            sent_at = self._outbox.inflight[0].sent_at
            deadline = min(deadline, sent_at + self.config.ack_timeout_s)
        return deadline

    def status(self) -> dict[str, Any]:
        """Counters and lag for metrics: ``events_we_lack`` sums, over origins, how far
        the peer is known to be ahead of us; ``events_peer_lacks`` how far behind (None
        while we do not know what it holds)."""
        we_lack, peer_lacks = self._outbox.lag()
        return {
            "peer": self.peer, "peer_node": self.peer_node, "up": self._up,
            "failures": self._failures, "retry_at": self._retry_at,
            "inflight_batches": len(self._outbox.inflight),
            "events_we_lack": we_lack, "events_peer_lacks": peer_lacks,
            "peer_software": self.peer_about.software if self.peer_about else None,
            "peer_schema": self.peer_about.schema if self.peer_about else None,
            **vars(self.counters),
        }

    # -- handlers ----------------------------------------------------------------------

    def _on_hello(self, hello: Hello, now: float) -> list[messages.Message]:
        if hello.node == self.store.node_id:
            raise PeerFault("the peer has our own node id (is it this node?)",
                            field="hello.node")
        # Links, checkpoints and the origins table's reserved part go by the node a
        # hello names: a device may name its own origins only, not another's; and a
        # link that proved no key (the cluster secret, a certificate) may not name an
        # origin bound to one (every node that signs proves its key when it links), or
        # it would put that node's own link on standby.
        bound_to = self.store.origin_key(hello.node)
        if bound_to is not None and bound_to != self.peer_key:
            whose = "another device's origin" if self.peer_key is not None \
                else "an origin of a device key this link did not prove"
            raise PeerFault(f"node {hello.node} is {whose}", field="hello.node")
        if self.peer_node is not None and hello.node != self.peer_node:
            self._outbox.forget()  # another node answers at that address now
        self.peer_node = hello.node
        self.lacking = _lacking(hello.version, self.store.version,
                                {**self.store.retired, **self.store.retiring})
        if hello.about is not None:
            self.peer_about = hello.about
            self._outbox.skeletons = hello.about.forgets
            self._outbox.peer_retires = hello.about.retires
            if hello.about.signs and not self._outbox.signatures:
                # What went out before we knew carried no signatures, and is not taken
                # by a peer that checks them: send it again, signed (our own origin in
                # full too, if a claim asked for that).
                self._outbox.signatures = True
                self._outbox.forget()
                self._own_resent = False
        if hello.about is not None or not self._peer_reads_about:
            self._outbox.ready = True  # we know whether it takes signatures
        self._outbox.replace(self._claims(hello.version))
        self._give_up_stalled(now)
        out: list[messages.Message] = []
        # The peer reached us first, or it has just shown that it reads ``about`` (which
        # our first hello left out): tell it what we hold, and run.
        learned = hello.about is not None and not self._peer_reads_about
        if learned:
            self._peer_reads_about = True
        if not self._said_hello or (learned and self.about is not None):
            self._said_hello = True
            out.append(self._hello())
        return [*out, *self._pump(now)]

    def _claims(self, version: dict[str, int]) -> dict[str, int]:
        """What to take the peer's hello as: a claim, never proof. It never moves our
        own numbering (a peer claiming numbers of ours we never wrote would leave a gap
        our next events could never cross). A claim of more of our origin than we hold
        means we were restored from a backup (or the peer lies): the numbers we gave out
        since may name other events on the peer, and neither side would send its event
        for a slot the other says it holds. So, once per link, our own origin is sent to
        it again in full: such a slot becomes a conflict, and both events are kept."""
        own = self.store.node_id
        if version.get(own, 0) <= self.store.version.get(own, 0) or self._own_resent:
            return version
        self._own_resent = True
        return {**version, own: 0}

    def _on_events(self, batch: Events, now: float,
                   verified: signatures.Verified) -> list[messages.Message]:
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

    def _remember(self, keys: Mapping[str, bytes | None]) -> None:
        """Keep bound origins' keys for ``prepare`` (which reads them on other threads).
        A bound origin's key never changes (its hash names it), and a key remembered
        from a record that is then not stored only wastes a check: ``judge`` reuses a
        result only if it was checked with the key it would use itself. A peer naming
        ever new origins only makes the memory start again."""
        if len(self._keys) > ORIGINS_MAX:
            self._keys = {}
        self._keys.update((origin, key) for origin, key in keys.items() if key is not None)

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

    def _on_ack(self, ack: Ack, now: float) -> list[messages.Message]:
        self._outbox.learn(ack.version)
        self._give_up_stalled(now)
        return self._pump(now)

    # -- sending -----------------------------------------------------------------------

    def _pump(self, now: float) -> list[messages.Message]:
        return list(self._outbox.batches(now)) if self.pushing else []

    def _send(self, out: Sequence[messages.Message]) -> list[bytes]:
        data = [messages.encode(message) for message in out]
        self.counters.messages_out += len(data)
        self.counters.bytes_out += sum(map(len, data))
        self.counters.events_sent += sum(len(m.items) for m in out if isinstance(m, Events))
        return data

    def _hello(self) -> Hello:
        about = self.about if self._peer_reads_about else None
        return Hello(self.store.node_id, self._vector(), about=about)

    def _vector(self, batch_origins: Set[str] = frozenset()) -> dict[str, int]:
        """Our version vector for this peer. A peer that has not said it drops retired
        origins (an earlier version) keeps them active, and would offer their events
        to us on every hello that left them out: tell it that we hold them (their final
        seqs), as far as the vector's limit allows. A peer that drops them is told only
        those its batch carried (an ack's ``batch_origins``): we may have retired one
        on storing the batch, and an ack without it would leave the batch unacknowledged
        until the timeout sent it all again."""
        version = self.store.version
        retired = self.store.retired
        if self.peer_about is not None and self.peer_about.retires:
            told = [(origin, retired[origin]) for origin in batch_origins
                    if origin in retired and origin not in version]
            if not told:
                return version
        else:
            told = [item for item in retired.items() if item[0] not in version]
        room = ORIGINS_MAX - len(version)
        return {**dict(told[:max(room, 0)]), **version}

    def _give_up_stalled(self, now: float) -> None:
        """A batch the peer has not taken within ``ack_timeout_s`` was lost (or one
        before it was): send again from what the peer is known to hold."""
        if self._outbox.stalled(now, self.config.ack_timeout_s):
            self.counters.resends += 1
            self.counters.batches_resent += len(self._outbox.inflight)
            self._outbox.forget()


def _lacking(claimed: Mapping[str, int], ours: Mapping[str, int],
             final: Mapping[str, int]) -> int:
    """Events a peer's version vector ``claimed`` holds that we do not: per origin, past
    what we hold (``ours``; a retired origin held in full is not in it, and we hold it up
    to its final seq), and never past a retired origin's final seq (``final``): later
    numbers are refused."""
    return sum(max(0, min(seq, final.get(origin, seq)) - ours.get(origin, final.get(origin, 0)))
               for origin, seq in claimed.items())
