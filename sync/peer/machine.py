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
* ``connection_failed`` returns when to try again: exponential back-off with jitter, or
  the wait the peer asked for (``asked_until``), up to the back-off's max.

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
from typing import Any, NamedTuple

from crdt import device
from sync.errors import PeerFault
from sync.peer import messages, signatures
from sync.peer.config import SyncConfig, backoff_delay_s
from sync.peer.counters import Counters
from sync.peer.intake import Intake
from sync.peer.limits import ORIGINS_MAX
from sync.peer.messages import About, Ack, Events, Hello
from sync.peer.outbox import Log, Outbox
from sync.peer.quota import OriginQuota

__all__ = ["Log", "Parsed", "PeerSync", "Prepared"]


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


class PeerSync(Intake):
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
        self._asked_until = float("-inf")
        #: Public keys of bound origins, for ``prepare`` to read on other threads: those
        #: the writer read from the store or a batch it took in (``_remember``), and
        #: those ``parse`` found in batches (``_parsed_keys``). Each memory is changed
        #: by one thread only (``_kept``).
        self._keys: dict[str, bytes] = {}
        self._parsed_keys: dict[str, bytes] = {}
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
        the batch before it. Parse a link's messages on one thread at a time: ``receive``
        given bytes parses them on the writer's, so do not give it bytes while another
        thread parses for the same machine (a node gives it ``Prepared``)."""
        try:
            message = messages.parse(data)
        except PeerFault as exc:
            return Parsed(len(data), None, exc, {})
        keys: signatures.Keys = {}
        if isinstance(message, Events):
            # A key the batch binds (its origin's seq 1) is remembered now, not once the
            # writer has stored the batch: the next one, parsed meanwhile, uses it.
            keys = signatures.raw_keys(message.items, self._known_key)
            self._parsed_keys = _kept(self._parsed_keys, keys)
        return Parsed(len(data), message, None, keys)

    def _known_key(self, origin: str) -> bytes | None:
        """The key ``parse`` found for ``origin`` in a batch before, or the writer read."""
        return self._parsed_keys.get(origin) or self._keys.get(origin)

    def _remember(self, keys: Mapping[str, bytes | None]) -> None:
        """Keep the bound origins' keys the intake read from the store or the batch
        (``Intake._verified``), on the writer thread, for ``prepare`` (which reads them
        on other threads) and for the intake's own ``_sender`` right after."""
        self._keys = _kept(self._keys, keys)

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
        them); return the replies. Given bytes, it parses them itself, on this thread:
        give it ``Prepared`` instead while another thread parses for this machine (as a
        node does), or the two would change the memory of parsed keys at once (``_kept``).

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
        out: list[messages.Message | messages.Batch] = []
        if now >= self._next_pull_at:
            self._next_pull_at = now + self.config.pull_interval_s
            out.append(self._hello())
        self._give_up_stalled(now)
        return self._send([*out, *self._pump(now)])

    def connection_failed(self, now: float, asked_s: float | None = None) -> float:
        """The transport could not reach the peer (or lost it); returns when to call
        ``start`` again. Unacknowledged batches will be sent again. ``asked_s``: the
        peer asked for that wait (an HTTP ``Retry-After``): none sooner, up to
        ``backoff_max_s``, so that it cannot park the dial for long (``asked_until``)."""
        self._up = False
        self._said_hello = False
        self._outbox.forget()
        self._failures += 1
        self._retry_at = now + backoff_delay_s(self._failures, self.config, self._rng)
        if asked_s is not None:
            self._asked_until = now + min(asked_s, self.config.backoff_max_s)
            self._retry_at = max(self._retry_at, self._asked_until)
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
    def asked_until(self) -> float:
        """Till when the peer last asked not to be dialed (``connection_failed``): a
        wait no news that the network is back cuts short; -inf if it never asked."""
        return self._asked_until

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

    def _on_hello(self, hello: Hello, now: float) -> list[messages.Message | messages.Batch]:
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
        out: list[messages.Message | messages.Batch] = []
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

    # An ``events`` message: ``Intake._on_events`` (``sync.peer.intake``).

    def _on_ack(self, ack: Ack, now: float) -> list[messages.Message | messages.Batch]:
        self._outbox.learn(ack.version)
        self._give_up_stalled(now)
        return self._pump(now)

    # -- sending -----------------------------------------------------------------------

    def _pump(self, now: float) -> list[messages.Message | messages.Batch]:
        return list(self._outbox.batches(now)) if self.pushing else []

    def _send(self, out: Sequence[messages.Message | messages.Batch]) -> list[bytes]:
        data = [messages.encode(message) for message in out]
        self.counters.messages_out += len(data)
        self.counters.bytes_out += sum(map(len, data))
        self.counters.events_sent += sum(len(m.items) for m in out
                                         if isinstance(m, messages.Batch))
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


def _kept(memory: dict[str, bytes], keys: Mapping[str, bytes | None]) -> dict[str, bytes]:
    """``memory`` with the bound origins' keys of ``keys`` added. A bound origin's key
    never changes (its hash names it), and a key remembered from a record that is then
    not stored only wastes a check: ``judge`` reuses a result only if it was checked with
    the key it would use itself. A peer naming ever new origins only makes the memory
    start again: it holds at most ``ORIGINS_MAX`` keys and those of one call.

    Each memory is changed on one thread only, ``parse``'s (one call at a time, in
    order) or the writer's (``receive`` parses on it only if given bytes, which a caller
    parsing on another thread does not do), and read with ``get`` on the other: a check
    of its size, a new start and an update made by two threads at once could leave it
    past its bound (both passing the check) or lose one's keys in a memory the other had
    just replaced (``_sender`` would miss the key the writer had just read). A new memory
    is filled before it replaces the old one: a reader sees one or the other, whole."""
    if len(memory) > ORIGINS_MAX:
        memory = {}
    memory.update((origin, key) for origin, key in keys.items() if key is not None)
    return memory
