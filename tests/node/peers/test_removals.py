"""node.peers.removals with real nodes: a link pushes nothing to a removed device from
the commit that stored the removal on, to another device at its address again, and its
calls read the devices session on the writer only after commits that stored some; and
a start read off the writer right after the commit that bound a removal's origin."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from crdt import device as crdt_device
from crdt import membership
from crdt.log.records import StoredEvent
from crdt.log.store import EventStore
from crdt.membership import DEVICES_SESSION
from crdt.signing import Signer
from node.cli.linkproxy import LinkProxy
from node.peers import removals
from node.peers.ahead import AHEAD
from node.peers.runner import Runner
from node.peers.transport import DEVICE_REMOVED
from node.server.run import RunningNode
from sync.peer.config import SyncConfig
from tests.node.conftest import EventFactory
from tests.node.peers.support import (
    DEADLINE_S,
    FAST,
    SECRET,
    NodeFactory,
    all_taken,
    new_device_id,
    own_events,
    port_of,
)
from tests.support.processes import free_port

QUIET = dataclasses.replace(FAST, pull_interval_s=600.0)
#: A link whose next call of its own (a pull, a resend) is this far off is quiet for a test.
QUIET_AFTER_S = 60.0
T = TypeVar("T")


async def post(node: RunningNode, body: dict[str, Any]) -> None:
    async with aiohttp.ClientSession(base_url=node.url) as http, \
            http.post("/v1/sessions/s/events", json=body) as answer:
        assert answer.status == 201


async def linked(node: RunningNode, url: str, device_id: str) -> None:
    """Wait until ``node``'s link to ``url`` is up with the device ``device_id``."""
    runner = node.gossip.runners[f"url:{url}"]
    async with asyncio.timeout(DEADLINE_S):
        while runner.state != "up" or runner.device is None \
                or runner.device.device_id != device_id:
            await asyncio.sleep(0.01)


async def accepted(node: RunningNode) -> Runner:
    """The one link a peer opened to ``node``, once it is up."""
    async with asyncio.timeout(DEADLINE_S):
        while not (up := [runner for runner in node.gossip.runners.values()
                          if runner.direction == "in" and runner.state == "up"]):
            await asyncio.sleep(0.01)
    [runner] = up
    return runner


async def phone_and_stranger(a: RunningNode, b: RunningNode, make_node: NodeFactory,
                             event_body: EventFactory) -> tuple[RunningNode, str, str]:
    """b added on a as "phone", and a third node linked to no one (its events reach a by
    hand); b and the third each hold one event. Returns the third, b's device id and
    b's origin."""
    third = await make_node()
    assert a.gossip.membership is not None
    phone, b_origin = b.gossip.device.device_id, b.astore.node_id
    for node in (b, third):
        async with aiohttp.ClientSession(base_url=node.url) as http, \
                http.post("/v1/sessions/s/events", json=event_body(1)) as answer:
            assert answer.status == 201
    await a.gossip.membership.add(phone, "phone")
    return third, phone, b_origin


async def dial_until_even(a: RunningNode, b: RunningNode, phone: str, b_origin: str,
                          url: str | None = None) -> None:
    """a dials b (at ``url``, else its own) until linked to b's device, each holding all
    the other's events."""
    assert await a.gossip.add_peer(url or b.url, learned=False)
    async with asyncio.timeout(DEADLINE_S):
        while phone not in a.gossip.linked_devices() or (held := [
                await node.astore.read(lambda s: s.version) for node in (a, b)])[0] \
                != held[1] or b_origin not in held[0]:
            await asyncio.sleep(0.01)


