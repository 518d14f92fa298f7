"""node.peers.learning with real nodes in this process: the addresses learned from
peers' member lists and from the membership records, which are forgotten, which get the
cluster secret, and what each node is said to advertise."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog

from node.peers.addresses import RefusalsLogged
from node.peers.holds import ANSWERED_BY_HOLD_ROUNDS
from node.peers.member_lists import SKIPPED, lister, member_urls
from node.peers.members_fetch import fetch_members
from node.peers.runner import linked_nodes
from node.peers.transport import DEVICE_HEADER, NODE_HEADER
from node.server.run import RunningNode
from sync.peer.config import SyncConfig
from tests.node.conftest import EventFactory
from tests.node.peers.support import (
    DEADLINE_S,
    FAST,
    SECRET,
    NodeFactory,
    add_member,
    forgotten,
    link_up_asks,
    listed_as,
    member_link,
    ordered,
    recording_server,
    refusals,
    rounds_by_hand,
    stopped_laptop,
    until,
)
from tests.support.addresses import HIDDEN_PASSWORDS, HIDDEN_TOKENS
from tests.support.certs import make_ca, make_cert
from tests.support.processes import free_port
from tests.support.waits import POLL_S


async def test_a_learned_address_of_this_very_node_is_forgotten(
        make_node: NodeFactory) -> None:
    node = await make_node(cluster_secret=SECRET, sync=FAST)
    itself = node.url.replace("127.0.0.1", "localhost")  # every dial connects
    assert await node.gossip.add_peer(itself, learned=True)
    assert await forgotten(node, itself)


async def test_a_dead_learned_address_is_forgotten(make_node: NodeFactory) -> None:
    node = await make_node(cluster_secret=SECRET, sync=FAST)
    dead = f"http://127.0.0.1:{free_port()}"
    assert await node.gossip.add_peer(dead, learned=True)
    assert await forgotten(node, dead)


async def test_a_learned_address_that_refuses_is_warned_of_once(
        make_node: NodeFactory) -> None:
    """A peer's member list names an address where a node now refuses this one (one of
    another cluster took the port of a node that stopped). The address is forgotten
    after its failures and learned again at every members round: its refusal is
    warned of once, not at every round."""
    stranger = await make_node(cluster_secret="w" * 32)
    node = await make_node(cluster_secret=SECRET, sync=FAST)
    with structlog.testing.capture_logs() as said:
        for _ in range(3):
            assert await node.gossip.add_peer(stranger.url, learned=True)
            assert await forgotten(node, stranger.url)
    warned = [entry for entry in said if entry["event"] == "peer refused this device"]
    assert len(warned) == 1, warned
    assert "the cluster secret this node gave does not match" in warned[0]["reason"]


async def test_a_learned_address_is_not_held_off_while_this_node_reaches_no_peer(
        make_node: NodeFactory) -> None:
    """Its own network down, a node finds every learned address failing: none is held
    off for that, so a peer's list brings them back at the next round once it is up."""
    node = await make_node(cluster_secret=SECRET, sync=FAST)
    dead = f"http://127.0.0.1:{free_port()}"
    assert await node.gossip.add_peer(dead, learned=True)
    assert await forgotten(node, dead)
    assert len(node.gossip.learning.forgotten) == 0


def test_a_members_list_says_a_peer_is_linked_only_with_true() -> None:
    """An older node's list says nothing of links; a malformed flag says nothing either."""
    listed = {"node_id": "n0", "advertise_url": "http://a:1", "peers": [
        {"url": "http://b:1", "node_id": "n1"},
        {"url": "http://c:1", "node_id": "n2", "linked": "true"},
        {"url": "http://d:1", "node_id": "n3", "linked": True}]}
    assert [(one.url, one.linked) for one in member_urls(listed)] == [
        ("http://a:1", True), ("http://b:1", False), ("http://c:1", False),
        ("http://d:1", True)]


@pytest.mark.parametrize("url", [*HIDDEN_PASSWORDS, *HIDDEN_TOKENS, "http:///hub:7878",
                                 "http://hub:0", "http://hub:99999", "http://[hub:7878"])
