"""Signed events between peers (``sync.peer.signatures``, ``PeerSync``): keyed nodes sign
what they originate and every signature travels and is checked; an event of a bound
origin with a missing or wrong signature is refused as the sender's fault; unsigned
events of unbound origins (written before events were signed) are taken as before."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from crdt import device, signing
from crdt.log import bound
from crdt.log.store import EventStore
from crdt.signing import Signer
from sync.errors import PeerFault
from sync.peer.config import SyncConfig
from sync.peer.limits import BATCH_EVENTS_MAX, ORIGINS_MAX, ORIGINS_RESERVED
from sync.peer.machine import PeerSync
from sync.peer.messages import Events, Hello, Item, encode, parse
from tests.support.mesh import Mesh, all_ids
from tests.sync.peer.support import KEYS, OLD, SIGNS, Ev, link, message_events


def test_keyed_nodes_converge_and_every_event_keeps_a_valid_signature(
        keyed: Callable[[int], EventStore], ev: Ev) -> None:
    a, b, c = keyed(0), keyed(1), keyed(2)
    net = Mesh([a, b, c], about=SIGNS)
    net.start()
    net.append(0, *message_events(ev, 5, "a"))
    net.append(1, *message_events(ev, 3, "b"))
    net.converge()
    net.assert_converged()
    for store in (a, b, c):
        for origin in (a.node_id, b.node_id):
            key = store.origin_key(origin)
            held = store.origin_after(origin, 0, 100)
            assert key is not None and held[0].event.kind == bound.KIND
            assert all(signing.verify(key, s.signature or b"", s.event.id, origin, s.seq)
                       for s in held)
        assert store.origin_device(a.node_id) == device.device_id(device.public_bytes(KEYS[0]))
        assert store.device_origins(store.origin_device(b.node_id) or "") == {b.node_id: 4}
    assert all(m.counters.events_forged == m.counters.faults == 0
               for m in net.machines.values())


@pytest.mark.parametrize("signature", [None, bytes(64), "another key's", "another slot's"])
def test_an_event_of_a_bound_origin_without_its_signature_is_refused(
        keyed: Callable[[int], EventStore], ev: Ev, signature: object) -> None:
    a, b = keyed(0), keyed(1)
    net = Mesh([a, b], about=SIGNS)
    net.start()
    net.append(0, *message_events(ev, 2))
    net.converge()
    forged = ev(ms=5_000, content="written as a, by someone else")
    seq = a.version[a.node_id] + 1
    if signature == "another key's":
        signature = Signer(KEYS[3], "x").sign(forged.id, a.node_id, seq)
    elif signature == "another slot's":
        signature = Signer(KEYS[0], "a").sign(forged.id, a.node_id, seq + 1)
    assert signature is None or isinstance(signature, bytes)
    machine = link(b, SIGNS)
    before = b.head
    [reply] = machine.receive(encode(Events((Item(a.node_id, seq, forged, signature),))), 0.0)
    assert not b.holds(forged.id) and b.head == before
    # No signature is no proof against the sender (it may hold a copy stored unsigned):
    # not taken all the same.
    counted = "events_unsigned" if signature is None else "events_forged"
    assert getattr(machine.counters, counted) == 1
    assert machine.counters.events_forged + machine.counters.events_unsigned == 1
    ack = parse(reply)
    assert ack.version[a.node_id] == seq - 1  # not acknowledged


def test_a_relay_that_does_not_sign_is_not_at_fault_and_its_copy_is_not_taken(
        keyed: Callable[[int], EventStore], ev: Ev) -> None:
    a, b = keyed(0), keyed(1)
    a.append_batch(message_events(ev, 3))
    held = a.origin_after(a.node_id, 0, 10)
    machine = link(b, OLD)
    machine.receive(encode(Events(tuple(Item(a.node_id, s.seq, s.event) for s in held))), 0.0)
    assert b.head == 0 and machine.counters.events_unsigned == 4
    assert machine.counters.events_forged == machine.counters.faults == 0
    signed = link(b, SIGNS)
    signed.receive(encode(Events(tuple(Item(a.node_id, s.seq, s.event, s.signature)
                                       for s in held))), 0.0)
    assert b.version[a.node_id] == 4


def test_unsigned_copies_of_an_origin_bound_after_they_were_stored_are_not_forged(
        keyed: Callable[[int], EventStore], ev: Ev) -> None:
    """A folder that got a device's events through a node of an earlier version holds
    them unsigned, and learns the binding later (when it is upgraded): it relays them
    in good faith. A peer takes none of them, counts none as forged, whether it holds
    them already or not, and still gets them all, signed, from the device."""
    writer, held_already, lacking = keyed(0), keyed(1), keyed(2)
    writer.append_batch(message_events(ev, 3))
    relay = EventStore.open("memory:")  # its key does not matter: it relays only
    try:
        relay.ingest([(s.event, writer.node_id, s.seq)
                      for s in writer.origin_after(writer.node_id, 0, 10)])
        assert relay.origin_key(writer.node_id) is not None
        net = Mesh([writer, held_already], about=SIGNS)
        net.start()
        net.converge()
        unsigned = tuple(Item(writer.node_id, s.seq, s.event)
                         for s in relay.origin_after(writer.node_id, 0, 10))
        for store in (held_already, lacking):
            machine = link(store, SIGNS)
            head = store.head
            machine.receive(encode(Events(unsigned)), 0.0)
            assert store.head == head  # nothing taken
            assert machine.counters.events_forged == machine.counters.faults == 0
            assert machine.counters.events_unsigned == 4
        net = Mesh([relay, lacking, writer], about=SIGNS)
        net.start()
        net.converge()
        net.assert_converged()
        assert all(m.counters.events_forged == 0 for m in net.machines.values())
        assert [s.signature is not None
                for s in lacking.origin_after(writer.node_id, 0, 10)] == [True] * 4
    finally:
        relay.close()


def test_a_node_holding_a_bound_origin_unsigned_does_not_offer_it_to_a_signing_peer(
        keyed: Callable[[int], EventStore], ev: Ev) -> None:
    """What it holds of the origin unsigned would not be taken: sending it only made
    batches that were never acknowledged, sent again at every ack timeout. A peer that
    does not sign still gets it (it takes unsigned events)."""
    writer, signing = keyed(0), keyed(1)
    writer.append_batch(message_events(ev, 3))
    relay = EventStore.open("memory:")
    try:
        relay.ingest([(s.event, writer.node_id, s.seq)
                      for s in writer.origin_after(writer.node_id, 0, 10)])
        relay.append_batch(message_events(ev, 2, "relay"))
        net = Mesh([relay, signing], about=SIGNS)
        net.start()
        net.converge()
        to_signing = net.machines[0, 1].counters
        assert to_signing.events_sent == 2 and to_signing.resends == 0
        assert writer.node_id not in signing.version
        assert net.machines[1, 0].counters.events_unsigned == 0
        to_older = PeerSync(relay, "older", now=0.0, rng=random.Random(0), about=SIGNS)
        to_older.start(0.0, peer_reads_about=True)
        out = to_older.receive(encode(Hello("ffffffffffffffff", {}, about=OLD)), 0.0)
        sent = [(i.origin, i.seq) for m in map(parse, out) if isinstance(m, Events)
                for i in m.items]
        assert [(writer.node_id, seq) for seq in range(1, 5)] == \
            [item for item in sent if item[0] == writer.node_id]
    finally:
        relay.close()


def test_unsigned_origins_are_taken_as_before_and_require_refuses_only_new_ones(
        open_store: Callable[[str], EventStore], keyed: Callable[[int], EventStore],
        ev: Ev) -> None:
    legacy, newer = open_store("legacy"), open_store("newer")
    legacy.append_batch(message_events(ev, 2, "legacy"))
    newer.append_batch(message_events(ev, 2, "newer"))
    receiver = keyed(1)
    taken = link(receiver, OLD)
    held = legacy.origin_after(legacy.node_id, 0, 10)
    taken.receive(encode(Events(tuple(Item(legacy.node_id, s.seq, s.event)
                                      for s in held[:1]))), 0.0)
    assert receiver.version[legacy.node_id] == 1
    strict = link(receiver, SIGNS, require=True)
    both = [*(Item(legacy.node_id, s.seq, s.event) for s in held[1:]),
            *(Item(newer.node_id, s.seq, s.event)
              for s in newer.origin_after(newer.node_id, 0, 10))]
    strict.receive(encode(Events(tuple(both))), 0.0)
    assert receiver.version[legacy.node_id] == 2  # held already: taken
    assert newer.node_id not in receiver.version and strict.counters.events_unsigned == 2


def test_a_folder_written_before_signing_retires_its_origin_and_its_events_stay_valid(
        tmp_path: object, keyed: Callable[[int], EventStore], ev: Ev) -> None:
    folder = f"{tmp_path}/old"
    with EventStore.open(folder) as old:
        old.append_batch(message_events(ev, 3, "before"))
        random_origin = old.node_id
    upgraded = EventStore.open(folder, signer=Signer(KEYS[0], "laptop"))
    try:
        assert upgraded.node_id == Signer(KEYS[0], "x").origin(0)
        assert upgraded.retired == {random_origin: 3}
        upgraded.append_batch(message_events(ev, 2, "after"))
        fresh = keyed(1)
        net = Mesh([upgraded, fresh], about=SIGNS)
        net.start()
        net.converge()
        net.assert_converged()
        assert set(all_ids(fresh)) == set(all_ids(upgraded))
        assert fresh.retired == {random_origin: 3}
        # seq 1 the key, 2 the retirement of the random origin, then what it wrote.
        kinds = [s.event.kind for s in fresh.origin_after(upgraded.node_id, 0, 10)]
        assert kinds == ["device_key", "origin_retired", "message_received",
                         "message_received"]
        assert all(m.counters.events_forged == 0 for m in net.machines.values())
    finally:
        upgraded.close()


def test_a_store_without_its_key_refuses_to_write_under_a_bound_origin(
        tmp_path: object, ev: Ev) -> None:
    folder = f"{tmp_path}/bound"
    with EventStore.open(folder, signer=Signer(KEYS[0], "laptop")) as store:
        store.append_batch(message_events(ev, 1))
    with EventStore.open(folder) as store, pytest.raises(Exception, match="bound"):
        store.append_batch(message_events(ev, 1, "unsigned"))


def test_batches_sent_before_the_peer_said_it_signs_go_again_signed(
        keyed: Callable[[int], EventStore], ev: Ev) -> None:
    a, b = keyed(0), keyed(1)
    a.append_batch(message_events(ev, 3))
    to_b = PeerSync(a, "b", now=0.0, rng=random.Random(0), about=SIGNS,
                    checkpoint={})  # a checkpoint: a sends at once, before any hello
    to_a = PeerSync(b, "a", now=0.0, rng=random.Random(1), about=SIGNS)
    queue = [(to_a, data) for data in to_b.start(0.0)]
    queue += [(to_b, data) for data in to_a.start(0.0, peer_reads_about=True)]
    while queue:
        machine, data = queue.pop(0)
        other = to_a if machine is to_b else to_b
        queue += [(other, reply) for reply in machine.receive(data, 0.0)]
    assert b.version[a.node_id] == 4  # with no ack timeout passed


@pytest.mark.parametrize(("proved", "refusal"), [
    (1, "another device's origin"), (None, "device key this link did not prove")])
def test_a_hello_naming_another_devices_origin_is_refused(
        keyed: Callable[[int], EventStore], ev: Ev, proved: int | None,
        refusal: str) -> None:
    """Links, checkpoints and the origins table's reserved part go by the node a hello
    names: a peer proven as device 1 may not pass itself off as device 0's origin, nor
    may a peer that proved no key (the cluster secret, a certificate: every node that
    signs proves its key when it links)."""
    a, b, c = keyed(0), keyed(1), keyed(2)
    net = Mesh([a, c], about=SIGNS)
    net.start()
    net.append(0, *message_events(ev, 2))
    net.converge()
    assert c.origin_key(a.node_id) == device.public_bytes(KEYS[0])
    machine = PeerSync(c, "peer", now=0.0, rng=random.Random(0), about=SIGNS)
    machine.peer_key = None if proved is None else device.public_bytes(KEYS[proved])
    machine.start(0.0, peer_reads_about=True)
    with pytest.raises(PeerFault, match=refusal):
        machine.receive(encode(Hello(a.node_id, {}, about=SIGNS)), 0.0)
    assert machine.peer_node is None and machine.counters.faults == 1
    # An origin no device is bound to yet (a new device's first hello, a node of 0.2
    # and earlier, which has no key) is taken.
    machine.receive(encode(Hello(b.node_id, {}, about=SIGNS)), 0.0)
    assert machine.peer_node == b.node_id


def test_past_the_free_part_a_device_brings_only_origins_of_its_own_key(
        keyed: Callable[[int], EventStore], ev: Ev) -> None:
    """The origins table's reserved part takes a new origin only from its own node. On
    a link proven by a device key that is an origin bound to that key, whatever node
    the hello names: a member cannot fill the reserved part with origins of fresh keys
    by naming each in turn."""
    v, own, fresh = keyed(2), keyed(1), keyed(3)
    filler = PeerSync(v, "filler", now=0.0, rng=random.Random(0),
                      config=SyncConfig(origins_new_max=ORIGINS_MAX))
    items = [Item(f"made-up-{n}", 1, ev(ms=1 + n, content=f"junk {n}"))
             for n in range(ORIGINS_MAX - ORIGINS_RESERVED)]
    for start in range(0, len(items), BATCH_EVENTS_MAX):
        filler.receive(encode(Events(tuple(items[start:start + BATCH_EVENTS_MAX]))), 0.0)
    assert len(v.version) == ORIGINS_MAX - ORIGINS_RESERVED
    for store in (own, fresh):
        store.append(ev(ms=5_000, content="first"))

    def batch(store: EventStore) -> bytes:
        held = store.origin_after(store.node_id, 0, 10)
        return encode(Events(tuple(Item(store.node_id, s.seq, s.event, s.signature)
                                   for s in held)))

    machine = PeerSync(v, "peer", now=0.0, rng=random.Random(0), about=SIGNS)
    machine.peer_key = device.public_bytes(KEYS[1])
    machine.start(0.0, peer_reads_about=True)
    machine.receive(encode(Hello(fresh.node_id, {}, about=SIGNS)), 0.0)
    machine.receive(batch(fresh), 0.0)
    assert fresh.node_id not in v.version and machine.counters.origins_refused == 1
    machine.receive(encode(Hello(own.node_id, {}, about=SIGNS)), 0.0)
    machine.receive(batch(own), 0.0)
    assert v.version[own.node_id] == 2
