"""node.peers.gossip's dials, with real nodes in this process: which addresses are
dialed on and which dropped, how often, and what a failed dial says."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import aiohttp
import structlog
from aiohttp import web

from node.cli.linkproxy import LinkProxy
from node.peers.runner import Runner
from sync.peer.config import SyncConfig
from tests.node.peers.support import (
    DEADLINE_S,
    FAST,
    NodeFactory,
    forgotten,
)
from tests.support.certs import make_ca, make_cert
from tests.support.processes import free_port


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
