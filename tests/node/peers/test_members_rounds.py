"""node.peers.learning with real nodes in this process: a members round asks its peers
for their lists at once, ``MEMBER_ASKS_AT_ONCE`` at most, so a peer slow to answer (paused
mid-answer, behind a route that accepts and says nothing) delays no other peer's list;
a fault of one ask ends no other, and a cancel (the node's stop) ends them all. The asks
made as links come up count in the same bound, and one whose link ended while it waited
is dropped; the node's stop ends those too."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
import structlog
from aiohttp import web

from node.peers import learning as learning_module
from node.peers.learning import MEMBER_ASKS_AT_ONCE
from node.peers.members_fetch import fetch_members
from node.peers.runner import linked_nodes
from node.server.run import RunningNode
from tests.node.peers.support import (
    FAST,
    SECRET,
    NodeFactory,
    link_up_asks,
    linked_to,
    rounds_by_hand,
    serving,
    until,
)

#: Longer than the tests' deadline (``DEADLINE_S``): a held ask does not end by its
#: time-out while a test waits.
PATIENT_ASKS = dataclasses.replace(FAST, connect_timeout_s=600.0)


@dataclasses.dataclass
class Held:
    """The asks for the member lists of some peers, sent to a server that answers each
    only once the test releases it (``release``): with the list ``lists`` gives for the
    peer, else a 503. What the learner's asks did so far, by peer URL: ``asked``,
    ``asking`` (in flight now), ``peak`` (the most in flight at once), ``cancelled``."""

    server: str
    peers: list[str]
    released: dict[str, asyncio.Event]
    lists: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    asking: set[str] = dataclasses.field(default_factory=set)
    asked: list[str] = dataclasses.field(default_factory=list)
    peak: int = 0
    cancelled: list[str] = dataclasses.field(default_factory=list)

    def release(self, url: str) -> None:
        self.released[url].set()


@contextlib.asynccontextmanager
async def held(monkeypatch: pytest.MonkeyPatch, peers: list[str]) -> AsyncIterator[Held]:
    """The asks of the learner for the lists of ``peers`` are held (``Held``); those of
    any other peer go to it. Every ask is released as the block ends."""
    released = {url: asyncio.Event() for url in peers}

    async def answering(request: web.Request) -> web.Response:
        url = peers[int(request.path.split("/")[1])]
        await released[url].wait()
        if url in holding.lists:
            return web.json_response(holding.lists[url])
        return web.Response(status=503, text="busy")

    async def asked(http: Any, url: str, **kwargs: Any) -> object:
        if url not in peers:
            return await fetch_members(http, url, **kwargs)
        holding.asked.append(url)
        holding.asking.add(url)
        holding.peak = max(holding.peak, len(holding.asking))
        try:
            return await fetch_members(http, f"{holding.server}/{peers.index(url)}", **kwargs)
        except asyncio.CancelledError:
            holding.cancelled.append(url)
            raise
        finally:
            holding.asking.discard(url)

    async with serving(answering) as server:
        holding = Held(server, peers, released)
        monkeypatch.setattr("node.peers.learning.fetch_members", asked)
        try:
            yield holding
        finally:
            for event in released.values():
                event.set()  # the held answers go now, not cut by the server's stop


def listing(node: RunningNode) -> dict[str, Any]:
    """A member list that names ``node`` at its address."""
    return {"node_id": "n-lister", "advertise_url": None,
            "peers": [{"url": node.url, "node_id": node.astore.node_id}]}


async def test_a_peer_slow_to_list_its_members_delays_no_other_peers_list(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """``slow``, dialed first, is asked first and does not answer: ``lister``'s list,
    asked in the same round, names ``third``, dialed while ``slow``'s ask is pending."""
    learner, [slow, lister] = await linked_to(make_node, 2, PATIENT_ASKS)
    third = await make_node(cluster_secret=SECRET, sync=FAST)
    lister.gossip.learning.members[third.url] = third.astore.node_id
    async with held(monkeypatch, [slow.url]) as holding:
        round_ = asyncio.create_task(learner.gossip.learn_once())
        try:
            await until(lambda: f"url:{third.url}" in learner.gossip.runners)
            assert holding.asking == {slow.url} and not round_.done()
        finally:
            holding.release(slow.url)
            await round_
    assert holding.asking == set() and holding.cancelled == []


