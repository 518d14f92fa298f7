"""Convergence under reordering, duplication, loss and broken links (hypothesis).

Three or four nodes with real stores (in memory, so that hypothesis can try hundreds of
schedules) append concurrently to the same sessions while a
scheduler driven by hypothesis delivers, drops, duplicates and reorders their messages,
advances time, cuts links and restarts links from their checkpoints. Afterwards
everything is delivered reliably with a few ticks, and every node must hold the same
events, once each, with the same projections.
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from crdt.events import Event
from crdt.log.store import EventStore
from sync.peer.config import SyncConfig
from tests.sync.peer.support import OPS, run, topology

Ev = Callable[..., Event]

#: Schedules tried. Each runs three or four nodes to convergence (about 30 ms).
CONVERGENCE_EXAMPLES = 500


@settings(max_examples=CONVERGENCE_EXAMPLES)
@given(nodes=st.integers(3, 4), shape=st.sampled_from(["mesh", "line"]),
       seed=st.integers(0, 2**16),
       ops=st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 2**16)),
                     min_size=20, max_size=80))
def test_nodes_converge_after_chaos(mesh: type, ev: Ev, nodes: int, shape: str, seed: int,
                                    ops: list[tuple[str, int]]) -> None:
    stores = [EventStore.open("memory:") for _ in range(nodes)]
    try:
        config = SyncConfig(batch_events_max=3)  # many small batches
        net = mesh(stores, config=config, seed=seed, links=topology(nodes, shape))
        net.start()
        appended = run(net, ev, ops)
        net.converge()
        net.assert_converged()
        for store in stores:
            assert store.head == len(appended)  # every event, once
    finally:
        for store in stores:
            store.close()
