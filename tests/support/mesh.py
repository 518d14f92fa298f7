"""Peer machines joined in memory: ``Mesh`` delivers, drops, duplicates and reorders the
messages of ``sync.peer`` machines between stores, and advances their time; ``snapshot``
is what must be equal on converged nodes."""

from __future__ import annotations

import random
from typing import Any

from crdt.events import Event
from crdt.log.store import EventStore
from sync.peer.config import SyncConfig
from sync.peer.machine import PeerSync
from sync.peer.messages import About


def all_ids(store: EventStore) -> list[bytes]:
    """Ids of every event the store holds, in position order."""
    ids: list[bytes] = []
    while batch := store.events_after(len(ids), 1_000):
        ids.extend(stored.event.id for stored in batch)
    return ids


def snapshot(store: EventStore) -> tuple[set[bytes], dict[str, int], dict[str, Any]]:
    """What must be equal on converged nodes: event ids, version vector, projections."""
    ids = all_ids(store)
    assert len(ids) == len(set(ids)) == store.head, "an event is stored twice"
    keys: list[str] = []
    while refs := store.list_sessions(len(keys), 1_000):
        keys.extend(ref.session_key for ref in refs)
    projections = {key: store.get_projection(key).to_json() for key in keys}
    return set(ids), store.version, projections


class Mesh:
    """Nodes joined pairwise by ``PeerSync`` machines; messages wait in one queue.

    ``machines[i, j]`` is node i's machine for peer j; what it returns goes to
    ``machines[j, i]``. Nothing is delivered unless a test says so.
    """

    def __init__(self, stores: list[EventStore], *, config: SyncConfig | None = None,
                 seed: int = 0, now: float = 0.0,
                 links: list[tuple[int, int]] | None = None,
                 about: About | None = None) -> None:
        """``about``: what every node says it runs, in hellos from the first (None:
        nothing, as nodes of version 0.1)."""
        self.stores = stores
        self.config = config or SyncConfig()
        self.about = about
        self.now = now
        pairs = links or [(i, j) for i in range(len(stores)) for j in range(i + 1, len(stores))]
        self.machines: dict[tuple[int, int], PeerSync] = {}
        for i, j in pairs:
            for a, b in ((i, j), (j, i)):
                self.machines[a, b] = PeerSync(
                    stores[a], f"node{b}", now=now, config=self.config,
                    rng=random.Random(seed * 1_000 + a * 31 + b), about=about)
                self.machines[a, b].peer_key = self._key(b)
        self.queue: list[tuple[int, int, bytes]] = []  # (to, from, data)
        self.delivered: list[tuple[int, int, bytes]] = []

    def restart(self, node: int, peer: int) -> None:
        """Replace a machine by a new one resuming from its checkpoint, as after a
        restart of the node, and start it."""
        old = self.machines[node, peer]
        self.machines[node, peer] = PeerSync(
            self.stores[node], old.peer, now=self.now, config=self.config,
            rng=random.Random(self.now), checkpoint=old.checkpoint, about=self.about)
        self.machines[node, peer].peer_key = old.peer_key
        self.post(node, peer, self.machines[node, peer].start(
            self.now, peer_reads_about=self.about is not None))

    def _key(self, node: int) -> bytes | None:
        """The key node ``node`` proves on its links, as a real link's handshake does
        (None: a node without one, whose origin no key is bound to)."""
        signer = self.stores[node].log.own.signer
        return None if signer is None else signer.public_key

    def post(self, sender: int, receiver: int, out: list[bytes]) -> None:
        self.queue.extend((receiver, sender, data) for data in out)

    def start(self) -> None:
        for (i, j), machine in self.machines.items():
            self.post(i, j, machine.start(self.now, peer_reads_about=self.about is not None))

    def deliver(self, index: int = 0) -> None:
        """Deliver one queued message. New events it brings are pushed on to the node's
        other peers, as the node does."""
        to, sender, data = self.queue.pop(index)
        self.delivered.append((to, sender, data))
        head = self.stores[to].head
        self.post(to, sender, self.machines[to, sender].receive(data, self.now))
        if self.stores[to].head != head:
            for (i, j), machine in self.machines.items():
                if i == to and j != sender:
                    self.post(i, j, machine.local_appended(self.now))

    def settle(self, steps_max: int = 100_000) -> int:
        """Deliver in order until nothing is left; returns the number delivered."""
        steps = 0
        while self.queue:
            self.deliver(0)
            steps += 1
            assert steps <= steps_max, "the machines never settle"
        return steps

    def append(self, node: int, *events: Event) -> None:
        """Append on one node and let its machines push."""
        self.stores[node].append_batch(events)
        self.appended(node)

    def appended(self, node: int) -> None:
        for (i, j), machine in self.machines.items():
            if i == node:
                self.post(i, j, machine.local_appended(self.now))

    def tick(self, dt: float) -> None:
        """Advance time; machines whose link is down start again once due."""
        self.now += dt
        for (i, j), machine in self.machines.items():
            if not machine.status()["up"]:
                if self.now >= machine.wakeup_at:
                    self.post(i, j, machine.start(
                        self.now, peer_reads_about=self.about is not None))
            else:
                self.post(i, j, machine.tick(self.now))

    def converge(self, rounds_max: int = 20) -> None:
        """Deliver reliably, with ticks past every timeout, until a whole round moves
        no event."""
        self.settle()
        step = self.config.ack_timeout_s + self.config.pull_interval_s
        for _ in range(rounds_max):
            sent = sum(m.counters.events_sent for m in self.machines.values())
            self.tick(step)
            self.settle()
            moved = sent != sum(m.counters.events_sent for m in self.machines.values())
            if not moved and all(m.status()["up"] for m in self.machines.values()):
                return
        raise AssertionError("still sending events after every round")

    def assert_converged(self) -> None:
        first, *rest = (snapshot(store) for store in self.stores)
        for other in rest:
            assert other[0] == first[0]  # same events
            assert other[1] == first[1]  # same version vectors
            assert other[2] == first[2]  # same projections
