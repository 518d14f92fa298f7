"""node.peers.gossip with real nodes in this process: which dialed peers are kept."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import web

from crdt import device as crdt_device
from crdt import membership
from crdt.log.store import EventStore
from node.cli.linkproxy import LinkProxy
from node.peers.admission import REFUSALS_KEPT_MAX, WRONG_SECRETS_KEPT_MAX
from node.peers.ahead import PARSE_THREADS
from node.peers.learning import _member_urls, awake_s
from node.peers.rows import HELD_OFF_LISTED_MAX
from node.peers.runner import Runner, linked_nodes
from node.peers.transport import DEVICE_HEADER, DEVICE_REMOVED, NODE_HEADER, LinkRefused, Refusal
from node.server.run import RunningNode
from sync.peer.config import SyncConfig
from sync.peer.machine import PeerSync
from tests.node.conftest import EventFactory
from tests.node.peers.test_links import own_link
from tests.support.certs import make_ca, make_cert
from tests.support.processes import free_port

NodeFactory = Callable[..., Awaitable[RunningNode]]
FAST = SyncConfig(backoff_base_s=0.01, backoff_max_s=0.02)
DEADLINE_S = 10.0


async def forgotten(node: RunningNode, url: str) -> bool:
    """Wait until ``node`` no longer dials ``url``; False if it still does at the deadline."""
    async with asyncio.timeout(DEADLINE_S):
        while f"url:{url}" in node.gossip.runners:
            await asyncio.sleep(0.01)
    return url not in node.gossip.learning.members


async def add_member(node: RunningNode, name: str, address: str) -> str:
    """Add a new device, advertising ``address``, to ``node``'s cluster; its id."""
    member = crdt_device.device_id(crdt_device.public_bytes(crdt_device.generate()))
    async with aiohttp.ClientSession() as http, http.post(
            node.url + "/v1/devices", json={"device_id": member, "name": name,
                                            "address": address}) as r:
        assert r.status == 201
    return member


async def test_a_learned_address_of_this_very_node_is_forgotten(
        make_node: NodeFactory) -> None:
    node = await make_node(cluster_secret="s" * 32, sync=FAST)
    itself = node.url.replace("127.0.0.1", "localhost")  # every dial connects
    assert await node.gossip.add_peer(itself, learned=True)
    assert await forgotten(node, itself)


async def test_a_dead_learned_address_is_forgotten(make_node: NodeFactory) -> None:
    node = await make_node(cluster_secret="s" * 32, sync=FAST)
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
    node = await make_node(cluster_secret="s" * 32, sync=FAST)
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
    node = await make_node(cluster_secret="s" * 32, sync=FAST)
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
    assert [(one.url, one.linked) for one in _member_urls(listed)] == [
        ("http://a:1", True), ("http://b:1", False), ("http://c:1", False),
        ("http://d:1", True)]


async def test_one_address_added_twice_at_once_is_dialed_once(
        make_node: NodeFactory) -> None:
    """Two peers' member lists that name one address, learned at the same moment."""
    node = await make_node(cluster_secret="s" * 32, sync=FAST)
    dead = f"http://127.0.0.1:{free_port()}"
    added = await asyncio.gather(*(node.gossip.add_peer(dead, learned=True)
                                   for _ in range(2)))
    assert sorted(added) == [False, True]
    dialing = [task for task in asyncio.all_tasks() if task.get_name() == f"url:{dead}"]
    assert len(dialing) == 1


async def test_a_configured_address_is_dialed_on(make_node: NodeFactory) -> None:
    node = await make_node(cluster_secret="s" * 32, sync=FAST)
    dead = f"http://127.0.0.1:{free_port()}"  # perhaps a peer that is down for now
    assert await node.gossip.add_peer(dead, learned=False)
    runner = node.gossip.runners[f"url:{dead}"]
    async with asyncio.timeout(DEADLINE_S):
        while runner.machine.failures < 2 * FAST.learned_failures_max:
            await asyncio.sleep(0.01)
    assert f"url:{dead}" in node.gossip.runners
    # Said in the system's words, not aiohttp's (which named the address again, and
    # "ssl:default" on a plain http:// dial).
    assert runner.failure == f"cannot reach {dead}: connection refused"


