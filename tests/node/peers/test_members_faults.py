"""node.peers.list_failures with real nodes in this process: what is remembered of the
faults of ours met learning members. At most ``FAULTS_KEPT_MAX`` per link and for the
node's rounds, the one met longest ago forgotten first (logged at error again when met);
a fault of ours in an ask that overlapped another already held off, and one met handling
a fault, are logged at error once per type too; each line says where it was met. A
fault whose repr fails is repeated by its type's name, and ends no members round."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import structlog

from node.peers.holds import ANSWERED_BY_HOLD_ROUNDS
from node.peers.list_failures import (
    BEFORE_THE_ASK,
    FAULT_REPEAT_TEXT,
    FAULT_TEXT,
    FAULTS_KEPT_MAX,
    HANDLING,
    IN_THE_ASK,
    SWEEPING,
    TAKING_UP,
    RoundFaults,
    failure_holds,
)
from node.peers.members_fetch import fetch_members
from tests.node.peers.support import (
    ROUNDS,
    SECRET,
    NodeFactory,
    answer,
    failing_taking_up,
    linked_to,
    serving,
    until,
)


class Bug(Exception):
    """A fault of ours, of a type of its own per ``bugs``."""


class BadRepr(Exception):
    """A fault of ours whose repr is a bug of its own: it reads an attribute never set."""

    def __repr__(self) -> str:
        return str(self.never_set)  # type: ignore[attr-defined]


def bugs() -> tuple[list[type[Bug]], list[str]]:
    """Faults of ``FAULTS_KEPT_MAX`` + 1 types met in turn, each once, with the first met
    again before the last (then the one met longest ago is the second) and after it;
    and how each is logged: the first again at debug, the second, forgotten for the
    last, at error again."""
    types = [type(f"Bug{n}", (Bug,), {}) for n in range(FAULTS_KEPT_MAX + 1)]
    met = [*types[:-1], types[0], types[-1], types[1], types[0]]
    return met, ["error"] * FAULTS_KEPT_MAX + ["debug", "error", "error", "debug"]


def faults_said(said: list[dict[str, Any]]) -> list[tuple[str, str | None, str]]:
    """The faults of ours logged, news and repeats: level, where, and the traceback
    (``True``) or the type the repeat names."""
    return [(entry["log_level"], entry.get("where"),
             str(entry.get("exc_info")) if entry["event"] == FAULT_TEXT
             else entry["reason"].split("(")[0])
            for entry in said if entry["event"] in (FAULT_TEXT, FAULT_REPEAT_TEXT)]


async def test_past_the_bound_a_links_fault_met_longest_ago_is_news_again(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fault of ours of another type taking up the list read at each round: past
    ``FAULTS_KEPT_MAX`` types on the link, the one met longest ago is forgotten, and
    logged at error when met again; one met again since is not."""
    node, _ = await linked_to(make_node, 1)
    fault = failing_taking_up(monkeypatch)
    met, levels = bugs()
    with structlog.testing.capture_logs() as said:
        for bug in met:
            fault[:] = [bug("a bug taking up the list")]
            await node.gossip.learn_once()
    assert [(level, where) for level, where, _ in faults_said(said)] == [
        (level, TAKING_UP) for level in levels]
    runner = next(iter(node.gossip.runners.values()))
    assert runner.members_failure is not None
    assert len(runner.members_failure.faults) == FAULTS_KEPT_MAX


def test_past_the_bound_a_rounds_fault_met_longest_ago_is_news_again() -> None:
    """The same in a members round, outside any link's ask."""
    faults = RoundFaults()
    met, levels = bugs()
    with structlog.testing.capture_logs() as said:
        for bug in met:
            try:
                raise bug("a bug sweeping")
            except Bug as exc:
                faults.fault(exc, SWEEPING)
    assert [level for level, _, _ in faults_said(said)] == levels
    assert len(faults.met) == FAULTS_KEPT_MAX


