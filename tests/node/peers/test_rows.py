"""What people see of the links (``node.peers.rows``: ``GET /v1/peers``, ``status``,
``GET /v1/devices``), with real nodes in this process: peers down, addresses held off,
member addresses not reached yet, devices linked by the cluster secret."""

from __future__ import annotations

import dataclasses
from typing import Any

import aiohttp

from node.peers.holds import awake_s
from node.peers.link_errors import LinkRefused, Refusal
from node.peers.rows import HELD_OFF_KINDS, HELD_OFF_LISTED_MAX
from node.peers.transport import DEVICE_REMOVED
from node.server.run import RunningNode
from tests.node.peers.support import (
    FAST,
    PATIENT,
    SECRET,
    NodeFactory,
    add_member,
    busy,
    hub_and_laptop_gone,
    learned_down,
    listed_as,
    new_device_id,
    rows_of,
    serving,
    until,
)
from tests.support.metrics import scrape, value
from tests.support.processes import free_port


async def dialed_in_and_stopped(make_node: NodeFactory, laptop: RunningNode,
                                **settings: Any) -> tuple[RunningNode, str]:
    """A node of the cluster (``settings`` given) that dialed ``laptop``, was listed there
    as up, and stopped: the laptop lists it as down. The node, and the URL it served."""
    phone = await make_node(cluster_secret=SECRET, sync=FAST, **settings)
    assert await phone.gossip.add_peer(laptop.url, learned=False)
    await listed_as(laptop, phone, "up")
    url = phone.url
    await phone.stop()
    await listed_as(laptop, phone, "down")
    return phone, url


async def test_a_peer_whose_link_ended_stays_listed_as_down(make_node: NodeFactory) -> None:
    """A phone that only dials out stops: the laptop still lists it, down, with its
    device and last contact (it used to vanish from ``clawsync status``), until a link to
    it is up again, when that link's row takes its place."""
    laptop = await make_node(cluster_secret=SECRET, sync=FAST)
    phone, _ = await dialed_in_and_stopped(make_node, laptop)
    [down] = rows_of(laptop, phone)
    assert down["direction"] == "in" and down["device_id"] == phone.gossip.device.device_id
    assert down["last_contact_s_ago"] is not None and down["bytes_in"] > 0
    assert down["events_we_lack"] is None and down["events_peer_lacks"] is None
    again = await make_node(cluster_secret=SECRET, sync=FAST, data_dir=phone.config.data_dir)
    assert await again.gossip.add_peer(laptop.url, learned=False)
    await listed_as(laptop, phone, "up")


async def test_a_dial_that_fails_does_not_hide_a_peer_down(make_node: NodeFactory) -> None:
    """A phone that dialed in stops; the laptop then adds it with its address and dials
    it there, in vain: the phone stays listed as down (its accepted link's last row) as
    well as by the dial in backoff that names its device. Only a link up supersedes it."""
    laptop = await make_node(cluster_secret=SECRET, sync=FAST)
    assert laptop.gossip.membership is not None
    phone, address = await dialed_in_and_stopped(make_node, laptop)
    device = phone.gossip.device.device_id
    await laptop.gossip.membership.add(device, "phone", address)
    await until(lambda: any(row["url"] == address and row["state"] == "backoff"
                            for row in laptop.gossip.peers()))
    states = sorted(row["state"] for row in laptop.gossip.peers() if row["device_id"] == device)
    assert states == ["backoff", "down"]


async def test_a_node_back_from_the_same_address_with_a_new_node_id_replaces_its_row(
        make_node: NodeFactory) -> None:
    """A node upgraded in place may come back with another node id: the link from the
    address it gives takes the place of the old id's ``down`` row (which stayed until
    the laptop restarted)."""
    address = "http://phone.example:7878"
    laptop = await make_node(cluster_secret=SECRET, sync=FAST)
    await dialed_in_and_stopped(make_node, laptop, advertise_url=address)
    new = await make_node(cluster_secret=SECRET, sync=FAST, advertise_url=address)
    assert await new.gossip.add_peer(laptop.url, learned=False)
    await listed_as(laptop, new, "up")
    assert [row["node_id"] for row in laptop.gossip.peers() if row["url"] == address] \
        == [new.astore.node_id]