def test_an_address_a_members_list_gives_is_checked_as_a_peer_url(url: str) -> None:
    """None could be dialed, and the first ones hold a password ("hunter2"): such an
    address is skipped (neither dialed nor said to be the lister's own) and logged by
    why only, once for the lister and the reason (``node.peers.addresses``)."""
    listed = {"node_id": "n0", "advertise_url": url,
              "peers": [{"url": url, "node_id": "n1"}, {"url": "http://b:1", "node_id": "n2"}]}
    logged = RefusalsLogged()
    with structlog.testing.capture_logs() as said:
        own = lister(listed, logged)
        assert [one.url for one in member_urls(listed, own, logged)] == ["http://b:1"]
        assert own == ("n0", None)
    assert [entry["event"] for entry in said] == ["listed address skipped"]
    assert "hunter2" not in repr(said)


async def test_a_learned_address_gets_the_secret_only_if_a_secret_holder_gave_it(
        make_node: NodeFactory) -> None:
    """x lists the address a device's link advertised and an address it was given
    (``--peer``); y, which learns both from x, gives the cluster secret to the second
    only: the first could be a server of whoever holds a device key."""
    x = await make_node(cluster_secret=SECRET, sync=FAST)
    y = await make_node(cluster_secret=SECRET, sync=FAST)
    async with recording_server() as (advertised, to_advertised), \
            recording_server() as (configured, to_configured), \
            member_link(x, advertise=advertised):
        assert await x.gossip.add_peer(configured, learned=False)
        listed = {peer["url"]: peer["cluster_secret"]
                  for peer in x.gossip.member_list()["peers"]}
        assert listed[advertised] is False and listed[configured] is True
        assert await y.gossip.add_peer(x.url, learned=False)
        y_node = y.gossip.astore.node_id

        def from_y(seen: list[dict[str, str]]) -> list[dict[str, str]]:
            return [headers for headers in seen if headers.get(NODE_HEADER) == y_node]

        async def y_asked_both() -> bool:  # each look starts a members round, which dials
            await y.gossip.learn_once()
            return bool(from_y(to_advertised) and from_y(to_configured))

        await until(y_asked_both, poll_s=POLL_S)
    assert all("Authorization" not in headers for headers in from_y(to_advertised))
    assert all(headers.get("Authorization") == f"Bearer {SECRET}"
               for headers in from_y(to_configured))


async def test_a_peer_dialed_without_the_secret_is_asked_for_members_without_it(
        make_node: NodeFactory) -> None:
    """x links with z on device keys alone (z's address came from a member, not from a
    holder of the secret): asking z which nodes it knows, x does not give the secret.
    z holds it too, so with it z would list the address it was given, and x dial it."""
    x = await make_node(cluster_secret=SECRET, sync=FAST)
    z = await make_node(cluster_secret=SECRET, sync=FAST)
    for node, other in ((x, z), (z, x)):
        await add_member(node, "other", device_id=other.device.device_id)
    async with recording_server() as (listed, _seen):
        assert await z.gossip.add_peer(listed, learned=False)
        assert await x.gossip.add_peer(z.url, learned=True, secret=False)
        runner = x.gossip.runners[f"url:{z.url}"]
        await until(lambda: runner.state == "up")
        for _ in range(5):
            await x.gossip.learn_once()
        assert f"url:{listed}" not in x.gossip.runners
        # With the secret z lists it (so the assertion above is about the secret).
        runner.secret = True
        await x.gossip.learn_once()
        assert f"url:{listed}" in x.gossip.runners


async def test_a_member_address_is_dialed_without_the_cluster_secret(
        make_node: NodeFactory) -> None:
    """Any member may write the address in its membership record: dialing it, a node
    proves its key and does not hand the cluster secret to whoever answers there."""
    async with recording_server() as (address, seen):
        node = await make_node(cluster_secret=SECRET)
        await add_member(node, "phone", address)

        async def dialed() -> list[dict[str, str]]:  # each look dials the members first
            await node.gossip.dial_members()
            return seen

        first = (await until(dialed, poll_s=POLL_S))[0]
        assert "Authorization" not in first and DEVICE_HEADER in first


