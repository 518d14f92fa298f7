"""``PeerSync`` between real stores: convergence, push, windows, limits, repair, back-off,
checkpoints, refusals and counters. Messages move only when a test delivers them."""

from __future__ import annotations

import doctest
import random
from collections.abc import Callable

import pytest

import crdt.clock
import sync
from crdt import codec
from crdt.clock import Hlc
from crdt.events import Draft, Event
from crdt.log.store import EventStore
from sync.errors import PeerFault, ProtocolMisuse
from sync.peer import config as sync_config
from sync.peer import machine as sync_peer
from sync.peer import messages
from sync.peer.config import SyncConfig
from sync.peer.machine import PeerSync
from sync.peer.messages import (
    BATCH_BYTES_MAX,
    BATCH_EVENTS_MAX,
    ORIGINS_MAX,
    ORIGINS_RESERVED,
    About,
    Ack,
    Events,
    Hello,
    Item,
    encode,
    parse,
)

OpenStore = Callable[[str], EventStore]
Ev = Callable[..., Event]


def kinds(out: list[bytes]) -> list[str]:
    return [codec.decode(data)["type"] for data in out]


def filled(store: EventStore, ev: Ev, count: int, *, sessions: int = 3, tag: str = "",
           size: int = 0) -> EventStore:
    store.append_batch([ev(ms=1_000 + n, session=f"s{n % sessions}",
                           content=f"{tag}{n}" + "x" * size) for n in range(count)])
    return store


def test_two_stores_converge_after_concurrent_appends(open_store: OpenStore, ev: Ev,
                                                      mesh: type) -> None:
    a, b = open_store("a"), open_store("b")
    filled(a, ev, 30, tag="a")
    filled(b, ev, 20, tag="b")
    shared = ev(ms=1_005, content="sent to both nodes by a retrying client")
    a.append(shared)
    b.append(shared)
    net = mesh([a, b])
    net.start()
    net.deliver(0)
    net.deliver(0)  # both hellos arrive; the first batches are on their way
    # Both nodes keep writing to the same sessions while batches are in flight.
    net.append(0, ev(ms=900, content="late on a"),
               ev(kind="message_sent", ms=5_000, session="s2", content="a again"))
    net.append(1, ev(ms=901, content="late on b"), ev(ms=4_000, session="s9", content="new on b"))
    net.settle()
    net.assert_converged()
    assert a.head == b.head == 30 + 20 + 1 + 4
    net.converge()  # ticks move nothing more
    net.assert_converged()
    assert a.get_projection("s1").to_json()["messages"][0]["content"] == "late on a"


def test_nothing_is_pushed_before_the_peer_is_known(open_store: OpenStore, ev: Ev) -> None:
    a = filled(open_store("a"), ev, 5)
    machine = PeerSync(a, "b", now=0.0, rng=random.Random(0))
    assert kinds(machine.start(0.0)) == ["hello"]
    a.append(ev(ms=9_000, content="more"))
    assert machine.local_appended(0.0) == []
    assert machine.checkpoint is None


def test_new_events_are_pushed_at_once(open_store: OpenStore, ev: Ev, mesh: type) -> None:
    a, b = filled(open_store("a"), ev, 10), open_store("b")
    net = mesh([a, b])
    net.start()
    net.settle()
    a.append(ev(ms=50_000, content="news"))
    out = net.machines[0, 1].local_appended(net.now)
    assert kinds(out) == ["events"]
    batch = parse(out[0])
    assert isinstance(batch, Events) and len(batch.items) == 1
    ack = net.machines[1, 0].receive(out[0], net.now)
    assert kinds(ack) == ["ack"] and b.head == 11
    assert net.machines[0, 1].receive(ack[0], net.now) == []
    assert net.machines[0, 1].checkpoint == b.version


def test_a_push_through_some_seqs_sends_only_those_and_what_comes_before(
        open_store: OpenStore, ev: Ev, mesh: type) -> None:
    """A removed device's last push: its removal record and what its origin holds
    before it, which the peer needs to store it; not another origin the peer lacks,
    nor what came after the record. Plain batches, stored as any."""
    a, b = filled(open_store("a"), ev, 5), open_store("b")
    net = mesh([a, b])
    net.start()
    net.settle()  # b holds a's 5 events
    relay = mesh([filled(open_store("c"), ev, 4, tag="c"), a])
    relay.start()
    relay.settle()  # a holds c's 4 events, which b lacks
    a.append_batch([ev(ms=60_000, content="before"), ev(ms=60_001, content="the record")])
    a.append(ev(ms=60_002, content="after"))
    own = a.node_id
    assert a.version[own] == 8 and len(a.version) == 2
    out = net.machines[0, 1].push_through({own: 7}, net.now)
    assert kinds(out) == ["events"]
    batch = parse(out[0])
    assert isinstance(batch, Events)
    assert [(item.origin, item.seq) for item in batch.items] == [(own, 6), (own, 7)]
    assert kinds(net.machines[1, 0].receive(out[0], net.now)) == ["ack"]
    assert b.version == {own: 7}
    assert net.machines[0, 1].push_through({own: 7}, net.now) == []  # on its way already