async def test_a_dial_that_fails_says_why_in_plain_words(make_node: NodeFactory,
                                                        tmp_path: Path) -> None:
    """Peer addresses whose host name is not known, where nothing listens, where a
    certificate no CA of this node signed is shown, and (dialed by a node that waits
    0.5 s) where a connection is taken and never answered: ``GET /v1/peers``
    (``failure``) and the log (``peer link down``) name the address and why, not
    aiohttp's text ("Cannot connect to host nosuchhost.invalid:7878 ssl:default [Name
    or service not known]")."""
    node = await make_node(sync=FAST)
    waiting = await make_node(sync=dataclasses.replace(FAST, connect_timeout_s=0.5))
    cert, key = make_cert(tmp_path, "stranger", make_ca(tmp_path, "another-ca"))
    stranger = (await make_node(tls_cert=cert, tls_key=key)).url
    taken: list[asyncio.StreamWriter] = []  # kept open, never answered

    async def take(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        taken.append(writer)

    silent = await asyncio.start_server(take, "127.0.0.1", free_port())
    unknown, closed = f"http://nosuchhost.invalid:{free_port()}", f"http://127.0.0.1:{free_port()}"
    mute = f"http://127.0.0.1:{silent.sockets[0].getsockname()[1]}"
    expected = {unknown: f"cannot reach {unknown}: name not known",
                closed: f"cannot reach {closed}: connection refused",
                stranger: f"cannot reach {stranger}: its certificate did not verify "
                          "(unable to get local issuer certificate)",
                mute: f"cannot reach {mute}: no answer within 0.5 s"}
    dialing = {unknown: node, closed: node, stranger: node, mute: waiting}
    shown: dict[str, str] = {}  # each address's failure, as a row in backoff said it
    try:
        with structlog.testing.capture_logs() as said:
            for url, dialer in dialing.items():
                assert await dialer.gossip.add_peer(url, learned=False)
            async with aiohttp.ClientSession() as http, asyncio.timeout(DEADLINE_S):
                while shown.keys() != expected.keys():
                    for dialer in (node, waiting):
                        async with http.get(dialer.url + "/v1/peers") as reply:
                            for row in (await reply.json())["peers"]:
                                if row["failure"] is not None:
                                    shown.setdefault(row["url"], row["failure"])
                    await asyncio.sleep(0.01)
    finally:
        silent.close()
        for writer in taken:
            writer.close()
    assert shown == expected
    down = {(entry["peer"], entry["reason"]) for entry in said
            if entry["event"] == "peer link down"}
    assert down == set(expected.items())


async def test_a_dial_answered_101_without_a_websocket_says_what_was_wrong(
        make_node: NodeFactory) -> None:
    """A server that answers 101 (Switching Protocols) with another protocol in its
    Upgrade header: the failure says the handshake failed and why, not just "it answered
    HTTP 101", which reads as success."""
    # Dialed once: a redial under way would hold up the server's clean-up.
    node = await make_node(sync=SyncConfig(backoff_base_s=600.0, backoff_max_s=600.0))

    async def switch(_request: web.Request) -> web.Response:
        return web.Response(status=101, headers={"Upgrade": "h2c", "Connection": "Upgrade"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", switch)
    server = web.AppRunner(app)
    await server.setup()
    port = free_port()
    await web.TCPSite(server, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}"
    try:
        assert await node.gossip.add_peer(url, learned=False)
        runner = node.gossip.runners[f"url:{url}"]
        async with asyncio.timeout(DEADLINE_S):
            while runner.state != "backoff":
                await asyncio.sleep(0.01)
    finally:
        await server.cleanup()
    assert runner.failure == (f"cannot link with {url}: it answered HTTP 101 but the "
                              "websocket handshake failed (invalid upgrade header)")


async def test_reaching_one_peer_redials_the_others_at_once(make_node: NodeFactory) -> None:
    """A laptop that wakes up reaches its first peer: the peers it gave up on for a while
    are dialed again then, not at the end of their back-off (ten minutes here)."""
    secret, patient = "s" * 32, SyncConfig(backoff_base_s=600.0, backoff_max_s=600.0)
    laptop = await make_node(cluster_secret=secret, sync=patient)
    phone_port = free_port()
    phone_url = f"http://127.0.0.1:{phone_port}"
    assert await laptop.gossip.add_peer(phone_url, learned=False)  # the phone is off
    to_phone = laptop.gossip.runners[f"url:{phone_url}"]
    async with asyncio.timeout(DEADLINE_S):
        while to_phone.state != "backoff":
            await asyncio.sleep(0.01)
    waiting_s = to_phone.machine.wakeup_at - asyncio.get_running_loop().time()
    assert waiting_s > 60  # half the back-off at least: the test cannot pass by waiting
    phone = await make_node(cluster_secret=secret, port=phone_port)
    server = await make_node(cluster_secret=secret)
    assert await laptop.gossip.add_peer(server.url, learned=False)
    async with asyncio.timeout(DEADLINE_S):
        while to_phone.state != "up" or to_phone.node != phone.astore.node_id:
            await asyncio.sleep(0.01)
    assert laptop.gossip.runners[f"url:{server.url}"].state == "up"


async def test_a_configured_address_of_this_very_node_is_dropped_at_once(
        make_node: NodeFactory) -> None:
    node = await make_node(cluster_secret="s" * 32, sync=FAST)
    itself = node.url.replace("127.0.0.1", "localhost")
    assert await node.gossip.add_peer(itself, learned=False)
    runner = node.gossip.runners[f"url:{itself}"]
    assert await forgotten(node, itself)
    assert runner.machine.counters.faults == 0 and runner.machine.failures == 0
    assert itself in node.gossip.own_urls
    assert not await node.gossip.add_peer(itself, learned=True)
    assert itself not in [peer["url"] for peer in node.gossip.member_list()["peers"]]


@contextlib.asynccontextmanager
async def recording_server() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """A server that answers 404 to everything: its URL and the headers it was sent."""
    seen: list[dict[str, str]] = []

    async def grab(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.Response(status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", grab)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


async def test_a_learned_address_gets_the_secret_only_if_a_secret_holder_gave_it(
        make_node: NodeFactory) -> None:
    """x lists the address a device's link advertised and an address it was given
    (``--peer``); y, which learns both from x, gives the cluster secret to the second
    only: the first could be a server of whoever holds a device key."""
    secret = "s" * 32
    x = await make_node(cluster_secret=secret, sync=FAST)
    y = await make_node(cluster_secret=secret, sync=FAST)
    async with recording_server() as (advertised, to_advertised), \
            recording_server() as (configured, to_configured), \
            own_link(x, advertise=advertised):
        assert await x.gossip.add_peer(configured, learned=False)
        listed = {peer["url"]: peer["cluster_secret"]
                  for peer in x.gossip.member_list()["peers"]}
        assert listed[advertised] is False and listed[configured] is True
        assert await y.gossip.add_peer(x.url, learned=False)
        y_node = y.gossip.astore.node_id

        def from_y(seen: list[dict[str, str]]) -> list[dict[str, str]]:
            return [headers for headers in seen if headers.get(NODE_HEADER) == y_node]

        async with asyncio.timeout(DEADLINE_S):
            while not (from_y(to_advertised) and from_y(to_configured)):
                await y.gossip.learn_once()
                await asyncio.sleep(0.05)
    assert all("Authorization" not in headers for headers in from_y(to_advertised))
    assert all(headers.get("Authorization") == f"Bearer {secret}"
               for headers in from_y(to_configured))


async def test_removing_a_device_linked_by_the_secret_says_how(make_node: NodeFactory) -> None:
    """It is no member (no record adds it): a removal finds nothing to remove."""
    secret = "s" * 32
    a = await make_node(cluster_secret=secret, sync=FAST)
    b = await make_node(cluster_secret=secret, sync=FAST)
    assert await a.gossip.add_peer(b.url, learned=False)
    async with asyncio.timeout(DEADLINE_S):
        while b.device.device_id not in a.gossip.linked_devices():
            await asyncio.sleep(0.01)
    stranger = crdt_device.device_id(crdt_device.public_bytes(crdt_device.generate()))
    async with aiohttp.ClientSession() as http:
        for device_id, said in ((b.device.device_id, "links with the cluster secret"),
                                (stranger, f"no device {stranger} is a member here")):
            async with http.delete(f"{a.url}/v1/devices/{device_id}") as reply:
                assert reply.status == 404
                assert said in (await reply.json())["error"]["message"]


async def phone_and_stranger(a: RunningNode, b: RunningNode, make_node: NodeFactory,
                             event_body: EventFactory) -> tuple[RunningNode, str, str]:
    """b added on a as "phone", and a third node linked to no one (its events reach a by
    hand); b and the third each hold one event. Returns the third, b's device id and
    b's origin."""
    third = await make_node()
    assert a.gossip.membership is not None
    phone, b_origin = b.gossip.device.device_id, b.astore.node_id
    for node in (b, third):
        async with aiohttp.ClientSession(base_url=node.url) as http, \
                http.post("/v1/sessions/s/events", json=event_body(1)) as answer:
            assert answer.status == 201
    await a.gossip.membership.add(phone, "phone")
    return third, phone, b_origin


async def dial_until_even(a: RunningNode, b: RunningNode, phone: str, b_origin: str) -> None:
    """a dials b until linked to b's device, each holding all the other's events."""
    assert await a.gossip.add_peer(b.url, learned=False)
    async with asyncio.timeout(DEADLINE_S):
        while phone not in a.gossip.linked_devices() or (held := [
                await node.astore.read(lambda s: s.version) for node in (a, b)])[0] \
                != held[1] or b_origin not in held[0]:
            await asyncio.sleep(0.01)


async def told_only_its_removal(a: RunningNode, b: RunningNode, third: RunningNode,
                                link: Runner, b_origin: str) -> None:
    """b learns its removal (and takes a new origin) from a's last push on ``link``,
    which went through the retirement of b's origin, and holds nothing of the third's."""
    async with asyncio.timeout(DEADLINE_S):
        while b.gossip.own_removal() is None or b.astore.node_id == b_origin:
            await asyncio.sleep(0.01)
    held_b = await b.astore.read(lambda s: {**s.version, **s.retired})
    own = a.astore.node_id
    assert held_b[own] == link.removal_push[own]  # through the retirement of its origin
    assert third.astore.node_id not in held_b  # nothing else it lacked


async def test_a_removed_devices_last_push_goes_up_to_its_removal_record(
        make_node: NodeFactory, event_body: EventFactory) -> None:
    """The link to a device removed ends with a push of the removal record (and what
    its origin holds before it, and the remover's retirement of the device's origin),
    not of whatever else the device lacks. Here it is the only way the device learns
    its removal: it dials no one, and the remover's ordinary push is held back by a
    full window (one batch, whose ack the link holds)."""
    secret = "s" * 32
    a = await make_node(cluster_secret=secret, sync=dataclasses.replace(
        FAST, inflight_batches_max=1, ack_timeout_s=600.0))
    b = await make_node(cluster_secret=secret, sync=FAST)
    third, phone, b_origin = await phone_and_stranger(a, b, make_node, event_body)

    async def versions() -> list[dict[str, int]]:
        return [await node.astore.read(lambda s: s.version) for node in (a, b)]

    with LinkProxy(target_port=int(b.url.rsplit(":", 1)[1])) as proxy:
        assert await a.gossip.add_peer(f"http://127.0.0.1:{proxy.port}", learned=False)
        async with asyncio.timeout(DEADLINE_S):  # linked, each holding all the other's
            while phone not in a.gossip.linked_devices() \
                    or (held := await versions())[0] != held[1] or b_origin not in held[0]:
                await asyncio.sleep(0.01)
        [link] = [runner for runner in a.gossip.runners.values()
                  if runner.device is not None and runner.device.device_id == phone]
        proxy.hold_replies()
        await a.gossip.membership.add(crdt_device.device_id(crdt_device.public_bytes(
            crdt_device.generate())), "tablet")  # the one batch the window holds
        async with asyncio.timeout(DEADLINE_S):
            while link.machine.status()["inflight_batches"] != 1:
                await asyncio.sleep(0.01)
        items = await third.astore.read(lambda s: [
            (x.event, x.origin, x.seq, x.signature)
            for x in s.origin_after(s.node_id, 0, 100)])
        await a.astore.write(lambda store: store.ingest(items))  # b lacks it: window full
        stored, _ = await a.gossip.membership.remove(phone, "lost")
        assert stored is not None
        own = a.astore.node_id
        assert link.drop == DEVICE_REMOVED and link.removal_push == {
            own: await a.astore.read(lambda s: s.version[own])}  # the retirement's seq
        assert link.removal_push[own] > stored.seq
        async with asyncio.timeout(DEADLINE_S):
            while b.gossip.own_removal() is None or b.astore.node_id == b_origin:
                await asyncio.sleep(0.01)
    held = await b.astore.read(lambda s: {**s.version, **s.retired})
    assert held[own] == link.removal_push[own]  # through the retirement of its origin
    assert third.astore.node_id not in held  # nothing else it lacked


async def all_taken(one: PeerSync, other: PeerSync) -> None:
    """Wait until the two ends of a link have taken every message the other sent (a
    dialer's hello may be said again once it learns what the other reads), twice in a
    row: a message that comes later would be handled, and answered, on the writer."""
    def counts() -> tuple[int, int, int, int]:
        return (one.counters.messages_in, one.counters.messages_out,
                other.counters.messages_in, other.counters.messages_out)

    async with asyncio.timeout(DEADLINE_S):
        while True:
            before = counts()
            await asyncio.sleep(0.05)
            if counts() == before and before[0] == before[3] and before[1] == before[2]:
                return


async def test_a_push_asked_of_the_writer_before_a_removal_was_read_sends_nothing_else(
        make_node: NodeFactory, event_body: EventFactory) -> None:
    """The link's push, asked of the writer thread before the node read the removal,
    runs right after the commit that stored it (ahead of the node's reading it): it
    pushes none of what the removed device lacks, neither the events of the same commit
    nor the record; the last push alone carries the record (and the retirement)."""
    secret, quiet = "s" * 32, dataclasses.replace(FAST, pull_interval_s=600.0)
    a = await make_node(cluster_secret=secret, sync=quiet)
    b = await make_node(cluster_secret=secret, sync=quiet)
    third, phone, b_origin = await phone_and_stranger(a, b, make_node, event_body)
    await dial_until_even(a, b, phone, b_origin)
    [link] = [runner for runner in a.gossip.runners.values()
              if runner.device is not None and runner.device.device_id == phone]
    [other_end] = [runner for runner in b.gossip.runners.values()
                   if runner.direction == "in" and runner.state == "up"]
    await all_taken(link.machine, other_end.machine)
    items = await third.astore.read(lambda s: [
        (x.event, x.origin, x.seq, x.signature) for x in s.origin_after(s.node_id, 0, 100)])
    # The writer, held, takes in order: the removal with events b lacks, then the push.
    entered, go = threading.Event(), threading.Event()

    def hold(_store: EventStore) -> None:
        entered.set()
        go.wait(DEADLINE_S)

    holding = asyncio.ensure_future(a.astore.write(hold))
    assert await asyncio.to_thread(entered.wait, DEADLINE_S)
    removing = asyncio.ensure_future(a.astore.write(lambda store: (
        store.ingest(items), store.append(membership.removed(phone, "lost")))))
    await asyncio.sleep(0)  # its write is queued
    link.wake.set()
    async with asyncio.timeout(DEADLINE_S):
        while link.wake.is_set():  # the link took it, and asked the writer to push
            await asyncio.sleep(0.01)
    go.set()
    await asyncio.gather(holding, removing)
    await told_only_its_removal(a, b, third, link, b_origin)


async def test_a_link_dropped_while_it_waits_ends_without_pushing(
        make_node: NodeFactory, event_body: EventFactory) -> None:
    """A link dropped (as ``Pairing.identified`` drops a duplicate: ``drop`` set, then
    woken) while a commit's wake is pending ends at once: what the commit stored, which
    the peer lacks, is not pushed on it first."""
    secret, quiet = "s" * 32, dataclasses.replace(FAST, pull_interval_s=600.0)
    a = await make_node(cluster_secret=secret, sync=quiet)
    b = await make_node(cluster_secret=secret, sync=quiet)
    third = await make_node()  # linked to no one: its events reach a by hand
    async with aiohttp.ClientSession(base_url=third.url) as http, \
            http.post("/v1/sessions/s/events", json=event_body(1)) as answer:
        assert answer.status == 201
    assert await b.gossip.add_peer(a.url, learned=False)
    async with asyncio.timeout(DEADLINE_S):
        while not (links := [runner for runner in a.gossip.runners.values()
                             if runner.direction == "in" and runner.state == "up"
                             and runner.machine.checkpoint is not None]):
            await asyncio.sleep(0.01)
    [link] = links
    assert link.task is not None
    await all_taken(link.machine, b.gossip.runners[f"url:{a.url}"].machine)
    sent = link.machine.counters.events_sent
    items = await third.astore.read(lambda s: [
        (x.event, x.origin, x.seq, x.signature) for x in s.origin_after(s.node_id, 0, 100)])
    await a.astore.write(lambda store: store.ingest(items))  # wakes the link: b lacks them
    assert link.wake.is_set()
    link.drop = "duplicate link"
    async with asyncio.timeout(DEADLINE_S):
        await asyncio.wait({link.task})
    assert link.machine.counters.events_sent == sent


async def test_a_peer_dialed_without_the_secret_is_asked_for_members_without_it(
        make_node: NodeFactory) -> None:
    """x links with z on device keys alone (z's address came from a member, not from a
    holder of the secret): asking z which nodes it knows, x does not give the secret.
    z holds it too, so with it z would list the address it was given, and x dial it."""
    secret = "s" * 32
    x = await make_node(cluster_secret=secret, sync=FAST)
    z = await make_node(cluster_secret=secret, sync=FAST)
    async with aiohttp.ClientSession() as http:
        for node, other in ((x, z), (z, x)):
            async with http.post(node.url + "/v1/devices", json={
                    "device_id": other.device.device_id, "name": "other"}) as reply:
                assert reply.status == 201
    async with recording_server() as (listed, _seen):
        assert await z.gossip.add_peer(listed, learned=False)
        assert await x.gossip.add_peer(z.url, learned=True, secret=False)
        runner = x.gossip.runners[f"url:{z.url}"]
        async with asyncio.timeout(DEADLINE_S):
            while runner.state != "up":
                await asyncio.sleep(0.01)
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
        node = await make_node(cluster_secret="s" * 32)
        await add_member(node, "phone", address)
        async with asyncio.timeout(10):
            while not seen:
                await node.gossip.dial_members()
                await asyncio.sleep(0.05)
        assert "Authorization" not in seen[0] and DEVICE_HEADER in seen[0]


async def test_a_peer_that_takes_a_new_origin_mid_link_is_listed_under_it(
        make_node: NodeFactory, event_body: EventFactory) -> None:
    """A node whose origin is retired takes a new one and names it in its next hello, on
    the same link: the node that dialed it lists its address under the new id (and
    checks it against its other links), not the retired one."""
    secret, hellos = "s" * 32, dataclasses.replace(FAST, pull_interval_s=0.1)
    x = await make_node(cluster_secret=secret, sync=hellos)
    y = await make_node(cluster_secret=secret, sync=hellos)
    old = y.astore.node_id
    async with aiohttp.ClientSession(base_url=y.url) as http, \
            http.post("/v1/sessions/s/events", json=event_body(1)) as answer:
        assert answer.status == 201
    assert await x.gossip.add_peer(y.url, learned=False)

    def listed() -> str | None:
        return {peer["url"]: peer["node_id"]
                for peer in x.gossip.member_list()["peers"]}.get(y.url)

    async with asyncio.timeout(DEADLINE_S):
        while listed() != old or old not in await x.astore.read(lambda s: s.version):
            await asyncio.sleep(0.01)
    await x.astore.write(lambda store: store.retire(old))
    async with asyncio.timeout(DEADLINE_S):
        while y.astore.node_id == old:
            await asyncio.sleep(0.01)
        while listed() != y.astore.node_id:
            await asyncio.sleep(0.01)
    assert [runner.node for runner in x.gossip.runners.values()] == [y.astore.node_id]


def rows_of(node: RunningNode, peer: RunningNode) -> list[dict[str, Any]]:
    """``node``'s ``/v1/peers`` rows for the node ``peer``."""
    return [row for row in node.gossip.peers() if row["node_id"] == peer.astore.node_id]


async def listed_as(node: RunningNode, peer: RunningNode, state: str) -> None:
    """Wait until ``node`` lists ``peer`` once, in ``state``."""
    async with asyncio.timeout(DEADLINE_S):
        while [row["state"] for row in rows_of(node, peer)] != [state]:
            await asyncio.sleep(0.01)


async def test_a_peer_whose_link_ended_stays_listed_as_down(make_node: NodeFactory) -> None:
    """A phone that only dials out stops: the laptop still lists it, down, with its
    device and last contact (it used to vanish from ``clawsync status``), until a link to
    it is up again, when that link's row takes its place."""
    secret = "s" * 32
    laptop = await make_node(cluster_secret=secret, sync=FAST)
    phone = await make_node(cluster_secret=secret, sync=FAST)
    assert await phone.gossip.add_peer(laptop.url, learned=False)
    await listed_as(laptop, phone, "up")
    await phone.stop()
    await listed_as(laptop, phone, "down")
    [down] = rows_of(laptop, phone)
    assert down["direction"] == "in" and down["device_id"] == phone.gossip.device.device_id
    assert down["last_contact_s_ago"] is not None and down["bytes_in"] > 0
    assert down["events_we_lack"] is None and down["events_peer_lacks"] is None
    again = await make_node(cluster_secret=secret, sync=FAST, data_dir=phone.config.data_dir)
    assert await again.gossip.add_peer(laptop.url, learned=False)
    await listed_as(laptop, phone, "up")


async def test_a_dial_that_fails_does_not_hide_a_peer_down(make_node: NodeFactory) -> None:
    """A phone that dialed in stops; the laptop then adds it with its address and dials
    it there, in vain: the phone stays listed as down (its accepted link's last row) as
    well as by the dial in backoff that names its device. Only a link up supersedes it."""
    secret = "s" * 32
    laptop = await make_node(cluster_secret=secret, sync=FAST)
    phone = await make_node(cluster_secret=secret, sync=FAST)
    assert laptop.gossip.membership is not None
    assert await phone.gossip.add_peer(laptop.url, learned=False)
    await listed_as(laptop, phone, "up")
    address, device = phone.url, phone.gossip.device.device_id
    await phone.stop()
    await listed_as(laptop, phone, "down")
    await laptop.gossip.membership.add(device, "phone", address)
    async with asyncio.timeout(DEADLINE_S):
        while not any(row["url"] == address and row["state"] == "backoff"
                      for row in laptop.gossip.peers()):
            await asyncio.sleep(0.01)
    states = sorted(row["state"] for row in laptop.gossip.peers() if row["device_id"] == device)
    assert states == ["backoff", "down"]


async def test_a_node_back_from_the_same_address_with_a_new_node_id_replaces_its_row(
        make_node: NodeFactory) -> None:
    """A node upgraded in place may come back with another node id: the link from the
    address it gives takes the place of the old id's ``down`` row (which stayed until
    the laptop restarted)."""
    secret, address = "s" * 32, "http://phone.example:7878"
    laptop = await make_node(cluster_secret=secret, sync=FAST)
    old = await make_node(cluster_secret=secret, sync=FAST, advertise_url=address)
    assert await old.gossip.add_peer(laptop.url, learned=False)
    await listed_as(laptop, old, "up")
    await old.stop()
    await listed_as(laptop, old, "down")
    new = await make_node(cluster_secret=secret, sync=FAST, advertise_url=address)
    assert await new.gossip.add_peer(laptop.url, learned=False)
    await listed_as(laptop, new, "up")
    assert [row["node_id"] for row in laptop.gossip.peers() if row["url"] == address] \
        == [new.astore.node_id]


async def stopped_laptop(make_node: NodeFactory, hub: RunningNode) -> RunningNode:
    """A laptop that advertised its address to ``hub``, then stopped: the hub lists the
    address still (its link is down)."""
    port = free_port()
    laptop = await make_node(cluster_secret=hub.config.cluster_secret, port=port,
                             advertise_url=f"http://127.0.0.1:{port}", peers=[hub.url])
    await listed_as(hub, laptop, "up")
    await laptop.stop()
    await listed_as(hub, laptop, "down")
    assert laptop.config.advertise_url in [p["url"] for p in hub.gossip.member_list()["peers"]]
    return laptop


async def laptop_back(make_node: NodeFactory, hub: RunningNode,
                      laptop: RunningNode) -> RunningNode:
    """``laptop`` started again, at its address and on its data, linked with ``hub``."""
    again = await make_node(cluster_secret=hub.config.cluster_secret,
                            port=laptop.config.port, data_dir=laptop.config.data_dir,
                            advertise_url=laptop.config.advertise_url, peers=[hub.url])
    await listed_as(hub, again, "up")
    return again


async def learns_and_holds_off(make_node: NodeFactory, hub: RunningNode, gone: str) -> RunningNode:
    """A new node linked to ``hub``: it learns the dead address ``gone`` from the hub's
    list, forgets it after its failures, and leaves it alone at three members rounds
    that follow (learned once, forgotten once)."""
    with structlog.testing.capture_logs() as said:
        node = await make_node(cluster_secret="s" * 32, sync=FAST, peers=[hub.url])

        def forgettings() -> int:
            return len([entry for entry in said if entry["event"] == "forgetting learned peer"
                        and entry["peer"] == gone])

        async def not_dialed() -> None:
            async with asyncio.timeout(DEADLINE_S):
                while forgettings() == 0 or f"url:{gone}" in node.gossip.runners:
                    await asyncio.sleep(0.01)

        await not_dialed()  # learned when the link to the hub came up, and forgotten
        for _ in range(3):  # members rounds
            await node.gossip.learn_once()
            await not_dialed()
    learned = [entry for entry in said if entry["event"] == "learned peer"
               and entry["url"] == gone]
    assert len(learned) == 1, learned
    assert forgettings() == 1
    return node


async def test_a_dead_address_a_peer_lists_is_not_learned_again_round_after_round(
        make_node: NodeFactory) -> None:
    """A hub lists the address of a laptop that stopped for good. A node that learned it
    there dials it until it gives up, and then leaves it alone at the members rounds
    that follow (it was learned again and dialed at each), until the hub says it is
    linked to the laptop again: then it is dialed at once."""
    hub = await make_node(cluster_secret="s" * 32)
    laptop = await stopped_laptop(make_node, hub)
    gone = laptop.config.advertise_url
    assert gone is not None
    node = await learns_and_holds_off(make_node, hub, gone)
    again = await laptop_back(make_node, hub, laptop)
    await node.gossip.learn_once()
    runner = node.gossip.runners[f"url:{gone}"]
    async with asyncio.timeout(DEADLINE_S):
        while runner.state != "up" or runner.node != again.astore.node_id:
            await asyncio.sleep(0.01)


async def test_the_old_address_of_a_node_that_moved_stays_held_off(
        make_node: NodeFactory) -> None:
    """A laptop stops and comes back on its data behind a NAT (it advertises no address
    now, and dials the hub): the hub lists its old, dead address still, and is linked to
    the laptop, but not there. A node that forgot the old address after its failures
    leaves it alone at the rounds that follow (it took it up again at each when lists
    said "linked" of every address of a node linked), and ``/v1/peers`` names the node
    the address stood for."""
    hub = await make_node(cluster_secret="s" * 32)
    laptop = await stopped_laptop(make_node, hub)
    gone = laptop.config.advertise_url
    assert gone is not None
    moved = await make_node(cluster_secret="s" * 32, data_dir=laptop.config.data_dir,
                            advertise_url=None, peers=[hub.url])
    await listed_as(hub, moved, "up")
    [row] = [row for row in hub.gossip.member_list()["peers"] if row["url"] == gone]
    assert (row["node_id"], row["linked"], row["node_linked"]) \
        == (moved.astore.node_id, False, True)
    node = await learns_and_holds_off(make_node, hub, gone)
    [held] = node.gossip.held_off()[0]
    assert (held["url"], held["node_id"]) == (gone, moved.astore.node_id)


async def test_the_address_a_node_advertises_is_listed_linked_when_dialed_by_another(
        make_node: NodeFactory) -> None:
    """A laptop that advertises 127.0.0.1 is back, and the hub's link up to it is the one
    the hub dialed at another name (a proxy, as a LAN name only the hub reaches would
    be): the address the laptop advertises is live, and the hub's list says so, so a node
    that held it off dials it again at once (it waited up to an hour when only the link's
    own address was said linked, and the other name does not reach the laptop from it)."""
    hub = await make_node(cluster_secret="s" * 32)
    laptop = await stopped_laptop(make_node, hub)
    advertised = laptop.config.advertise_url
    assert advertised is not None
    node = await make_node(cluster_secret="s" * 32, sync=FAST, peers=[hub.url])
    async with asyncio.timeout(DEADLINE_S):
        while [one.url for one in node.gossip.learning.held_off()] != [advertised]:
            await asyncio.sleep(0.01)
    again = await make_node(cluster_secret="s" * 32, port=laptop.config.port,
                            data_dir=laptop.config.data_dir, advertise_url=advertised)
    with LinkProxy(target_port=laptop.config.port) as proxy:
        other_name = f"http://127.0.0.1:{proxy.port}"
        assert await hub.gossip.add_peer(other_name, learned=False)
        async with asyncio.timeout(DEADLINE_S):  # linked, and its own list read
            while hub.gossip.runners[f"url:{other_name}"].node != again.astore.node_id \
                    or hub.gossip.learning.advertised_by.get(again.astore.node_id) != advertised:
                await asyncio.sleep(0.01)
        proxy.shut()  # the hub's link goes on; the other name reaches nothing from here
        rows = {row["url"]: row for row in hub.gossip.member_list()["peers"]}
        assert (rows[advertised]["linked"], rows[advertised]["node_linked"]) == (True, True)
        assert rows[other_name]["linked"] is True
        assert not node.gossip.learning.forgotten.may_learn(advertised, awake_s(),
                                                            linked=False)
        with structlog.testing.capture_logs() as said:
            await node.gossip.learn_once()
        assert advertised in [entry["url"] for entry in said
                              if entry["event"] == "learned peer"]
        async with asyncio.timeout(DEADLINE_S):
            while (runner := node.gossip.runners.get(f"url:{advertised}")) is None \
                    or (runner.state, runner.node) != ("up", again.astore.node_id):
                await asyncio.sleep(0.01)
        assert advertised not in [one.url for one in node.gossip.learning.held_off()]


async def ordered(make_node: NodeFactory, *, smaller_first: bool, **config: Any
                  ) -> tuple[RunningNode, RunningNode]:
    """Two nodes of the cluster ``"s" * 32``, neither dialing nor advertising: the one
    with the smaller node id first, or last."""
    one, two = [await make_node(cluster_secret="s" * 32, **config) for _ in range(2)]
    low, high = sorted([one, two], key=lambda node: node.astore.node_id)
    return (low, high) if smaller_first else (high, low)


@pytest.mark.parametrize("x_smaller", [True, False], ids=["x-smaller", "hub-smaller"])
async def test_the_address_of_a_node_advertising_none_is_linked_whichever_link_is_kept(
        make_node: NodeFactory, x_smaller: bool) -> None:
    """x advertises no address but is reachable at its own: the hub dials it there, and
    x dials the hub. One link is kept, the one dialed by the smaller node id. When it is
    x's (it names no address), the hub's dial that reached x was dropped as a duplicate:
    the address is live still and the hub's list says so (it said "not linked" half the
    time, and a learner that held the address off kept it off up to an hour). Once x
    stops, it says so no more."""
    x, hub = await ordered(make_node, smaller_first=x_smaller)
    url, x_id = x.url, x.astore.node_id
    assert await hub.gossip.add_peer(url, learned=False)
    assert await x.gossip.add_peer(hub.url, learned=False)
    kept = ["in"] if x_smaller else ["out"]
    async with asyncio.timeout(DEADLINE_S):  # both dials went through; one link is up
        # Named by its hello, not only "up": an accepted link is up once our hello is
        # sent, and x's may come after x's close of our dial.
        while hub.gossip.runners[f"url:{url}"].node != x_id \
                or x.gossip.runners[f"url:{hub.url}"].node != hub.astore.node_id \
                or [r.direction for r in hub.gossip.runners.values()
                    if r.state == "up"] != kept \
                or x_id not in linked_nodes(hub.gossip.runners.values()):
            await asyncio.sleep(0.01)
    [row] = [row for row in hub.gossip.member_list()["peers"] if row["url"] == url]
    assert (row["node_id"], row["linked"], row["node_linked"]) \
        == (x_id, True, True)
    await x.stop()
    async with asyncio.timeout(DEADLINE_S):
        while any(r.state == "up" for r in hub.gossip.runners.values()):
            await asyncio.sleep(0.01)
    [row] = [row for row in hub.gossip.member_list()["peers"] if row["url"] == url]
    assert (row["linked"], row["node_linked"]) == (False, False)
    assert hub.gossip.learning.reached_as == {}


@contextlib.asynccontextmanager
async def parsing_held(node: RunningNode) -> AsyncIterator[None]:
    """Every thread that parses ``node``'s peers' messages held busy until the block
    ends: no link of it takes in a message meanwhile, though each sees its link close."""
    entered, go = threading.Semaphore(0), threading.Event()

    def hold() -> None:
        entered.release()
        go.wait(DEADLINE_S)

    for _ in range(PARSE_THREADS):
        node.gossip.driver._parse_pool.submit(hold)
    try:
        for _ in range(PARSE_THREADS):
            assert await asyncio.to_thread(entered.acquire, timeout=DEADLINE_S)
        yield
    finally:
        go.set()


async def dial_dropped_before_named(x: RunningNode, hub: RunningNode, url: str) -> None:
    """The hub dials x at ``url`` and x dials the hub: x (the smaller id) keeps its own
    link and closes the hub's dial, and that close reaches the hub before x's hello on
    the link kept (the hub's parsing held); returns once x's link is named."""
    x_id = x.astore.node_id
    assert await hub.gossip.add_peer(url, learned=False)
    dial = hub.gossip.runners[f"url:{url}"]
    async with asyncio.timeout(DEADLINE_S):
        while dial.linked_to != x_id or not (accepted := [
                r for r in x.gossip.runners.values() if r.linked_to == hub.astore.node_id]):
            await asyncio.sleep(0.01)
    await all_taken(dial.machine, accepted[0].machine)
    async with parsing_held(hub):  # x's hello on its link waits; the close does not
        assert await x.gossip.add_peer(hub.url, learned=False)
        async with asyncio.timeout(DEADLINE_S):
            while dial.state == "up" or not any(
                    r.direction == "in" and r.state == "up" for r in hub.gossip.runners.values()):
                await asyncio.sleep(0.01)
    async with asyncio.timeout(DEADLINE_S):
        while x_id not in linked_nodes(hub.gossip.runners.values()):
            await asyncio.sleep(0.01)


async def test_a_dial_dropped_by_the_peer_before_its_own_link_is_named_is_linked(
        make_node: NodeFactory) -> None:
    """x (the smaller id, advertising no address) dials the hub, which has dialed it; x
    closes the hub's dial before its hello on the link kept reaches the hub. The hub's
    dial reached x all the same: once x's link is named, the hub's list says linked of
    x's address (it said "not linked" until the link ended, and learners held the
    address off)."""
    x, hub = await ordered(make_node, smaller_first=True)
    await dial_dropped_before_named(x, hub, x.url)
    [row] = [row for row in hub.gossip.member_list()["peers"] if row["url"] == x.url]
    assert (row["linked"], row["node_linked"]) == (True, True)
    assert hub.gossip.learning.reached_as == {x.astore.node_id: {x.url}}


async def test_a_dial_dropped_by_the_peer_says_nothing_of_the_next_link(
        make_node: NodeFactory) -> None:
    """As above, through an address that then dies (x moved); x's kept link ends and x
    dials the hub again. The hub's dial, still waiting while x is linked, reached x only
    in the first link's time: its address is not said linked of the next (learners
    would take up a dead address). The hub's dial waits while x is linked, a pull
    interval of a minute at a time, and x dials again before that."""
    x, hub = await ordered(make_node, smaller_first=True,
                           sync=SyncConfig(pull_interval_s=60.0))
    x_id = x.astore.node_id
    with LinkProxy(target_port=int(x.url.rsplit(":", 1)[1])) as proxy:
        url = f"http://127.0.0.1:{proxy.port}"
        await dial_dropped_before_named(x, hub, url)
        assert hub.gossip.learning.reached_as == {x_id: {url}}
        dial = hub.gossip.runners[f"url:{url}"]
        async with asyncio.timeout(DEADLINE_S):
            while dial.state != "standby":  # its back-off over, it waits while x is linked
                await asyncio.sleep(0.01)
        proxy.cut()
        kept = x.gossip.runners[f"url:{hub.url}"]
        kept.drop = "test: the link ends"
        kept.wake.set()
        async with asyncio.timeout(DEADLINE_S):
            while x_id in linked_nodes(hub.gossip.runners.values()):
                await asyncio.sleep(0.001)
        async with asyncio.timeout(DEADLINE_S):
            while x_id not in linked_nodes(hub.gossip.runners.values()):
                await asyncio.sleep(0.01)
        [row] = [row for row in hub.gossip.member_list()["peers"] if row["url"] == url]
        assert row["linked"] is False, row
        assert hub.gossip.learning.reached_as == {}


async def test_a_link_with_a_node_that_moved_leaves_its_old_address_held_off(
        make_node: NodeFactory) -> None:
    """A node that forgot a laptop's address after its failures holds it off; the laptop
    comes back at a new address and dials that node itself. The link ends the hold-off of
    its own address, not of the old, dead one (dialed again at the next round when a
    link with the node let every address it was forgotten under go)."""
    hub = await make_node(cluster_secret="s" * 32)
    laptop = await stopped_laptop(make_node, hub)
    gone = laptop.config.advertise_url
    node = await make_node(cluster_secret="s" * 32, sync=FAST, peers=[hub.url])
    async with asyncio.timeout(DEADLINE_S):
        while [(one.url, one.node) for one in node.gossip.learning.held_off()] \
                != [(gone, laptop.astore.node_id)]:
            await asyncio.sleep(0.01)
    port = free_port()
    moved = await make_node(cluster_secret="s" * 32, data_dir=laptop.config.data_dir,
                            port=port, advertise_url=f"http://127.0.0.1:{port}",
                            peers=[node.url])
    await listed_as(node, moved, "up")
    assert gone in [one.url for one in node.gossip.learning.held_off()]
    assert not node.gossip.learning.forgotten.may_learn(gone, awake_s(), linked=False)


async def test_what_a_node_advertises_is_let_go_when_its_last_link_ends(
        make_node: NodeFactory) -> None:
    """A laptop advertised an address to the hub, then stopped: what it said goes with
    its link (it may come back advertising another; the hub's list said linked of the
    old one, dead, until it next read the laptop's own list)."""
    hub = await make_node(cluster_secret="s" * 32)
    laptop = await stopped_laptop(make_node, hub)
    assert laptop.astore.node_id not in hub.gossip.learning.advertised_by


async def test_a_redial_up_before_its_hello_keeps_nothing_of_a_node_gone(
        make_node: NodeFactory) -> None:
    """The laptop's link ends while a dial of the hub's is "up" with the laptop's id
    left from an earlier link, its hello not back: that dial names no one yet, so what
    the laptop advertised goes all the same (it may come back elsewhere)."""
    hub = await make_node(cluster_secret="s" * 32)
    port = free_port()
    laptop = await make_node(cluster_secret="s" * 32, port=port,
                             advertise_url=f"http://127.0.0.1:{port}", peers=[hub.url])
    await listed_as(hub, laptop, "up")
    assert await hub.gossip.add_peer(f"http://127.0.0.1:{free_port()}", learned=False)
    [redial] = [runner for runner in hub.gossip.runners.values() if runner.direction == "out"]
    # "up" (its start sent), its hello not back, the laptop's id left from a link before
    redial.state, redial.machine.peer_node = "up", laptop.astore.node_id
    assert laptop.astore.node_id in hub.gossip.learning.advertised_by
    await laptop.stop()
    async with asyncio.timeout(DEADLINE_S):  # its link ended
        while any(runner.identified_as == laptop.astore.node_id
                  for runner in hub.gossip.runners.values()):
            await asyncio.sleep(0.01)
    assert laptop.astore.node_id not in hub.gossip.learning.advertised_by


async def test_a_redial_up_before_its_hello_is_no_link_to_the_node_it_had_before(
        make_node: NodeFactory) -> None:
    """The laptop is gone, and a dial of the hub's is "up" (its start sent) with the
    laptop's id left from an earlier link, its hello not back: nothing counts it as a
    link to the laptop. Its member list says the laptop linked nowhere, a learned
    address of the laptop is no address of a node linked, another dial of the laptop
    waits on no standby, and the dial's row connects."""
    hub = await make_node(cluster_secret="s" * 32)
    laptop = await stopped_laptop(make_node, hub)
    node = laptop.astore.node_id
    redial, other = [await hub.gossip._new_runner(f"url:{url}", url, "out", checkpoint_key=None)
                     for url in (f"http://127.0.0.1:{free_port()}" for _ in range(2))]
    try:
        redial.state = "up"
        redial.machine.peer_node = other.machine.peer_node = node  # from links before
        [listed] = [peer for peer in hub.gossip.member_list()["peers"]
                    if peer["url"] == laptop.config.advertise_url]
        [row] = [row for row in hub.gossip.status() if row["link"] == redial.key]
        assert (node in linked_nodes(hub.gossip.runners.values()), listed["linked"],
                listed["node_linked"], hub.gossip.pairing.linked_elsewhere(other), row["state"]) \
            == (False, False, False, False, "connecting")
    finally:
        hub.gossip.runners.pop(redial.key)
        hub.gossip.runners.pop(other.key)


async def test_a_new_id_on_a_link_lets_go_of_what_the_old_one_said(
        make_node: NodeFactory) -> None:
    """A hello names the peer anew on the same link (its origin retired): what the old
    id advertised, and where our dials reached it, go; the new id's is kept."""
    hub = await make_node(cluster_secret="s" * 32)
    laptop = await make_node(cluster_secret="s" * 32, peers=[hub.url])
    await listed_as(hub, laptop, "up")
    old = laptop.astore.node_id
    async with asyncio.timeout(DEADLINE_S):
        while old not in hub.gossip.learning.advertised_by:  # its hello handled
            await asyncio.sleep(0.01)
    [link] = [runner for runner in hub.gossip.runners.values() if runner.identified_as == old]
    hub.gossip.learning.reached_as_duplicate(old, "http://127.0.0.1:1")
    link.machine.peer_node = "n-new"  # as the machine has it after the second hello
    hub.gossip.pairing.identified(link)
    learning = hub.gossip.learning
    assert (old in learning.advertised_by, old in learning.reached_as) == (False, False)
    assert "n-new" in learning.advertised_by


async def test_what_nodes_advertise_is_kept_first_for_those_linked(
        make_node: NodeFactory) -> None:
    """Past ``peers_max`` nodes, what a node with no link up advertised goes first (an
    id a node left, say), not the oldest entry, a node linked now."""
    hub = await make_node(cluster_secret="s" * 32, sync=SyncConfig(peers_max=2))
    laptop = await make_node(cluster_secret="s" * 32, peers=[hub.url])
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
    hub = await make_node(cluster_secret="s" * 32)
    laptop = await stopped_laptop(make_node, hub)
    gone = laptop.config.advertise_url
    node = await make_node(cluster_secret="s" * 32, sync=FAST, peers=[hub.url])
    async with asyncio.timeout(DEADLINE_S):
        while not node.gossip.learning.forgotten.held_off(0.0) \
                or f"url:{gone}" in node.gossip.runners:
            await asyncio.sleep(0.01)
    async with aiohttp.ClientSession() as http, http.get(node.url + "/v1/peers") as reply:
        answer = await reply.json()
    [held] = answer["held_off"]
    assert answer["held_off_total"] == 1
    assert (held["url"], held["times_forgotten"]) == (gone, 1)
    assert 0 < held["held_off_s"] <= FAST.forgotten_hold_s
    # The links stay one row per link: an address held off is none.
    assert [(row["url"], row["state"]) for row in answer["peers"]] == [(hub.url, "up")]


async def test_a_dial_backing_off_is_made_at_once_when_a_peer_lists_its_node_linked(
        make_node: NodeFactory) -> None:
    """A partition heals: a node's dial of a laptop backs off for minutes, the hub links
    with the laptop again, and its list says so: the node dials the laptop then, not at
    the end of its back-off (a relearned address did that before: now a forgotten one
    is held off)."""
    patient = SyncConfig(backoff_base_s=600.0, backoff_max_s=600.0)
    hub = await make_node(cluster_secret="s" * 32)
    laptop = await stopped_laptop(make_node, hub)
    gone = laptop.config.advertise_url
    node = await make_node(cluster_secret="s" * 32, sync=patient, peers=[hub.url])
    async with asyncio.timeout(DEADLINE_S):
        while (runner := node.gossip.runners.get(f"url:{gone}")) is None \
                or runner.state != "backoff":
            await asyncio.sleep(0.01)
    waiting_s = runner.machine.wakeup_at - asyncio.get_running_loop().time()
    assert waiting_s > 60  # half the back-off at least: the test cannot pass by waiting
    again = await laptop_back(make_node, hub, laptop)
    await node.gossip.learn_once()
    async with asyncio.timeout(DEADLINE_S):
        while runner.state != "up" or runner.node != again.astore.node_id:
            await asyncio.sleep(0.01)


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
    async with asyncio.timeout(DEADLINE_S):
        while runner.machine.failures < 2 * FAST.learned_failures_max:
            await asyncio.sleep(0.01)
    assert node.gossip.runners.get(f"url:{dead}") is runner


async def test_a_wrong_cluster_secret_is_named_not_taken_for_a_device_to_add(
        make_node: NodeFactory) -> None:
    """A node of a cluster-secret cluster given a wrong secret was told it waits to be
    added as a device; its operator is now told the secret does not match, and the
    node it dialed warns once."""
    hub = await make_node(cluster_secret="s" * 32)
    newcomer = await make_node(cluster_secret="w" * 32, sync=FAST)
    assert await newcomer.gossip.add_peer(hub.url, learned=False)
    runner = newcomer.gossip.runners[f"url:{hub.url}"]
    async with asyncio.timeout(DEADLINE_S):
        while runner.refused is None:
            await asyncio.sleep(0.01)
    assert "the cluster secret this node gave does not match" in runner.refused
    assert newcomer.gossip.device_status()["waiting"] == []
    assert newcomer.gossip.device.device_id in hub.gossip.admission._wrong_secret  # warned once


async def test_the_devices_warned_of_for_a_wrong_secret_are_bounded(
        make_node: NodeFactory) -> None:
    """Each device that gives a wrong cluster secret is warned of once; those remembered
    for it are at most ``WRONG_SECRETS_KEPT_MAX`` (a dialer making a new key at each dial
    cannot grow the set): past the bound all are forgotten, and each refusal still
    names the secret."""
    admission = (await make_node(cluster_secret="s" * 32)).gossip.admission
    for n in range(WRONG_SECRETS_KEPT_MAX):
        admission.admit(f"DEVICE{n}", shared=False, wrong_secret=True)
    assert len(admission._wrong_secret) == WRONG_SECRETS_KEPT_MAX
    refused = admission.admit("ONE-MORE", shared=False, wrong_secret=True)
    assert refused is not None and refused[1] == {"secret": "wrong"}
    assert admission._wrong_secret == {"ONE-MORE"}


async def test_the_addresses_whose_refusal_is_remembered_are_bounded(
        make_node: NodeFactory) -> None:
    """A refusal of this device is warned of once per address, until it changes, kept
    when the address's runner is forgotten; the addresses remembered for it are at most
    ``REFUSALS_KEPT_MAX`` (peers' lists naming ever new addresses that refuse cannot
    grow the map): past the bound all are forgotten, and each is warned of again."""
    node = await make_node(cluster_secret="s" * 32, sync=FAST)
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


async def test_devices_lists_the_devices_linked_by_the_secret(make_node: NodeFactory) -> None:
    """No record adds them, so they are no members; ``linked`` says they are linked, and
    by what. The members and removed stay as the records say."""
    secret = "s" * 32
    a = await make_node(cluster_secret=secret, sync=FAST, name="a")
    b = await make_node(cluster_secret=secret, sync=FAST, name="b",
                        advertise_url=None)
    assert await b.gossip.add_peer(a.url, learned=False)
    # A link is up once it proved the peer's key; the row names the peer's node once
    # the peer's hello has come too.
    async with asyncio.timeout(DEADLINE_S):
        while not a.gossip.linked_not_members().get(b.device.device_id, {}).get("node_id") \
                or not b.gossip.linked_not_members().get(a.device.device_id, {}).get("node_id"):
            await asyncio.sleep(0.01)
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
    await add_member_id(a, b.device.device_id, "b")
    async with aiohttp.ClientSession() as http, http.get(a.url + "/v1/devices") as reply:
        on_a = await reply.json()
    assert on_a["linked"] == []
    assert b.device.device_id in {row["device_id"] for row in on_a["members"]}


async def add_member_id(node: RunningNode, member: str, name: str) -> None:
    async with aiohttp.ClientSession() as http, http.post(
            node.url + "/v1/devices", json={"device_id": member, "name": name}) as r:
        assert r.status == 201


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
    await add_member_id(plain, node.device.device_id, "node")
    peers = {plain.astore.node_id, tls.astore.node_id}
    with structlog.testing.capture_logs() as said:
        for peer in (plain, tls):
            assert await node.gossip.add_peer(peer.url, learned=False)
        async with asyncio.timeout(DEADLINE_S):
            while linked_nodes(node.gossip.runners.values()) != peers:
                await asyncio.sleep(0.01)
        # The asks made as the links came up, then a round's.
        await asyncio.gather(*[task for task in node.gossip._tasks
                               if task.get_name() == "learn-members"])
        await node.gossip.learn_once()
    assert [entry for entry in said if entry["event"] == "members not listed"] == []
    assert tls.astore.node_id in node.gossip.learning.advertised_by  # its list's word
    assert plain.astore.node_id not in node.gossip.learning.advertised_by


async def test_a_removal_said_by_a_device_not_trusted_is_shown_not_recorded(
        make_node: NodeFactory) -> None:
    """A learned peer that is no member known here says this device was removed: its
    operator reads what it says and that it is not taken; once a trusted peer (a
    ``--peer`` address) says the same removal, every refusal reads as that removal."""

    node = await make_node(cluster_secret="s" * 32, sync=FAST)
    learned, given = (f"http://127.0.0.1:{free_port()}" for _ in range(2))
    assert await node.gossip.add_peer(learned, learned=True)
    assert await node.gossip.add_peer(given, learned=False)
    stranger, member = (crdt_device.device_id(crdt_device.public_bytes(
        crdt_device.generate())) for _ in range(2))
    detail = {"by": member, "at_ms": 1_000, "reason": "lost"}
    untrusted = node.gossip.runners[f"url:{learned}"]
    node.gossip.admission.refused_by_peer(untrusted, LinkRefused(
        "refused", Refusal(DEVICE_REMOVED, detail, stranger)))
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
    assert trusted.refused == untrusted.refused \
        == node.gossip.device_status()["removed_text"]


async def test_a_dial_under_way_when_its_last_device_is_removed_is_dialed_on(
        make_node: NodeFactory) -> None:
    """A dialed address's last link was to the phone; a redial there is under way (its
    handshake's answer held) when the phone is removed. That dial has reached no one yet
    and proves nothing: it fails, and the address is dialed on, as one waiting out its
    back-off is. It was marked as the removed device's and forgotten until restart,
    though a member (the phone given a new key and added again, say) may answer there;
    a link there that proves the removed device is what drops the address."""
    secret = "s" * 32
    a = await make_node(cluster_secret=secret, sync=dataclasses.replace(
        FAST, connect_timeout_s=600.0))
    b = await make_node(cluster_secret=secret, sync=FAST)
    phone = b.gossip.device.device_id
    assert a.gossip.membership is not None
    await a.gossip.membership.add(phone, "phone")
    with LinkProxy(target_port=int(b.url.rsplit(":", 1)[1])) as proxy:
        url = f"http://127.0.0.1:{proxy.port}"
        assert await a.gossip.add_peer(url, learned=False)
        dial = a.gossip.runners[f"url:{url}"]
        async with asyncio.timeout(DEADLINE_S):
            while phone not in a.gossip.linked_devices():
                await asyncio.sleep(0.01)
        proxy.cut()
        forwarded = proxy.bytes_forwarded
        proxy.hold_replies()
        proxy.heal()
        async with asyncio.timeout(DEADLINE_S):  # a redial's request went through
            while dial.state != "connecting" or proxy.bytes_forwarded == forwarded:
                await asyncio.sleep(0.01)
        assert dial.device is not None and dial.device.device_id == phone  # its last link's
        stored, _ = await a.gossip.membership.remove(phone, "lost")
        assert stored is not None
        failures = dial.machine.failures
        proxy.cut()  # the dial fails
        async with asyncio.timeout(DEADLINE_S):
            while a.gossip.runners.get(dial.key) is dial and dial.machine.failures == failures:
                await asyncio.sleep(0.01)
        assert a.gossip.runners.get(dial.key) is dial
        assert dial.failure is not None and dial.drop is None


async def test_a_removal_stored_while_a_failed_dial_saves_its_checkpoint_is_dialed_on(
        make_node: NodeFactory) -> None:
    """As above, but the phone's removal is stored after a redial failed, while its
    checkpoint is saved (a save awaits the store when there is news to keep; here the
    removal is stored in that place): the dial is over, its ``device`` still the last
    link's. It is not marked as the removed device's, and the address is dialed on."""
    secret = "s" * 32
    a = await make_node(cluster_secret=secret, sync=FAST)
    b = await make_node(cluster_secret=secret, sync=FAST)
    phone = b.gossip.device.device_id
    members = a.gossip.membership
    assert members is not None
    await members.add(phone, "phone")
    save = a.gossip.driver.save_checkpoint
    removed = asyncio.Event()

    async def save_removing(runner: Runner, force: bool = False) -> None:
        if runner.failure is not None and not removed.is_set():  # after a failed dial
            removed.set()
            stored, _ = await members.remove(phone, "lost")
            assert stored is not None
        await save(runner, force)

    with LinkProxy(target_port=int(b.url.rsplit(":", 1)[1])) as proxy:
        url = f"http://127.0.0.1:{proxy.port}"
        assert await a.gossip.add_peer(url, learned=False)
        dial = a.gossip.runners[f"url:{url}"]
        async with asyncio.timeout(DEADLINE_S):
            while phone not in a.gossip.linked_devices():
                await asyncio.sleep(0.01)
        a.gossip.driver.save_checkpoint = save_removing  # type: ignore[method-assign]
        proxy.cut()  # the link ends, and the redials fail
        async with asyncio.timeout(DEADLINE_S):
            await removed.wait()
            while a.gossip.runners.get(dial.key) is dial and dial.state != "backoff":
                await asyncio.sleep(0.01)
        assert dial.device is not None and dial.device.device_id == phone  # its last link's
        assert a.gossip.runners.get(dial.key) is dial and dial.drop is None
