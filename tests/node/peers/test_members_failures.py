"""node.peers.learning with real nodes in this process: an ask for a peer's member list
that fails other than by a refusal (401, 403) is logged once for the link and kind of
failure, repeats at debug, and a list read on the link makes the next failure news
again. An answer that will not change (a 404 of an older node, a 405, a 501, a body
that is no member list) holds asks off as a refusal does; one that may pass by (a 502,
503, 504), or no answer (the connection refused, a time-out), does not. Each kind of
failure is said at info the first time on the link, whatever came between. An address
with a query (a credential may be in it), in a peer's list, is skipped. Faults of ours
met learning members: ``test_members_faults_met``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
import structlog

from node.peers.holds import ANSWERED_BY_HOLD_ROUNDS
from node.peers.member_lists import SKIPPED
from node.peers.members_fetch import fetch_members
from tests.node.peers.support import (
    ROUNDS,
    NodeFactory,
    answer,
    linked_to,
    refusals,
    serving,
)
from tests.support.processes import free_port


def asked_at(monkeypatch: pytest.MonkeyPatch, where: Callable[[], str]) -> None:
    """The node's asks for member lists go, over HTTP, to the address ``where()`` gives
    at the time of each ask, not to the peer's (a server there answers as an older node
    or another server would at the peer's own)."""
    async def elsewhere(http: Any, url: str, **kwargs: Any) -> object:
        return await fetch_members(http, where(), **kwargs)

    monkeypatch.setattr("node.peers.learning.fetch_members", elsewhere)


