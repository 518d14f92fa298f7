"""node.lookups with a real node in this process: peers' host names are looked up
on threads of their own, and a lookup that hangs holds up nothing else.

``socket.getaddrinfo`` is what aiohttp's ``ThreadedResolver`` calls, on whatever
threads: these tests hold it for some names, in this process only."""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
import weakref
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest

from node.lookups import LOOKUP_THREADS_MAX, LookupResolver, LookupThreads, _LookupLoop
from tests.node.peers.support import (
    FAST,
    SECRET,
    NodeFactory,
    port_of,
    until,
)
from tests.support.waits import DEADLINE_S

#: Peers whose names hang: more than the lookup threads, and than the threads of the
#: loop's default executor the test gives it (its own size depends on the CPUs), which
#: their lookups would fill without threads of their own.
HANGING_PEERS = 2 * LOOKUP_THREADS_MAX


@dataclass
class Names:
    """Lookups of names ending ``.hang`` wait for ``released``; of ``.nowhere`` fail."""
    released: threading.Event = field(default_factory=threading.Event)
    begun: list[str] = field(default_factory=list)
    hanging: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def names(monkeypatch: pytest.MonkeyPatch) -> Iterator[Names]:
    held = Names()
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".nowhere"):
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        if not (isinstance(host, str) and host.endswith(".hang")):
            return real(host, *args, **kwargs)
        with held.lock:
            held.begun.append(host)
            held.hanging += 1
        try:
            held.released.wait()
        finally:
            with held.lock:
                held.hanging -= 1
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    try:
        yield held
    finally:
        held.released.set()  # whatever the test did, no lookup hangs past it


async def test_a_node_stops_while_lookups_of_peers_names_hang(
        make_node: NodeFactory, names: Names) -> None:
    """Peers whose names never resolve: as many lookups as there are lookup threads
    hang, the others wait for one; the node's stop (its verifier's and its store's
    closes run on the loop's default executor) ends all the same, its lookups still
    hanging, and the lookup threads end once they return."""
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=LOOKUP_THREADS_MAX))
    node = await make_node(sync=FAST)
    urls = [f"http://peer{i}.hang:{port_of(node)}" for i in range(HANGING_PEERS)]
    for url in urls:
        assert await node.gossip.add_peer(url, learned=False)
    await until(lambda: len(names.begun) == LOOKUP_THREADS_MAX
                and all(node.gossip.runners[f"url:{url}"].state == "connecting" for url in urls))
    stopping = asyncio.create_task(node.stop())
    await asyncio.wait([stopping], timeout=DEADLINE_S)
    stopped, hanging = stopping.done(), names.hanging
    names.released.set()  # a stop still waiting for them can end now
    await stopping
    assert stopped and hanging == LOOKUP_THREADS_MAX  # stopped while they hung
    resolver = node.gossip._resolver
    assert resolver is not None
    await until(lambda: not any(thread.is_alive() for thread in resolver.lookups.threads))
    # At most that many at once; those queued were not made: the node stopped first.
    assert len(names.begun) == LOOKUP_THREADS_MAX


async def test_peers_names_are_looked_up_and_their_failures_said(
        make_node: NodeFactory, names: Names) -> None:
    """A name that resolves links (while another lookup hangs); one that fails is said
    as a name not looked up."""
    peer = await make_node(cluster_secret=SECRET, sync=FAST)
    node = await make_node(cluster_secret=SECRET, sync=FAST)
    hanging = f"http://peer.hang:{port_of(peer)}"
    assert await node.gossip.add_peer(hanging, learned=False)
    await until(lambda: len(names.begun) == 1)
    failing = f"http://peer.nowhere:{port_of(peer)}"
    for url in (f"http://localhost:{port_of(peer)}", failing):
        assert await node.gossip.add_peer(url, learned=False)
    await until(lambda: peer.astore.node_id in {
        runner.linked_to for runner in node.gossip.runners.values()})
    await until(lambda: node.gossip.runners[f"url:{failing}"].failure is not None)
    assert node.gossip.runners[f"url:{failing}"].failure == (
        f"cannot reach {failing}: name not looked up: temporary failure in name resolution")
    assert names.hanging == 1


