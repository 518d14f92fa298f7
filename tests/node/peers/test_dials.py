"""node.peers.gossip's dials, with real nodes in this process: which addresses are
dialed on and which dropped, how often, and what a failed dial says."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

import aiohttp
import pytest
import structlog
from aiohttp import web

from node.peers.dial_words import REFUSAL_READ_S
from node.peers.hiding import HIDDEN_TEXT
from node.peers.link_errors import LinkClosed
from node.peers.refusals import refusals_read
from node.peers.runner import Runner
from node.peers.transport import dial
from sync.peer.config import SyncConfig
from tests.node.peers.support import (
    DEADLINE_S,
    FAST,
    PATIENT,
    SECRET,
    STALLED_REFUSAL,
    NodeFactory,
    WriterHeld,
    busy,
    forgotten,
    phone_behind_proxy,
    serving,
    stalling,
    until,
)
from tests.support.certs import make_ca, make_cert
from tests.support.processes import free_port


async def test_one_address_added_twice_at_once_is_dialed_once(
        make_node: NodeFactory) -> None:
    """Two peers' member lists that name one address, learned at the same moment."""
    node = await make_node(cluster_secret=SECRET, sync=FAST)
    dead = f"http://127.0.0.1:{free_port()}"
    added = await asyncio.gather(*(node.gossip.add_peer(dead, learned=True)
                                   for _ in range(2)))
    assert sorted(added) == [False, True]
    dialing = [task for task in asyncio.all_tasks() if task.get_name() == f"url:{dead}"]
    assert len(dialing) == 1


async def test_a_dial_backing_off_ends_when_cancelled_as_it_is_told_to_dial_now(
        make_node: NodeFactory) -> None:
    """The node's stop cancels a dial waiting out its back-off; a redial asked at that
    moment (a peer's list says the node is back) dials no more after the cancel."""
    node = await make_node(cluster_secret=SECRET, sync=PATIENT)
    dead = f"http://127.0.0.1:{free_port()}"
    assert await node.gossip.add_peer(dead, learned=False)
    runner = node.gossip.runners[f"url:{dead}"]
    await until(lambda: runner.state == "backoff")
    assert runner.task is not None
    runner.redial.set()
    runner.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(DEADLINE_S):
            await runner.task


async def test_a_configured_address_is_dialed_on(make_node: NodeFactory) -> None:
    node = await make_node(cluster_secret=SECRET, sync=FAST)
    dead = f"http://127.0.0.1:{free_port()}"  # perhaps a peer that is down for now
    assert await node.gossip.add_peer(dead, learned=False)
    runner = node.gossip.runners[f"url:{dead}"]
    await until(lambda: runner.machine.failures >= 2 * FAST.learned_failures_max)
    assert f"url:{dead}" in node.gossip.runners
    # Said in the system's words, not aiohttp's (which named the address again, and
    # "ssl:default" on a plain http:// dial).
    assert runner.failure == f"cannot reach {dead}: connection refused"


async def test_a_dial_that_fails_says_why_in_plain_words(make_node: NodeFactory,
                                                        tmp_path: Path) -> None:
    """Peer addresses whose host name is not known, where nothing listens, where a
    certificate no CA of this node signed is shown, and (dialed by a node that waits
    0.5 s) where a connection is taken and never answered: ``GET /v1/peers``
    (``failure``) and the log (``peer dial failed``) name the address and why, not
    aiohttp's text ("Cannot connect to host nosuchhost.invalid:7878 ssl:default [Name
    or service not known]")."""
    # Each address dialed once. Looked up every 10 ms, the unknown name met the
    # resolver's rate limit: a look-up left hanging to its time-out (5 s) in the loop's
    # default executor, which the loop's close waits for, held up the teardown.
    node = await make_node(sync=PATIENT)
    waiting = await make_node(sync=dataclasses.replace(PATIENT, connect_timeout_s=0.5))
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
            async with aiohttp.ClientSession() as http:

                async def each_address_failed() -> bool:
                    """Each look keeps each address's first failure a row shows: a later
                    look may show a later one."""
                    for dialer in (node, waiting):
                        async with http.get(dialer.url + "/v1/peers") as reply:
                            for row in (await reply.json())["peers"]:
                                if row["failure"] is not None:
                                    shown.setdefault(row["url"], row["failure"])
                    return shown.keys() == expected.keys()

                await until(each_address_failed)
    finally:
        silent.close()
        for writer in taken:
            writer.close()
    assert shown == expected
    failed = {(entry["peer"], entry["reason"]) for entry in said
              if entry["event"] == "peer dial failed"}
    assert failed == set(expected.items())