async def test_a_member_address_is_dialed_on_however_often_it_fails(
        make_node: NodeFactory) -> None:
    """A member device's advertised address (a laptop shut for the night) is not
    forgotten after ``learned_failures_max`` failed dials like an address a peer listed:
    it was, and taken up again at every members round with a fresh back-off."""
    node = await make_node(sync=FAST)
    dead = f"http://127.0.0.1:{free_port()}"
    await add_member(node, "laptop", dead)
    await node.gossip.dial_members()
    runner = node.gossip.runners[f"url:{dead}"]
    await until(lambda: runner.machine.failures >= 2 * FAST.learned_failures_max)
    assert node.gossip.runners.get(f"url:{dead}") is runner


async def test_member_lists_are_asked_for_only_over_links_that_open_them(
        make_node: NodeFactory, tmp_path: Path) -> None:
    """A node with a CA and no cluster secret dials ``plain``, which took it as a
    member, at an http:// address: no certificate is shown there, nor a secret given,
    and ``plain`` would answer its member list 401 (``members not listed``, at every
    round). It is not asked, as the link comes up or at a round; ``tls``, whose
    certificate the CA verified, is asked and answers."""
    certs = tmp_path / "certs"
    certs.mkdir()
    ca = make_ca(certs, "ca")

    def tls_settings(name: str) -> dict[str, Any]:
        cert, key = make_cert(certs, name, ca)
        return {"tls_cert": cert, "tls_key": key, "tls_ca": ca[0]}

    node = await make_node(sync=FAST, **tls_settings("node"))
    plain = await make_node(sync=FAST)
    tls = await make_node(sync=FAST, **tls_settings("tls"))
    await add_member(plain, "node", device_id=node.device.device_id)
    peers = {plain.astore.node_id, tls.astore.node_id}
    with structlog.testing.capture_logs() as said:
        for peer in (plain, tls):
            assert await node.gossip.add_peer(peer.url, learned=False)
        await until(lambda: linked_nodes(node.gossip.runners.values()) == peers)
        # The asks made as the links came up, then a round's.
        await link_up_asks(node)
        await node.gossip.learn_once()
    assert [entry for entry in said if entry["event"] == "members not listed"] == []
    assert tls.astore.node_id in node.gossip.learning.advertised_by  # its list's word
    assert plain.astore.node_id not in node.gossip.learning.advertised_by


async def test_a_peer_that_takes_a_new_origin_mid_link_is_listed_under_it(
        make_node: NodeFactory, event_body: EventFactory) -> None:
    """A node whose origin is retired takes a new one and names it in its next hello, on
    the same link: the node that dialed it lists its address under the new id (and
    checks it against its other links), not the retired one."""
    hellos = dataclasses.replace(FAST, pull_interval_s=0.1)
    x = await make_node(cluster_secret=SECRET, sync=hellos)
    y = await make_node(cluster_secret=SECRET, sync=hellos)
    old = y.astore.node_id
    async with aiohttp.ClientSession(base_url=y.url) as http, \
            http.post("/v1/sessions/s/events", json=event_body(1)) as answer:
        assert answer.status == 201
    assert await x.gossip.add_peer(y.url, learned=False)

    def listed() -> str | None:
        return {peer["url"]: peer["node_id"]
                for peer in x.gossip.member_list()["peers"]}.get(y.url)

    async def old_listed_and_held() -> bool:
        return listed() == old and old in await x.astore.read(lambda s: s.version)

    await until(old_listed_and_held)
    await x.astore.write(lambda store: store.retire(old))
    await until(lambda: y.astore.node_id != old and listed() == y.astore.node_id)
    assert [runner.node for runner in x.gossip.runners.values()] == [y.astore.node_id]


