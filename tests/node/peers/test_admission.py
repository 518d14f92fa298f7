"""node.peers.admission with real nodes in this process: a wrong cluster secret, the
refusals of this device remembered (and bounded), and a removal said by a device not
trusted."""

from __future__ import annotations

import dataclasses
import shlex
from typing import Any

import structlog

from crdt.device import shown_name
from node.peers.admission import (
    CLAIMED_LINES_MAX,
    CLAIMED_LINES_WINDOW_S,
    REFUSALS_KEPT_MAX,
    WAITED_ON_KEPT_MAX,
    WAITING_KEPT_MAX,
    WRONG_SECRETS_KEPT_MAX,
)
from node.peers.link_errors import LinkRefused, Refusal
from node.peers.pairing import ADDED_NOTE
from node.peers.runner import Runner
from node.peers.transport import DEVICE_REMOVED, NOT_MEMBER
from node.peers.waiting import WAITING_SHOWN_MAX
from node.server.run import RunningNode
from tests.node.peers.support import (
    FAST,
    PATIENT,
    SECRET,
    NodeFactory,
    add_member,
    learned_down,
    new_device_id,
    until,
)
from tests.support.clock import Clock
from tests.support.processes import free_port


async def test_a_wrong_cluster_secret_is_named_not_taken_for_a_device_to_add(
        make_node: NodeFactory) -> None:
    """A node of a cluster-secret cluster given a wrong secret was told it waits to be
    added as a device; its operator is now told the secret does not match, and the
    node it dialed warns once."""
    hub = await make_node(cluster_secret=SECRET)
    newcomer = await make_node(cluster_secret="w" * 32, sync=FAST)
    assert await newcomer.gossip.add_peer(hub.url, learned=False)
    runner = newcomer.gossip.runners[f"url:{hub.url}"]
    await until(lambda: runner.refused is not None)
    assert "the cluster secret this node gave does not match" in runner.refused
    assert newcomer.gossip.device_status()["waiting"] == []
    assert newcomer.gossip.device.device_id in hub.gossip.admission._wrong_secret  # warned once


async def test_a_device_added_after_its_refusal_is_told_its_link_is_up(
        make_node: NodeFactory) -> None:
    """A new device dials a member and is refused (waiting to be added); once added, its
    next dial links. Both ends log ``peer link up`` at info, once for the link (not for
    the refused dials before it), naming the peer and its device, and no credential."""
    laptop = await make_node(name="laptop", sync=FAST)
    # Advertising no address, the phone is dialed by no one: one link, its own.
    phone = await make_node(name="phone", sync=FAST, advertise_url=None)
    with structlog.testing.capture_logs() as said:
        assert await phone.gossip.add_peer(laptop.url, learned=False)
        runner = phone.gossip.runners[f"url:{laptop.url}"]
        await until(lambda: runner.refused is not None)
        await add_member(laptop, "phone", device_id=phone.device.device_id)

        def up(direction: str) -> list[dict[str, object]]:
            return [entry for entry in said if entry["event"] == "peer link up"
                    and entry["direction"] == direction]

        await until(lambda: bool(up("out")) and bool(up("in")))
        await until(lambda: phone.gossip.device_status()["waiting"] == [])  # it synced
    [dialed], [accepted] = up("out"), up("in")
    assert dialed["log_level"] == accepted["log_level"] == "info"
    assert (dialed["peer"], dialed["url"]) == (laptop.url, laptop.url)
    assert (dialed["node_id"], dialed["device_id"]) == (laptop.astore.node_id,
                                                         laptop.device.device_id)
    assert accepted["peer"].startswith(f"in:{phone.astore.node_id}:")
    assert (accepted["node_id"], accepted["device_id"], accepted["device_name"]) == (
        phone.astore.node_id, phone.device.device_id, "phone")
    # The phone's line says it was added since the refusal it warned of; the laptop,
    # refused by no one, says nothing of the kind.
    assert dialed["note"] == ADDED_NOTE and "note" not in accepted
    # The laptop's records had not reached the phone as its link came up: the name is
    # the one the laptop signed in its refusal, never "None".
    assert dialed["device_name"] == "laptop"
    # Named by these alone: no credential (a key, the cluster secret, a token) rides along.
    named = {"event", "log_level", "peer", "direction", "url", "node_id", "device_id",
             "device_name"}
    assert set(dialed) == named | {"note"} and set(accepted) == named


