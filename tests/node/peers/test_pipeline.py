"""A link's messages through the receiving node's pipeline (``node.peers.ahead.Ahead``),
against a real node in this process: a raw websocket client holding the cluster secret
plays the peer and sends signed batches while the node's writer is held, so that what
the node reads ahead of it can be seen. Two messages are parsed and verified ahead of
the writer, no more; they are handled in the order they came; a fault in a later one
costs the link only after the earlier ones are stored; stopping in mid-pipeline leaves
nothing running. A hello announcing a backlog starts the signature worker, the messages
after it do not."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

import aiohttp
import pytest

from crdt import device
from crdt.events import Event
from crdt.log.store import EventStore
from crdt.signing import Signer
from node.peers.ahead import AHEAD
from node.peers.verifying import WORKER_SIGNATURES_MIN, Verifier
from node.server.run import RunningNode
from sync.peer.machine import Parsed, PeerSync
from sync.peer.messages import Ack, Events, Hello, Item, Message, encode, parse
from tests.support.waits import PROCESS_DEADLINE_S, until  # most waits: the signature worker

NodeFactory = Callable[..., Awaitable[RunningNode]]
Ev = Callable[..., Event]
SECRET = "s" * 32
PEER_WS = "/peer/v1/ws"
#: Events per batch: long enough for the signature worker.
PER_BATCH = 2 * WORKER_SIGNATURES_MIN
#: How long nothing more may happen once the pipeline is full, to call it full.
SETTLE_S = 0.3


@pytest.fixture
def signed(ev: Ev) -> Iterator[list[Item]]:
    """A device's first 100 items, signed (seq 1 binds its key: ``device_key``)."""
    store = EventStore.open("memory:", signer=Signer(
        device.private_key_from_seed(bytes([7]) * 32), "peer device"))
    store.append_batch([ev(ms=1_000 + n, content=f"m {n}") for n in range(99)])
    yield [Item(store.node_id, s.seq, s.event, s.signature)
           for s in store.origin_after(store.node_id, 0, 100)]
    store.close()


def batches(items: list[Item], count: int) -> list[bytes]:
    return [encode(Events(tuple(items[n * PER_BATCH:(n + 1) * PER_BATCH])))
            for n in range(count)]


def warm(verifier: Verifier) -> None:
    """Start the node's signature worker, so that each long batch it checks counts in
    ``batches_in_worker``."""
    key = device.secret_key(device.private_key_from_seed(bytes(32)))
    checks = ([key[32:]] * PER_BATCH, [device.sign_bytes(key, b"x")] * PER_BATCH,
              [b"x"] * PER_BATCH)
    done, deadline = verifier.batches_in_worker, time.monotonic() + PROCESS_DEADLINE_S
    while verifier.batches_in_worker == done:
        assert verifier(*checks) == [True] * PER_BATCH
        assert time.monotonic() < deadline and not verifier.broken
        time.sleep(0.02)


@asynccontextmanager
async def writer_held(node: RunningNode) -> AsyncIterator[threading.Event]:
    """Keep the node's store writer busy until the event yielded is set (or the block
    ends): nothing is stored meanwhile."""
    entered, release = threading.Event(), threading.Event()

    def hold(_store: EventStore) -> None:
        entered.set()
        release.wait(PROCESS_DEADLINE_S)

    holding = asyncio.ensure_future(node.astore.write(hold))
    await until(entered.is_set, within_s=PROCESS_DEADLINE_S)
    try:
        yield release
    finally:
        release.set()
        await holding


@asynccontextmanager
async def peer(node: RunningNode) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A link to ``node`` as a peer holding the cluster secret, once the node's machine
    for it is up (its hello came)."""
    async with aiohttp.ClientSession() as http, http.ws_connect(
            node.url + PEER_WS, max_msg_size=0,
            headers={"X-Clawsync-Node": "pipeline-peer",
                     "Authorization": f"Bearer {SECRET}"}) as ws:
        assert isinstance(await answer(ws), Hello)
        yield ws


async def answer(ws: aiohttp.ClientWebSocketResponse) -> Message | None:
    """The node's next message, or None once it closed the link."""
    got = await ws.receive(timeout=PROCESS_DEADLINE_S)
    if got.type != aiohttp.WSMsgType.BINARY:
        return None
    return parse(got.data)


async def acks(ws: aiohttp.ClientWebSocketResponse, origin: str) -> list[int | None]:
    """What the node's answers say it holds of ``origin``, up to the close of the link:
    an ack's seq, or None for the close."""
    seen: list[int | None] = []
    while True:
        message = await answer(ws)
        if message is None:
            return [*seen, None]
        if isinstance(message, Ack):
            seen.append(message.version.get(origin))