def test_a_push_through_goes_out_when_the_window_is_full(
        open_store: OpenStore, ev: Ev, mesh: type) -> None:
    """The last push before a link ends is not held back by batches not acknowledged
    yet: up to a window of batches past them, of what it may carry only."""
    a, b = filled(open_store("a"), ev, 2_000), open_store("b")
    net = mesh([a, b])
    net.start()
    net.deliver(1)  # b's hello reaches a: three batches go out, the window is full
    machine = net.machines[0, 1]
    assert machine.status()["inflight_batches"] == 3
    assert machine.local_appended(net.now) == []
    own = a.node_id
    out = machine.push_through({own: 1_600}, net.now)
    assert kinds(out) == ["events"]
    batch = parse(out[0])
    assert isinstance(batch, Events)
    assert [(item.origin, item.seq) for item in batch.items] \
        == [(own, seq) for seq in range(3 * BATCH_EVENTS_MAX + 1, 1_601)]


def test_a_machine_told_to_stop_pushing_sends_no_events_but_its_last_push(
        open_store: OpenStore, ev: Ev, mesh: type) -> None:
    """Its peer's device was removed: neither a push, an answer to a hello or an ack,
    nor a resend carries events; hellos and acks still go, and the last push too."""
    a, b = filled(open_store("a"), ev, 5), open_store("b")
    net = mesh([a, b])
    net.start()
    net.settle()
    machine = net.machines[0, 1]
    machine.pushing = False
    a.append_batch([ev(ms=60_000, content="lacked"), ev(ms=60_001, content="the record")])
    assert machine.local_appended(net.now) == []
    assert machine.receive(encode(Hello(b.node_id, b.version)), net.now) == []
    assert kinds(machine.tick(net.now + machine.config.pull_interval_s)) == ["hello"]
    own = a.node_id
    out = machine.push_through({own: 7}, net.now)
    assert kinds(out) == ["events"]
    batch = parse(out[0])
    assert isinstance(batch, Events)
    assert [(item.origin, item.seq) for item in batch.items] == [(own, 6), (own, 7)]


def test_a_backlog_streams_in_full_batches_three_at_a_time(
        open_store: OpenStore, ev: Ev, mesh: type) -> None:
    a, b = filled(open_store("a"), ev, 2_000), open_store("b")
    net = mesh([a, b])
    net.start()
    net.deliver(1)  # b's hello reaches a
    outgoing = [codec.decode(data) for to, _, data in net.queue if to == 1]
    assert [m["type"] for m in outgoing] == ["hello", "events", "events", "events"]
    assert [len(m["items"]) for m in outgoing[1:]] == [BATCH_EVENTS_MAX] * 3
    assert net.machines[0, 1].status()["inflight_batches"] == 3
    net.settle()
    net.assert_converged()
    sizes = [len(codec.decode(d)["items"]) for to, _, d in net.delivered
             if to == 1 and codec.decode(d)["type"] == "events"]
    assert sizes == [512, 512, 512, 464]
    assert net.machines[0, 1].counters.events_sent == 2_000  # nothing sent twice


def test_batches_stay_under_the_byte_limit(open_store: OpenStore, ev: Ev,
                                          mesh: type) -> None:
    a, b = filled(open_store("a"), ev, 20, size=120_000), open_store("b")
    net = mesh([a, b])
    net.start()
    net.settle()
    net.assert_converged()
    batches = [parse(d) for to, _, d in net.delivered if to == 1]
    sizes = [sum(len(i.event.canonical) for i in m.items)
             for m in batches if isinstance(m, Events)]
    assert len(sizes) == 3 and max(sizes) <= BATCH_BYTES_MAX
    assert sum(len(m.items) for m in batches if isinstance(m, Events)) == 20


@pytest.mark.parametrize("sessions", [10, 200])
def test_an_idle_round_costs_one_hello_each_way(open_store: OpenStore, ev: Ev, mesh: type,
                                               sessions: int) -> None:
    a, b = filled(open_store("a"), ev, 400, sessions=sessions), open_store("b")
    filled(b, ev, 10, tag="b")
    net = mesh([a, b])
    net.start()
    net.converge()
    net.delivered.clear()
    net.tick(net.config.pull_interval_s)
    net.settle()
    assert [codec.decode(d)["type"] for _, _, d in net.delivered] == ["hello", "hello"]
    size = sum(len(d) for _, _, d in net.delivered)
    # Two hellos: node id, and one entry per origin (2 here), whatever the sessions.
    assert size == 2 * len(encode(Hello(a.node_id, {a.node_id: 400, b.node_id: 10})))