async def told_only_its_removal(a: RunningNode, b: RunningNode, third: RunningNode,
                                link: Runner, b_origin: str) -> None:
    """b learns its removal (and takes a new origin) from a's last push on ``link``,
    which went through the retirement of b's origin, and holds nothing of the third's."""
    async with asyncio.timeout(DEADLINE_S):
        while b.gossip.own_removal() is None or b.astore.node_id == b_origin:
            await asyncio.sleep(0.01)
    held_b = await b.astore.read(lambda s: {**s.version, **s.retired})
    own = a.astore.node_id
    assert held_b[own] == link.removal_push[own]  # through the retirement of its origin
    assert third.astore.node_id not in held_b  # nothing else it lacked


async def woken_no_more(link: Runner) -> None:
    """Wait until ``link`` took its wake (the last commit's): it pushes nothing unasked."""
    async with asyncio.timeout(DEADLINE_S):
        while link.wake.is_set():
            await asyncio.sleep(0.01)


def link_to(node: RunningNode, device_id: str) -> Runner:
    """``node``'s one link to the device ``device_id``."""
    [link] = [runner for runner in node.gossip.runners.values()
              if runner.device is not None and runner.device.device_id == device_id]
    return link


def writer_calls(node: RunningNode, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The calls asked of ``node``'s writer from now on, by name, in the order asked."""
    asked: list[str] = []
    write = node.astore.write

    async def recorded(call: Callable[[EventStore], T]) -> T:
        asked.append(getattr(call, "__qualname__", ""))
        return await write(call)

    monkeypatch.setattr(node.astore, "write", recorded)
    return asked


class HeldWriter:
    """Holds a node's writer thread until ``release``: calls asked of it meanwhile run
    afterwards, in the order they were asked."""

    def __init__(self) -> None:
        self._entered, self._go = threading.Event(), threading.Event()
        self._holding: asyncio.Future[None] | None = None

    async def hold(self, node: RunningNode, then: Callable[[EventStore], T]
                   ) -> asyncio.Future[T]:
        """Hold the writer, with ``then`` asked of it right after, ahead of any other
        call; the future of ``then``."""
        def hold(_store: EventStore) -> None:
            self._entered.set()
            self._go.wait(DEADLINE_S)

        self._holding = asyncio.ensure_future(node.astore.write(hold))
        following = asyncio.ensure_future(node.astore.write(then))
        await asyncio.sleep(0)  # both asked: their tasks ran first
        assert await asyncio.to_thread(self._entered.wait, DEADLINE_S)
        return following

    async def release(self) -> None:
        assert self._holding is not None
        self._go.set()
        await self._holding


async def test_another_device_at_a_removed_devices_address_is_pushed_to(
        make_node: NodeFactory, event_body: EventFactory, tmp_path: Path) -> None:
    """A dialed address keeps its machine from link to link. Its link pushed nothing
    after the commit that removed the device there, then ended for another reason (as
    a duplicate) before the node read the removal, so the address stayed; a new device,
    a member, answers there later: the link pushes to it what it lacks."""
    a = await make_node(cluster_secret=SECRET, sync=dataclasses.replace(
        QUIET, backoff_base_s=600.0, backoff_max_s=600.0))  # redialed when told
    port = free_port()
    b1 = await make_node(cluster_secret=SECRET, sync=QUIET, port=port,
                         data_dir=tmp_path / "b1")
    assert a.gossip.membership is not None
    phone, url = b1.gossip.device.device_id, b1.url
    await a.gossip.membership.add(phone, "phone")
    assert await a.gossip.add_peer(url, learned=False)
    await linked(a, url, phone)
    runner = a.gossip.runners[f"url:{url}"]
    other_end = await accepted(b1)
    await all_taken(runner.machine, other_end.machine)  # a quiet link, waiting
    writer = HeldWriter()
    removing = await writer.hold(
        a, lambda store: store.append(membership.removed(phone, "lost")))
    runner.wake.set()
    async with asyncio.timeout(DEADLINE_S):
        while runner.wake.is_set():  # the link asked the writer to push, after it
            await asyncio.sleep(0.01)
    runner.drop = "duplicate link"  # it ends after that call: the sweep passes it by
    await writer.release()
    await removing
    async with asyncio.timeout(DEADLINE_S):
        while runner.state != "backoff":
            await asyncio.sleep(0.01)
    assert not runner.machine.pushing  # the call after the removal pushed nothing
    await b1.stop()
    b2 = await make_node(cluster_secret=SECRET, sync=QUIET, port=port,
                         data_dir=tmp_path / "b2")
    tablet = b2.gossip.device.device_id
    await a.gossip.membership.add(tablet, "tablet")
    assert a.gossip.runners.get(f"url:{url}") is runner
    runner.redial.set()
    await linked(a, url, tablet)
    await post(a, event_body(1))
    own = a.astore.node_id
    try:
        async with asyncio.timeout(DEADLINE_S):
            while own not in await b2.astore.read(lambda s: s.version):
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"a pushed nothing to the new device: pushing="
                             f"{runner.machine.pushing}") from None