async def test_an_accepted_link_that_ends_is_named_by_its_device(
        make_node: NodeFactory) -> None:
    """An accepted link's key names only the node it said it was: its ``peer link down``
    names the member's device too, by id and by the name the records give it."""
    laptop = await make_node(name="laptop", sync=FAST)
    phone = await make_node(name="phone", sync=FAST, advertise_url=None)
    await add_member(laptop, "phone", device_id=phone.device.device_id)
    assert await phone.gossip.add_peer(laptop.url, learned=False)
    await until(lambda: any(row["direction"] == "in" and row["state"] == "up"
                            for row in laptop.gossip.status()))
    with structlog.testing.capture_logs() as said:
        await phone.stop()
        await until(lambda: any(entry["event"] == "peer link down" for entry in said))
    [down] = [entry for entry in said if entry["event"] == "peer link down"]
    assert down["peer"].startswith(f"in:{phone.astore.node_id}:")
    assert (down["device_id"], down["device_name"]) == (phone.device.device_id, "phone")


async def test_a_member_says_once_that_a_device_waits_to_be_added(
        make_node: NodeFactory) -> None:
    """The member a new device dials says so at info, once however often it redials,
    with the device's id and the address it dials from."""
    laptop = await make_node(name="laptop", sync=FAST)
    phone = await make_node(name="phone", sync=FAST, advertise_url=None)
    with structlog.testing.capture_logs() as said:
        assert await phone.gossip.add_peer(laptop.url, learned=False)
        runner = phone.gossip.runners[f"url:{laptop.url}"]
        await until(lambda: runner.machine.failures >= 3)  # refused, again and again
    waiting = [entry for entry in said if entry["event"] == "device waiting to be added"]
    [logged] = waiting
    device = phone.device.device_id
    assert (logged["log_level"], logged["device_id"]) == ("info", device)
    assert set(logged) == {"event", "log_level", "device_id", "peer"}
    # Its status lists the device, however often it dialed: once, with the address.
    [row] = laptop.gossip.device_status()["to_add"]
    assert (row["device_id"], row["address"]) == (device, logged["peer"])
    assert set(row) == {"device_id", "address", "last_seen_s_ago"}  # nothing secret
    await add_member(laptop, "phone", device_id=device)
    assert laptop.gossip.device_status()["to_add"] == []  # added: it waits no more


async def test_the_devices_shown_waiting_to_be_added_are_bounded(
        make_node: NodeFactory) -> None:
    """Anyone can claim a new device id at each dial: status shows the last
    ``WAITING_SHOWN_MAX`` distinct ids, newest first, a redial moving one up."""
    admission = (await make_node()).gossip.admission
    clock = Clock()
    admission._now = clock
    for n in range(WAITING_SHOWN_MAX + 5):
        clock.now_s = float(n)
        admission.refusing(f"FORGED{n}", NOT_MEMBER, {}, remote="10.0.0.1")
    admission.refusing("FORGED5", NOT_MEMBER, {}, remote="10.0.0.2")  # redials
    shown = [row["device_id"] for row in admission.waiting_rows()]
    assert len(shown) == WAITING_SHOWN_MAX
    assert shown[0] == "FORGED5" and "FORGED4" not in shown
    assert shown[1:] == [f"FORGED{n}" for n in range(WAITING_SHOWN_MAX + 4, 5, -1)]


async def test_a_waiting_device_shows_when_it_really_dials_again(
        make_node: NodeFactory) -> None:
    """A device waiting to be added dials again within a pull interval, not after its
    back-off (ten minutes here): its status row counts down to that dial."""
    laptop = await make_node(name="laptop", sync=FAST)
    patient = dataclasses.replace(PATIENT, pull_interval_s=0.5)
    phone = await make_node(name="phone", sync=patient, advertise_url=None)
    assert await phone.gossip.add_peer(laptop.url, learned=False)
    runner = phone.gossip.runners[f"url:{laptop.url}"]
    await until(lambda: runner.refused is not None and runner.state == "backoff")
    [row] = phone.gossip.rows.status()
    assert row["state"] == "refused"
    assert 0.0 <= row["retry_in_s"] <= patient.pull_interval_s
    await until(lambda: runner.machine.failures >= 2)  # and so it did