async def test_a_fault_of_one_ask_ends_no_other_ask_of_the_round(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The list of ``faulty`` meets a fault of ours (logged at error, with the peer)
    while ``slow``'s ask is pending: that ask goes on, and the node its list names,
    once it answers, is dialed."""
    learner, [slow, faulty] = await linked_to(make_node, 2, PATIENT_ASKS)
    third = await make_node(cluster_secret=SECRET, sync=FAST)
    member_urls = learning_module.member_urls

    def failing(listed: Any, own: Any, refusals: Any, url: str | None) -> Any:
        if url == faulty.url:
            raise KeyError("a bug of ours")
        return member_urls(listed, own, refusals, url)

    monkeypatch.setattr("node.peers.learning.member_urls", failing)
    with structlog.testing.capture_logs() as said:
        async with held(monkeypatch, [slow.url]) as holding:
            holding.lists[slow.url] = listing(third)
            round_ = asyncio.create_task(learner.gossip.learn_once())
            await until(lambda: any(entry["event"] == "learning members failed"
                                    for entry in said))
            assert holding.asking == {slow.url}
            holding.release(slow.url)
            await round_
    assert f"url:{third.url}" in learner.gossip.runners
    assert [(entry["log_level"], entry["peer"], entry.get("exc_info")) for entry in said
            if entry["event"] == "learning members failed"] == [("error", faulty.url, True)]
    assert holding.cancelled == []


async def test_a_cancelled_round_ends_every_ask_and_is_raised(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The node's stop cancels its members round while two peers' asks are pending:
    both end, and the round raises the cancel (it is not taken for an ask's failure)."""
    learner, peers = await linked_to(make_node, 2, PATIENT_ASKS)
    urls = [peer.url for peer in peers]
    async with held(monkeypatch, urls) as holding:
        round_ = asyncio.create_task(learner.gossip.learn_once())
        await until(lambda: holding.asking == set(urls))
        round_.cancel()
        with pytest.raises(asyncio.CancelledError):
            await round_
        assert holding.asking == set() and sorted(holding.cancelled) == sorted(urls)
    assert all(runner.members_failure is None for runner in learner.gossip.runners.values())


async def test_no_more_than_member_asks_at_once_are_in_flight(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """One peer more than ``MEMBER_ASKS_AT_ONCE``, none answering: that many are asked;
    the last is asked once one of them answered."""
    learner, peers = await linked_to(make_node, MEMBER_ASKS_AT_ONCE + 1, PATIENT_ASKS)
    urls = [peer.url for peer in peers]
    async with held(monkeypatch, urls) as holding:
        for url in urls:
            holding.lists[url] = {"node_id": "n-lister", "advertise_url": None, "peers": []}
        round_ = asyncio.create_task(learner.gossip.learn_once())
        await until(lambda: len(holding.asking) == MEMBER_ASKS_AT_ONCE)
        first = next(iter(holding.asking))
        holding.release(first)
        await until(lambda: len(holding.asking) == MEMBER_ASKS_AT_ONCE
                    and first not in holding.asking)
        for url in urls:
            holding.release(url)
        await round_
    assert holding.peak == MEMBER_ASKS_AT_ONCE
    assert sorted(holding.asked) == sorted(urls) and holding.cancelled == []


async def _one_peer_more_than_asks(make_node: NodeFactory
                                   ) -> tuple[RunningNode, list[RunningNode]]:
    """A learner whose rounds the test runs by hand, patient with its asks, and one peer
    more than ``MEMBER_ASKS_AT_ONCE``, not yet linked."""
    learner = await make_node(cluster_secret=SECRET, sync=PATIENT_ASKS)
    peers = [await make_node(cluster_secret=SECRET, sync=FAST)
             for _ in range(MEMBER_ASKS_AT_ONCE + 1)]
    await rounds_by_hand(learner)
    return learner, peers


async def test_asks_made_as_links_come_up_share_the_bound_of_member_asks_at_once(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """One peer more than ``MEMBER_ASKS_AT_ONCE`` linked, each asked for its list as its
    link comes up, none answering: that many are asked; the last once one answered (a
    node dialing many peers at its start opens no more asks at once than a round)."""
    learner, peers = await _one_peer_more_than_asks(make_node)
    urls = [peer.url for peer in peers]
    async with held(monkeypatch, urls) as holding:
        for url in urls:
            holding.lists[url] = {"node_id": "n-lister", "advertise_url": None, "peers": []}
        for url in urls:
            assert await learner.gossip.add_peer(url, learned=False)
        # Each link's ask is made once its hello is taken in, before it counts as linked.
        await until(lambda: len(linked_nodes(learner.gossip.runners.values())) == len(peers)
                    and len(holding.asking) >= MEMBER_ASKS_AT_ONCE)
        for url in urls:
            holding.release(url)
        await until(lambda: len(holding.asked) == len(peers))
        await link_up_asks(learner)
    assert holding.peak == MEMBER_ASKS_AT_ONCE
    assert sorted(holding.asked) == sorted(urls) and holding.cancelled == []


async def test_an_ask_made_as_a_link_came_up_is_dropped_once_another_link_is_up(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every slot taken by a round's held asks, ``flapping`` links, and its ask waits;
    the link ends and the next comes up, whose ask waits too. Once the slots are free
    ``flapping`` is asked once, on the link up: the first link's ask is dropped (it
    would ask on the new link again, a second slot taken for one link)."""
    learner, peers = await linked_to(make_node, MEMBER_ASKS_AT_ONCE, PATIENT_ASKS)
    flapping = await make_node(cluster_secret=SECRET, sync=FAST)
    urls = [peer.url for peer in peers]
    async with held(monkeypatch, [*urls, flapping.url]) as holding:
        for url in [*urls, flapping.url]:
            holding.lists[url] = {"node_id": "n-lister", "advertise_url": None, "peers": []}
        round_ = asyncio.create_task(learner.gossip.learn_once())
        await until(lambda: holding.asking == set(urls))
        assert await learner.gossip.add_peer(flapping.url, learned=False)
        runner = learner.gossip.runners[f"url:{flapping.url}"]
        node = flapping.astore.node_id
        await until(lambda: runner.linked_to == node)
        runner.drop = "test: the link ends"
        runner.wake.set()
        await until(lambda: runner.links == 2 and runner.linked_to == node)
        assert holding.asking == set(urls)  # both of its asks wait for a slot
        for url in [*urls, flapping.url]:
            holding.release(url)
        await round_
        await link_up_asks(learner)
    assert holding.asked.count(flapping.url) == 1
    assert sorted(holding.asked) == sorted([*urls, flapping.url])


async def test_the_nodes_stop_ends_the_asks_made_as_links_came_up(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """One peer more than ``MEMBER_ASKS_AT_ONCE`` linked, none answering its ask made
    as its link came up: the node keeps each ask's task, and its stop ends them all,
    those in flight and the one waiting for a slot (none is left running, nor ends
    with a fault)."""
    learner, peers = await _one_peer_more_than_asks(make_node)
    urls = [peer.url for peer in peers]
    async with held(monkeypatch, urls) as holding:
        for url in urls:
            assert await learner.gossip.add_peer(url, learned=False)
        await until(lambda: len(linked_nodes(learner.gossip.runners.values())) == len(peers)
                    and len(holding.asking) == MEMBER_ASKS_AT_ONCE)
        asks = [task for task in learner.gossip._tasks if task.get_name() == "learn-members"]
        assert len(asks) == len(peers) and not any(task.done() for task in asks)
        await learner.stop()
    assert all(task.cancelled() for task in asks)
    assert len(holding.cancelled) == MEMBER_ASKS_AT_ONCE
    assert sorted(holding.asked) == sorted(holding.cancelled)