def test_backoff_grows_is_capped_and_resets(open_store: OpenStore, ev: Ev) -> None:
    config = SyncConfig(backoff_base_s=1.0, backoff_max_s=60.0)
    store = open_store("a")

    def delays(seed: int) -> list[float]:
        machine = PeerSync(store, "b", now=0.0, rng=random.Random(seed), config=config)
        machine.start(0.0)
        return [machine.connection_failed(100.0) - 100.0 for _ in range(12)]

    first = delays(1)
    assert first == delays(1)  # the injected rng makes it repeatable
    assert first != delays(2)  # and it does jitter
    assert 0.5 <= first[0] <= 1.0
    growing = first[:6]  # ceilings 1, 2, 4, ... 32: each delay is at least the last one
    assert growing == sorted(growing)
    assert all(30.0 <= d <= 60.0 for d in first[6:])  # capped

    machine = PeerSync(store, "b", now=0.0, rng=random.Random(3), config=config)
    for _ in range(8):
        machine.connection_failed(0.0)
    assert machine.status()["failures"] == 8
    assert machine.tick(1_000.0) == [] and machine.local_appended(1_000.0) == []
    assert machine.wakeup_at == machine.status()["retry_at"]
    machine.receive(encode(Hello("peer", {})), 1.0)  # the peer is reachable again
    assert machine.connection_failed(2.0) - 2.0 <= 1.0


def test_a_checkpoint_resumes_where_the_peer_was(open_store: OpenStore, ev: Ev,
                                                mesh: type) -> None:
    a, b = filled(open_store("a"), ev, 300), open_store("b")
    net = mesh([a, b])
    net.start()
    net.settle()
    saved = net.machines[0, 1].checkpoint
    assert saved == b.version == {a.node_id: 300}
    a.append_batch([ev(ms=10_000 + n, content=f"while down {n}") for n in range(5)])

    restarted = PeerSync(a, "b", now=50.0, rng=random.Random(0), checkpoint=saved)
    out = restarted.start(50.0)
    assert kinds(out) == ["hello", "events"]
    batch = parse(out[1])
    assert isinstance(batch, Events)
    assert [item.seq for item in batch.items] == [301, 302, 303, 304, 305]
    net.machines[1, 0].receive(out[1], 50.0)
    net.assert_converged()
    assert kinds(PeerSync(a, "b", now=0.0, rng=random.Random(0)).start(0.0)) == ["hello"]


def test_a_lost_batch_is_sent_again_after_the_ack_timeout(open_store: OpenStore, ev: Ev,
                                                         mesh: type) -> None:
    a, b = filled(open_store("a"), ev, 10), open_store("b")
    net = mesh([a, b])
    net.start()
    net.deliver(1)  # b's hello reaches a, which answers with a batch...
    net.queue = [m for m in net.queue if codec.decode(m[2])["type"] != "events"]  # ...lost
    net.settle()
    assert b.head == 0
    sender = net.machines[0, 1]
    assert sender.wakeup_at == sender.config.pull_interval_s  # the pull comes first
    net.tick(sender.config.pull_interval_s)
    net.settle()
    assert b.head == 0 and sender.counters.resends == 0  # a pull alone does not resend
    net.tick(sender.config.ack_timeout_s - sender.config.pull_interval_s)
    net.settle()
    assert b.head == 10 and sender.counters.resends == 1
    assert sender.counters.batches_resent == 1  # the one lost batch
    net.assert_converged()


def test_duplicated_and_reordered_batches_store_each_event_once(
        open_store: OpenStore, ev: Ev, mesh: type) -> None:
    a, b = filled(open_store("a"), ev, 1_100), open_store("b")
    net = mesh([a, b])
    net.start()
    net.deliver(1)
    batches = [m for m in net.queue if codec.decode(m[2])["type"] == "events"]
    net.queue = [batches[1], batches[0], batches[1], *net.queue]  # second batch first, twice
    net.settle()
    net.converge()
    net.assert_converged()
    receiver = net.machines[1, 0].counters
    assert receiver.events_new == 1_100 < receiver.events_received


def test_a_refused_message_stores_nothing(open_store: OpenStore, ev: Ev,
                                         bad_message: bytes) -> None:
    store = filled(open_store("b"), ev, 3)
    before = (store.head, store.version)
    machine = PeerSync(store, "a", now=0.0, rng=random.Random(0))
    machine.start(0.0)
    with pytest.raises(PeerFault):
        machine.receive(bad_message, 7.0)
    assert (store.head, store.version) == before
    status = machine.status()
    assert status["faults"] == 1 and status["last_contact"] == 7.0