async def test_a_device_named_as_the_member_is_told_a_name_of_its_own_to_add_it_by(
        make_node: NodeFactory) -> None:
    """Two nodes on one machine both take its host name: the waiting device's command
    gives another name (the first group of its id after its own), which the member
    takes, so that the two are told apart in lists of devices."""
    laptop = await make_node(name="vm", sync=FAST)
    phone = await make_node(name="vm", sync=FAST, advertise_url=None)
    assert await phone.gossip.add_peer(laptop.url, learned=False)
    runner = phone.gossip.runners[f"url:{laptop.url}"]
    await until(lambda: runner.refused is not None)
    assert runner.refused is not None
    command = shlex.split(runner.refused.partition("run `")[2].partition("`")[0])
    name = command[command.index("--name") + 1]
    assert name == "vm-" + phone.device.device_id.partition("-")[0]
    await add_member(laptop, name, device_id=phone.device.device_id)  # 201: taken
    await until(lambda: phone.gossip.device_status()["waiting"] == [])


async def test_the_devices_warned_of_for_a_wrong_secret_are_bounded(
        make_node: NodeFactory) -> None:
    """Each device that gives a wrong cluster secret is warned of once; those remembered
    for it are at most ``WRONG_SECRETS_KEPT_MAX`` (a dialer claiming a new device id
    at each dial cannot grow the set): past the bound all are forgotten, and each refusal
    still names the secret (here one a window of ``CLAIMED_LINES_WINDOW_S``:
    ``CLAIMED_LINES_MAX`` bounds them too, and only those logged are remembered)."""
    admission = (await make_node(cluster_secret=SECRET)).gossip.admission
    admission._now = Clock(step_s=CLAIMED_LINES_WINDOW_S)  # one line a window: all logged
    for n in range(WRONG_SECRETS_KEPT_MAX):
        admission.admit(f"DEVICE{n}", shared=False, wrong_secret=True)
    assert len(admission._wrong_secret) == WRONG_SECRETS_KEPT_MAX
    refused = admission.admit("ONE-MORE", shared=False, wrong_secret=True)
    assert refused is not None and refused[1] == {"secret": "wrong"}
    assert admission._wrong_secret == {"ONE-MORE"}


async def test_the_devices_logged_waiting_to_be_added_are_bounded(
        make_node: NodeFactory) -> None:
    """Each device waiting to be added is logged once; those remembered for it are at
    most ``WAITING_KEPT_MAX`` (a dialer claiming a new device id at each dial cannot grow
    the set): past the bound all are forgotten, and each is logged again (here one a
    window of ``CLAIMED_LINES_WINDOW_S``: ``CLAIMED_LINES_MAX`` bounds them too)."""
    admission = (await make_node()).gossip.admission
    admission._now = Clock(step_s=CLAIMED_LINES_WINDOW_S)  # one line a window: all logged
    with structlog.testing.capture_logs() as said:
        for n in range(WAITING_KEPT_MAX):
            admission.refusing(f"DEVICE{n}", NOT_MEMBER, {}, remote=None)
        admission.refusing("DEVICE0", NOT_MEMBER, {}, remote=None)  # logged already
        assert len(admission._waiting) == WAITING_KEPT_MAX
        admission.refusing("ONE-MORE", NOT_MEMBER, {}, remote=None)
        assert admission._waiting == {"ONE-MORE"}
        admission.refusing("DEVICE0", NOT_MEMBER, {}, remote=None)  # forgotten: again
    logged = [entry["device_id"] for entry in said
              if entry["event"] == "device waiting to be added"]
    assert len(logged) == WAITING_KEPT_MAX + 2 and logged[-1] == "DEVICE0"