async def test_a_fault_of_ours_in_an_ask_that_overlapped_a_hold_is_logged_once(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two asks on a link at once (one as it came up, a round's): one answered 404,
    which holds asks off, the other meeting a fault of ours after that, at each round
    the hold ends: at error with its traceback the first time, a repeat at debug."""
    node, [peer] = await linked_to(make_node, 1)
    learning = node.gossip.learning
    runner = node.gossip.runners[f"url:{peer.url}"]
    asks = [0]
    async with serving(answer(404, "Not Found")) as older:

        async def overlapping(http: Any, url: str, **kwargs: Any) -> object:
            asks[0] += 1
            if asks[0] % 2:
                return await fetch_members(http, older, **kwargs)
            await until(lambda: failure_holds(runner, learning.rounds))
            raise KeyError("a bug in the ask")

        monkeypatch.setattr("node.peers.learning.fetch_members", overlapping)
        with structlog.testing.capture_logs() as said:
            for _ in range(ROUNDS):
                await asyncio.gather(learning.learn_from(runner), learning.learn_from(runner))
                learning.rounds += ANSWERED_BY_HOLD_ROUNDS  # the hold ends
    assert asks[0] == 2 * ROUNDS
    assert faults_said(said) == [("error", IN_THE_ASK, "True")] + [
        ("debug", IN_THE_ASK, "KeyError")] * (ROUNDS - 1)


async def test_a_fault_of_ours_handling_a_fault_is_logged_once_per_type(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The handling of a fault of ours before the ask (the link's checks) itself fails,
    at each round: at error with its traceback and the peer the first time, a repeat at
    debug."""
    node, [peer] = await linked_to(make_node, 1)
    admission = node.gossip.admission

    def checking(runner: Any) -> bool:
        raise KeyError("a bug in the checks")

    def handling(*args: Any) -> None:
        raise TypeError("a bug handling a fault")

    monkeypatch.setattr(admission, "linked_shared", checking)
    monkeypatch.setattr("node.peers.learning.fault_of_ours", handling)
    with structlog.testing.capture_logs() as said:
        for _ in range(ROUNDS):
            await node.gossip.learn_once()
    assert faults_said(said) == [("error", HANDLING, "True")] + [
        ("debug", HANDLING, "TypeError")] * (ROUNDS - 1)
    assert {entry["peer"] for entry in said if "where" in entry} == {peer.url}


async def test_a_fault_whose_repr_fails_met_again_ends_no_members_round(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A round's sweep meets, round after round, a fault of ours whose repr raises: the
    repeat names its type, and the node's members rounds go on (the repr's own fault
    would end them for good, logged nowhere)."""
    node = await make_node(cluster_secret=SECRET)
    learning = node.gossip.learning

    def sweeping() -> None:
        raise BadRepr("a bug sweeping")

    monkeypatch.setattr(learning.admission, "sweep", sweeping)
    with structlog.testing.capture_logs() as said:
        for _ in range(ROUNDS + 1):  # a round starts once the one before it ended
            ran = learning.rounds
            learning.changed.set()
            await until(lambda ran=ran: learning.rounds > ran)
    lines = faults_said(said)
    assert lines[0] == ("error", SWEEPING, "True")
    assert set(lines[1:]) == {("debug", SWEEPING, f"{__name__}.BadRepr")}
    assert len(lines) >= ROUNDS
    assert [task for task in node.gossip._tasks if task.get_name() == "members"]


async def test_a_fault_whose_repr_fails_before_the_ask_is_told_as_met_there(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fault of ours whose repr raises, in the link's checks at each round: logged
    where it was met, its repeats at debug naming its type; no fault met handling it."""
    node, _ = await linked_to(make_node, 1)

    def checking(runner: Any) -> bool:
        raise BadRepr("a bug in the checks")

    monkeypatch.setattr(node.gossip.admission, "linked_shared", checking)
    with structlog.testing.capture_logs() as said:
        for _ in range(ROUNDS):
            await node.gossip.learn_once()
    assert faults_said(said) == [("error", BEFORE_THE_ASK, "True")] + [
        ("debug", BEFORE_THE_ASK, f"{__name__}.BadRepr")] * (ROUNDS - 1)