async def test_a_dial_answered_101_without_a_websocket_says_what_was_wrong(
        make_node: NodeFactory) -> None:
    """A server that answers 101 (Switching Protocols) with another protocol in its
    Upgrade header: the failure says the handshake failed and why, not just "it answered
    HTTP 101", which reads as success."""
    # Dialed once: a redial under way would hold up the server's clean-up.
    node = await make_node(sync=PATIENT)

    async def switch(_request: web.Request) -> web.Response:
        return web.Response(status=101, headers={"Upgrade": "h2c", "Connection": "Upgrade"})

    async with serving(switch) as url:
        assert await node.gossip.add_peer(url, learned=False)
        runner = node.gossip.runners[f"url:{url}"]
        await until(lambda: runner.state == "backoff")
    assert runner.failure == (f"cannot link with {url}: it answered HTTP 101 but the "
                              "websocket handshake failed (invalid upgrade header)")


async def test_a_refused_dial_says_what_the_refusal_said(make_node: NodeFactory) -> None:
    """A proxy in front of the peer refuses the websocket with a page: the failure says
    its words with the status (aiohttp drops the body before it raises), the cluster
    secret it repeats hidden."""
    node = await make_node(cluster_secret=SECRET, sync=PATIENT)  # dialed once

    async def blocked(request: web.Request) -> web.Response:
        return web.Response(status=403, text="Blocked by the proxy: "
                            + request.headers.get("Authorization", "") + "\nmore")

    async with serving(blocked) as url:
        assert await node.gossip.add_peer(url, learned=False)
        runner = node.gossip.runners[f"url:{url}"]
        await until(lambda: runner.state == "backoff")
    assert runner.failure == (f"cannot link with {url}: it answered HTTP 403: "
                              f"Blocked by the proxy: Bearer {HIDDEN_TEXT}")


@pytest.mark.parametrize("connect_timeout_s", [3 * DEADLINE_S, REFUSAL_READ_S / 2])
async def test_a_refusal_whose_body_stalls_says_its_status(make_node: NodeFactory,
                                                           connect_timeout_s: float) -> None:
    """A server answers 403 saying its body has 1000 bytes, sends 12, and stops: the
    failure says the status and those 12 bytes, not "no answer" (what it said at the
    end of the dial's time-out, when the body's read was cut off by it): at once where
    that time-out is longer than the test waits, and before it where it is shorter than
    ``REFUSAL_READ_S``."""
    node = await make_node(sync=dataclasses.replace(PATIENT,  # dialed once
                                                    connect_timeout_s=connect_timeout_s))
    async with stalling(STALLED_REFUSAL) as url:
        assert await node.gossip.add_peer(url, learned=False)
        runner = node.gossip.runners[f"url:{url}"]
        await until(lambda: runner.state == "backoff")
    assert runner.failure == f"cannot link with {url}: it answered HTTP 403: Blocked here"


async def test_a_refusal_read_on_a_loop_held_past_the_dials_time_out_says_its_status() -> None:
    """The status of a refusal came, and its body's read waits (5 of 100 bytes came)
    when the event loop is held past the read's deadline and the dial's at once (a busy
    node): both time-outs end in one turn of the loop, and the read's is passed on as
    the dial's. The dial still says the status and what came, not "no answer"."""
    config = SyncConfig(connect_timeout_s=REFUSAL_READ_S / 2)
    loop = asyncio.get_running_loop()

    async def holding(_session: aiohttp.ClientSession, _context: object,
                      _params: aiohttp.TraceRequestEndParams) -> None:
        # Once the read waits for the rest of the body: a task that blocks the loop.
        loop.call_soon(time.sleep, config.connect_timeout_s)

    held = aiohttp.TraceConfig()
    held.on_request_end.append(holding)
    answer = (b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n"
              b"Content-Length: 100\r\n\r\nGone.")
    async with stalling(answer) as url, \
            aiohttp.ClientSession(trace_configs=[held, refusals_read()]) as http:
        with pytest.raises(LinkClosed) as raised:
            await dial(http, url, node_id="n" * 32, secret=SECRET, advertise=None, tls=None,
                       config=config)
    assert str(raised.value) == f"cannot link with {url}: it answered HTTP 403: Gone."