async def test_the_addresses_held_off_longest_are_listed_and_all_counted(
        make_node: NodeFactory) -> None:
    """``/v1/peers`` lists ``HELD_OFF_LISTED_MAX`` addresses held off, those whose hold-off
    runs longest, and counts them all (``held_off_total``)."""
    node = await make_node()
    forgotten = node.gossip.learning.forgotten
    now = awake_s()
    for n in range(HELD_OFF_LISTED_MAX + 1):  # each forgotten a moment later than the last
        forgotten.forgot(f"http://gone-{n}:8765", None, now + n)
    async with aiohttp.ClientSession() as http, http.get(node.url + "/v1/peers") as reply:
        answer = await reply.json()
    assert answer["held_off_total"] == HELD_OFF_LISTED_MAX + 1
    listed = [row["url"] for row in answer["held_off"]]
    assert listed == [f"http://gone-{n}:8765" for n in range(HELD_OFF_LISTED_MAX, 0, -1)]
    assert answer["peers"] == []


async def test_an_address_held_off_is_listed_as_such(make_node: NodeFactory) -> None:
    """A node that wonders why an address its peer lists is not dialed sees it in
    ``/v1/peers``: held off, for how long still, after how many forgettings, apart from
    the links (``Forgotten.held_off``: not once its hold-off has passed)."""
    hub, _laptop, gone = await hub_and_laptop_gone(make_node)
    node = await make_node(cluster_secret=SECRET, sync=FAST, peers=[hub.url])
    await until(lambda: node.gossip.learning.forgotten.held_off(0.0)
                and f"url:{gone}" not in node.gossip.runners)
    async with aiohttp.ClientSession() as http, http.get(node.url + "/v1/peers") as reply:
        answer = await reply.json()
    [held] = answer["held_off"]
    assert answer["held_off_total"] == 1
    assert (held["url"], held["times_forgotten"]) == (gone, 1)
    assert 0 < held["held_off_s"] <= FAST.forgotten_hold_s
    # The links stay one row per link: an address held off is none.
    assert [(row["url"], row["state"]) for row in answer["peers"]] == [(hub.url, "up")]


async def test_a_member_address_not_reached_yet_names_its_device(
        make_node: NodeFactory) -> None:
    """Before the first link to a member's address comes up (the member is down since
    this node started), ``status`` names the device that advertises that address."""
    node = await make_node()
    dead = f"http://127.0.0.1:{free_port()}"
    member = await add_member(node, "phone", dead)
    await node.gossip.dial_members()
    [row] = [row for row in node.gossip.status() if row["url"] == dead]
    assert row["node_id"] is None
    assert (row["device_id"], row["device_name"]) == (member, "phone")


async def test_devices_lists_the_devices_linked_by_the_secret(make_node: NodeFactory) -> None:
    """No record adds them, so they are no members; ``linked`` says they are linked, and
    by what. The members and removed stay as the records say."""
    a = await make_node(cluster_secret=SECRET, sync=FAST, name="a")
    b = await make_node(cluster_secret=SECRET, sync=FAST, name="b",
                        advertise_url=None)
    assert await b.gossip.add_peer(a.url, learned=False)
    # A link is up once it proved the peer's key; the row names the peer's node once
    # the peer's hello has come too.
    await until(lambda: a.gossip.linked_not_members().get(b.device.device_id, {}).get("node_id")
                and b.gossip.linked_not_members().get(a.device.device_id, {}).get("node_id"))
    async with aiohttp.ClientSession() as http:
        async with http.get(a.url + "/v1/devices") as reply:
            on_a = await reply.json()
        async with http.get(b.url + "/v1/devices") as reply:
            on_b = await reply.json()
    assert [row["device_id"] for row in on_a["members"]] == [a.device.device_id]
    assert on_a["removed"] == [] and on_b["removed"] == []
    [linked] = on_a["linked"]
    assert linked["device_id"] == b.device.device_id and linked["via"] == "cluster_secret"
    assert linked["node_id"] == b.gossip.astore.node_id
    [linked] = on_b["linked"]
    assert (linked["device_id"], linked["address"], linked["via"]) \
        == (a.device.device_id, a.url, "cluster_secret")
    # Once a member, it is listed as one, not twice.
    await add_member(a, "b", device_id=b.device.device_id)
    async with aiohttp.ClientSession() as http, http.get(a.url + "/v1/devices") as reply:
        on_a = await reply.json()
    assert on_a["linked"] == []
    assert b.device.device_id in {row["device_id"] for row in on_a["members"]}