async def test_lookup_threads_make_at_most_their_bound_at_once_and_skip_cancelled() -> None:
    """Two threads, three lookups that wait: two run, the third waits for a thread; a
    lookup cancelled before a thread took it is never made."""
    lookups = LookupThreads(threads_max=2)
    go = threading.Event()
    made: list[int] = []

    def lookup(n: int) -> int:
        made.append(n)
        go.wait()
        return n

    first, second = lookups.run(lambda: lookup(1)), lookups.run(lambda: lookup(2))
    third, fourth = lookups.run(lambda: lookup(3)), lookups.run(lambda: lookup(4))
    await until(lambda: len(made) == 2)
    third.cancel()
    go.set()
    assert await asyncio.gather(first, second, fourth) == [1, 2, 4]
    assert sorted(made) == [1, 2, 4] and len(lookups.threads) == 2
    lookups.close()
    await until(lambda: not any(thread.is_alive() for thread in lookups.threads))
    with pytest.raises(RuntimeError, match="lookups closed"):
        lookups.run(lambda: 0)


async def test_a_cancelled_lookup_is_not_kept_alive_while_its_thread_waits() -> None:
    """The call of a lookup skipped (cancelled before a thread took it) goes once the
    thread moved past it, not when the next lookup comes."""
    lookups = LookupThreads(threads_max=1)
    go = threading.Event()
    first = lookups.run(go.wait)

    def skipped() -> int:
        return 0

    ref = weakref.ref(skipped)
    lookups.run(skipped).cancel()
    del skipped
    go.set()
    assert await first is True
    await until(lambda: gc.collect() >= 0 and ref() is None)
    lookups.close()


async def test_the_lookup_loop_hands_other_calls_to_the_running_loop() -> None:
    """``ThreadedResolver`` makes two calls of its loop, both on the lookup threads; any
    other a later aiohttp may make reaches the running loop, as before those threads."""
    lookups = LookupThreads()
    stand_in = _LookupLoop(lookups)
    loop = asyncio.get_running_loop()
    assert stand_in.time.__self__ is loop
    assert await stand_in.run_in_executor(None, lambda: 5) == 5
    lookups.close()


async def test_a_name_asked_for_again_while_its_lookup_hangs_takes_no_other_thread(
        names: Names) -> None:
    """Two threads; a name that hangs asked for twice, and again in a later round after
    its dials gave up: one lookup of it is made, on one thread, and the other thread is
    free for a name that resolves. Rounds queue nothing behind it."""
    resolver = LookupResolver(threads_max=2)
    for _ in range(3):  # members rounds: each dials the hanging name again
        asks = [asyncio.create_task(resolver.resolve("peer.hang", 80)) for _ in range(2)]
        good = asyncio.create_task(resolver.resolve("localhost", 80))
        await until(good.done)
        assert "127.0.0.1" in [found["host"] for found in good.result()]
        assert names.begun == ["peer.hang"] and resolver.lookups.queued == 0
        for ask in asks:  # their dials time out
            ask.cancel()
        await asyncio.gather(*asks, return_exceptions=True)
    assert len(resolver.lookups.threads) == 2
    asks = [asyncio.create_task(resolver.resolve("peer.hang", 80)) for _ in range(2)]
    await until(lambda: sum(shared.waiting
                            for shared in resolver.lookups._in_flight.values()) == 2)
    names.released.set()  # its one answer reaches every one still asking
    for result in await asyncio.gather(*asks, return_exceptions=True):
        assert isinstance(result, socket.gaierror)
    assert names.begun == ["peer.hang"]
    await resolver.close()


async def test_lookups_beyond_the_queue_bound_are_refused_and_given_up_ones_leave_it(
        names: Names) -> None:
    """One thread held by a name that hangs, two lookups queued behind it: a third is
    refused with the lookup error at once; one queued given up makes room again."""
    resolver = LookupResolver(threads_max=1, queued_max=2)
    held = asyncio.create_task(resolver.resolve("held.hang", 80))
    await until(lambda: names.begun == ["held.hang"])
    queued = [asyncio.create_task(resolver.resolve(f"q{i}.hang", 80)) for i in range(2)]
    await until(lambda: resolver.lookups.queued == 2)
    one_more = asyncio.create_task(resolver.resolve("one.more.hang", 80))
    await until(one_more.done)
    with pytest.raises(socket.gaierror, match="too many names waiting to be looked up"):
        one_more.result()
    queued[0].cancel()  # its dial timed out
    await asyncio.gather(queued[0], return_exceptions=True)
    assert resolver.lookups.queued == 1
    later = asyncio.create_task(resolver.resolve("later.hang", 80))
    await until(lambda: resolver.lookups.queued == 2)
    names.released.set()
    await asyncio.gather(held, queued[1], later, return_exceptions=True)
    assert names.begun == ["held.hang", "q1.hang", "later.hang"]  # q0 never made
    await resolver.close()