async def test_a_flood_of_claimed_device_ids_logs_a_bounded_number_of_lines(
        make_node: NodeFactory) -> None:
    """Each dialer claiming a device id of its own (nothing proves one before it is
    admitted) is a device waiting to be added, or one giving a wrong secret: at most
    ``CLAIMED_LINES_MAX`` lines of each are logged a window; the next window's first line
    comes after one that counts those that were not."""
    admission = (await make_node(cluster_secret=SECRET)).gossip.admission
    clock = Clock()
    admission._now = clock
    flood = 1000
    with structlog.testing.capture_logs() as said:
        for n in range(flood):
            admission.refusing(f"DEVICE{n}", NOT_MEMBER, {}, remote="10.0.0.1")
            admission.admit(f"WRONG{n}", shared=False, wrong_secret=True, remote="10.0.0.1")
        clock.now_s = CLAIMED_LINES_WINDOW_S  # the next window
        admission.refusing("NEXT", NOT_MEMBER, {}, remote="10.0.0.1")
        admission.admit("WRONG-NEXT", shared=False, wrong_secret=True, remote="10.0.0.1")
    for event, level, last in (("device waiting to be added", "info", "NEXT"),
                               ("a peer gave a wrong cluster secret", "warning",
                                "WRONG-NEXT")):
        lines = [entry for entry in said if entry["event"] == event
                 or entry.get("line") == event]
        assert [entry["event"] for entry in lines] \
            == [event] * CLAIMED_LINES_MAX + ["lines not logged", event]
        summary = lines[-2]
        assert (summary["log_level"], summary["count"], summary["window_s"]) \
            == (level, flood - CLAIMED_LINES_MAX, CLAIMED_LINES_WINDOW_S)
        assert lines[-1]["device_id"] == last


async def test_a_device_held_back_by_a_full_window_is_logged_in_a_later_one(
        make_node: NodeFactory) -> None:
    """A real device that dials while forged ids fill the window is not logged then,
    nor taken as logged: as it redials in the next window, it is, waiting to be added
    or giving a wrong secret."""
    admission = (await make_node(cluster_secret=SECRET)).gossip.admission
    clock = Clock()
    admission._now = clock
    with structlog.testing.capture_logs() as said:
        for n in range(CLAIMED_LINES_MAX):
            admission.refusing(f"FORGED{n}", NOT_MEMBER, {}, remote="10.0.0.1")
            admission.admit(f"FORGED-WRONG{n}", shared=False, wrong_secret=True)
        for _ in range(3):  # redialing within the full window
            admission.refusing("REAL", NOT_MEMBER, {}, remote="10.0.0.2")
            admission.admit("REAL-WRONG", shared=False, wrong_secret=True)
        clock.now_s = CLAIMED_LINES_WINDOW_S  # the next window
        admission.refusing("REAL", NOT_MEMBER, {}, remote="10.0.0.2")
        admission.admit("REAL-WRONG", shared=False, wrong_secret=True)
    for event, real in (("device waiting to be added", "REAL"),
                        ("a peer gave a wrong cluster secret", "REAL-WRONG")):
        logged = [entry for entry in said if entry["event"] == event]
        assert len(logged) == CLAIMED_LINES_MAX + 1 and logged[-1]["device_id"] == real
        [summary] = [entry for entry in said if entry.get("line") == event]
        assert summary["count"] == 3  # the redials held back


async def test_the_members_that_refused_this_device_are_bounded(
        make_node: NodeFactory) -> None:
    """The devices that refused this one as waiting to be added are at most
    ``WAITED_ON_KEPT_MAX`` (peers' lists naming ever new nodes that refuse cannot grow
    the set): past the bound all are forgotten, and a link with one says nothing of it."""
    node = await make_node(sync=FAST)
    dead = f"http://127.0.0.1:{free_port()}"
    assert await node.gossip.add_peer(dead, learned=True)
    runner = node.gossip.runners[f"url:{dead}"]
    admission = node.gossip.admission

    def refused_by(device_id: str) -> None:
        admission.refused_by_peer(runner, LinkRefused(
            "refused", refusal=Refusal(NOT_MEMBER, {}, device_id)))

    for n in range(WAITED_ON_KEPT_MAX):
        refused_by(f"MEMBER{n}")
    assert len(admission._waited_on) == WAITED_ON_KEPT_MAX
    refused_by("MEMBER0")  # again: one held, nothing to make room for
    assert len(admission._waited_on) == WAITED_ON_KEPT_MAX
    refused_by("ONE-MORE")
    assert admission._waited_on == {"ONE-MORE": None}
    assert admission.added_since_refused("MEMBER0") == (False, None)
    assert admission.added_since_refused("ONE-MORE") == (True, None)
    assert admission.added_since_refused("ONE-MORE") == (False, None)  # said once


