"""Signed events between peers (``sync.peer.signatures``, ``PeerSync``): keyed nodes sign
what they originate and every signature travels and is checked; an event of a bound
origin with a missing or wrong signature is refused as the sender's fault; unsigned
events of unbound origins (written before events were signed) are taken as before."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crdt import device, signing
from crdt.events import Draft, Event
from crdt.linkproof import b64
from crdt.log import bound
from crdt.log.store import EventStore
from crdt.membership import AGENT_ID, DEVICES_SESSION
from crdt.signing import Signer
from sync.errors import PeerFault
from sync.peer.config import SyncConfig
from sync.peer.machine import PeerSync
from sync.peer.messages import (
    BATCH_EVENTS_MAX,
    ORIGINS_MAX,
    ORIGINS_RESERVED,
    About,
    Events,
    Hello,
    Item,
    encode,
    parse,
)
from sync.peer.signatures import judge, raw_keys, verify_ahead
from tests.support.ed25519 import IDENTITY, crafted_by_holder
from tests.support.mesh import Mesh, all_ids

Ev = Callable[..., Event]
SIGNS = About("0.3.0", 1, retires=True, forgets=True, signs=True)
OLD = About("0.2.0", 1, retires=True, forgets=True)
KEYS = [device.private_key_from_seed(bytes([n]) * 32) for n in range(4)]


@pytest.fixture
def keyed() -> Iterator[Callable[[int], EventStore]]:
    """``keyed(n)``: an in-memory store that signs with key n."""
    opened: list[EventStore] = []

    def open_one(n: int) -> EventStore:
        store = EventStore.open("memory:", signer=Signer(KEYS[n], f"device {n}"))
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


def messages(ev: Ev, count: int, tag: str = "m") -> list[Event]:
    return [ev(ms=1_000 + n, content=f"{tag} {n}") for n in range(count)]


def link(store: EventStore, peer_about: About | None, *,
         require: bool = False) -> PeerSync:
    """A machine of ``store`` that has heard the hello of a peer saying ``peer_about``."""
    machine = PeerSync(store, "peer", now=0.0, rng=random.Random(0), about=SIGNS,
                       require_signatures=require)
    machine.start(0.0, peer_reads_about=True)
    machine.receive(encode(Hello("ffffffffffffffff", {}, about=peer_about)), 0.0)
    return machine


def test_keyed_nodes_converge_and_every_event_keeps_a_valid_signature(
        keyed: Callable[[int], EventStore], ev: Ev) -> None:
    a, b, c = keyed(0), keyed(1), keyed(2)
    net = Mesh([a, b, c], about=SIGNS)
    net.start()
    net.append(0, *messages(ev, 5, "a"))
    net.append(1, *messages(ev, 3, "b"))
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
    net.append(0, *messages(ev, 2))
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
    a.append_batch(messages(ev, 3))
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
    writer.append_batch(messages(ev, 3))
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
    writer.append_batch(messages(ev, 3))
    relay = EventStore.open("memory:")
    try:
        relay.ingest([(s.event, writer.node_id, s.seq)
                      for s in writer.origin_after(writer.node_id, 0, 10)])
        relay.append_batch(messages(ev, 2, "relay"))
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
    legacy.append_batch(messages(ev, 2, "legacy"))
    newer.append_batch(messages(ev, 2, "newer"))
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
        old.append_batch(messages(ev, 3, "before"))
        random_origin = old.node_id
    upgraded = EventStore.open(folder, signer=Signer(KEYS[0], "laptop"))
    try:
        assert upgraded.node_id == Signer(KEYS[0], "x").origin(0)
        assert upgraded.retired == {random_origin: 3}
        upgraded.append_batch(messages(ev, 2, "after"))
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
        store.append_batch(messages(ev, 1))
    with EventStore.open(folder) as store, pytest.raises(Exception, match="bound"):
        store.append_batch(messages(ev, 1, "unsigned"))


@settings(max_examples=40)
@given(byte=st.integers(0, 63), bit=st.integers(0, 7), seq=st.integers(1, 5))
def test_any_flipped_bit_of_a_signature_is_forged(byte: int, bit: int, seq: int) -> None:
    from tests.support.events import event

    signer = Signer(KEYS[2], "phone")
    origin = signer.origin(0)
    record = bound.device_key(signer, 0).seal(event().timestamp)
    chain = [Item(origin, 1, record, signer.sign(record.id, origin, 1))]
    for n in range(2, 6):
        body = event(ms=n, content=str(n))
        chain.append(Item(origin, n, body, signer.sign(body.id, origin, n)))
    tampered = bytearray(chain[seq - 1].signature or b"")
    tampered[byte] ^= 1 << bit
    chain[seq - 1] = chain[seq - 1]._replace(signature=bytes(tampered))
    verdicts = judge(chain, keys=raw_keys(chain, lambda _o: None), held=set(),
                     require=True)
    assert verdicts == ["forged" if n == seq else "take" for n in range(1, 6)]


def test_signatures_verified_ahead_decide_only_for_the_key_they_were_checked_with() -> None:
    from tests.support.events import event

    signer = Signer(KEYS[2], "phone")
    origin = signer.origin(0)
    record = bound.device_key(signer, 0).seal(event().timestamp)
    chain = [Item(origin, 1, record, signer.sign(record.id, origin, 1)),
             Item(origin, 2, event(ms=2), bytes(64))]  # the second forged
    ahead = verify_ahead(chain, raw_keys(chain, lambda _o: None))  # the key comes with seq 1
    assert sorted(ahead.values()) == [False, True]
    verdicts = judge(chain, keys=raw_keys(chain, lambda _o: None), held=set(),
                     require=True, verified=ahead)
    assert verdicts == ["take", "forged"]
    other = device.public_bytes(KEYS[3])  # results for another key are not used
    lies = {(other, item.signature or b"", item.event.id, origin, item.seq): True
            for item in chain}
    assert judge(chain, keys=raw_keys(chain, lambda _o: None), held=set(),
                 require=True, verified=lies) == ["take", "forged"]


def signed_chain(n: int, count: int) -> list[Item]:
    """Key n's first origin: its device_key record, then ``count`` events, all signed."""
    from tests.support.events import event

    signer = Signer(KEYS[n], f"device {n}")
    origin = signer.origin(0)
    record = bound.device_key(signer, 0).seal(event().timestamp)
    chain = [Item(origin, 1, record, signer.sign(record.id, origin, 1))]
    for seq in range(2, count + 2):
        body = event(ms=seq, content=f"{n} {seq}")
        chain.append(Item(origin, seq, body, signer.sign(body.id, origin, seq)))
    return chain