async def test_reaching_one_peer_redials_the_others_at_once(make_node: NodeFactory) -> None:
    """A laptop that wakes up reaches its first peer: the peers it gave up on for a while
    are dialed again then, not at the end of their back-off (ten minutes here)."""
    laptop = await make_node(cluster_secret=SECRET, sync=PATIENT)
    phone_port = free_port()
    phone_url = f"http://127.0.0.1:{phone_port}"
    assert await laptop.gossip.add_peer(phone_url, learned=False)  # the phone is off
    to_phone = laptop.gossip.runners[f"url:{phone_url}"]
    await until(lambda: to_phone.state == "backoff")
    waiting_s = to_phone.machine.wakeup_at - asyncio.get_running_loop().time()
    assert waiting_s > 60  # half the back-off at least: the test cannot pass by waiting
    phone = await make_node(cluster_secret=SECRET, port=phone_port)
    server = await make_node(cluster_secret=SECRET)
    assert await laptop.gossip.add_peer(server.url, learned=False)
    await until(lambda: to_phone.state == "up" and to_phone.node == phone.astore.node_id)
    assert laptop.gossip.runners[f"url:{server.url}"].state == "up"


async def test_a_configured_address_of_this_very_node_is_dropped_at_once(
        make_node: NodeFactory) -> None:
    node = await make_node(cluster_secret=SECRET, sync=FAST)
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
    async with phone_behind_proxy(make_node, dataclasses.replace(
            FAST, connect_timeout_s=600.0)) as linked:
        a, phone, proxy, dial = linked.a, linked.phone, linked.proxy, linked.dial
        assert a.gossip.membership is not None
        proxy.cut()
        forwarded = proxy.bytes_forwarded
        proxy.hold_replies()
        proxy.heal()
        # A redial's request went through.
        await until(lambda: dial.state == "connecting" and proxy.bytes_forwarded != forwarded)
        assert dial.device is not None and dial.device.device_id == phone  # its last link's
        stored, _ = await a.gossip.membership.remove(phone, "lost")
        assert stored is not None
        failures = dial.machine.failures
        proxy.cut()  # the dial fails
        await until(lambda: a.gossip.runners.get(dial.key) is not dial
                    or dial.machine.failures != failures)
        assert a.gossip.runners.get(dial.key) is dial
        assert dial.failure is not None and dial.drop is None


async def test_a_removal_stored_while_a_failed_dial_saves_its_checkpoint_is_dialed_on(
        make_node: NodeFactory) -> None:
    """As above, but the phone's removal is stored after a redial failed, while its
    checkpoint is saved (a save awaits the store when there is news to keep; here the
    removal is stored in that place): the dial is over, its ``device`` still the last
    link's. It is not marked as the removed device's, and the address is dialed on."""
    async with phone_behind_proxy(make_node, FAST) as linked:
        a, phone, dial = linked.a, linked.phone, linked.dial
        members = a.gossip.membership
        assert members is not None
        save = a.gossip.driver.save_checkpoint
        removed = asyncio.Event()

        async def save_removing(runner: Runner, force: bool = False) -> None:
            if runner.failure is not None and not removed.is_set():  # after a failed dial
                removed.set()
                stored, _ = await members.remove(phone, "lost")
                assert stored is not None
            await save(runner, force)

        a.gossip.driver.save_checkpoint = save_removing  # type: ignore[method-assign]
        linked.proxy.cut()  # the link ends, and the redials fail
        async with asyncio.timeout(DEADLINE_S):
            await removed.wait()
        await until(lambda: a.gossip.runners.get(dial.key) is not dial
                    or dial.state == "backoff")
        assert dial.device is not None and dial.device.device_id == phone  # its last link's
        assert a.gossip.runners.get(dial.key) is dial and dial.drop is None