def test_one_bad_event_spoils_the_whole_batch(open_store: OpenStore, ev: Ev) -> None:
    store = open_store("b")
    good = [ev(ms=1_000 + n, content=str(n)).canonical for n in range(3)]
    content = codec.decode(good[1])
    bad = b"\xa6" + b"".join(codec.encode(k) + codec.encode(v)
                             for k, v in reversed(content.items()))  # not canonical
    raw = {"type": "events", "items": [["o", 1, good[0]], ["o", 2, bad], ["o", 3, good[2]]]}
    machine = PeerSync(store, "a", now=0.0, rng=random.Random(0))
    with pytest.raises(PeerFault, match=r"items\[1\]"):
        machine.receive(codec.encode(raw), 0.0)
    assert store.head == 0 and store.version == {}


def test_a_hello_with_our_own_node_id_is_a_fault(open_store: OpenStore) -> None:
    store = open_store("a")
    machine = PeerSync(store, "self", now=0.0, rng=random.Random(0))
    with pytest.raises(PeerFault, match="own node id"):
        machine.receive(encode(Hello(store.node_id, {})), 0.0)


def test_our_own_events_come_back_into_their_slots(open_store: OpenStore, ev: Ev) -> None:
    # A restored from a backup holding its events 1-2; a peer still has 3.
    a = filled(open_store("a"), ev, 2)
    machine = PeerSync(a, "b", now=0.0, rng=random.Random(0))
    machine.receive(encode(Hello("b-node", {a.node_id: 3})), 0.0)
    lost = ev(ms=77, content="lost in the restore")
    out = machine.receive(encode(Events((Item(a.node_id, 3, lost),
                                         Item("other", 1, ev(ms=78, content="theirs"))))), 0.0)
    assert a.id_at(a.node_id, 3) == lost.id and a.head == 4
    assert a.version == {a.node_id: 3, "other": 1}
    assert parse(out[0]) == messages.Ack(a.version)
    assert machine.counters.events_conflicting == 0
    assert a.append(ev(ms=79, content="next")).stored.seq == 4  # numbering carries on after


def test_an_event_sent_for_a_slot_holding_another_is_kept(
        open_store: OpenStore, ev: Ev) -> None:
    a = open_store("a")
    machine = PeerSync(a, "b", now=0.0, rng=random.Random(0))
    forged, real = ev(ms=1, content="forged"), ev(ms=2, content="real")
    machine.receive(encode(Events((Item("c", 1, forged),))), 0.0)
    machine.receive(encode(Events((Item("c", 1, real),))), 0.0)  # the slot is taken
    assert a.holds(forged.id) and a.holds(real.id)
    assert a.id_at("c", 1) == forged.id and a.id_at(a.node_id, 1) == real.id
    assert a.id_at(a.node_id, 2) == forged.id  # so a node holding real at (c, 1) gets it
    assert machine.counters.events_conflicting == 1
    machine.receive(encode(Events((Item("c", 1, forged),))), 0.0)  # the same again: fine
    assert machine.counters.events_conflicting == 1 and a.head == 2


def test_a_down_link_answers_a_hello_with_its_own(open_store: OpenStore, ev: Ev) -> None:
    a, b = filled(open_store("a"), ev, 4), open_store("b")
    machine = PeerSync(b, "a", now=0.0, rng=random.Random(0))
    out = machine.receive(encode(Hello(a.node_id, a.version)), 0.0)
    assert kinds(out) == ["hello"]
    assert machine.receive(encode(Hello(a.node_id, a.version)), 1.0) == []


def test_another_node_at_the_peer_address_gets_everything(open_store: OpenStore, ev: Ev,
                                                         mesh: type) -> None:
    a, b = filled(open_store("a"), ev, 7), open_store("b")
    net = mesh([a, b])
    net.start()
    net.settle()
    machine = net.machines[0, 1]
    out = machine.receive(encode(Hello("reinstalled", {})), net.now)
    assert machine.peer_node == "reinstalled"
    assert sum(len(parse(d).items) for d in out if kinds([d]) == ["events"]) == 7  # type: ignore[union-attr]


def test_a_peer_that_now_holds_less_is_sent_it_again(open_store: OpenStore, ev: Ev,
                                                    mesh: type) -> None:
    a, b = filled(open_store("a"), ev, 6), open_store("b")
    net = mesh([a, b])
    net.start()
    net.settle()
    machine = net.machines[0, 1]
    # The same node, restored from an older backup, says it holds only two events.
    out = machine.receive(encode(Hello(b.node_id, {a.node_id: 2})), net.now)
    batch = parse(out[0])
    assert isinstance(batch, Events) and [i.seq for i in batch.items] == [3, 4, 5, 6]


def test_a_restart_resends_what_was_in_flight_at_once(open_store: OpenStore,
                                                     ev: Ev) -> None:
    a = filled(open_store("a"), ev, 4)
    machine = PeerSync(a, "b", now=0.0, rng=random.Random(0))
    machine.start(0.0)
    assert kinds(machine.receive(encode(Hello("b", {})), 0.0)) == ["events"]
    assert kinds(machine.start(1.0)) == ["hello", "events"]  # the old link took it away