async def checked_ahead(verifier: Verifier, done: int, count: int) -> None:
    """Wait until ``count`` more batches were checked in the worker, and no more come."""
    await until(lambda: verifier.batches_in_worker >= done + count,
                within_s=PROCESS_DEADLINE_S)
    await asyncio.sleep(SETTLE_S)
    assert verifier.batches_in_worker == done + count


async def held_of(node: RunningNode, origin: str) -> int:
    return await node.astore.write(lambda store: store.version.get(origin, 0))


HELLO = encode(Hello("ffffffffffffffff", {}))


async def test_two_messages_are_verified_ahead_of_the_writer_and_handled_in_order(
        make_node: NodeFactory, signed: list[Item]) -> None:
    node = await make_node(cluster_secret=SECRET)
    verifier = node.gossip.verifier
    await asyncio.to_thread(warm, verifier)
    origin = signed[0].origin
    async with peer(node) as ws:
        async with writer_held(node) as release:
            done = verifier.batches_in_worker
            for data in [HELLO, *batches(signed, 5)]:
                await ws.send_bytes(data)
            # The hello waits for the writer; the next two batches are parsed and their
            # signatures checked meanwhile, and no third is read.
            await checked_ahead(verifier, done, AHEAD)
            # Read on a reader thread: the writer is held.
            assert await node.astore.read(lambda store: store.version.get(origin, 0)) == 0
            release.set()
        seen = []
        while len(seen) < 5:
            message = await answer(ws)
            if isinstance(message, Ack):
                seen.append(message.version.get(origin))
        assert seen == [PER_BATCH * n for n in range(1, 6)]
        assert await held_of(node, origin) == 5 * PER_BATCH
        assert verifier.batches_in_worker == done + 5
        [row] = node.gossip.status()
        assert row["faults"] == row["events_forged"] == 0


async def test_a_fault_in_a_later_message_ends_the_link_after_the_earlier_ones_are_stored(
        make_node: NodeFactory, signed: list[Item]) -> None:
    node = await make_node(cluster_secret=SECRET)
    verifier = node.gossip.verifier
    await asyncio.to_thread(warm, verifier)
    origin = signed[0].origin
    good = batches(signed, 2)
    async with peer(node) as ws:
        async with writer_held(node):
            done = verifier.batches_in_worker
            for data in (HELLO, good[0], b"\xff not a message", good[1]):
                await ws.send_bytes(data)
            # While the writer holds the hello, the good batch is checked and the bad
            # one read and parsed: its fault is known before the batch is stored.
            await checked_ahead(verifier, done, 1)
        assert await acks(ws, origin) == [PER_BATCH, None]
    assert await held_of(node, origin) == PER_BATCH