async def test_removing_a_device_linked_by_the_secret_says_how(make_node: NodeFactory) -> None:
    """It is no member (no record adds it): a removal finds nothing to remove."""
    a = await make_node(cluster_secret=SECRET, sync=FAST)
    b = await make_node(cluster_secret=SECRET, sync=FAST)
    assert await a.gossip.add_peer(b.url, learned=False)
    await until(lambda: b.device.device_id in a.gossip.linked_devices())
    stranger = new_device_id()
    async with aiohttp.ClientSession() as http:
        for device_id, said in ((b.device.device_id, "links with the cluster secret"),
                                (stranger, f"no device {stranger} is a member here")):
            async with http.delete(f"{a.url}/v1/devices/{device_id}") as reply:
                assert reply.status == 404
                assert said in (await reply.json())["error"]["message"]


async def test_the_addresses_not_dialed_are_counted_by_why(make_node: NodeFactory) -> None:
    """``/v1/peers`` (``held_off_kinds``) and ``/metrics`` count the addresses not dialed
    now by why: forgotten after their failures (as ``held_off_total`` does), answered by
    a device that may not link (a member's address counted once, whether its record or
    a peer's list names it, and not while it is dialed), and a peer that asked for a wait
    (429 with ``Retry-After``)."""
    # Back-off from a second: the member's address, which fails, is not forgotten after
    # its failures (learned_failures_max) however slowly the test runs.
    node = await make_node(cluster_secret=SECRET, sync=dataclasses.replace(
        FAST, backoff_base_s=1.0, backoff_max_s=600.0))
    for n in range(2):
        node.gossip.learning.forgotten.forgot(f"http://gone-{n}:8765", None, awake_s())
    stranger, moved = new_device_id(), "http://moved:8765"
    await add_member(node, "laptop", moved)
    for url in (moved, "http://listed:8765"):
        node.gossip.learning.answered_by(url, stranger)
    # An address dialed now is not counted: the member's, dialed by the members round
    # that its record wakes (after the add has answered).
    await until(lambda: f"url:{moved}" in node.gossip.runners)
    dialed = node.gossip.runners[f"url:{moved}"]
    assert node.gossip.held_off_kinds()["answered_by_another_device"] == 1
    # Its dial ends, as one that another device answered does (``Gossip._dial_loop``).
    assert dialed.task is not None
    dialed.task.cancel()
    node.gossip.runners.pop(dialed.key)

    async with serving(busy) as url:
        assert await node.gossip.add_peer(url, learned=False)
        runner = node.gossip.runners[f"url:{url}"]
        await until(lambda: runner.state == "backoff")
    expected = {"failing": 2, "answered_by_another_device": 2, "asked_to_wait": 1}
    async with aiohttp.ClientSession() as http, http.get(node.url + "/v1/peers") as reply:
        answer = await reply.json()
    assert answer["held_off_kinds"] == expected
    assert answer["held_off_total"] == 2
    families = await scrape(node.url)
    assert {kind: value(families, "clawsync_peer_addresses_held_off", kind=kind)
            for kind in HELD_OFF_KINDS} == expected


