"""A member's record names an address where another device answers now, one that holds
the cluster secret but is no member: the node's dial there is refused once, and the
address is not dialed again at each members round, until that member's record changes,
or for ``ANSWERED_BY_HOLD_ROUNDS`` rounds at most (``node.peers.learning``,
``Learning.answered_by``)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from crdt.device import device_id, private_key_from_seed, public_bytes
from node.peers.holds import ANSWERED_BY_HOLD_ROUNDS
from tests.support.cluster import SECRET, request, wait_until
from tests.support.processes import NodeProcess, free_port, run_cli
from tests.support.waits import PROCESS_DEADLINE_S

pytestmark = pytest.mark.integration

#: The member whose record names the other device's address (it never runs here).
MOVED = device_id(public_bytes(private_key_from_seed(bytes([21]) * 32)))
#: Members rounds made (by adding a member at an address where no one listens) while
#: the address is not to be dialed again.
ROUNDS = 3


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout


def logged(node: NodeProcess, event: str, **fields: str) -> int:
    """How often ``node`` logged ``event`` (or a line starting so) with ``fields`` (its
    JSON log lines)."""
    lines = [json.loads(line) for line in node.log_path.read_text().splitlines()
             if line.startswith("{")]
    return len([line for line in lines if str(line.get("event")).startswith(event)
                and all(line.get(name) == value for name, value in fields.items())])


def dialed(node: NodeProcess, url: str) -> int:
    """How often ``node`` dialed a member at ``url``."""
    return logged(node, "dialing member", url=url)


def test_a_member_address_where_another_device_answers_is_not_redialed_each_round(
        tmp_path: Path) -> None:
    """The other device dials the node with the secret (so it holds the records, and
    takes the node's dial). The node dials the member's address once, refuses the
    device it finds there, and dials it again only once the member's record changed
    (the rounds are the records', far fewer than ``ANSWERED_BY_HOLD_ROUNDS``)."""
    args = ["--cluster-secret", SECRET, "--log-format", "json"]
    assert ROUNDS + 1 < ANSWERED_BY_HOLD_ROUNDS
    with NodeProcess(tmp_path, name="node",
                     extra_args=[*args, "--members-interval", "3600"]) as node, \
            NodeProcess(tmp_path, name="other",
                        extra_args=[*args, "--peer", node.url]) as other:
        ok(run_cli(node, "devices", "add", MOVED, "--name", "laptop",
                   "--address", other.url))
        wait_until(lambda: dialed(node, other.url) == 1 or None, PROCESS_DEADLINE_S,
                   "the member's address dialed")
        wait_until(lambda: logged(node, "dialed device refused", peer=other.url,
                                  code="not_member") or None, PROCESS_DEADLINE_S,
                   "the device there refused as no member")
        for round_ in range(ROUNDS):
            # Each record starts a members round at once; its dial says the round ran.
            dead = f"http://127.0.0.1:{free_port()}"
            seed = private_key_from_seed(bytes([40 + round_]) * 32)
            ok(run_cli(node, "devices", "add", device_id(public_bytes(seed)),
                       "--name", f"dead{round_}", "--address", dead))
            wait_until(lambda dead=dead: dialed(node, dead) or None, PROCESS_DEADLINE_S,
                       f"members round {round_} made")
        assert dialed(node, other.url) == 1
        # The member's record changes (renamed): its address is dialed again.
        ok(run_cli(node, "devices", "add", MOVED, "--name", "old laptop",
                   "--address", other.url))
        wait_until(lambda: dialed(node, other.url) == 2 or None, PROCESS_DEADLINE_S,
                   "the address dialed again once the record changed")


def test_a_member_address_where_another_device_answers_is_dialed_again_after_the_hold(
        tmp_path: Path) -> None:
    """The member's record stays; its address, where the other device answers, is held
    off for ``ANSWERED_BY_HOLD_ROUNDS`` members rounds (each made here by a record of
    another member: the node's own rounds are an hour apart): not dialed at the rounds
    before, dialed once more after them (the member may be back there), and held off
    again: the hold is logged once, not at each dial."""
    args = ["--cluster-secret", SECRET, "--log-format", "json"]
    with NodeProcess(tmp_path, name="node",
                     extra_args=[*args, "--members-interval", "3600"]) as node, \
            NodeProcess(tmp_path, name="other",
                        extra_args=[*args, "--peer", node.url]) as other:
        ok(run_cli(node, "devices", "add", MOVED, "--name", "laptop",
                   "--address", other.url))
        wait_until(lambda: logged(node, "dialed device refused", peer=other.url,
                                  code="not_member") or None, PROCESS_DEADLINE_S,
                   "the address dialed and refused")
        made = 0

        def a_round() -> None:
            nonlocal made
            dead = f"http://127.0.0.1:{free_port()}"
            seed = private_key_from_seed(bytes([100 + made]) * 32)
            request(node, "POST", "/v1/devices", {"device_id": device_id(public_bytes(seed)),
                                                  "name": f"dead{made}", "address": dead})
            wait_until(lambda: dialed(node, dead) or None, PROCESS_DEADLINE_S,
                       f"members round {made} made")
            made += 1

        while made < ANSWERED_BY_HOLD_ROUNDS - 2:
            a_round()
        assert dialed(node, other.url) == 1  # held through those rounds
        while dialed(node, other.url) < 2:
            assert made < ANSWERED_BY_HOLD_ROUNDS + 2, "not dialed again after the hold"
            a_round()
        wait_until(lambda: logged(node, "dialed device refused", peer=other.url,
                                  code="not_member") >= 2 or None, PROCESS_DEADLINE_S,
                   "the address dialed and refused again")
        a_round()
        assert dialed(node, other.url) == 2  # held again
        assert logged(node, "member's address answered by another device",
                      url=other.url) == 1
