"""A member that refused this device as waiting to be added and then goes down: dialed
again within a pull interval after each of the device's first ``WAITING_SOON_DIALS``
failed dials (the member may be restarting to take the add), then with the back-off as
any address that fails; a member reached again (a refusal, a link, a busy answer) starts
that count anew. ``tests/integration/test_waiting_redials.py`` shows the same with node
processes."""

from __future__ import annotations

import asyncio
import dataclasses

import structlog

from node.peers.api import PEERS_FULL_RETRY_AFTER_S
from node.peers.redials import WAITING_SOON_DIALS
from node.peers.runner import Runner
from node.server.run import RunningNode
from sync.peer.config import SyncConfig
from tests.node.peers.support import FAST, PATIENT, NodeFactory, add_member, until
from tests.support.processes import free_port


async def refused_then_member_down(make_node: NodeFactory) -> tuple[
        RunningNode, RunningNode, Runner, float]:
    """A device refused as waiting to be added by a member (back-off of ten minutes,
    pull interval half a second), whose next dial fails: the member went down (it
    restarts to take the device's add, say). The member, the device, its runner there,
    and its pull interval."""
    port = free_port()
    laptop = await make_node(name="laptop", sync=FAST, port=port)
    patient = dataclasses.replace(PATIENT, pull_interval_s=0.5)
    phone = await make_node(name="phone", sync=patient, advertise_url=None)
    assert await phone.gossip.add_peer(laptop.url, learned=False)
    runner = phone.gossip.runners[f"url:{laptop.url}"]
    await until(lambda: runner.refused is not None and runner.machine.failures >= 2)
    await laptop.stop()
    await until(lambda: runner.failure is not None and runner.state == "backoff")
    return laptop, phone, runner, patient.pull_interval_s


async def down_past_the_soon_dials(make_node: NodeFactory) -> tuple[
        RunningNode, RunningNode, Runner, float]:
    """``refused_then_member_down``, the member down for one failed dial more than
    ``WAITING_SOON_DIALS``: only dials made again within a pull interval get there
    before the test's deadline (the back-off is ten minutes). As
    ``refused_then_member_down`` returns."""
    laptop, phone, runner, pull_interval_s = await refused_then_member_down(make_node)
    await until(lambda: runner.waiting_dials_failed == WAITING_SOON_DIALS + 1
                and runner.state == "backoff")
    return laptop, phone, runner, pull_interval_s


def redial_in(runner: Runner) -> float:
    """Seconds until ``runner``'s address, backing off, is dialed again."""
    assert runner.state == "backoff" and runner.redial_at is not None
    return runner.redial_at - asyncio.get_running_loop().time()


async def restarted(make_node: NodeFactory, laptop: RunningNode,
                    **overrides: object) -> RunningNode:
    """``laptop`` started again, at its address and on its data (with ``FAST`` unless
    ``overrides`` say otherwise)."""
    return await make_node(**{"name": "laptop", "sync": FAST, "port": laptop.config.port,
                              "data_dir": laptop.config.data_dir, **overrides})


async def failed_again(runner: Runner) -> None:
    """The member stopped once more: the device's next dial of it, made now, fails."""
    runner.failure = None
    runner.redial.set()
    await until(lambda: runner.failure is not None and runner.state == "backoff")


async def test_a_member_down_after_refusing_a_waiting_device_is_dialed_again_soon(
        make_node: NodeFactory) -> None:
    """A failed dial says the member is not reached (its refusal is no longer its word),
    and the device still dials it again within a pull interval, not after its back-off:
    the member back, it is refused (or linked) at once."""
    laptop, phone, runner, pull_interval_s = await refused_then_member_down(make_node)
    [row] = phone.gossip.rows.status()
    assert row["refused"] is None and row["state"] != "refused"
    assert 0.0 <= row["retry_in_s"] <= pull_interval_s
    await restarted(make_node, laptop)
    await until(lambda: runner.refused is not None and runner.failure is None)


async def test_a_refusal_after_a_failed_dial_is_warned_of_again(
        make_node: NodeFactory) -> None:
    """A failed dial forgets the refusal warned of at that address: the member back and
    refusing again, it is news (status had dropped it for the failure)."""
    with structlog.testing.capture_logs() as said:
        laptop, _, runner, _ = await refused_then_member_down(make_node)
        await restarted(make_node, laptop)
        await until(lambda: runner.refused is not None and runner.failure is None)
    warned = [entry["reason"] for entry in said if entry["event"] == "peer refused this device"]
    assert len(warned) == 2 and warned[0] == warned[1], warned


async def test_a_member_down_past_the_soon_dials_is_dialed_after_the_back_off(
        make_node: NodeFactory) -> None:
    """Each of the first ``WAITING_SOON_DIALS`` failed dials is made again within a pull
    interval (else the count is not reached in time); the one after waits the back-off."""
    _, _, runner, _ = await down_past_the_soon_dials(make_node)
    assert redial_in(runner) > 60


async def test_a_member_refusing_again_is_dialed_soon_again_once_down(
        make_node: NodeFactory) -> None:
    """Back and refusing the device as waiting once more, the member is again one that
    may be restarting to take the add: down again, it is dialed within a pull interval."""
    laptop, _, runner, pull_interval_s = await down_past_the_soon_dials(make_node)
    laptop = await restarted(make_node, laptop)
    runner.redial.set()
    await until(lambda: runner.refused is not None)
    await laptop.stop()
    await failed_again(runner)
    assert redial_in(runner) <= pull_interval_s


async def test_a_member_linked_with_then_down_is_dialed_after_the_back_off(
        make_node: NodeFactory) -> None:
    """A dial that links ends the device's wait to be added: the member down after that
    link is dialed again after the back-off, as any address that fails."""
    laptop, phone, runner, _ = await refused_then_member_down(make_node)
    laptop = await restarted(make_node, laptop)
    await add_member(laptop, "phone", device_id=phone.device.device_id)
    runner.redial.set()
    await until(lambda: runner.state == "up")
    await laptop.stop()
    await until(lambda: runner.state == "backoff")
    assert redial_in(runner) > 60


async def test_a_member_that_answers_busy_is_dialed_soon_again_once_down(
        make_node: NodeFactory) -> None:
    """A member asking the device to wait (it took the add, and is at its ``peers_max``)
    is up: down again, it is dialed again once that wait is over, not after the
    back-off (its count of failed dials starts anew)."""
    laptop, phone, runner, _ = await down_past_the_soon_dials(make_node)
    # Its one place taken by a peer it dials (down): it answers the device busy.
    laptop = await restarted(make_node, laptop, peers=[f"http://127.0.0.1:{free_port()}"],
                             sync=SyncConfig(peers_max=1))
    await add_member(laptop, "phone", device_id=phone.device.device_id)
    runner.redial.set()
    await until(lambda: runner.machine.asked_until > asyncio.get_running_loop().time())
    await laptop.stop()
    await failed_again(runner)
    assert redial_in(runner) <= PEERS_FULL_RETRY_AFTER_S