def test_a_peer_is_sent_its_own_events_only_if_it_lacks_them(
        open_store: OpenStore, ev: Ev) -> None:
    a = open_store("a")
    a.ingest([(ev(ms=n, content=str(n)), "b-node", n) for n in (1, 2, 3)])
    a.append(ev(ms=9, content="from a"))
    machine = PeerSync(a, "b", now=0.0, rng=random.Random(0))
    machine.start(0.0)
    out = machine.receive(encode(Hello("b-node", {"b-node": 3})), 0.0)
    batch = parse(out[0])
    assert isinstance(batch, Events) and {i.origin for i in batch.items} == {a.node_id}
    restored = PeerSync(a, "b", now=0.0, rng=random.Random(0))  # b lost its 2 and 3
    restored.start(0.0)
    batch = parse(restored.receive(encode(Hello("b-node", {"b-node": 1})), 0.0)[0])
    assert isinstance(batch, Events)
    assert [(i.origin, i.seq) for i in batch.items if i.origin == "b-node"] == [
        ("b-node", 2), ("b-node", 3)]


def test_status_counts_traffic_and_lag(open_store: OpenStore, ev: Ev, mesh: type) -> None:
    a, b = filled(open_store("a"), ev, 10), filled(open_store("b"), ev, 3, tag="b")
    net = mesh([a, b])
    net.start()
    net.deliver(1)  # b's hello reaches a
    status = net.machines[0, 1].status()
    assert (status["events_we_lack"], status["events_peer_lacks"]) == (3, 10)
    net.now = 4.0
    net.settle()
    sa, sb = net.machines[0, 1].status(), net.machines[1, 0].status()
    assert (sa["events_we_lack"], sa["events_peer_lacks"]) == (0, 0)
    assert sa["messages_out"] == sb["messages_in"] and sa["bytes_out"] == sb["bytes_in"]
    assert sb["messages_out"] == sa["messages_in"] and sb["bytes_out"] == sa["bytes_in"]
    assert sa["bytes_out"] == sum(len(d) for to, _, d in net.delivered if to == 1)
    assert (sa["events_sent"], sa["events_received"]) == (10, 3)
    assert sa["last_contact"] == 4.0 and sa["peer_node"] == b.node_id and sa["up"]


def test_wakeup_at_names_the_next_deadline(open_store: OpenStore, ev: Ev) -> None:
    a = filled(open_store("a"), ev, 3)
    config = SyncConfig(pull_interval_s=5.0, ack_timeout_s=3.0)
    machine = PeerSync(a, "b", now=10.0, rng=random.Random(0), config=config)
    machine.start(10.0)
    assert machine.wakeup_at == 15.0
    machine.receive(encode(Hello("b", {})), 11.0)  # a batch goes out
    assert machine.wakeup_at == 14.0
    assert machine.tick(12.0) == []  # nothing due yet
    assert kinds(machine.tick(15.0)) == ["hello", "events"]


def test_our_misuse_is_not_blamed_on_the_peer(open_store: OpenStore) -> None:
    store = open_store("a")
    with pytest.raises(ProtocolMisuse):
        PeerSync(store, "b", now=0.0, rng=random.Random(0), checkpoint={"o": -1})
    with pytest.raises(ProtocolMisuse):
        SyncConfig(pull_interval_s=0)
    with pytest.raises(ProtocolMisuse):
        SyncConfig(backoff_base_s=10, backoff_max_s=1)
    with pytest.raises(ProtocolMisuse):
        SyncConfig(inflight_batches_max=0)
    assert not issubclass(ProtocolMisuse, PeerFault)


@pytest.mark.parametrize("module", [sync, sync_config, messages, sync_peer])
def test_docstring_examples(module: object) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert result.failed == 0


def test_a_claim_on_our_numbers_does_not_stop_our_events(open_store: OpenStore, ev: Ev,
                                                        mesh: type) -> None:
    """A peer says it holds a number of ours we never wrote: our numbering goes on
    unmoved, and our next events reach our other peers."""
    a, c = filled(open_store("a"), ev, 2), open_store("c")
    liar = PeerSync(a, "m", now=0.0, rng=random.Random(0))
    liar.receive(encode(Hello("m-node", {a.node_id: 3})), 0.0)
    assert a.append(ev(ms=80, content="new")).stored.seq == 3
    assert a.version == {a.node_id: 3}
    net = mesh([a, c])
    net.start()
    net.settle()
    assert c.version == {a.node_id: 3} and c.head == 3
    assert net.machines[0, 1].status()["events_peer_lacks"] == 0


