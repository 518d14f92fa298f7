"""Peers' member lists as node.peers.learning reads them, with real nodes in this process:
a peer is linked only if its list says ``true``; an address a list gives is checked as a
peer URL, and one no node could dial is logged once per lister; a list is asked for only
over links that open it, and a list refused is said once, held off, and said again as
news once read in between."""

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
from node.server.run import RunningNode
from tests.node.peers.support import (
    FAST,
    SECRET,
    NodeFactory,
    add_member,
    link_up_asks,
    refusals,
    rounds_by_hand,
    until,
)
from tests.support.addresses import HIDDEN_PASSWORDS, HIDDEN_TOKENS
from tests.support.certs import make_ca, make_cert


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