async def test_a_404_is_logged_once_for_the_link_and_held_off_until_a_list_is_read(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    node, [peer] = await linked_to(make_node, 1)
    asks: list[str] = []
    async with serving(answer(404, "Not Found", asks=asks)) as older:
        answering = [older]
        asked_at(monkeypatch, lambda: answering[0])
        said404 = f"cannot list members of {older}: it answered HTTP 404: Not Found"
        with structlog.testing.capture_logs() as said:
            for _ in range(ROUNDS):
                await node.gossip.learn_once()
            # Asked once: the same server answers the same at every round.
            assert refusals(said) == [("info", said404)] and len(asks) == 1
            node.gossip.learning.rounds += ANSWERED_BY_HOLD_ROUNDS
            await node.gossip.learn_once()
            assert refusals(said) == [("info", said404), ("debug", said404)]
            # A list read on the link: a failure after it is news again.
            answering[0] = peer.url
            node.gossip.learning.rounds += ANSWERED_BY_HOLD_ROUNDS
            await node.gossip.learn_once()
            answering[0] = older
            await node.gossip.learn_once()
        assert refusals(said) == [("info", said404), ("debug", said404), ("info", said404)]


async def test_a_body_that_is_no_member_list_is_logged_once_and_held_off(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    node, _ = await linked_to(make_node, 1)
    asks: list[str] = []
    async with serving(answer(200, json.dumps(["not", "a", "member", "list"]), asks=asks)) \
            as other:
        asked_at(monkeypatch, lambda: other)
        with structlog.testing.capture_logs() as said:
            for _ in range(ROUNDS):
                await node.gossip.learn_once()
    assert refusals(said) == [("info", f"cannot list members of {other}: "
                                        "its answer is no member list")]
    assert len(asks) == 1


async def test_no_answer_is_logged_once_for_the_link_and_asked_again_each_round(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The connection refused (as a time-out, no answer): it may pass by the next round,
    so it is asked then, but said at info only once for the link."""
    node, _ = await linked_to(make_node, 1)
    dead = f"http://127.0.0.1:{free_port()}"
    asked_at(monkeypatch, lambda: dead)
    with structlog.testing.capture_logs() as said:
        for _ in range(ROUNDS):
            await node.gossip.learn_once()
    levels = [level for level, reason in refusals(said)
              if reason.startswith(f"cannot list members of {dead}: ")]
    assert levels == ["info"] + ["debug"] * (ROUNDS - 1)


@pytest.mark.parametrize(("status", "held"), [
    (404, True), (405, True), (501, True), (500, False), (502, False), (503, False),
    (504, False)])
async def test_only_an_answer_that_will_not_change_holds_asks_off(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch, status: int,
        held: bool) -> None:
    """A route or method the server does not have (404, 405, 501) is answered again at
    every round: asked once. A proxy's 502, 503 or 504, a busy node's 503, may pass by
    the next round: asked at each, said at info once for the link all the same."""
    node, _ = await linked_to(make_node, 1)
    asks: list[str] = []
    async with serving(answer(status, "no list here", asks=asks)) as other:
        asked_at(monkeypatch, lambda: other)
        with structlog.testing.capture_logs() as said:
            for _ in range(ROUNDS):
                await node.gossip.learn_once()
    assert len(asks) == (1 if held else ROUNDS)
    assert [level for level, _ in refusals(said)] == \
        ["info"] + ([] if held else ["debug"] * (ROUNDS - 1))


async def test_a_failure_of_another_kind_on_the_link_is_said_at_info(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No answer first (the peer's address in a restart, say), then a 401: the wrong
    secret is news, said at info, not taken for a repeat of the first failure."""
    node, _ = await linked_to(make_node, 1)
    dead = f"http://127.0.0.1:{free_port()}"
    async with serving(answer(401, "wrong secret")) as refusing:
        answering = [dead]
        asked_at(monkeypatch, lambda: answering[0])
        with structlog.testing.capture_logs() as said:
            await node.gossip.learn_once()
            await node.gossip.learn_once()
            answering[0] = refusing
            await node.gossip.learn_once()
            await node.gossip.learn_once()  # held off: the refusal will not change
    assert [(level, reason.split(": ", 1)[0]) for level, reason in refusals(said)] == [
        ("info", f"cannot list members of {dead}"), ("debug", f"cannot list members of {dead}"),
        ("info", f"cannot list members of {refusing}")]
    assert "HTTP 401" in refusals(said)[-1][1]


async def test_no_answer_and_a_503_in_turn_are_each_said_at_info_once(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A peer's address that times out and answers 503 by turns (a proxy before a node
    that restarts): each kind is said at info the first time on the link, not at every
    round because it differs from the last one."""
    node, _ = await linked_to(make_node, 1)
    dead = f"http://127.0.0.1:{free_port()}"
    async with serving(answer(503, "busy")) as busy:
        answering = [dead]
        asked_at(monkeypatch, lambda: answering[0])
        with structlog.testing.capture_logs() as said:
            for where in [dead, busy, dead, busy, dead]:
                answering[0] = where
                await node.gossip.learn_once()
    assert [(level, reason.split(": ", 1)[0]) for level, reason in refusals(said)] == [
        ("info", f"cannot list members of {dead}"), ("info", f"cannot list members of {busy}"),
        ("debug", f"cannot list members of {dead}"), ("debug", f"cannot list members of {busy}"),
        ("debug", f"cannot list members of {dead}")]


async def test_a_404_after_a_503_is_said_at_info_and_held_off(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy's 503, then the 404 of a server of another kind behind it: the 404, an
    answer that will not change, starts a hold, which is news at info, not a repeat of
    the 503 at debug."""
    node, _ = await linked_to(make_node, 1)
    asks: list[str] = []
    async with serving(answer(503, "busy", asks=asks)) as busy, \
            serving(answer(404, "Not Found", asks=asks)) as other:
        answering = [busy]
        asked_at(monkeypatch, lambda: answering[0])
        with structlog.testing.capture_logs() as said:
            await node.gossip.learn_once()
            answering[0] = other
            for _ in range(ROUNDS):
                await node.gossip.learn_once()
    assert refusals(said) == [
        ("info", f"cannot list members of {busy}: it answered HTTP 503: busy"),
        ("info", f"cannot list members of {other}: it answered HTTP 404: Not Found")]
    assert len(asks) == 2  # the 404 held asks off


async def test_an_address_with_a_token_in_a_peers_list_is_neither_dialed_nor_shown(
        make_node: NodeFactory) -> None:
    """``peer`` (an older node, say) lists an address with a query, here a credential
    in it (any query is refused: the node's paths would land in it): the node skips it,
    by why only, and it reaches neither its dials, its own list nor its status."""
    node, [peer] = await linked_to(make_node, 1)
    token = "http://127.0.0.1:7/?sig=hunter2"
    peer.gossip.learning.members[token] = "n-tokened"
    with structlog.testing.capture_logs() as said:
        await node.gossip.learn_once()
    skipped = [entry["reason"] for entry in said if entry["event"] == SKIPPED]
    assert skipped == ["has a query: the node's paths would land in it"]
    assert [runner.url for runner in node.gossip.runners.values()] == [peer.url]
    async with aiohttp.ClientSession() as http, http.get(node.url + "/v1/peers") as reply:
        status = await reply.text()
    assert "hunter2" not in status + repr(node.gossip.member_list()) + repr(said)