def test_an_event_of_ours_ahead_of_us_is_not_taken(open_store: OpenStore, ev: Ev,
                                                  mesh: type) -> None:
    """A valid event sent in our own origin a few numbers ahead is skipped, so it takes
    no number of ours and our next events still flow."""
    a, c = filled(open_store("a"), ev, 2), open_store("c")
    liar = PeerSync(a, "m", now=0.0, rng=random.Random(0))
    ahead = ev(ms=77, content="ahead")
    out = liar.receive(encode(Events((Item(a.node_id, 5, ahead),))), 0.0)
    assert parse(out[0]) == messages.Ack({a.node_id: 2})
    assert not a.holds(ahead.id) and liar.counters.events_skipped == 1
    assert a.append(ev(ms=80, content="new")).stored.seq == 3
    net = mesh([a, c])
    net.start()
    net.settle()
    assert c.version == {a.node_id: 3} and c.head == 3


def test_an_event_beyond_a_gap_waits_for_the_gap(open_store: OpenStore, ev: Ev) -> None:
    """Events are stored only without a gap in their origin, so every event a node holds
    lies within its version and is forwarded to its peers."""
    b = open_store("b")
    machine = PeerSync(b, "a", now=0.0, rng=random.Random(0))
    x, y, z = ev(ms=1, content="x"), ev(ms=2, content="y"), ev(ms=3, content="z")
    machine.receive(encode(Events((Item("c", 1, x), Item("c", 3, z)))), 0.0)  # 2 missing
    assert b.holds(x.id) and not b.holds(z.id) and b.version == {"c": 1}
    machine.receive(encode(Events((Item("c", 2, y), Item("c", 3, z)))), 0.0)
    assert b.version == {"c": 3}
    relayed = {stored.event.id for origin in b.version for stored in b.origin_after(origin, 0)}
    assert relayed == {x.id, y.id, z.id}


def test_a_restored_node_that_writes_first_still_converges(open_store: OpenStore, ev: Ev,
                                                          mesh: type) -> None:
    """A node restored from a backup writes before its peer gave back the events of its
    own it lost: both reach every node (conflicting slots are numbered again)."""
    a, b = filled(open_store("a"), ev, 2), open_store("b")
    lost = [ev(ms=50 + n, content=f"lost {n}") for n in range(3)]
    b.ingest([(event, a.node_id, 3 + n) for n, event in enumerate(lost)])
    b.ingest([(stored.event, a.node_id, stored.seq) for stored in a.origin_after(a.node_id, 0)])
    a.append(ev(ms=90, content="after the restore"))  # takes number 3, held as lost 0 on b
    net = mesh([a, b])
    net.start()
    net.converge()
    net.assert_converged()
    assert a.head == b.head == 6


def flood(machine: PeerSync, ev: Ev, origins: int) -> None:
    """Events of ``origins`` made-up origins, one each, in full batches."""
    items = [Item(f"made-up-{n}", 1, ev(ms=1 + n, content=f"junk {n}")) for n in range(origins)]
    for start in range(0, origins, BATCH_EVENTS_MAX):
        machine.receive(encode(Events(tuple(items[start:start + BATCH_EVENTS_MAX]))), 0.0)


def test_made_up_origins_cannot_shut_out_a_later_node(open_store: OpenStore, ev: Ev,
                                                      mesh: type) -> None:
    """A peer floods a node with events of made-up origins: the table stops taking them
    short of full, and a node joining afterwards still syncs both ways."""
    v = filled(open_store("v"), ev, 2, tag="v")
    config = SyncConfig(origins_new_max=ORIGINS_MAX)  # the table alone, not the quota
    attacker = PeerSync(v, "m", now=0.0, rng=random.Random(0), config=config)
    attacker.receive(encode(Hello("m-node", {})), 0.0)
    free = ORIGINS_MAX - ORIGINS_RESERVED
    flood(attacker, ev, ORIGINS_MAX - 1)  # enough to fill the whole table
    assert len(v.version) == free  # v's own origin and free - 1 made-up ones
    assert attacker.counters.origins_refused == ORIGINS_RESERVED
    late = filled(open_store("late"), ev, 3, tag="late")
    net = mesh([v, late], config=config)
    net.start()
    net.converge()
    assert v.version[late.node_id] == 3 and late.version[v.node_id] == 2
    assert all(m.counters.faults == 0 for m in net.machines.values())
    # The later node took what its table's free part holds; v, knowing that, stops
    # sending it the rest (after at most one batch sent in vain).
    assert len(late.version) == free and net.machines[0, 1].counters.resends <= 1


def test_one_link_brings_at_most_its_quota_of_new_origins(open_store: OpenStore, ev: Ev,
                                                         mesh: type) -> None:
    config = SyncConfig(origins_new_max=10, origins_new_interval_s=60.0)
    v = open_store("v")
    attacker = PeerSync(v, "m", now=0.0, rng=random.Random(0), config=config)
    flood(attacker, ev, 30)
    assert len(v.version) == 10 and attacker.counters.origins_refused == 20
    flood(attacker, ev, 30)  # the same again, in the same window: nothing more
    assert len(v.version) == 10
    # An honest node joining a cluster of more origins than the quota gets them all,
    # a quota per window, without batches sent in vain (the sender keeps the quota too).
    hub = open_store("hub")
    hub.ingest([(ev(ms=n + 1, content=f"o{n}"), f"origin-{n}", 1) for n in range(25)])
    late = filled(open_store("late"), ev, 2, tag="late")
    net = mesh([hub, late], config=config)
    net.start()
    net.settle()
    assert len(late.version) == 1 + 10 and hub.version[late.node_id] == 2
    net.tick(60.0)
    net.settle()
    assert len(late.version) == 1 + 20
    net.tick(60.0)
    net.converge()
    net.assert_converged()
    assert all(m.counters.resends == 0 and m.counters.origins_refused == 0
               for m in net.machines.values())