async def test_a_push_a_hello_of_the_removed_device_asked_for_sends_nothing_else(
        make_node: NodeFactory, event_body: EventFactory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A hello from the phone (its pull), handled on the writer right after the commit
    that stored its removal and before the node read it, is answered with no push of
    what the phone lacks, neither the events of the same commit nor the record; the
    last push alone carries the record (and the retirement)."""
    # a saves no checkpoint meanwhile: its link's next call on the writer is the hello's
    a = await make_node(cluster_secret=SECRET, sync=dataclasses.replace(
        QUIET, checkpoint_interval_s=600.0))
    b = await make_node(cluster_secret=SECRET, sync=dataclasses.replace(
        FAST, pull_interval_s=0.05))  # it pulls, with a hello, all the time
    third, phone, b_origin = await phone_and_stranger(a, b, make_node, event_body)
    await dial_until_even(a, b, phone, b_origin)
    link = a.gossip.runners[f"url:{b.url}"]
    other_end = await accepted(b)
    items = await own_events(third)
    await woken_no_more(link)  # nor is its next call a push of what a commit stored
    asked = writer_calls(a, monkeypatch)
    # The writer, held, takes in order: the removal with events b lacks, then a message
    # from b (a hello, or an ack: each is answered with a push of what b lacks).
    writer = HeldWriter()

    def removal(store: EventStore) -> None:
        store.ingest(items)
        store.append(membership.removed(phone, "lost"))

    removing = await writer.hold(a, removal)
    del asked[:asked.index(removal.__qualname__) + 1]  # those asked after it are left
    async with asyncio.timeout(DEADLINE_S):
        while "Driver._received.<locals>.call" not in asked:
            await asyncio.sleep(0.01)
    # b quiet again (a hello it sends as its link ends would end the link before the
    # last push is handled there), once the hello it may have on its way is sent: its
    # next pull was due at the old interval, and goes out while a's writer is held.
    other_end.machine.config = dataclasses.replace(other_end.machine.config,
                                                   pull_interval_s=600.0)
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(DEADLINE_S):
        while other_end.machine.wakeup_at < loop.time() + QUIET_AFTER_S:
            await asyncio.sleep(0.01)
    await writer.release()
    await removing
    await told_only_its_removal(a, b, third, link, b_origin)


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
    async with asyncio.timeout(DEADLINE_S):  # each pushed, on a call of the link's
        while (await b.astore.read(lambda s: s.version)).get(own, 0) \
                < (await a.astore.read(lambda s: s.version))[own]:
            await asyncio.sleep(0.01)
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


async def test_a_removed_devices_last_push_goes_up_to_its_removal_record(
        make_node: NodeFactory, event_body: EventFactory) -> None:
    """The link to a device removed ends with a push of the removal record (and what
    its origin holds before it, and the remover's retirement of the device's origin),
    not of whatever else the device lacks. Here it is the only way the device learns
    its removal: it dials no one, and the remover's ordinary push is held back by a
    full window (one batch, whose ack the link holds)."""
    a = await make_node(cluster_secret=SECRET, sync=dataclasses.replace(
        FAST, inflight_batches_max=1, ack_timeout_s=600.0))
    b = await make_node(cluster_secret=SECRET, sync=FAST)
    third, phone, b_origin = await phone_and_stranger(a, b, make_node, event_body)

    async def versions() -> list[dict[str, int]]:
        return [await node.astore.read(lambda s: s.version) for node in (a, b)]

    with LinkProxy(target_port=port_of(b)) as proxy:
        assert await a.gossip.add_peer(f"http://127.0.0.1:{proxy.port}", learned=False)
        async with asyncio.timeout(DEADLINE_S):  # linked, each holding all the other's
            while phone not in a.gossip.linked_devices() \
                    or (held := await versions())[0] != held[1] or b_origin not in held[0]:
                await asyncio.sleep(0.01)
        link = link_to(a, phone)
        proxy.hold_replies()
        await a.gossip.membership.add(new_device_id(), "tablet")  # the one batch the window holds
        async with asyncio.timeout(DEADLINE_S):
            while link.machine.status()["inflight_batches"] != 1:
                await asyncio.sleep(0.01)
        items = await own_events(third)
        await a.astore.write(lambda store: store.ingest(items))  # b lacks it: window full
        stored, _ = await a.gossip.membership.remove(phone, "lost")
        assert stored is not None
        own = a.astore.node_id
        assert link.drop == DEVICE_REMOVED and link.removal_push == {
            own: await a.astore.read(lambda s: s.version[own])}  # the retirement's seq
        assert link.removal_push[own] > stored.seq
        async with asyncio.timeout(DEADLINE_S):
            while b.gossip.own_removal() is None or b.astore.node_id == b_origin:
                await asyncio.sleep(0.01)
    held = await b.astore.read(lambda s: {**s.version, **s.retired})
    assert held[own] == link.removal_push[own]  # through the retirement of its origin
    assert third.astore.node_id not in held  # nothing else it lacked


async def test_a_removed_device_takes_in_the_last_push_though_its_own_send_failed(
        make_node: NodeFactory, event_body: EventFactory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The removed device reads the last push and the close after it ahead of its link's
    loop, and answers the close: its next message fails to go out (a hello, its pull).
    What the peer sent before closing is taken in still: it learns its removal."""
    await removed_while_pulling(make_node, event_body, monkeypatch, QUIET)


async def test_a_removed_device_takes_in_a_last_push_of_batches_whose_close_went_unread(
        make_node: NodeFactory, event_body: EventFactory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The last push comes as batches that fill the removed device's read-ahead: the
    close after them is left unread, the member gives up waiting for its answer and
    drops the connection, and the device's next message fails to go out on a link not
    yet seen closed. What the peer sent is taken in still: it learns its removal."""
    a_sync = dataclasses.replace(QUIET, batch_events_max=1, close_timeout_s=0.05)
    sent = await removed_while_pulling(make_node, event_body, monkeypatch, a_sync)
    assert sent >= AHEAD  # batches enough to fill the read-ahead


async def test_a_removed_device_takes_in_a_last_push_that_came_before_its_hello_went_out(
        make_node: NodeFactory, event_body: EventFactory) -> None:
    """a dials b again while b's writer is held: b's link waits for it to start, and a
    removes b meanwhile, sending its hello, its last push and its close. b's hello, once
    the writer lets go, fails to go out: what a sent is taken in still, b learns its
    removal."""
    a = await make_node(cluster_secret=SECRET, sync=QUIET)
    b = await make_node(cluster_secret=SECRET, sync=QUIET)
    third, phone, b_origin = await phone_and_stranger(a, b, make_node, event_body)
    with LinkProxy(target_port=port_of(b)) as proxy:
        url = f"http://127.0.0.1:{proxy.port}"
        await dial_until_even(a, b, phone, b_origin, url)
        link = a.gossip.runners[f"url:{url}"]
        proxy.cut()
        async with asyncio.timeout(DEADLINE_S):
            while link.state == "up" or any(runner.state == "up"
                                            for runner in b.gossip.runners.values()):
                await asyncio.sleep(0.01)
        writer = HeldWriter()
        await writer.hold(b, lambda _store: None)
        proxy.heal()
        await linked(a, url, phone)  # b's end waits for its writer, its hello not sent
        assert a.gossip.membership is not None
        stored, _ = await a.gossip.membership.remove(phone, "lost")
        assert stored is not None
        async with asyncio.timeout(DEADLINE_S):  # the last push sent, and the close ended
            while link.state != "down":
                await asyncio.sleep(0.01)
        await writer.release()
        await told_only_its_removal(a, b, third, link, b_origin)


async def removed_while_pulling(make_node: NodeFactory, event_body: EventFactory,
                                monkeypatch: pytest.MonkeyPatch, a_sync: SyncConfig
                                ) -> int:
    """a (with ``a_sync``) removes b, which pulls all the time, while b's link waits for
    b's writer with a pull; a's last push and close come meanwhile. The writer let go
    once a's link is down, b learns its removal. Returns the messages a sent b from the
    removal on."""
    a = await make_node(cluster_secret=SECRET, sync=a_sync)
    b = await make_node(cluster_secret=SECRET, sync=dataclasses.replace(
        FAST, pull_interval_s=0.05))  # it pulls, with a hello, all the time
    third, phone, b_origin = await phone_and_stranger(a, b, make_node, event_body)
    await dial_until_even(a, b, phone, b_origin)
    link = a.gossip.runners[f"url:{b.url}"]
    other_end = await accepted(b)
    await woken_no_more(other_end)  # its next call on the writer is a tick: a pull
    asked = writer_calls(b, monkeypatch)
    async with asyncio.timeout(DEADLINE_S):
        while True:  # b's link waits for the writer, with a pull (not a's answer to one)
            asked.clear()
            writer = HeldWriter()
            await writer.hold(b, lambda _store: None)
            while not (calls := [name for name in asked if name.startswith("Driver.")]):
                await asyncio.sleep(0.01)
            if calls[0] == "Driver.on_link.<locals>.call":
                break
            await writer.release()
    sent_before = link.machine.counters.messages_out
    stored, _ = await a.gossip.membership.remove(phone, "lost")
    assert stored is not None
    async with asyncio.timeout(DEADLINE_S):  # the last push sent, and the close ended
        while link.state != "down":
            await asyncio.sleep(0.01)
    sent = link.machine.counters.messages_out - sent_before
    await writer.release()
    await told_only_its_removal(a, b, third, link, b_origin)
    return sent


async def test_a_push_asked_of_the_writer_before_a_removal_was_read_sends_nothing_else(
        make_node: NodeFactory, event_body: EventFactory) -> None:
    """The link's push, asked of the writer thread before the node read the removal,
    runs right after the commit that stored it (ahead of the node's reading it): it
    pushes none of what the removed device lacks, neither the events of the same commit
    nor the record; the last push alone carries the record (and the retirement)."""
    a = await make_node(cluster_secret=SECRET, sync=QUIET)
    b = await make_node(cluster_secret=SECRET, sync=QUIET)
    third, phone, b_origin = await phone_and_stranger(a, b, make_node, event_body)
    await dial_until_even(a, b, phone, b_origin)
    link = link_to(a, phone)
    await all_taken(link.machine, (await accepted(b)).machine)
    items = await own_events(third)
    # The writer, held, takes in order: the removal with events b lacks, then the push.
    writer = HeldWriter()
    removing = await writer.hold(a, lambda store: (
        store.ingest(items), store.append(membership.removed(phone, "lost"))))
    link.wake.set()
    async with asyncio.timeout(DEADLINE_S):
        while link.wake.is_set():  # the link took it, and asked the writer to push
            await asyncio.sleep(0.01)
    await writer.release()
    await removing
    await told_only_its_removal(a, b, third, link, b_origin)