async def test_what_a_node_advertises_is_let_go_when_its_last_link_ends(
        make_node: NodeFactory) -> None:
    """A laptop advertised an address to the hub, then stopped: what it said goes with
    its link (it may come back advertising another; the hub's list said linked of the
    old one, dead, until it next read the laptop's own list)."""
    hub = await make_node(cluster_secret=SECRET)
    laptop = await stopped_laptop(make_node, hub)
    assert laptop.astore.node_id not in hub.gossip.learning.advertised_by


async def test_what_nodes_advertise_is_kept_first_for_those_linked(
        make_node: NodeFactory) -> None:
    """Past ``peers_max`` nodes, what a node with no link up advertised goes first (an
    id a node left, say), not the oldest entry, a node linked now."""
    hub = await make_node(cluster_secret=SECRET, sync=SyncConfig(peers_max=2))
    laptop = await make_node(cluster_secret=SECRET, peers=[hub.url])
    await listed_as(hub, laptop, "up")
    learning = hub.gossip.learning
    assert list(learning.advertised_by) == [laptop.astore.node_id]
    learning.advertises("n-gone", None)
    learning.advertises("n-gone-too", "http://gone.example:8765")
    assert list(learning.advertised_by) == [laptop.astore.node_id, "n-gone-too"]
    learning.reached_as_duplicate(laptop.astore.node_id, laptop.url)  # where dials reach
    learning.reached_as_duplicate("n-gone", "http://gone.example:1")
    learning.reached_as_duplicate("n-gone-too", "http://gone.example:2")
    assert list(learning.reached_as) == [laptop.astore.node_id, "n-gone-too"]


async def test_a_learned_address_dropped_as_a_second_link_names_no_node_from_a_list(
        make_node: NodeFactory) -> None:
    """x dials the node; a list named x's own address too, and the node dialed it: that
    link is dropped (x's is kept, x's node id being the smaller) and the address is not
    dialed again; the node the list named there goes with it (it stayed)."""
    x, node = await ordered(make_node, smaller_first=True)
    assert await x.gossip.add_peer(node.url, learned=False)
    await listed_as(node, x, "up")
    node.gossip.learning.listed_nodes[x.url] = x.astore.node_id  # as learn_from keeps it
    with structlog.testing.capture_logs() as said:
        assert await node.gossip.add_peer(x.url, learned=True)
        assert not await forgotten(node, x.url)  # listed still: the list names it
    assert "peer address not dialed again" in [entry["event"] for entry in said]
    assert x.url not in node.gossip.learning.listed_nodes


#: What a node with a CA is told when its peer refuses it its member list.
LIST_REFUSED = "cannot list members of {}: it answered HTTP 401: peer credentials missing or wrong"


async def refusing_peer(make_node: NodeFactory, tmp_path: Path) -> tuple[Any, Any]:
    """A node with a CA and no cluster secret, and ``peer``, which took it as a member,
    linked by the node's dial: ``peer``'s certificate is of that CA, so the link rests
    on a verified certificate, but ``peer`` has no ``--tls-ca`` and takes none of ours,
    and answers its member list 401."""
    certs = tmp_path / "certs"
    certs.mkdir()
    ca = make_ca(certs, "ca")
    cert, key = make_cert(certs, "node", ca)
    node = await make_node(sync=FAST, tls_cert=cert, tls_key=key, tls_ca=ca[0])
    peer_cert, peer_key = make_cert(certs, "peer", ca)
    peer = await make_node(sync=FAST, tls_cert=peer_cert, tls_key=peer_key)  # no CA
    trusted = ssl.create_default_context(cafile=str(ca[0]))
    async with aiohttp.ClientSession() as http, http.post(
            peer.url + "/v1/devices", ssl=trusted,
            json={"device_id": node.device.device_id, "name": "node"}) as reply:
        assert reply.status == 201
    assert await node.gossip.add_peer(peer.url, learned=False)
    await until(lambda: linked_nodes(node.gossip.runners.values()) == {peer.astore.node_id})
    return node, peer