# -- versions and kinds of newer nodes ------------------------------------------------------

def test_versions_are_told_only_to_a_peer_that_reads_them(open_store: OpenStore) -> None:
    """The dialer says it reads ``about``; the acceptor's hello carries it, which shows
    the dialer that the acceptor reads it too; each then knows the other's version. A
    peer that does not say (a node of 0.1) is never sent it."""
    dialer = PeerSync(open_store("a"), "b", now=0.0, rng=random.Random(0),
                      about=About("0.2.0", 1))
    acceptor = PeerSync(open_store("b"), "a", now=0.0, rng=random.Random(1),
                        about=About("0.3.0", 1))
    first = dialer.start(0.0)  # dialed: it does not know yet what the acceptor reads
    assert "about" not in codec.decode(first[0])
    replies = acceptor.start(0.0, peer_reads_about=True)
    assert codec.decode(replies[0])["about"] == {"software": "0.3.0", "schema": 1}
    back = dialer.receive(replies[0], 0.0)
    assert dialer.peer_about == About("0.3.0", 1)
    assert codec.decode(back[0])["about"] == {"software": "0.2.0", "schema": 1}
    acceptor.receive(first[0], 0.0)
    acceptor.receive(back[0], 0.0)
    assert acceptor.status()["peer_software"] == "0.2.0"
    old = PeerSync(open_store("c"), "old", now=0.0, rng=random.Random(2),
                   about=About("0.2.0", 1))
    hellos = old.start(0.0) + old.receive(messages.encode(Hello("old-node", {})), 0.0) \
        + old.tick(100.0)
    assert all("about" not in codec.decode(h) for h in hellos
               if codec.decode(h)["type"] == "hello")
    assert old.status()["peer_software"] is None


def test_events_of_a_kind_this_version_does_not_know_replicate(open_store: OpenStore,
                                                                ev: Ev, mesh: type) -> None:
    """A newer node's kinds and fields travel through this one unchanged: stored,
    forwarded, counted in no projection."""
    a, b, c = open_store("a"), open_store("b"), open_store("c")
    newer = Draft("s1", "main", "reaction_added", {"emoji": "+1", "to": "m-1"},
                  Hlc(5_000, 0)).seal()
    richer = Draft("s1", "main", "session_ended",
                   {"reason": "done", "source": {"app": "openclaw"}}, Hlc(4_000, 0)).seal()
    net = mesh([a, b, c], links=[(0, 1), (1, 2)])  # a and c meet only through b
    net.start()
    net.append(0, ev(), newer, richer)
    net.converge()
    net.assert_converged()
    for store in (b, c):
        copy = store.get_event(newer.id).event
        assert copy.canonical == newer.canonical and not copy.known
        assert store.get_event(richer.id).event.payload["source"] == {"app": "openclaw"}
    view = b.get_projection("s1").to_json()
    assert view["event_count"] == 2  # the message and the session's end
    assert view["state"] == "ended" and view["last_event_id"] == richer.id.hex()
    assert all(m["faults"] == 0 for m in (x.status() for x in net.machines.values()))


# -- timestamps too far ahead of the receiver's clock -------------------------------------------


def test_a_far_future_event_is_left_out_and_does_not_win_state(
        open_store: OpenStore, ev: Ev, monkeypatch: pytest.MonkeyPatch) -> None:
    wall_ms = 1_700_000_000_000
    monkeypatch.setattr(crdt.clock, "wall_ms", lambda: wall_ms)
    b = open_store("b")
    b.append(ev("session_started", ms=wall_ms - 1_000))
    machine = PeerSync(b, "a", now=0.0, rng=random.Random(0))
    forever = ev("session_ended", ms=crdt.clock.MS_MAX)  # 9999-12-31: would win for good
    after = ev(ms=wall_ms, content="the rest of the batch")
    later = ev(ms=wall_ms, content="behind it in its origin")
    out = machine.receive(encode(Events((Item("p", 1, forever), Item("p", 2, later),
                                         Item("q", 1, after)))), 0.0)
    # The link lives on, the rest of the batch is stored; the ack says p:1 is missing,
    # and p:2 waits behind that gap (an origin never has a gap here).
    assert parse(out[0]) == messages.Ack(b.version) and b.version.get("p", 0) == 0
    assert b.holds(after.id) and not b.holds(forever.id) and not b.holds(later.id)
    assert b.get_projection("s1").to_json()["state"] == "active"
    status = machine.status()
    assert status["events_ahead"] == 1 and status["faults"] == 0


