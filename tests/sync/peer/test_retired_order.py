"""Retirements of one origin at different final seqs (sync.peer.outbox): the higher
retirement reaches a peer before the events past its lower final seq, so none of them
is refused and nothing is sent twice."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from crdt.events import Event
from crdt.log.store import EventStore
from sync.peer.messages import About
from tests.sync.peer.support import RETIRED, hold, old_events

OpenStore = Callable[[str], EventStore]
Ev = Callable[..., Event]


@pytest.mark.parametrize("about", [About("0.3.0", 1, retires=True), None],
                         ids=["drops-retired", "earlier-version"])
@pytest.mark.parametrize("held", [[7, 5], [7, 5, 3], [3, 7, 5]])
def test_a_higher_retirement_travels_before_the_events_it_lets_in(
        open_store: OpenStore, ev: Ev, mesh: type, held: list[int],
        about: About | None) -> None:
    """Each node retired the origin at what it held. A peer that names the origin at its
    lower final seq (a hello to a peer of unknown version, an ack) is sent the events
    past it: the retirement at the higher seq, which makes it take them, goes first."""
    events = old_events(ev, max(held))
    stores = [open_store(f"n{n}") for n in range(len(held))]
    for store, count in zip(stores, held, strict=True):
        hold(store, events[:count])
        store.retire(RETIRED)
    net = mesh(stores, about=about)
    net.start()
    net.converge()
    net.assert_converged()
    for store in stores:
        assert store.retired == {RETIRED: max(held)} and not store.retiring
        assert [s.event.id for s in store.origin_after(RETIRED, 0)] == [e.id for e in events]
    for machine in net.machines.values():
        assert machine.counters.events_refused == 0
        assert machine.counters.resends == 0
        assert machine.counters.faults == 0