async def test_a_peer_that_refuses_its_member_list_is_asked_again_only_after_a_hold(
        make_node: NodeFactory, tmp_path: Path) -> None:
    """The refusal cannot change while the link is up (it is ``peer``'s configuration):
    asked and said once, not at every round. But the list is a request of its own to
    the address, which another node may answer (a load balancer, a name pointing
    elsewhere now): after ``ANSWERED_BY_HOLD_ROUNDS`` rounds it is asked again, the
    refusal said again at debug, and held again."""
    with structlog.testing.capture_logs() as said:
        node, peer = await refusing_peer(make_node, tmp_path)
        await rounds_by_hand(node)  # a round of its own would ask past the hold too
        await link_up_asks(node)
        for _ in range(3):
            await node.gossip.learn_once()
        assert refusals(said) == [("info", LIST_REFUSED.format(peer.url))]
        node.gossip.learning.rounds += ANSWERED_BY_HOLD_ROUNDS
        for _ in range(3):
            await node.gossip.learn_once()
    assert refusals(said) == [("info", LIST_REFUSED.format(peer.url)),
                              ("debug", LIST_REFUSED.format(peer.url))]


async def test_the_members_rounds_end_when_cancelled_as_the_membership_changes(
        make_node: NodeFactory) -> None:
    """The node's stop cancels its members rounds, waiting for the next change or
    round; a change told at that moment (a record arriving) starts no round after the
    cancel: ``asyncio.wait_for`` returned the change and the rounds ran on."""
    node = await make_node(sync=FAST)
    [rounds] = [task for task in node.gossip._tasks if task.get_name() == "members"]
    await asyncio.sleep(0)  # waiting for the next round, no peer to ask
    node.gossip.learning.changed.set()
    rounds.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(DEADLINE_S):
            await rounds