async def test_a_removal_told_before_the_removers_name_was_known_reads_as_it_does_now(
        make_node: NodeFactory) -> None:
    """The phone is told it was removed by a member whose name it has no record of yet,
    then learns the name from another member (which has the remover's add, not the
    removal): the refused link's words say the removal as ``removed_text`` says it now,
    so that ``clawsync status`` and the console, which leave out a refusal that repeats
    the removal said above, say it once. The back-off is long: no redial mends the row."""
    mallory = await make_node(name="mallory", sync=FAST)
    other = await make_node(name="other", sync=FAST)
    phone = await make_node(name="phone", sync=PATIENT)
    phone_id, remover = phone.gossip.device.device_id, mallory.gossip.device.device_id
    assert mallory.gossip.membership is not None and phone.gossip.membership is not None
    await mallory.gossip.membership.add(phone_id, "phone")
    await mallory.gossip.membership.remove(phone_id, "lost")
    await add_member(other, "mallory", device_id=remover)
    await add_member(other, "phone", device_id=phone_id)

    assert await phone.gossip.add_peer(mallory.url, learned=False)
    refused = phone.gossip.runners[f"url:{mallory.url}"]
    await until(lambda: refused.refused is not None and phone.gossip.removed.known)
    assert refused.refused is not None and f"by {remover} at " in refused.refused
    assert await phone.gossip.add_peer(other.url, learned=False)
    await until(lambda: phone.gossip.membership is not None
                and phone.gossip.membership.members().get(remover) is not None)

    removed_text = phone.gossip.device_status()["removed_text"]
    assert removed_text.startswith(f"removed from the cluster by mallory ({remover}) at ")
    assert refused.state != "up"
    [row] = [row for row in phone.gossip.peers() if row["url"] == mallory.url]
    assert row["state"] == "refused" and row["refused"] == removed_text


async def test_a_member_that_refused_this_device_then_stopped_is_said_unreachable(
        make_node: NodeFactory) -> None:
    """A member refuses this device as waiting to be added, then stops: its row says the
    dial that fails now (backing off, the failure), not the old refusal, and this device
    no longer says it waits to be added there (what is wrong is that it is not reached)."""
    laptop = await make_node(name="laptop", sync=FAST)
    phone = await make_node(name="phone", sync=FAST, advertise_url=None)
    url = laptop.url  # read while it serves
    assert await phone.gossip.add_peer(url, learned=False)
    runner = phone.gossip.runners[f"url:{url}"]
    await until(lambda: phone.gossip.device_status()["waiting"] != [])
    await laptop.stop()
    await until(lambda: runner.failure is not None)
    [row] = [row for row in phone.gossip.peers() if row["url"] == url]
    assert row["refused"] is None and row["state"] in ("backoff", "connecting", "down")
    assert phone.gossip.device_status()["waiting"] == []
    await until(lambda: runner.state == "backoff")
    [row] = [row for row in phone.gossip.peers() if row["url"] == url]
    assert row["state"] == "backoff" and "cannot reach" in row["failure"]


async def test_a_removal_said_by_a_device_made_a_member_since_is_not_read_as_not_taken(
        make_node: NodeFactory) -> None:
    """A device no member says this device was removed; a record then makes it a member:
    its row reads from the membership of now, not of the refusal (no longer "no member
    this device knows"), and says the claim is taken at its next refusal, which has not
    come: nothing is recorded meanwhile."""
    node, learned, runner = await learned_down(make_node)
    signer = new_device_id()
    node.gossip.admission.refused_by_peer(runner, LinkRefused("refused", Refusal(
        DEVICE_REMOVED, {"by": signer, "at_ms": 1_000, "reason": "lost"}, signer)))
    [before] = [row["refused"] for row in node.gossip.peers() if row["url"] == learned]
    assert "not taken as this device's removal" in before
    await add_member(node, "laptop", device_id=signer)
    [after] = [row["refused"] for row in node.gossip.peers() if row["url"] == learned]
    assert after.startswith(f"refused by {signer}: it says this device was removed from "
                            f"the cluster by laptop ({signer}) at ")
    assert "not taken" not in after and after.endswith(
        "it was no member this device knew when it said so, and is known now: that is "
        "taken as this device's removal at its next refusal")
    assert node.gossip.own_removal() is None