def test_an_event_from_a_clock_slightly_ahead_arrives_once_ours_caught_up(
        open_store: OpenStore, ev: Ev, mesh: type, monkeypatch: pytest.MonkeyPatch) -> None:
    wall = [1_700_000_000_000]
    monkeypatch.setattr(crdt.clock, "wall_ms", lambda: wall[0])
    a, b = open_store("a"), open_store("b")
    start = wall[0]
    b.append(ev("session_started", ms=start - 1_000))
    a.append(ev(ms=start, content="in time"))
    # a's wall clock runs 5 s beyond the bound: it stamps events that far ahead...
    wall[0] = start + crdt.clock.DRIFT_MAX_MS + 5_000
    a.append_batch([ev("session_ended", ms=wall[0]), ev(ms=wall[0] + 1, content="next")])
    wall[0] = start  # ...b's clock (the same fake wall, read later) is right
    net = mesh([a, b])
    net.start()
    net.settle()
    assert b.head == 2 and b.get_projection("s1").to_json()["state"] == "active"
    assert net.machines[1, 0].counters.events_ahead == 2
    wall[0] = start + 6_000  # b's wall clock catches up: a sends them again, b takes them
    net.converge()
    net.assert_converged()
    assert b.get_projection("s1").to_json()["state"] == "ended"


def test_a_hello_below_the_checkpoint_resends_at_once(open_store: OpenStore, ev: Ev,
                                                     mesh: type) -> None:
    """A peer restored from a backup: batches sent from the saved checkpoint are beyond
    what it holds; its hello resets them instead of waiting for the ack timeout."""
    a, b = filled(open_store("a"), ev, 300), open_store("b")
    machine = PeerSync(a, "b", now=0.0, rng=random.Random(0),
                       checkpoint={a.node_id: 200})
    assert kinds(machine.start(0.0)) == ["hello", "events"]  # 201-300, from the checkpoint
    out = machine.receive(encode(Hello(b.node_id, {a.node_id: 100})), 0.1)
    batches = [parse(data) for data in out]
    assert batches and all(isinstance(batch, Events) for batch in batches)
    assert batches[0].items[0].seq == 101  # type: ignore[union-attr]
    assert machine.counters.resends == 0


def test_a_hello_tells_how_many_events_the_peer_holds_that_we_lack(
        open_store: OpenStore, ev: Ev) -> None:
    a, b = filled(open_store("a"), ev, 7), filled(open_store("b"), ev, 3, tag="b")
    machine = PeerSync(b, "a", now=0.0, rng=random.Random(0))
    machine.start(0.0)
    assert machine.lacking == 0
    machine.receive(encode(Hello(a.node_id, a.version)), 0.0)
    assert machine.lacking == 7
    # Only what we lack counts: our own 3 are held, one more of a's is not.
    machine.receive(encode(Hello(a.node_id, {**a.version, a.node_id: 8, b.node_id: 3})), 0.0)
    assert machine.lacking == 8
    machine.receive(encode(Hello(a.node_id, {})), 0.0)
    assert machine.lacking == 0


def test_a_retired_origin_is_not_counted_as_lacking(open_store: OpenStore, ev: Ev,
                                                    mesh: type) -> None:
    a, b = filled(open_store("a"), ev, 7), open_store("b")
    net = mesh([a, b])
    net.start()
    net.settle()
    assert b.retire(a.node_id) is not None and b.retired == {a.node_id: 7}
    machine = PeerSync(b, "a", now=0.0, rng=random.Random(0))
    machine.start(0.0)
    # Held up to its final seq; numbers past it are refused, so not lacking either.
    machine.receive(encode(Hello(a.node_id, {a.node_id: 9})), 0.0)
    assert machine.lacking == 0


def test_acks_of_made_up_origins_do_not_grow_what_is_known_of_the_peer(
        open_store: OpenStore, ev: Ev) -> None:
    """A peer acks with a new set of made-up origins each time: what the node knows the
    peer holds (and the checkpoint saved from it) stays within a hello's limit, and
    still follows the node's own origins."""
    a = filled(open_store("a"), ev, 3)
    machine = PeerSync(a, "peer", now=0.0, rng=random.Random(0))
    machine.start(0.0)
    machine.receive(encode(Hello("peer-node", {})), 0.0)
    for round_ in range(3):
        machine.receive(encode(Ack({f"made-up-{round_}-{n}": 1
                                    for n in range(ORIGINS_MAX)})), 0.0)
    machine.receive(encode(Ack({a.node_id: 3})), 0.0)
    checkpoint = machine.checkpoint
    assert checkpoint is not None
    assert len(checkpoint) <= ORIGINS_MAX + 1 and checkpoint[a.node_id] == 3