async def test_a_member_list_refused_is_said_once_for_overlapping_asks_and_not_of_a_new_link(
        make_node: NodeFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two asks on one link at once (a round's and another) say the refusal once. The
    link ends and is dialed anew: a refusal that answers an ask of the link gone, taken
    in only then, neither holds the new link nor is said; the new link is asked, and its
    refusal said once (at info: news of that link)."""
    node, peer = await refusing_peer(make_node, tmp_path)
    await rounds_by_hand(node)
    await link_up_asks(node)
    runner = node.gossip.runners[f"url:{peer.url}"]
    learning = node.gossip.learning
    first = runner.links
    refused = LIST_REFUSED.format(peer.url)
    # Per link, what lets the peer's answer to an ask made on it be taken in.
    late = {first: asyncio.Event(), first + 1: asyncio.Event()}
    asked_on: list[int] = []

    async def answered_late(*args: Any, **kwargs: Any) -> object:
        link = runner.links  # what ``learn_from`` read just before
        asked_on.append(link)
        try:
            return await fetch_members(*args, **kwargs)
        finally:
            if link in late:
                await late[link].wait()

    with structlog.testing.capture_logs() as said:
        learning.rounds += ANSWERED_BY_HOLD_ROUNDS  # the hold of the first refusal ends
        await asyncio.gather(learning.learn_from(runner), learning.learn_once())
        assert refusals(said) == [("debug", refused)]
        learning.rounds += ANSWERED_BY_HOLD_ROUNDS
        monkeypatch.setattr("node.peers.learning.fetch_members", answered_late)
        old = asyncio.create_task(learning.learn_from(runner))
        await until(lambda: first in asked_on)
        runner.drop = "test: the link ends"
        runner.wake.set()
        await until(lambda: runner.state != "up" or runner.links != first)
        await until(lambda: runner.linked_to == peer.astore.node_id)  # the dial loop's
        assert runner.links == first + 1
        await until(lambda: first + 1 in asked_on)  # asked as the new link came up
        late[first].set()
        await old
        assert runner.members_failure is None
        assert refusals(said) == [("debug", refused)]
        late[first + 1].set()
        await link_up_asks(node)
        for _ in range(2):
            await learning.learn_once()
    assert refusals(said) == [("debug", refused), ("info", refused)]
    assert runner.members_failure is not None and runner.members_failure.link == first + 1


async def test_a_member_list_refused_again_after_one_was_read_is_news(
        make_node: NodeFactory) -> None:
    """The list is a request of its own to the address, whose answer may change on one
    link (another node answering there): refused, then read once the hold ended, then
    refused again, the second refusal is said at info like the first, not as a repeat
    at debug."""
    x = await make_node(cluster_secret=SECRET, sync=FAST)
    y = await make_node(cluster_secret=SECRET, sync=FAST)
    assert await x.gossip.add_peer(y.url, learned=False)
    await until(lambda: linked_nodes(x.gossip.runners.values()) == {y.astore.node_id})
    await rounds_by_hand(x)
    await link_up_asks(x)
    runner = x.gossip.runners[f"url:{y.url}"]
    learning = x.gossip.learning
    link = runner.links
    answering = y.gossip.config
    refusing = dataclasses.replace(answering, cluster_secret="w" * 32)
    try:
        with structlog.testing.capture_logs() as said:
            for config in (refusing, answering, refusing):
                y.gossip.config = config
                learning.rounds += ANSWERED_BY_HOLD_ROUNDS
                await learning.learn_once()
                assert (runner.members_failure is None) == (config is answering)
    finally:
        y.gossip.config = answering
    assert runner.links == link
    assert refusals(said) == [("info", LIST_REFUSED.format(y.url))] * 2


async def _listing_an_address_no_node_could_dial(make_node: NodeFactory) -> RunningNode:
    lister_node = await make_node(cluster_secret=SECRET, sync=FAST)
    lister_node.gossip.learning.members["http:///hub"] = None  # listed, as a peer's may be
    return lister_node


async def _members_rounds(learner: RunningNode, lister_node: RunningNode,
                          rounds: int) -> None:
    """``learner`` dials ``lister_node`` and asks for its members: as the link comes up,
    then at ``rounds`` rounds."""
    assert await learner.gossip.add_peer(lister_node.url, learned=False)
    await until(lambda: lister_node.astore.node_id
                in linked_nodes(learner.gossip.runners.values()))
    await link_up_asks(learner)
    for _ in range(rounds):
        await learner.gossip.learn_once()


async def test_an_address_a_members_answer_gives_that_no_node_could_dial_is_logged_once(
        make_node: NodeFactory) -> None:
    """Asked round after round, the lister says it again: logged once, by why and its
    node id (``node.peers.addresses``), not at every round."""
    x = await _listing_an_address_no_node_could_dial(make_node)
    y = await make_node(cluster_secret=SECRET, sync=FAST)
    with structlog.testing.capture_logs() as said:
        await _members_rounds(y, x, 3)
    assert [(entry["said_by"], entry["reason"]) for entry in said
            if entry["event"] == SKIPPED] == [(x.astore.node_id, "names no host")]


async def test_two_nodes_asking_one_lister_each_log_what_it_lists_once(
        make_node: NodeFactory) -> None:
    """Each node remembers what it logged itself: one's line does not silence the
    other's, nor does either log at every round."""
    x = await _listing_an_address_no_node_could_dial(make_node)
    y = await make_node(cluster_secret=SECRET, sync=FAST)
    z = await make_node(cluster_secret=SECRET, sync=FAST)
    with structlog.testing.capture_logs() as said:
        for learner in (y, z):
            await _members_rounds(learner, x, 2)
    assert [entry["said_by"] for entry in said if entry["event"] == SKIPPED] == [
        x.astore.node_id] * 2


async def test_a_lister_that_names_no_node_is_logged_once_by_the_address_dialed(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A members answer that names no node id (not one of this project's nodes, which
    all name theirs): told from other listers by the address this node dialed, it is
    logged once too, not at every round."""
    x = await _listing_an_address_no_node_could_dial(make_node)
    answer = x.gossip.learning.member_list
    monkeypatch.setattr(x.gossip.learning, "member_list",
                        lambda: {**answer(), "node_id": None})
    y = await make_node(cluster_secret=SECRET, sync=FAST)
    with structlog.testing.capture_logs() as said:
        await _members_rounds(y, x, 3)
    assert [(entry["said_by"], entry["peer"]) for entry in said
            if entry["event"] == SKIPPED] == [(None, x.url)]
