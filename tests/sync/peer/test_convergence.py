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
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from crdt.events import Event
from crdt.log.store import EventStore
from sync.peer.config import SyncConfig

Ev = Callable[..., Event]

#: Schedules tried. Each runs three or four nodes to convergence (about 30 ms).
CONVERGENCE_EXAMPLES = 500
#: Operation kinds, repeated to weight them: deliveries are the most common.
OPS = ["append"] * 4 + ["append_same"] + ["deliver"] * 8 + ["drop"] * 2 + ["duplicate"] \
    + ["tick"] * 2 + ["fail", "restart"]


def topology(nodes: int, shape: str) -> list[tuple[int, int]] | None:
    if shape == "line":  # no direct link between the ends: events travel through others
        return [(i, i + 1) for i in range(nodes - 1)]
    return None  # every pair


def run(mesh: Any, ev: Ev, ops: list[tuple[str, int]]) -> set[bytes]:
    """Apply the schedule; return the ids of every event appended anywhere."""
    n, appended, serial = len(mesh.stores), set(), 0
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