async def test_a_wait_a_peer_asked_for_is_not_cut_short_when_another_peer_is_reached(
        make_node: NodeFactory) -> None:
    """A peer answered 429 asking for ten minutes: reaching another peer ends other
    back-offs now (``Gossip._reached``), not this wait, which the status counts down. The
    back-off alone is a second: only the asked wait makes it longer."""
    node = await make_node(sync=dataclasses.replace(FAST, backoff_base_s=1.0,
                                                    backoff_max_s=600.0))

    async with serving(busy) as url:
        assert await node.gossip.add_peer(url, learned=False)
        runner = node.gossip.runners[f"url:{url}"]
        await until(lambda: runner.state == "backoff")
    node.gossip._reached()
    assert not runner.redial.is_set()
    [row] = [row for row in node.gossip.peers() if row["url"] == url]
    assert row["retry_in_s"] > 300  # about 600: the wait asked, not the back-off's second
    assert row["failure"] == f"cannot link with {url}: it answered HTTP 429"


async def test_a_wait_a_peer_asked_for_is_kept_while_a_member_refuses_this_device(
        make_node: NodeFactory) -> None:
    """A member refused this device as waiting to be added, which dials it again within a
    pull interval; when a peer then answers 429 asking for ten minutes, the dial waits
    those, not the pull interval (a peer that answers busy leaves the refusal said)."""
    node = await make_node(sync=dataclasses.replace(FAST, backoff_base_s=1.0,
                                                    backoff_max_s=600.0, pull_interval_s=0.5))
    refused = asyncio.Event()

    async def busy(_request: web.Request) -> web.Response:
        await refused.wait()  # answered once the refusal is said
        return web.Response(status=429, headers={"Retry-After": "600"})

    async with serving(busy) as url:
        assert await node.gossip.add_peer(url, learned=False)
        runner = node.gossip.runners[f"url:{url}"]
        runner.refused = "refused by a member: waiting to be added"
        refused.set()
        await until(lambda: runner.state == "backoff")
    assert runner.refused is not None and runner.machine.failures == 1
    [row] = [row for row in node.gossip.peers() if row["url"] == url]
    assert row["retry_in_s"] > 300  # about 600: the wait asked, not the pull interval


async def test_a_learned_address_forgotten_on_a_429_says_only_that_it_is_forgotten(
        make_node: NodeFactory) -> None:
    """Its last failure a 429: the address is not dialed again, so no wait before a next
    dial is said."""
    node = await make_node(sync=dataclasses.replace(FAST, learned_failures_max=1))

    with structlog.testing.capture_logs() as said:
        async with serving(busy) as url:
            assert await node.gossip.add_peer(url, learned=True)
            assert await forgotten(node, url)
    events = [entry["event"] for entry in said if entry.get("peer") == url]
    assert "forgetting learned peer" in events
    assert "peer asked to wait before the next dial" not in events


async def test_a_wait_a_peer_asked_for_counts_from_when_the_writer_takes_the_failure(
        make_node: NodeFactory) -> None:
    """A failed dial is told to its PeerSync on the store's writer, which may be busy (a
    group commit, other links' calls): the wait the peer asked for counts from then, not
    from before the wait for the writer, which would cut it short by that much."""
    node = await make_node(sync=dataclasses.replace(FAST, backoff_base_s=1.0,
                                                    backoff_max_s=600.0))
    writer = WriterHeld(node)

    async with serving(busy) as url:
        assert await node.gossip.add_peer(url, learned=False)
        runner = node.gossip.runners[f"url:{url}"]
        await writer.release_once_waited()
        await until(lambda: runner.state == "backoff")
    await writer.finished()
    assert runner.machine.asked_until >= writer.released_at[0] + 600.0


async def test_a_refused_device_redials_within_a_pull_interval_of_the_refusal(
        make_node: NodeFactory) -> None:
    """A member refuses this device as waiting to be added: the next dial comes within a
    pull interval of the refused one, counted from when it was refused, not from when
    the store's writer (busy with a group commit, other links' calls) took the dial's end."""
    laptop = await make_node(name="laptop", sync=FAST)
    phone = await make_node(name="phone", advertise_url=None,
                            sync=dataclasses.replace(PATIENT, pull_interval_s=30.0))
    writer = WriterHeld(phone)
    assert await phone.gossip.add_peer(laptop.url, learned=False)
    runner = phone.gossip.runners[f"url:{laptop.url}"]
    await writer.release_once_waited()
    await until(lambda: runner.state == "backoff")
    await writer.finished()
    assert runner.refused is not None and runner.refused.startswith("waiting to be added")
    assert runner.redial_at is not None
    assert runner.redial_at <= writer.failed_at[0] + 30.0  # not the back-off's ten minutes either
