"""Helpers the peer machine tests share: stores filled with events, machines of signing
stores linked to a peer that has said what it runs, events held under an origin to be
retired, and the chaos schedules a mesh of machines runs (``run``)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from crdt import codec, device
from crdt.events import Event
from crdt.log.store import EventStore
from sync.peer.machine import PeerSync
from sync.peer.messages import About, Hello, encode

OpenStore = Callable[[str], EventStore]
Ev = Callable[..., Event]
SIGNS = About("0.3.0", 1, retires=True, forgets=True, signs=True)
OLD = About("0.2.0", 1, retires=True, forgets=True)
KEYS = [device.private_key_from_seed(bytes([n]) * 32) for n in range(4)]


def kinds(out: list[bytes]) -> list[str]:
    return [codec.decode(data)["type"] for data in out]


def filled(store: EventStore, ev: Ev, count: int, *, sessions: int = 3, tag: str = "",
           size: int = 0) -> EventStore:
    store.append_batch([ev(ms=1_000 + n, session=f"s{n % sessions}",
                           content=f"{tag}{n}" + "x" * size) for n in range(count)])
    return store


def message_events(ev: Ev, count: int, tag: str = "m") -> list[Event]:
    """``count`` message events (not peer protocol messages: ``sync.peer.messages``)."""
    return [ev(ms=1_000 + n, content=f"{tag} {n}") for n in range(count)]


def link(store: EventStore, peer_about: About | None, *,
         require: bool = False) -> PeerSync:
    """A machine of ``store`` that has heard the hello of a peer saying ``peer_about``."""
    machine = PeerSync(store, "peer", now=0.0, rng=random.Random(0), about=SIGNS,
                       require_signatures=require)
    machine.start(0.0, peer_reads_about=True)
    machine.receive(encode(Hello("ffffffffffffffff", {}, about=peer_about)), 0.0)
    return machine


#: The origin the retirement tests retire.
RETIRED = "0123456789abcdef"


def old_events(ev: Ev, count: int) -> list[Event]:
    """``count`` events of a session "old", to be held under ``RETIRED``."""
    return [ev(ms=1_000 + n, session="old", content=f"old {n}") for n in range(1, count + 1)]


def hold(store: EventStore, events: list[Event], first_seq: int = 1) -> None:
    """Put ``events`` in ``store`` as ``RETIRED``'s, from ``first_seq`` on."""
    store.ingest([(e, RETIRED, seq) for seq, e in enumerate(events, start=first_seq)])


#: Operation kinds, repeated to weight them: deliveries are the most common.
OPS = ["append"] * 4 + ["append_same"] + ["deliver"] * 8 + ["drop"] * 2 + ["duplicate"] \
    + ["tick"] * 2 + ["fail", "restart"]


def topology(nodes: int, shape: str) -> list[tuple[int, int]] | None:
    """The links of ``nodes`` nodes in ``shape``: a "line", or None for every pair."""
    if shape == "line":  # no direct link between the ends: events travel through others
        return [(i, i + 1) for i in range(nodes - 1)]
    return None  # every pair


def run(mesh: Any, ev: Ev, ops: list[tuple[str, int]]) -> set[bytes]:
    """Apply the schedule; return the ids of every event appended anywhere."""
    n, serial = len(mesh.stores), 0
    appended: set[bytes] = set()
    links = sorted(mesh.machines)
    for kind, x in ops:
        queue = mesh.queue
        if kind == "append":
            node, count = x % n, 1 + (x >> 10) % 3
            events = []
            for _ in range(count):
                serial += 1
                events.append(ev(ms=(x >> 4) % 50, session=f"s{(x >> 2) % 3}",
                                 content=f"e{serial}"))
            mesh.append(node, *events)
            appended.update(e.id for e in events)
        elif kind == "append_same":  # one client retrying the same event on two nodes
            serial += 1
            event = ev(kind="message_sent", ms=(x >> 4) % 50, session=f"s{x % 3}",
                       content=f"same{serial}")
            first = x % n
            mesh.append(first, event)
            mesh.append((first + 1 + (x >> 2) % (n - 1)) % n, event)
            appended.add(event.id)
        elif kind == "deliver" and queue:
            mesh.deliver(x % len(queue))
        elif kind == "drop" and queue:
            queue.pop(x % len(queue))
        elif kind == "duplicate" and queue:
            queue.insert((x >> 8) % len(queue), queue[x % len(queue)])
        elif kind == "tick":
            mesh.tick((x % 100) / 10)
        elif kind == "fail":
            i, j = links[x % len(links)]
            mesh.machines[i, j].connection_failed(mesh.now)
            mesh.machines[j, i].connection_failed(mesh.now)
        elif kind == "restart":  # a node restarts its link from the saved checkpoint
            mesh.restart(*links[x % len(links)])
    return appended
