"""node.peers.learning with real nodes in this process: an address from a peer's list
where another device answers, one this node refuses (no member), is not dialed again at
each members round, whatever the list says of it, but once more after
``ANSWERED_BY_HOLD_ROUNDS`` rounds or ``ANSWERED_BY_HOLD_S`` seconds, whichever ends
first, and at once when that device is a member (``Learning.answered_by``); so is a
member's address where that device answered."""

from __future__ import annotations

import pytest
import structlog

from node.peers import holds as holds_module
from node.peers import learning as learning_module
from node.peers.holds import ANSWERED_BY_HOLD_ROUNDS, ANSWERED_BY_HOLD_S
from node.peers.learning import Learning
from sync.peer.config import SyncConfig
from tests.node.conftest import NodeFactory, RunningNode
from tests.node.peers.support import add_member, until

SECRET = "s" * 32


def given_up(hub: RunningNode, x: RunningNode) -> bool:
    """Whether the hub dialed x's address, was refused there and gave it up (held)."""
    return x.gossip.accepted.count >= 1 and f"url:{x.url}" not in hub.gossip.runners \
        and x.url in hub.gossip.learning.answered


async def test_a_listed_address_where_a_device_refused_answers_is_held_off_for_rounds(
        make_node: NodeFactory) -> None:
    """The lister lists x's address, given it without the secret (as a device or a
    certificate holder gives one), and says it is linked there; x is no member on the
    hub, which dials it without the secret: x lets the hub in (a member on x), the hub
    refuses x. The hub does not dial it at the rounds that follow (it did at each, and
    refused x each time), until ``ANSWERED_BY_HOLD_ROUNDS`` went by: then once more."""
    lister = await make_node(cluster_secret=SECRET)
    hub = await make_node(cluster_secret=SECRET, peers=[lister.url],
                          sync=SyncConfig(members_interval_s=0.1))
    x = await make_node(cluster_secret=SECRET)
    assert x.gossip.membership is not None
    await x.gossip.membership.add(hub.gossip.device.device_id, "hub", None)
    lister.gossip.learning.members[x.url] = x.astore.node_id
    learning = hub.gossip.learning
    await until(lambda: given_up(hub, x))
    first = learning.rounds
    await until(lambda: learning.rounds >= first + ANSWERED_BY_HOLD_ROUNDS // 2)
    assert x.gossip.accepted.count == 1
    await until(lambda: x.gossip.accepted.count >= 2)
    assert learning.rounds >= first + ANSWERED_BY_HOLD_ROUNDS - 1


async def refused_once(make_node: NodeFactory, **sync: float) -> tuple[RunningNode,
                                                                       RunningNode]:
    """A hub (``SyncConfig(**sync)``) that learned x's address from a lister, dialed it
    and refused x (no member on the hub; the hub is one on x): the address is held."""
    lister = await make_node(cluster_secret=SECRET)
    hub = await make_node(cluster_secret=SECRET, peers=[lister.url],
                          sync=SyncConfig(**sync))
    x = await make_node(cluster_secret=SECRET)
    assert x.gossip.membership is not None
    await x.gossip.membership.add(hub.gossip.device.device_id, "hub", None)
    lister.gossip.learning.members[x.url] = x.astore.node_id
    await until(lambda: any(runner.state == "up" for runner in hub.gossip.runners.values()))
    hub.gossip.learning.changed.set()  # a round, which asks the lister
    await until(lambda: given_up(hub, x))
    return hub, x


async def test_a_listed_address_is_dialed_again_once_the_device_there_is_a_member(
        make_node: NodeFactory) -> None:
    """Rounds an hour apart: the record that adds x starts a round, which dials x's
    address again at once (x links), though the hold's rounds have not gone by."""
    hub, x = await refused_once(make_node, members_interval_s=3600)
    assert hub.gossip.membership is not None
    await hub.gossip.membership.add(x.gossip.device.device_id, "x", None)
    await until(lambda: x.gossip.accepted.count >= 2)
    assert hub.gossip.learning.rounds < ANSWERED_BY_HOLD_ROUNDS
    assert x.url not in hub.gossip.learning.answered


async def test_a_listed_address_is_dialed_again_after_the_hold_s_whatever_the_rounds(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rounds an hour apart (made here one at a time, on a clock of the test's): a round
    within ``ANSWERED_BY_HOLD_S`` does not dial x's address; the first one after it
    does, though far fewer than ``ANSWERED_BY_HOLD_ROUNDS`` rounds went by."""
    now = [1000.0]
    for module in (learning_module, holds_module):  # the holds count in it, and so
        monkeypatch.setattr(module, "awake_s", lambda: now[0])  # do learned addresses
    hub, x = await refused_once(make_node, members_interval_s=3600)
    learning = hub.gossip.learning
    now[0] += ANSWERED_BY_HOLD_S - 1
    await one_round(learning)
    assert f"url:{x.url}" not in hub.gossip.runners  # held: not dialed
    now[0] += 1
    await one_round(learning)
    assert f"url:{x.url}" in hub.gossip.runners  # dialed once more
    await until(lambda: x.gossip.accepted.count >= 2
                and x.url in learning.answered)  # refused again, and held again
    assert learning.rounds < ANSWERED_BY_HOLD_ROUNDS


async def one_round(learning: Learning) -> None:
    """What a members round does with peers' lists (``Learning.run``), made here: the
    rounds of the node itself are an hour apart."""
    learning.rounds += 1
    await learning.learn_once()


async def test_a_members_address_is_dialed_again_once_the_device_there_is_a_member(
        make_node: NodeFactory) -> None:
    """A member's record names x's address; x, no member, answers the hub's dial there
    and is refused: the record is held. Rounds an hour apart: the record that adds x
    starts a round, which dials the address again at once (x links), though the
    member's record is the same and the hold's rounds have not gone by."""
    hub = await make_node(cluster_secret=SECRET, sync=SyncConfig(members_interval_s=3600))
    x = await make_node(cluster_secret=SECRET)
    assert hub.gossip.membership is not None and x.gossip.membership is not None
    await x.gossip.membership.add(hub.gossip.device.device_id, "hub", None)
    learning = hub.gossip.learning
    with structlog.testing.capture_logs() as said:
        moved = await add_member(hub, "laptop", x.url)  # a device that never runs here
        # dialed, refused and given up: held
        await until(lambda: x.gossip.accepted.count >= 1
                    and f"url:{x.url}" not in hub.gossip.runners and moved in learning.elsewhere)
    [held] = [line["event"] for line in said if line.get("device_id") == moved
              and str(line["event"]).startswith("member's address answered by another")]
    assert f"for {ANSWERED_BY_HOLD_ROUNDS} members rounds or 10 minutes at most" in held
    device = x.gossip.device.device_id
    await hub.gossip.membership.add(device, "x", None)
    await until(lambda: device in hub.gossip.linked_devices())
    assert x.gossip.accepted.count == 2
    assert learning.rounds < ANSWERED_BY_HOLD_ROUNDS
    assert moved not in learning.elsewhere
