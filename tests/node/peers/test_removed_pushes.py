"""Removals with real nodes: a link pushes nothing to a removed device from the commit
that stored the removal on (a push or a hello's answer asked of the writer before the
node read it), and pushes to another device at its address again."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from crdt import membership
from crdt.log.store import EventStore
from tests.node.conftest import EventFactory
from tests.node.peers.removing import (
    QUIET,
    QUIET_AFTER_S,
    HeldWriter,
    accepted,
    dial_until_even,
    link_to,
    linked,
    phone_and_stranger,
    post,
    told_only_its_removal,
    woken_no_more,
    writer_calls,
)
from tests.node.peers.support import FAST, SECRET, NodeFactory, all_taken, own_events, until
from tests.support.processes import free_port


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
    await until(lambda: not runner.wake.is_set())  # the link asked the writer to push, after it
    runner.drop = "duplicate link"  # it ends after that call: the sweep passes it by
    await writer.release()
    await removing
    await until(lambda: runner.state == "backoff")
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

    async def pushed() -> bool:
        return own in await b2.astore.read(lambda s: s.version)

    try:
        await until(pushed)
    except AssertionError:
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
    await until(lambda: "Driver._received.<locals>.call" in asked)
    # b quiet again (a hello it sends as its link ends would end the link before the
    # last push is handled there), once the hello it may have on its way is sent: its
    # next pull was due at the old interval, and goes out while a's writer is held.
    other_end.machine.config = dataclasses.replace(other_end.machine.config,
                                                   pull_interval_s=600.0)
    loop = asyncio.get_running_loop()
    await until(lambda: other_end.machine.wakeup_at >= loop.time() + QUIET_AFTER_S)
    await writer.release()
    await removing
    await told_only_its_removal(a, b, third, link, b_origin)


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
    await until(lambda: not link.wake.is_set())  # the link took it, and asked the writer to push
    await writer.release()
    await removing
    await told_only_its_removal(a, b, third, link, b_origin)
