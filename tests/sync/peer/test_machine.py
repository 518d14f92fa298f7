"""``PeerSync`` between real stores: convergence, push, windows, limits, repair, back-off,
checkpoints and counters. Messages move only when a test delivers them."""

from __future__ import annotations

import doctest
import random

import pytest

import sync
from crdt import codec
from sync.errors import PeerFault, ProtocolMisuse
from sync.peer import config as sync_config
from sync.peer import machine as sync_peer
from sync.peer import messages
from sync.peer.config import SyncConfig
from sync.peer.limits import BATCH_BYTES_MAX, BATCH_EVENTS_MAX, ORIGINS_MAX
from sync.peer.machine import PeerSync
from sync.peer.messages import Ack, Events, Hello, encode, parse
from tests.sync.peer.support import Ev, OpenStore, filled, kinds


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


def test_a_wait_the_peer_asked_for_delays_the_retry_up_to_the_back_offs_max(
        open_store: OpenStore) -> None:
    """A wait asked (``Retry-After``) is waited, past the back-off, up to its max."""
    config = SyncConfig(backoff_base_s=1.0, backoff_max_s=60.0)
    machine = PeerSync(open_store("a"), "b", now=0.0, rng=random.Random(1), config=config)
    assert machine.asked_until == float("-inf")
    assert machine.connection_failed(100.0, asked_s=30.0) == 130.0 == machine.wakeup_at
    assert machine.asked_until == 130.0
    assert machine.connection_failed(200.0, asked_s=86_400.0) == 260.0 == machine.asked_until
    assert machine.connection_failed(300.0, asked_s=0.0) - 300.0 <= 8.0  # its back-off
    assert machine.asked_until == 300.0


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
