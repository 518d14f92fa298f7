"""node.peers.learning with real nodes in this process: a fault of ours met learning
members, before the ask (in a round's, or one made as a link comes up), in it, taking up
a list read or telling how the ask went, is logged at error with its traceback and
where it was met, once per type and place for the peer, whichever of its links (on a
link gone since, once for the node), a repeat at debug; one in a round outside any
link's ask, once per type and step until the step meets none in a round, and ends no
other step. What is remembered of them, and
its bounds: ``test_members_faults``."""

from __future__ import annotations

from typing import Any

import pytest
import structlog

from node.cli.linkproxy import LinkProxy
from node.peers import learning as learning_module
from node.peers.list_failures import (
    BEFORE_THE_ASK,
    FAULT_REPEAT_TEXT,
    FAULT_TEXT,
    IN_THE_ASK,
    LEARNING,
    TAKING_UP,
)
from node.peers.members_fetch import fetch_members
from node.peers.runner import linked_nodes
from node.server.run import RunningNode
from tests.node.peers.support import (
    FAST,
    ROUNDS,
    SECRET,
    NodeFactory,
    failing_taking_up,
    link_up_asks,
    linked_to,
    port_of,
    refusals,
    rounds_by_hand,
    until,
)
from tests.support.processes import free_port


def repeats(said: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The repeats of faults of ours logged: level and reason."""
    return [(entry["log_level"], entry["reason"]) for entry in said
            if entry["event"] == FAULT_REPEAT_TEXT]


async def test_a_fault_of_ours_after_no_answer_is_logged_at_error_with_its_traceback(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception the ask does not raise of itself (a bug of ours) after a time-out on
    the same link: at error, with the traceback, the first time; a repeat at debug."""
    node, _ = await linked_to(make_node, 1)
    dead = f"http://127.0.0.1:{free_port()}"
    broken = [False]

    async def faulty(http: Any, url: str, **kwargs: Any) -> object:
        if broken[0]:
            raise KeyError("a bug of ours")
        return await fetch_members(http, dead, **kwargs)

    monkeypatch.setattr("node.peers.learning.fetch_members", faulty)
    with structlog.testing.capture_logs() as said:
        await node.gossip.learn_once()
        broken[0] = True
        await node.gossip.learn_once()
        await node.gossip.learn_once()
    failed = [entry for entry in said if entry["event"] == "learning members failed"]
    assert [(entry["log_level"], entry.get("exc_info")) for entry in failed] == [
        ("error", True)]
    assert [level for level, _ in refusals(said)] == ["info"]
    assert [(level, reason.split("(")[0]) for level, reason in repeats(said)] == [
        ("debug", "KeyError")]


async def test_a_fault_of_ours_of_another_type_is_logged_at_error_again(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two different faults of ours in a row on one link are two bugs: each is logged
    at error with its traceback the first time, a repeat of either at debug."""
    node, _ = await linked_to(make_node, 1)
    faults: list[Exception] = []

    async def faulty(http: Any, url: str, **kwargs: Any) -> object:
        raise faults[0]

    monkeypatch.setattr("node.peers.learning.fetch_members", faulty)
    with structlog.testing.capture_logs() as said:
        for fault in (KeyError("a bug of ours"), TypeError("another bug of ours"),
                      KeyError("the first bug again"), TypeError("the second again")):
            faults[:] = [fault]
            await node.gossip.learn_once()
    failed = [entry for entry in said if entry["event"] == "learning members failed"]
    assert [(entry["log_level"], entry.get("exc_info")) for entry in failed] == [
        ("error", True), ("error", True)]
    assert [(level, reason.split("(")[0]) for level, reason in repeats(said)] == [
        ("debug", "KeyError"), ("debug", "TypeError")]


async def _logged_once_per_type(node: RunningNode, peer: RunningNode,
                                faults: list[Exception]) -> None:
    """Five rounds of ``node``, each meeting in turn (in ``faults``, which the test's
    patch raises) a fault of ours, the same type again, another type, none and the
    first type again: logged at error for the first, the other type and the first again
    (after a list taken up whole), the repeat at debug."""
    with structlog.testing.capture_logs() as said:
        for fault in (KeyError("a bug of ours"), KeyError("the same bug"),
                      TypeError("another bug of ours"), None, KeyError("the bug again")):
            faults[:] = [fault] if fault is not None else []
            await node.gossip.learn_once()
    failed = [entry for entry in said if entry["event"] == "learning members failed"]
    assert [(entry["log_level"], entry["peer"], entry.get("exc_info"))
            for entry in failed] == [("error", peer.url, True)] * 3
    assert [(level, reason.split("(")[0]) for level, reason in repeats(said)] == [
        ("debug", "KeyError")]


async def test_a_fault_of_ours_taking_up_a_list_is_logged_at_error_once_per_type(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The list is read at every round, and a fault of ours while its addresses are
    taken up met at each: at error with its traceback the first time, a repeat of its
    type at debug, one of another type at error; once a list was taken up whole, the
    first type is news again."""
    node, [peer] = await linked_to(make_node, 1)
    faults = failing_taking_up(monkeypatch)
    await _logged_once_per_type(node, peer, faults)


@pytest.mark.parametrize(("places", "errors"), [
    (["the ask"] + ["taking up"] * 5, 2), (["taking up", "the ask"] + ["taking up"] * 4, 2),
    (["the ask", "taking up", "the ask"] + ["taking up"] * 3, 3)])
async def test_a_fault_of_ours_in_the_ask_and_one_taking_up_a_list_are_two_bugs(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch, places: list[str],
        errors: int) -> None:
    """A fault of ours in the ask once, and one of the same type taking up the list
    read at every round, in either order: two bugs, each logged at error the first
    time, the repeats at debug. A list read clears the first, not the second: the
    fault in the ask after it is news again."""
    node, _ = await linked_to(make_node, 1)
    member_urls = learning_module.member_urls
    place = [""]

    async def asking(http: Any, url: str, **kwargs: Any) -> object:
        if place[0] == "the ask":
            raise KeyError("a bug in the ask")
        return await fetch_members(http, url, **kwargs)

    def taking_up(listed: Any, own: Any, refusals: Any, url: str | None) -> Any:
        if place[0] == "taking up":
            raise KeyError("a bug taking up the list")
        return member_urls(listed, own, refusals, url)

    monkeypatch.setattr("node.peers.learning.fetch_members", asking)
    monkeypatch.setattr("node.peers.learning.member_urls", taking_up)
    with structlog.testing.capture_logs() as said:
        for where in places:
            place[0] = where
            await node.gossip.learn_once()
    failed = [entry for entry in said if entry["event"] == FAULT_TEXT]
    assert [(entry["log_level"], entry.get("exc_info")) for entry in failed] == [
        ("error", True)] * errors
    assert [(level, reason.split("(")[0]) for level, reason in repeats(said)] == [
        ("debug", "KeyError")] * (len(places) - errors)
    assert [entry["where"] for entry in said if entry["event"] in (
        FAULT_TEXT, FAULT_REPEAT_TEXT)] == [
        IN_THE_ASK if place == "the ask" else TAKING_UP for place in places]


async def test_a_fault_of_ours_in_a_round_outside_any_ask_is_logged_once_per_type(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fault of ours in a members round outside any link's ask (sweeping the links,
    dialing members), met at every round: at error with its traceback the first time, a
    repeat of its type and step at debug, one of another type at error; after a round
    whose sweep met no fault, the first type is news again there; one of the same type
    dialing members, after it, is another bug. A step's fault ends no other: the
    round's asks are made all the same."""
    node, _ = await linked_to(make_node, 1)
    learning = node.gossip.learning
    sweep, learn_once = learning.admission.sweep, learning.learn_once
    faults: list[tuple[str, Exception]] = []
    asked: list[int] = []

    def sweeping() -> None:
        if faults and faults[0][0] == "sweeping":
            raise faults[0][1]
        sweep()

    async def dialing() -> None:
        if faults and faults[0][0] == "dialing":
            raise faults[0][1]

    async def asking() -> None:
        asked.append(learning.rounds)
        await learn_once()

    monkeypatch.setattr(learning.admission, "sweep", sweeping)
    monkeypatch.setattr(learning, "dial_members", dialing)
    monkeypatch.setattr(learning, "learn_once", asking)
    rounds: list[tuple[str, Exception] | None] = [
        ("sweeping", KeyError("a bug of ours")), ("sweeping", KeyError("the same bug")),
        ("sweeping", TypeError("another bug of ours")), None,
        ("sweeping", KeyError("the bug again")),
        *[("dialing", KeyError("a bug dialing members"))] * ROUNDS]
    with structlog.testing.capture_logs() as said:
        for fault in rounds:
            faults[:] = [fault] if fault is not None else []
            await learning.one_round()
    failed = [entry for entry in said if entry["event"] == FAULT_TEXT]
    assert [(entry["log_level"], entry.get("where"), entry.get("exc_info"))
            for entry in failed] == [("error", "sweeping links", True)] * 3 + [
        ("error", "dialing members", True)]
    assert [(level, reason.split("(")[0]) for level, reason in repeats(said)] == [
        ("debug", "KeyError")] * ROUNDS
    assert len(asked) == len(rounds)


async def test_a_fault_of_ours_in_an_ask_on_a_link_gone_since_is_logged_at_error_once(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The link ends, and another comes up, during the ask, which then meets a fault of
    ours, at each round (a peer whose links come and go): logged at error with its
    traceback the first time, a repeat at debug, nothing kept for a link gone."""
    node, [peer] = await linked_to(make_node, 1)
    runner = node.gossip.runners[f"url:{peer.url}"]

    async def relinked_then_faulty(*args: Any, **kwargs: Any) -> object:
        runner.links += 1  # another link is up by the time the ask fails
        raise KeyError("a bug of ours")

    monkeypatch.setattr("node.peers.learning.fetch_members", relinked_then_faulty)
    with structlog.testing.capture_logs() as said:
        for _ in range(ROUNDS):
            await node.gossip.learn_once()
    failed = [entry for entry in said if entry["event"] == FAULT_TEXT]
    assert [(entry["log_level"], entry["peer"], entry.get("where"), entry.get("exc_info"))
            for entry in failed] == [("error", peer.url, IN_THE_ASK, True)]
    assert [(level, reason.split("(")[0]) for level, reason in repeats(said)] == [
        ("debug", "KeyError")] * (ROUNDS - 1)
    assert runner.members_failure is None or runner.members_failure.link == runner.links


async def test_a_fault_of_ours_telling_how_an_ask_went_is_not_one_before_the_ask(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fault of ours in the link's checks, then one of the same type met telling how
    the ask went (clearing the failures a list read made old), at every round: two
    bugs, each logged at error the first time, the repeats at debug."""
    node, [peer] = await linked_to(make_node, 1)
    admission = node.gossip.admission
    linked_shared = admission.linked_shared
    place = [""]

    def checking(runner: Any) -> bool:
        if place[0] == "checks":
            raise KeyError("a bug in the checks")
        return linked_shared(runner)

    def listed(runner: Any, link: int) -> None:
        if place[0] == "listed":
            raise KeyError("a bug telling the list read")

    monkeypatch.setattr(admission, "linked_shared", checking)
    monkeypatch.setattr("node.peers.learning.members_listed", listed)
    with structlog.testing.capture_logs() as said:
        for where in ["checks"] + ["listed"] * ROUNDS:
            place[0] = where
            await node.gossip.learn_once()
    failed = [entry for entry in said if entry["event"] == FAULT_TEXT]
    assert [(entry["log_level"], entry["peer"], entry.get("exc_info"))
            for entry in failed] == [("error", peer.url, True)] * 2
    assert [(level, reason.split("(")[0]) for level, reason in repeats(said)] == [
        ("debug", "KeyError")] * (ROUNDS - 1)
    # Each line says where it was met, telling how the ask went too.
    assert [entry["where"] for entry in said if entry["event"] in (
        FAULT_TEXT, FAULT_REPEAT_TEXT)] == [BEFORE_THE_ASK] + [LEARNING] * ROUNDS


async def test_a_fault_of_ours_taking_up_a_list_on_a_link_gone_since_is_logged_once(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The link the list was read on ends, and another comes up, while an address it
    names is dialed, which then meets a fault of ours, at two rounds: logged at error
    with its traceback the first time, a repeat at debug (no failure is kept for a
    link gone)."""
    learner = await make_node(cluster_secret=SECRET, sync=FAST)
    peer, third = [await make_node(cluster_secret=SECRET, sync=FAST) for _ in range(2)]
    await rounds_by_hand(learner)
    peer.gossip.learning.members[third.url] = third.astore.node_id
    armed: list[bool] = []

    with LinkProxy(target_port=port_of(peer)) as proxy:
        url = f"http://127.0.0.1:{proxy.port}"

        async def relinked_then_faulty(*args: Any, **kwargs: Any) -> bool:
            if not armed:
                return False  # third is not dialed: each ask finds it to dial
            armed.clear()
            runner = learner.gossip.runners[f"url:{url}"]
            link = runner.links
            proxy.cut()
            proxy.heal()
            await until(lambda: runner.links == link + 1 and runner.state == "up")
            raise KeyError("a bug of ours")

        monkeypatch.setattr(learner.gossip.learning, "_dial", relinked_then_faulty)
        assert await learner.gossip.add_peer(url, learned=False)
        await until(lambda: linked_nodes(learner.gossip.runners.values())
                    == {peer.astore.node_id})
        with structlog.testing.capture_logs() as said:
            for _ in range(2):
                await link_up_asks(learner)  # the new link's own, not armed
                armed.append(True)
                await learner.gossip.learn_once()
    failed = [entry for entry in said if entry["event"] == FAULT_TEXT]
    assert [(entry["log_level"], entry["peer"], entry.get("where"), entry.get("exc_info"))
            for entry in failed] == [("error", url, TAKING_UP, True)]
    assert [(level, reason.split("(")[0]) for level, reason in repeats(said)] == [
        ("debug", "KeyError")]
    # The old link's fault took no place of the new link's failure (none, or its own).
    runner = learner.gossip.runners[f"url:{url}"]
    assert runner.members_failure is None or runner.members_failure.link == runner.links


async def test_a_fault_of_ours_before_the_ask_as_a_link_comes_up_is_logged_once(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ask made as a link comes up, in a task of its own, meets a fault of ours
    before it asks (in the link's checks): logged at error with its traceback and the
    peer, not raised from the task; each round that meets it again, at debug."""
    learner = await make_node(cluster_secret=SECRET, sync=FAST)
    peer = await make_node(cluster_secret=SECRET, sync=FAST)
    await rounds_by_hand(learner)

    def faulty(runner: Any, rounds: int) -> bool:
        raise KeyError("a bug of ours")

    monkeypatch.setattr("node.peers.learning.failure_holds", faulty)
    with structlog.testing.capture_logs() as said:
        assert await learner.gossip.add_peer(peer.url, learned=False)
        await until(lambda: linked_nodes(learner.gossip.runners.values())
                    == {peer.astore.node_id})
        await link_up_asks(learner)  # raised the fault were it not handled
        for _ in range(ROUNDS):
            await learner.gossip.learn_once()
    failed = [entry for entry in said if entry["event"] == "learning members failed"]
    assert [(entry["log_level"], entry["peer"], entry.get("exc_info"))
            for entry in failed] == [("error", peer.url, True)]
    assert [(level, reason.split("(")[0]) for level, reason in repeats(said)] == [
        ("debug", "KeyError")] * ROUNDS


async def test_a_fault_of_ours_before_a_rounds_ask_is_logged_at_error_once_per_type(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fault of ours in the link's checks, before the ask, met at every round: at
    error with its traceback the first time, a repeat at debug, one of another type at
    error; once a list was taken up whole, the first type is news again."""
    node, [peer] = await linked_to(make_node, 1)
    admission = node.gossip.admission
    linked_shared = admission.linked_shared
    faults: list[Exception] = []

    def failing(runner: Any) -> bool:
        if faults:
            raise faults[0]
        return linked_shared(runner)

    monkeypatch.setattr(admission, "linked_shared", failing)
    await _logged_once_per_type(node, peer, faults)


async def test_a_fault_of_ours_in_the_ask_on_each_new_link_is_logged_at_error_once(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A peer whose link is cut and comes back, again and again, and whose ask meets
    the same fault of ours on each link (as it comes up, and at a round): logged at
    error with its traceback once, each repeat at debug, on whichever link. Once a list
    was taken up whole from it, the fault is news again."""
    learner = await make_node(cluster_secret=SECRET, sync=FAST)
    peer = await make_node(cluster_secret=SECRET, sync=FAST)
    await rounds_by_hand(learner)
    broken = [True]

    async def faulty(http: Any, url: str, **kwargs: Any) -> object:
        if broken[0]:
            raise KeyError("a bug of ours")
        return await fetch_members(http, url, **kwargs)

    def met() -> list[tuple[str, str]]:
        return [(entry["log_level"], entry["where"]) for entry in said
                if entry["event"] in (FAULT_TEXT, FAULT_REPEAT_TEXT)]

    monkeypatch.setattr("node.peers.learning.fetch_members", faulty)
    with LinkProxy(target_port=port_of(peer)) as proxy, \
            structlog.testing.capture_logs() as said:
        url = f"http://127.0.0.1:{proxy.port}"
        assert await learner.gossip.add_peer(url, learned=False)
        runner = learner.gossip.runners[f"url:{url}"]
        await until(lambda: len(met()) == 1)  # the first link's own ask
        for link in range(1, ROUNDS + 1):
            await learner.gossip.learn_once()
            proxy.cut()
            proxy.heal()
            # The next link's own ask met it too.
            await until(lambda link=link: runner.links == link + 1
                        and len(met()) == 2 * link + 1)
        broken[0] = False
        await learner.gossip.learn_once()  # a list taken up whole
        broken[0] = True
        await learner.gossip.learn_once()
    assert met() == [("error", IN_THE_ASK)] + [("debug", IN_THE_ASK)] * (2 * ROUNDS) + [
        ("error", IN_THE_ASK)]
    assert all(entry.get("exc_info") for entry in said if entry["event"] == FAULT_TEXT)
