"""node.peers.removals with real nodes: a link's calls read the devices session on the
writer only after commits that stored some, and a start read off the writer right after
the commit that bound a removal's origin counts that removal."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from crdt import device as crdt_device
from crdt import membership
from crdt.log.records import StoredEvent
from crdt.log.store import EventStore
from crdt.membership import DEVICES_SESSION
from crdt.signing import Signer
from node.peers import removals
from tests.node.conftest import EventFactory
from tests.node.peers.removing import QUIET, accepted, linked, post
from tests.node.peers.support import SECRET, NodeFactory, all_taken, new_device_id, until


async def test_links_read_the_devices_session_on_the_writer_only_after_it_grew(
        make_node: NodeFactory, event_body: EventFactory, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A node that holds membership records starts its links from what it read of them
    as it started: no link's call reads them all again on the writer. And client
    appends to other sessions cost the links' calls no read of them."""
    b = await make_node(cluster_secret=SECRET, sync=QUIET)
    a = await make_node(cluster_secret=SECRET, sync=QUIET, data_dir=tmp_path / "a")
    assert a.gossip.membership is not None
    for n in range(3):
        await a.gossip.membership.add(new_device_id(), f"tablet {n}")
    await a.gossip.membership.add(b.gossip.device.device_id, "phone")
    await a.stop()
    reads: list[tuple[str, int]] = []  # (node, position) of each read on a writer
    get_events_since = EventStore.get_events_since

    def recorded(store: EventStore, session_key: str, position: int = 0,
                 limit: int = 100) -> list[StoredEvent]:
        if session_key == DEVICES_SESSION \
                and threading.current_thread().name.startswith("clawsync-write"):
            reads.append((store.node_id, position))
        return get_events_since(store, session_key, position, limit)

    monkeypatch.setattr(EventStore, "get_events_since", recorded)
    a = await make_node(cluster_secret=SECRET, sync=QUIET, data_dir=tmp_path / "a")
    own = a.astore.node_id
    assert await a.gossip.add_peer(b.url, learned=False)
    await linked(a, b.url, b.gossip.device.device_id)
    link = a.gossip.runners[f"url:{b.url}"]
    other_end = await accepted(b)
    await all_taken(link.machine, other_end.machine)
    on_a = [position for node, position in reads if node == own]
    assert on_a and 0 not in on_a, on_a  # from where a's start read up to
    before = len(reads)
    for n in range(5):
        await post(a, event_body(n))
    async def all_pushed() -> bool:  # each, on a call of the link's
        return (await b.astore.read(lambda s: s.version)).get(own, 0) \
            >= (await a.astore.read(lambda s: s.version))[own]

    await until(all_pushed)
    await all_taken(link.machine, other_end.machine)
    assert [read for read in reads[before:] if read[0] == own] == []


def test_a_start_read_right_after_the_commit_that_bound_the_removals_origin_counts_it(
        ) -> None:
    """A peer's first records (its key, a removal) arrive in one commit. A start read on
    a reader thread after that commit, before the writer has taken in the binding it
    made, counts the removal: ``Removals`` started from it never reads below it again."""
    phone = new_device_id()
    with EventStore.open("memory:", signer=Signer(crdt_device.generate(), "b")) as b:
        b.append(membership.added(phone, "phone"))
        b.append(membership.removed(phone, "lost"))
        items = [(x.event, x.origin, x.seq, x.signature)
                 for x in b.origin_after(b.node_id, 0, 100)]
    with EventStore.open("memory:") as a:
        storage = a.log.storage
        plain_transaction = storage.transaction
        starts: list[tuple[set[str], int]] = []

        @contextmanager
        def transaction() -> Iterator[Any]:
            with plain_transaction() as tx:
                yield tx
            with ThreadPoolExecutor(1) as reader:  # committed: a reader reads from 0
                starts.append(reader.submit(removals.read, a, 0).result())

        storage.transaction = transaction  # type: ignore[method-assign]
        a.ingest(items)
        storage.transaction = plain_transaction  # type: ignore[method-assign]
        [(removed, position)] = starts
        assert removed == {phone}
        following = removals.Removals()
        following.follow(a, removed, position)
        assert following.removed(a, phone)
