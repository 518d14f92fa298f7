"""Helpers the peer machine tests share: stores filled with events, and machines of
signing stores linked to a peer that has said what it runs."""

from __future__ import annotations

import random
from collections.abc import Callable

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