def steps_started(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the ``PeerSync.parse`` and ``verify`` calls started from now on, in
    the order they started."""
    started: list[str] = []

    def recording(step: str) -> Callable[..., object]:
        real = getattr(PeerSync, step)

        def recorded(machine: PeerSync, *args: object) -> object:
            started.append(step)
            return real(machine, *args)
        return recorded

    for step in ("parse", "verify"):
        monkeypatch.setattr(PeerSync, step, recording(step))
    return started


async def test_stopping_in_mid_pipeline_leaves_no_task_or_thread_work(
        make_node: NodeFactory, signed: list[Item], monkeypatch: pytest.MonkeyPatch) -> None:
    node = await make_node(cluster_secret=SECRET)
    gossip = node.gossip
    await asyncio.to_thread(warm, gossip.verifier)
    started = steps_started(monkeypatch)
    async with peer(node) as ws, writer_held(node) as release:
        done = gossip.verifier.batches_in_worker
        for data in [HELLO, *batches(signed, 5)]:
            await ws.send_bytes(data)
        await checked_ahead(gossip.verifier, done, AHEAD)
        stopping = asyncio.ensure_future(gossip.stop())
        await asyncio.sleep(SETTLE_S)  # the link's task is cancelled meanwhile
        release.set()
        async with asyncio.timeout(PROCESS_DEADLINE_S):
            await stopping
    ahead = [task for task in asyncio.all_tasks() if task.get_name() == "peer-read-ahead"]
    assert ahead == []
    stopped = len(started)
    await asyncio.sleep(SETTLE_S)  # work left to the pools would start meanwhile
    assert len(started) == stopped
    assert gossip.runners == {}


async def test_a_hello_announcing_a_backlog_starts_the_signature_worker_before_it_comes(
        make_node: NodeFactory, signed: list[Item]) -> None:
    node = await make_node(cluster_secret=SECRET)
    verifier = node.gossip.verifier
    origin = signed[0].origin
    async with peer(node) as ws:
        await ws.send_bytes(encode(Hello("ffffffffffffffff",
                                         {origin: WORKER_SIGNATURES_MIN - 1})))
        await asyncio.sleep(SETTLE_S)
        assert verifier.worker_state == "none"  # a push's worth
        await ws.send_bytes(encode(Hello("ffffffffffffffff", {origin: len(signed)})))
        await worker_running(verifier)
    assert verifier.batches_in_worker == verifier.batches_failed == 0  # no batch yet


async def worker_running(verifier: Verifier) -> None:
    """Wait until the node's signature worker runs."""
    await until(lambda: verifier.worker_state == "running", within_s=PROCESS_DEADLINE_S)


async def acked(ws: aiohttp.ClientWebSocketResponse, origin: str, seq: int) -> None:
    """Wait until the node acknowledges ``origin`` up to ``seq``: it has handled the
    message that brought it."""
    while True:
        message = await answer(ws)
        assert message is not None, "the link closed"
        if isinstance(message, Ack) and message.version.get(origin, 0) >= seq:
            return


async def test_later_messages_of_a_link_do_not_warm_the_signature_worker(
        make_node: NodeFactory, signed: list[Item]) -> None:
    """Only a hello announcing a backlog starts the worker: if that start failed, the
    link's later messages (short pushes here) start no other, though the backlog the
    hello announced is still lacking; the next long batch or hello does."""
    node = await make_node(cluster_secret=SECRET)
    verifier = node.gossip.verifier
    origin = signed[0].origin
    # Two short pushes, each checked in the node's threads.
    short = WORKER_SIGNATURES_MIN - 1
    first, second = signed[:short], signed[short:2 * short]
    memory_bytes, verifier.memory_bytes = verifier.memory_bytes, 1024 * 1024
    async with peer(node) as ws:
        try:  # Python cannot start in 1 MiB: the start the hello asks for fails
            await ws.send_bytes(encode(Hello("ffffffffffffffff", {origin: len(signed)})))
            await ws.send_bytes(encode(Events(tuple(first))))
            await acked(ws, origin, short)  # so the hello was handled, before it
            await until(lambda: verifier.worker_state == "none", within_s=PROCESS_DEADLINE_S)
        finally:
            verifier.memory_bytes = memory_bytes
        assert not verifier.broken
        await ws.send_bytes(encode(Events(tuple(second))))
        await acked(ws, origin, 2 * short)
        assert verifier.worker_state == "none"
        await ws.send_bytes(encode(Hello("ffffffffffffffff", {origin: len(signed)})))
        await worker_running(verifier)
    assert verifier.batches_in_worker == 0


@contextmanager
def held(monkeypatch: pytest.MonkeyPatch, step: str) -> Iterator[threading.Event]:
    """``PeerSync.parse`` or ``verify`` (``step``) of the node's next events batch waits
    until the block ends; the event yielded is set once it waits."""
    entered, release = threading.Event(), threading.Event()
    real = getattr(PeerSync, step)

    def waiting(machine: PeerSync, message: bytes | Parsed, *args: object) -> object:
        batch = message.message if isinstance(message, Parsed) else parse(message)
        if isinstance(batch, Events) and not entered.is_set():
            entered.set()
            release.wait(PROCESS_DEADLINE_S)
        return real(machine, message, *args)

    monkeypatch.setattr(PeerSync, step, waiting)
    try:
        yield entered
    finally:
        release.set()


async def test_a_stop_does_not_wait_for_a_check_still_running(
        make_node: NodeFactory, signed: list[Item], monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch's checks may take the worker up to its time limit (10 s): a link's end
    drops them rather than wait, and the node's stop ends the worker afterwards."""
    node = await make_node(cluster_secret=SECRET)
    gossip = node.gossip
    with held(monkeypatch, "verify") as checking:
        async with peer(node) as ws:
            for data in [HELLO, *batches(signed, 1)]:
                await ws.send_bytes(data)
            await until(checking.is_set, within_s=PROCESS_DEADLINE_S)
            links = [r.task for r in gossip.runners.values() if r.task]
            await gossip.stop()
            # Each ended within the stop, none left running past its wait for them.
            assert links and all(task.done() for task in links)


async def test_a_second_cancel_of_a_link_still_marks_it_down_and_closes_it(
        make_node: NodeFactory, signed: list[Item], monkeypatch: pytest.MonkeyPatch) -> None:
    node = await make_node(cluster_secret=SECRET)
    with held(monkeypatch, "parse") as parsing:
        async with peer(node) as ws:
            for data in [HELLO, *batches(signed, 1)]:
                await ws.send_bytes(data)
            await until(parsing.is_set, within_s=PROCESS_DEADLINE_S)
            [runner] = node.gossip.runners.values()
            assert runner.task is not None
            runner.task.cancel()
            await asyncio.sleep(SETTLE_S)  # its end waits for the parse still running
            runner.task.cancel()  # a web server's shutdown cancelling the handler again
            assert await answer(ws) is None  # the link is closed
            assert runner.state == "down"