def test_keys_are_asked_once_per_origin_and_may_be_passed_resolved() -> None:
    chains = [signed_chain(2, 3), signed_chain(3, 3)]
    items = [item for pair in zip(*chains, strict=True) for item in pair]  # interleaved
    items += [Item("0123456789abcdef", seq, chains[0][seq].event, None)  # unbound
              for seq in (1, 2)]
    asked: list[str] = []

    def key_of(origin: str) -> bytes | None:
        asked.append(origin)
        return None

    keys = raw_keys(items, key_of)
    assert sorted(asked) == sorted({item.origin for item in items})  # each once
    assert keys == {chains[0][0].origin: device.public_bytes(KEYS[2]),
                    chains[1][0].origin: device.public_bytes(KEYS[3]),
                    "0123456789abcdef": None}
    expected = ["take"] * 8 + ["unsigned"] * 2
    assert judge(items, keys=raw_keys(items, key_of), held=set(),
                 require=True) == expected
    asked.clear()
    assert judge(items, keys=keys, held=set(), require=True) == expected
    assert asked == []


def test_crafted_signatures_are_forged_never_an_error() -> None:
    # Signatures that OpenSSL takes and libsodium refuses (crdt.device's docstring): a
    # node of an earlier version takes these events, this one refuses them.
    chain = signed_chain(2, 2)
    origin = chain[0].origin
    crafted = crafted_by_holder(bytes([2]) * 32,
                                signing.signed_bytes(chain[2].event.id, origin, 3))
    chain[2] = chain[2]._replace(signature=crafted)
    assert judge(chain, keys=raw_keys(chain, lambda _o: None), held=set(),
                 require=True) == ["take", "take", "forged"]
    ahead = verify_ahead(chain, raw_keys(chain, lambda _o: None))
    assert sorted(ahead.values()) == [False, True, True]
    # An origin bound to a small-order key, with a signature that fits any message.
    origin = signing.bound_origin(IDENTITY, 0)
    record = Draft(DEVICES_SESSION, AGENT_ID, bound.KIND, {
        "device_id": device.device_id(IDENTITY), "public_key": b64(IDENTITY),
        "name": "nobody", "origin": origin, "n": 0}).seal(chain[0].event.timestamp)
    assert bound.read(record) is not None  # it binds: its events must be signed
    anything = IDENTITY + bytes(32)
    rogue = [Item(origin, 1, record, anything), Item(origin, 2, chain[1].event, anything)]
    assert judge(rogue, keys=raw_keys(rogue, lambda _o: None), held=set(),
                 require=False) == ["forged", "forged"]


def test_a_batch_is_verified_in_one_call_with_the_results_of_each_check() -> None:
    chain = signed_chain(2, 4)
    chain[3] = chain[3]._replace(signature=bytes(64))  # forged
    chain.append(Item("0123456789abcdef", 1, chain[1].event, None))  # unbound: not checked
    calls: list[int] = []

    def counted(keys: Sequence[bytes], sigs: Sequence[bytes], signed: Sequence[bytes]
                ) -> list[bool]:
        calls.append(len(keys))
        return device.verifies_many(keys, sigs, signed)

    keys = raw_keys(chain, lambda _o: None)
    ahead = verify_ahead(chain, keys, counted)
    assert calls == [5]
    assert ahead == verify_ahead(chain, keys) == {
        (keys[item.origin], item.signature, item.event.id, item.origin, item.seq):
            signing.verify(keys[item.origin] or b"", item.signature or b"", item.event.id,
                           item.origin, item.seq) for item in chain[:5]}
    assert sorted(ahead.values()) == [False, True, True, True, True]
    assert verify_ahead(chain[5:], keys, counted) == {} and calls == [5]  # nothing to check
    with pytest.raises(ValueError, match="4 answers for 5 signatures"):
        verify_ahead(chain, keys, lambda k, s, m: device.verifies_many(k, s, m)[1:])


def signed_link(keyed: Callable[[int], EventStore], ev: Ev
                ) -> tuple[EventStore, list[Item], PeerSync]:
    """B, A's first four signed items (seq 1: A's device_key record), and B's machine
    for a link to a signing peer."""
    a, b = keyed(0), keyed(1)
    a.append_batch(messages(ev, 4))
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


def test_batches_sent_before_the_peer_said_it_signs_go_again_signed(
        keyed: Callable[[int], EventStore], ev: Ev) -> None:
    a, b = keyed(0), keyed(1)
    a.append_batch(messages(ev, 3))
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
    net.append(0, *messages(ev, 2))
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
