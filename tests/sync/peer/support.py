"""Helpers the peer machine tests share: stores filled with events."""

from __future__ import annotations

from collections.abc import Callable

from crdt import codec
from crdt.events import Event
from crdt.log.store import EventStore

OpenStore = Callable[[str], EventStore]
Ev = Callable[..., Event]


def kinds(out: list[bytes]) -> list[str]:
    return [codec.decode(data)["type"] for data in out]


def filled(store: EventStore, ev: Ev, count: int, *, sessions: int = 3, tag: str = "",
           size: int = 0) -> EventStore:
    store.append_batch([ev(ms=1_000 + n, session=f"s{n % sessions}",
                           content=f"{tag}{n}" + "x" * size) for n in range(count)])
    return store

