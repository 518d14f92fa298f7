"""A batch's signatures checked before ``PeerSync.receive`` takes it (``prepare``, and
its two steps ``parse`` and ``verify``): the same outcome as its bytes, in any order."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from crdt.log.store import EventStore
from sync.errors import PeerFault
from sync.peer.machine import PeerSync
from sync.peer.messages import Events, Item, encode
from tests.sync.peer.support import SIGNS, Ev, link, message_events


def signed_link(keyed: Callable[[int], EventStore], ev: Ev
                ) -> tuple[EventStore, list[Item], PeerSync]:
    """B, A's first four signed items (seq 1: A's device_key record), and B's machine
    for a link to a signing peer."""
    a, b = keyed(0), keyed(1)
    a.append_batch(message_events(ev, 4))
    items = [Item(a.node_id, s.seq, s.event, s.signature)
             for s in a.origin_after(a.node_id, 0, 10)]
    return b, items, link(b, SIGNS)


def test_a_message_prepared_ahead_is_handled_as_its_bytes_are(
        keyed: Callable[[int], EventStore], ev: Ev) -> None:
    b, items, machine = signed_link(keyed, ev)
    first = machine.prepare(encode(Events(tuple(items[:2]))))
    assert len(first.verified) == 2
    machine.receive(first, 0.0)
    forged = items[3]._replace(signature=items[2].signature)
    second = machine.prepare(encode(Events((items[2], forged))))
    assert len(second.verified) == 2  # a's key, remembered from the store
    machine.receive(second, 0.0)
    assert b.version[items[0].origin] == 3 and machine.counters.events_forged == 1
    refused = machine.prepare(b"\x01")
    with pytest.raises(PeerFault):
        machine.receive(refused, 0.0)
    assert machine.counters.faults == 1 and b.version[items[0].origin] == 3


def test_the_next_batch_prepared_before_the_binding_is_stored_is_checked_ahead(
        keyed: Callable[[int], EventStore], ev: Ev) -> None:
    b, items, machine = signed_link(keyed, ev)
    first = machine.prepare(encode(Events(tuple(items[:2]))))
    forged = items[3]._replace(signature=items[2].signature)
    second = machine.prepare(encode(Events((items[2], forged))))  # a's key: not stored yet
    assert sorted(second.verified.values()) == [False, True]
    machine.receive(first, 0.0)
    machine.receive(second, 0.0)
    assert b.version[items[0].origin] == 3 and machine.counters.events_forged == 1


def test_messages_parsed_in_order_may_be_verified_in_any_order(
        keyed: Callable[[int], EventStore], ev: Ev) -> None:
    """``prepare`` in two steps, as a node's pipeline runs them: the second batch is
    parsed after the first (whose record binds a's key) and verified before it."""
    b, items, machine = signed_link(keyed, ev)
    forged = items[3]._replace(signature=items[2].signature)
    first = machine.parse(encode(Events(tuple(items[:2]))))
    second = machine.parse(encode(Events((items[2], forged))))
    assert second.keys == {items[0].origin: first.keys[items[0].origin]}
    later = machine.verify(second)
    assert sorted(later.verified.values()) == [False, True]
    machine.receive(machine.verify(first), 0.0)
    machine.receive(later, 0.0)
    assert b.version[items[0].origin] == 3 and machine.counters.events_forged == 1
    refused = machine.parse(b"\x01")
    assert refused.message is None and refused.keys == {}
    with pytest.raises(PeerFault):
        machine.receive(machine.verify(refused), 0.0)
    assert machine.counters.faults == 1