async def test_the_addresses_whose_refusal_is_remembered_are_bounded(
        make_node: NodeFactory) -> None:
    """A refusal of this device is warned of once per address, until it changes, kept
    when the address's runner is forgotten; the addresses remembered for it are at most
    ``REFUSALS_KEPT_MAX`` (peers' lists naming ever new addresses that refuse cannot
    grow the map): past the bound all are forgotten, and each is warned of again."""
    node = await make_node(cluster_secret=SECRET, sync=FAST)
    dead = f"http://127.0.0.1:{free_port()}"
    assert await node.gossip.add_peer(dead, learned=True)
    template = node.gossip.runners[f"url:{dead}"]
    admission = node.gossip.admission

    def refuse(n: int) -> None:
        url = f"http://refusing-{n}.invalid:7878"  # a new runner each time: none is kept
        admission.refused_by_peer(dataclasses.replace(template, key=f"url:{url}", url=url,
                                                      refused=None),
                                  LinkRefused("refused: not a member"))

    with structlog.testing.capture_logs() as said:
        for n in range(REFUSALS_KEPT_MAX):
            refuse(n)
        refuse(0)  # remembered: not warned of again
        assert len(admission._refusals) == REFUSALS_KEPT_MAX
        refuse(REFUSALS_KEPT_MAX)
        assert list(admission._refusals) == [f"http://refusing-{REFUSALS_KEPT_MAX}.invalid:7878"]
        refuse(0)  # forgotten past the bound: news again
    warned = [entry["peer"] for entry in said if entry["event"] == "peer refused this device"]
    assert len(warned) == REFUSALS_KEPT_MAX + 2
    assert warned[-1] == "http://refusing-0.invalid:7878"


async def _refused_by_a_stranger(make_node: NodeFactory) -> tuple[
        RunningNode, str, str, str, str, dict[str, Any], Runner]:
    """A node with a learned peer and a ``--peer`` address, the learned one (a device
    known here as no member) having said this device was removed by a member: the node,
    the learned and the given address, the stranger and the member, the removal's
    detail and the learned one's runner."""
    node = await make_node(cluster_secret=SECRET, sync=FAST)
    learned, given = (f"http://127.0.0.1:{free_port()}" for _ in range(2))
    assert await node.gossip.add_peer(learned, learned=True)
    assert await node.gossip.add_peer(given, learned=False)
    stranger, member = (new_device_id() for _ in range(2))
    detail = {"by": member, "at_ms": 1_000, "reason": "lost"}
    untrusted = node.gossip.runners[f"url:{learned}"]
    node.gossip.admission.refused_by_peer(untrusted, LinkRefused(
        "refused", Refusal(DEVICE_REMOVED, detail, stranger)))
    return node, learned, given, stranger, member, detail, untrusted


async def test_a_removal_said_by_a_device_not_trusted_is_shown_not_recorded(
        make_node: NodeFactory) -> None:
    """A learned peer that is no member known here says this device was removed: its
    operator reads what it says and that it is not taken; once a trusted peer (a
    ``--peer`` address) says the same removal, every refusal reads as that removal."""

    node, learned, given, stranger, member, detail, untrusted = \
        await _refused_by_a_stranger(make_node)
    assert not node.gossip.removed.known and node.gossip.own_removal() is None
    assert untrusted.refused is not None
    assert untrusted.refused.startswith(f"refused by {stranger}: it says this device was "
                                        f"removed from the cluster by {member} at ")
    assert "(lost)" in untrusted.refused and "not taken as this device's removal" \
        in untrusted.refused
    trusted = node.gossip.runners[f"url:{given}"]
    node.gossip.admission.refused_by_peer(trusted, LinkRefused(
        "refused", Refusal(DEVICE_REMOVED, detail, member)))
    assert node.gossip.own_removal() is not None
    rows = {row["url"]: row["refused"] for row in node.gossip.peers()}
    assert rows[given] == rows[learned] == node.gossip.device_status()["removed_text"]


async def test_a_link_up_again_is_not_said_refused_by_its_old_removal(
        make_node: NodeFactory) -> None:
    """A peer not trusted said this device was removed, then a dial there connected: its
    row says no refusal, and a trusted peer's refusal as removed later puts none back on
    it (the link is up: the peer no longer says so)."""
    node, learned, given, _stranger, member, detail, untrusted = \
        await _refused_by_a_stranger(make_node)
    untrusted.dial_connected()  # as a later dial there that connects does (Gossip._dial_loop)
    untrusted.state = "up"
    node.gossip.admission.refused_by_peer(node.gossip.runners[f"url:{given}"], LinkRefused(
        "refused", Refusal(DEVICE_REMOVED, detail, member)))
    assert untrusted.refused is None
    assert {row["url"]: row["refused"] for row in node.gossip.peers()}[learned] is None


