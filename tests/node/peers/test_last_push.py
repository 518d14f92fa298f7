"""Removals with real nodes: the link to a removed device ends with a last push, up to
the record of its removal, which the device takes in though its own sends fail (the
close left unread, the link closed under a pull or under its hello)."""

from __future__ import annotations

import dataclasses

import pytest

from node.cli.linkproxy import LinkProxy
from node.peers.ahead import AHEAD
from node.peers.transport import DEVICE_REMOVED
from sync.peer.config import SyncConfig
from tests.node.conftest import EventFactory
from tests.node.peers.removing import (
    QUIET,
    HeldWriter,
    accepted,
    dial_until_even,
    link_to,
    linked,
    phone_and_stranger,
    told_only_its_removal,
    woken_no_more,
    writer_calls,
)
from tests.node.peers.support import (
    FAST,
    SECRET,
    NodeFactory,
    new_device_id,
    own_events,
    port_of,
    until,
)


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
    with LinkProxy(target_port=port_of(b)) as proxy:
        await dial_until_even(a, b, phone, b_origin, f"http://127.0.0.1:{proxy.port}")
        link = link_to(a, phone)
        proxy.hold_replies()
        await a.gossip.membership.add(new_device_id(), "tablet")  # the one batch the window holds
        await until(lambda: link.machine.status()["inflight_batches"] == 1)
        items = await own_events(third)
        await a.astore.write(lambda store: store.ingest(items))  # b lacks it: window full
        stored, _ = await a.gossip.membership.remove(phone, "lost")
        assert stored is not None
        own = a.astore.node_id
        assert link.drop == DEVICE_REMOVED and link.removal_push == {
            own: await a.astore.read(lambda s: s.version[own])}  # the retirement's seq
        assert link.removal_push[own] > stored.seq
        await told_only_its_removal(a, b, third, link, b_origin)


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
        await until(lambda: link.state != "up" and not any(
            runner.state == "up" for runner in b.gossip.runners.values()))
        writer = HeldWriter()
        await writer.hold(b, lambda _store: None)
        proxy.heal()
        await linked(a, url, phone)  # b's end waits for its writer, its hello not sent
        assert a.gossip.membership is not None
        stored, _ = await a.gossip.membership.remove(phone, "lost")
        assert stored is not None
        await until(lambda: link.state == "down")  # the last push sent, and the close ended
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

    async def held_with_a_pull_waiting() -> HeldWriter | None:
        """Each look holds b's writer anew, and lets it go if the call that came first was
        not b's link waiting for it with a pull (but with a's answer to one)."""
        asked.clear()
        writer = HeldWriter()
        await writer.hold(b, lambda _store: None)
        calls = await until(lambda: [name for name in asked if name.startswith("Driver.")])
        if calls[0] == "Driver.on_link.<locals>.call":
            return writer
        await writer.release()
        return None

    writer = await until(held_with_a_pull_waiting)
    sent_before = link.machine.counters.messages_out
    stored, _ = await a.gossip.membership.remove(phone, "lost")
    assert stored is not None
    await until(lambda: link.state == "down")  # the last push sent, and the close ended
    sent = link.machine.counters.messages_out - sent_before
    await writer.release()
    await told_only_its_removal(a, b, third, link, b_origin)
    return sent