async def test_a_removers_name_typed_as_an_escape_is_told_from_the_character(
        make_node: NodeFactory) -> None:
    """The remover's name in ``removed_text`` is shown as the tables show it
    (``shown_name``): one typed with the six characters ``\\u3164`` reads apart from one
    holding U+3164, whoever reads the sentence."""
    node = await make_node(cluster_secret=SECRET, sync=FAST)
    given = f"http://127.0.0.1:{free_port()}"
    assert await node.gossip.add_peer(given, learned=False)
    typed = "mallory\\u3164"
    member = await add_member(node, typed)
    node.gossip.admission.refused_by_peer(node.gossip.runners[f"url:{given}"], LinkRefused(
        "refused", Refusal(DEVICE_REMOVED, {"by": member, "at_ms": 0, "reason": ""}, member)))
    removed = node.gossip.device_status()["removed_text"]
    assert removed.startswith(f"removed from the cluster by mallory\\\\u3164 ({member}) at ")
    assert removed.partition(" (")[0].endswith(shown_name(typed))


async def test_a_members_name_in_the_waiting_line_is_shown_as_the_tables_show_it(
        make_node: NodeFactory) -> None:
    """A member whose name holds U+3164 and one whose name was typed ``\\u3164`` are told
    apart in the line of a device waiting to be added on them."""
    phone = await make_node(name="phone", sync=FAST, advertise_url=None)
    shown = {}
    for name in ("lap\u3164", "lap\\u3164"):
        laptop = await make_node(name=name, sync=FAST)
        assert await phone.gossip.add_peer(laptop.url, learned=False)
        runner = phone.gossip.runners[f"url:{laptop.url}"]
        await until(lambda runner=runner: runner.refused is not None)
        assert runner.refused is not None
        shown[name] = runner.refused.partition(" (")[0]
    assert shown == {"lap\u3164": "waiting to be added on lap\\u3164",
                     "lap\\u3164": "waiting to be added on lap\\\\u3164"}


async def test_a_removal_told_again_is_not_warned_of_again_once_its_remover_is_named(
        make_node: NodeFactory) -> None:
    """A peer says the same removal at each dial: warned of once, though a record names
    its remover in between, which changes the words that say it."""
    # Its first dial failed (nothing listens there), which forgets a refusal warned of.
    node, learned, runner = await learned_down(make_node)
    remover = new_device_id()
    refused = LinkRefused("refused", Refusal(
        DEVICE_REMOVED, {"by": remover, "at_ms": 1_000, "reason": "lost"}, new_device_id()))
    with structlog.testing.capture_logs() as said:
        node.gossip.admission.refused_by_peer(runner, refused)
        before = node.gossip.admission.refusal(runner)
        await add_member(node, "laptop", device_id=remover)
        node.gossip.admission.refused_by_peer(runner, refused)
    assert runner.refused is not None and f"laptop ({remover})" in runner.refused
    assert runner.refused != before  # the words changed, not the refusal
    assert [entry["peer"] for entry in said
            if entry["event"] == "peer refused this device"] == [learned]


async def test_a_removal_claim_taken_once_its_signer_is_a_member_is_warned_of(
        make_node: NodeFactory) -> None:
    """The same signed removal, first from a device no member (said not taken), then once
    a record makes that device a member (taken, recorded): the log says it is taken."""
    node, _learned, runner = await learned_down(make_node)
    signer = new_device_id()
    refused = LinkRefused("refused", Refusal(
        DEVICE_REMOVED, {"by": signer, "at_ms": 1_000, "reason": "lost"}, signer))
    with structlog.testing.capture_logs() as said:
        node.gossip.admission.refused_by_peer(runner, refused)
        assert node.gossip.own_removal() is None
        await add_member(node, "laptop", device_id=signer)
        node.gossip.admission.refused_by_peer(runner, refused)
        assert node.gossip.own_removal() is not None  # taken now
    reasons = [entry["reason"] for entry in said if entry["event"] == "peer refused this device"]
    assert any("not taken" not in reason for reason in reasons), reasons
