"""Peer links authenticated by device keys, against a real node in this process: a raw
websocket client plays a device, honest or forging."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import time
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
import structlog
from aiohttp import web

from crdt import codec, linkproof
from crdt import device as crdt_device
from crdt.events import parse_event
from crdt.log.store import EventStore
from crdt.membership import Removal
from crdt.signing import Signer
from node.config import Config
from node.peers.admission import UNPROVEN_LINES_MAX, UNPROVEN_LINES_WINDOW_S
from node.peers.link_errors import LinkClosed, Refusal, SendFailed
from node.peers.links import REASON_CHARS_MAX, refusal_for
from node.peers.transport import (
    CLOSE_REASON_BYTES_MAX,
    DETAIL_HEADER,
    DEVICE_HEADER,
    KEY_HEADER,
    LINK_PROTOCOL,
    NODE_HEADER,
    NONCE_HEADER,
    PEER_PATH,
    REFUSED_HEADER,
    SIGNATURE_HEADER,
    Link,
)
from node.server.run import RunningNode
from sync.peer.config import SyncConfig
from sync.peer.messages import Ack, Events, Hello, Item, encode, parse
from tests.node.peers.support import headers, member_link, new_member, prove, serving, until
from tests.support.clock import Clock
from tests.support.waits import DEADLINE_S

NodeFactory = Callable[..., Awaitable[RunningNode]]
#: Messages of ``STALL_SEND_BYTES`` sent to a peer that reads none, at most: far more
#: than loopback sockets' buffers hold, so that a send waits and times out.
STALL_SENDS_MAX, STALL_SEND_BYTES = 256, 1024 * 1024


async def test_a_member_proves_its_key_and_a_forger_does_not(
        make_node: NodeFactory) -> None:
    node = await make_node()
    member, key = await new_member(node)
    answer, proof, nonce = await prove(node, member, key)
    assert answer == "open"
    # The same id with another key: refused, and no link is made.
    forger = crdt_device.generate()
    answer, _, _ = await prove(node, member, forger)
    assert answer == "link proof refused"
    # A recorded proof replayed, with the recorded nonce: the node's nonce is new, so
    # the recorded signature does not cover it.
    answer, _, _ = await prove(node, member, forger, nonce=nonce, replay=proof)
    assert answer == "link proof refused"
    await until(lambda: not node.gossip.runners)  # the honest link ended when we closed it


async def test_a_device_that_is_no_member_is_told_so_signed(make_node: NodeFactory) -> None:
    node = await make_node()
    stranger = crdt_device.generate()
    stranger_id = crdt_device.device_id(crdt_device.public_bytes(stranger))
    nonce = linkproof.new_nonce()
    async with aiohttp.ClientSession() as http:
        try:
            async with http.ws_connect(node.url + PEER_PATH,
                                       headers=headers(stranger_id, nonce),
                                       protocols=(LINK_PROTOCOL,)):
                raise AssertionError("a stranger was linked")
        except aiohttp.WSServerHandshakeError as error:
            assert error.status == 403 and error.headers is not None
            refused = error.headers
    assert refused[REFUSED_HEADER] == "not_member"
    detail = refused[DETAIL_HEADER]
    # With the member's name, for the refused device to name it by (its signature too).
    named = node.gossip.membership.name if node.gossip.membership else node.config.name
    assert named and json.loads(detail) == {"code": "not_member", "name": named}
    key = linkproof.unb64(refused[KEY_HEADER], 32, "key")
    assert linkproof.proven(key, linkproof.unb64(refused[SIGNATURE_HEADER], 64, "signature"),
                            node.device.device_id, "refuse", nonce,
                            linkproof.unb64(refused[NONCE_HEADER], 32, "nonce"),
                            stranger_id, node.device.device_id, detail)
    assert not node.gossip.runners


async def test_malformed_device_headers_are_a_clear_400(make_node: NodeFactory) -> None:
    node = await make_node()
    async with aiohttp.ClientSession() as http:
        for sent in ({DEVICE_HEADER: "not-an-id", NONCE_HEADER: linkproof.b64(bytes(32))},
                     {DEVICE_HEADER: node.device.device_id, NONCE_HEADER: "short"}):
            async with http.get(node.url + PEER_PATH, headers=sent) as reply:
                assert reply.status == 400, sent
                assert (await reply.json())["error"]["code"] == "invalid_input"


async def test_a_dialer_claiming_the_nodes_own_device_id_is_refused_before_linking(
        make_node: NodeFactory) -> None:
    """Every refusal names the node's own device, a member of its cluster: a dialer
    claiming it gets a clear 409 before any upgrade, not a link whose proof fails (and
    is logged) each time; the node dialing itself is still told so."""
    node = await make_node()
    sent = headers(node.device.device_id, linkproof.new_nonce()) | {
        "Sec-WebSocket-Protocol": LINK_PROTOCOL, "Connection": "Upgrade",
        "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(bytes(16)).decode()}
    with structlog.testing.capture_logs() as said:
        async with aiohttp.ClientSession() as http:
            async with http.get(node.url + PEER_PATH, headers=sent) as reply:
                assert reply.status == 409
                error = (await reply.json())["error"]
                assert (error["code"], error["field"]) == ("own_device", DEVICE_HEADER)
            itself = sent | {NODE_HEADER: node.gossip.astore.node_id}
            async with http.get(node.url + PEER_PATH, headers=itself) as reply:
                assert reply.status == 409  # the answer a dial of itself turns into
                assert reply.headers[NODE_HEADER] == node.gossip.astore.node_id
    assert not [entry for entry in said if entry["log_level"] != "debug"]


async def test_links_that_fail_before_proving_a_key_log_a_bounded_number_of_lines(
        make_node: NodeFactory) -> None:
    """A dialer admitted on a member's device id it claims proves nothing before its
    proof: a flood of bogus proofs, or of links closed at once, logs at most
    ``UNPROVEN_LINES_MAX`` lines of each a window; the rest are counted, said first
    thing in the next window."""
    node = await make_node()
    clock = Clock()
    node.gossip.admission._now = clock
    member, _ = await new_member(node)
    flood = UNPROVEN_LINES_MAX * 3
    with structlog.testing.capture_logs() as said:
        async with aiohttp.ClientSession() as http:
            for n in range(2 * flood + 2):
                if n == 2 * flood:
                    await until(lambda: not node.gossip.accepted.handlers)  # each logged, or not
                    clock.now_s = UNPROVEN_LINES_WINDOW_S  # the next window
                async with http.ws_connect(node.url + PEER_PATH,
                                           headers=headers(member, linkproof.new_nonce()),
                                           protocols=(LINK_PROTOCOL,)) as ws:
                    if n % 2:
                        continue  # closed at once: the node's proof is never read
                    await ws.receive_bytes(timeout=DEADLINE_S)
                    await ws.send_bytes(b"\xa0")  # no proof
                    assert (await ws.receive(timeout=DEADLINE_S)).type \
                        == aiohttp.WSMsgType.CLOSE
        await until(lambda: not node.gossip.accepted.handlers)
    for event in ("peer link proof refused", "peer link down"):
        lines = [entry for entry in said if entry["event"] == event
                 or entry.get("line") == event]
        assert [entry["event"] for entry in lines] \
            == [event] * UNPROVEN_LINES_MAX + ["lines not logged", event]
        assert lines[-2]["count"] == flood - UNPROVEN_LINES_MAX


def test_a_refusal_carries_a_bounded_reason() -> None:
    removal = Removal(by="B" * 63, at_ms=2**62, reason="\U0001F600" * 256)  # 12 bytes each
    code, detail, _ = refusal_for(removal)
    assert code == "device_removed" and len(detail["reason"]) == REASON_CHARS_MAX
    # The detail travels in a header, ASCII-escaped, and must fit what is signed.
    text = Refusal(code, detail, "A").text()
    assert text.isascii() and len(text.encode()) <= linkproof.DETAIL_BYTES_MAX


def test_peers_are_allowed_without_a_cluster_secret() -> None:
    Config(peers=("http://127.0.0.1:1",)).check()  # device keys: no error


async def test_stopping_ends_a_handshake_the_dialer_left_unfinished(
        make_node: NodeFactory) -> None:
    """A dialer that goes silent after the node's proof (a paused device, a link gone
    dark) must not hold the node's stop until the handshake limit, for which the web
    server's shutdown would otherwise wait."""
    node = await make_node()
    member, _ = await new_member(node)
    limit_s = node.config.sync.connect_timeout_s
    async with aiohttp.ClientSession() as http, http.ws_connect(
            node.url + PEER_PATH, headers=headers(member, linkproof.new_nonce()),
            protocols=(LINK_PROTOCOL,)) as ws:
        await ws.receive_bytes(timeout=DEADLINE_S)  # the node's proof; ours never comes
        async with asyncio.timeout(limit_s / 2):
            await node.stop()


async def test_a_peer_whose_message_is_refused_is_told_why(make_node: NodeFactory) -> None:
    """The close of a link dropped for a protocol fault names the fault (cut to what a
    close frame holds, on a character boundary), so the peer's operator can see it."""
    node = await make_node()
    for garbage, expected in ((b"\x01", "a message must be a CBOR map"),
                              (cbor_map_of_type("é" * 200), "type: unknown message type 'ééé")):
        async with member_link(node) as ws:
            await ws.send_bytes(garbage)
            # What the peer's own link loop logs, as its reason, when the link ends.
            with pytest.raises(LinkClosed) as ended:
                await Link(ws, None, None, SyncConfig()).receive()
            assert f"link ended (close: protocol fault: {expected}" in str(ended.value)
            assert ws.close_code == 1000


async def test_a_link_closed_under_a_send_says_so_in_its_own_words(
        make_node: NodeFactory) -> None:
    """The reason a removed device logs as its link goes down: what happened to the
    link, not the library's "Cannot write to closing transport"."""
    node = await make_node()
    async with member_link(node) as ws:
        await ws.close()
        with pytest.raises(SendFailed) as ended:  # what was read before is taken in
            await Link(ws, None, None, SyncConfig()).send(b"x")
    assert str(ended.value) == "the link closed while sending"


async def test_a_send_lost_with_the_connection_fails_though_the_link_is_not_seen_closed(
        ) -> None:
    """The peer dropped the connection, its close frame unread: the link does not know
    it is closed, and its send fails as one closed under it (``SendFailed``), so that
    what the peer sent before is taken in."""
    async def drop(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(timeout=0.05)
        await ws.prepare(request)
        await ws.send_bytes(b"before")
        await ws.close()  # no answer read: it gives up and drops the connection
        return ws

    async with serving(drop) as url, aiohttp.ClientSession() as http, \
            http.ws_connect(url) as ws:
        link = Link(ws, None, url, SyncConfig())
        await until(lambda: ws.get_extra_info("peername") is None)  # the connection lost
        assert not link.closed
        with pytest.raises(SendFailed):
            await link.send(b"x")
        assert await link.receive() == b"before"  # read still, after the failed send


async def test_a_long_close_reason_reaches_the_peer_cut_on_a_character_boundary() -> None:
    """A close frame holds 123 bytes of reason: a longer one is cut to
    ``CLOSE_REASON_BYTES_MAX`` bytes, between characters, and the peer reads it."""
    heard: list[str] = []

    async def reading(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        message = await ws.receive()
        if message.type is aiohttp.WSMsgType.CLOSE:
            heard.append(message.extra)
        await ws.close()
        return ws

    async with serving(reading) as url, aiohttp.ClientSession() as http, \
            http.ws_connect(url) as ws:
        await Link(ws, None, url, SyncConfig()).close("é" * 100)
    assert heard == ["é" * (CLOSE_REASON_BYTES_MAX // 2)]


async def test_a_stalled_send_is_no_send_failed() -> None:
    """A peer that takes in nothing: the send times out, a stall, not a link closed
    under it (``SendFailed``): nothing is taken in after it."""
    stalled = asyncio.Event()

    async def unread(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await stalled.wait()  # reads nothing until the test ends
        return ws

    async with serving(unread) as url, aiohttp.ClientSession() as http, \
            http.ws_connect(url) as ws:
        link = Link(ws, None, url, SyncConfig(send_timeout_s=0.05))
        with pytest.raises(LinkClosed) as ended:
            for _ in range(STALL_SENDS_MAX):  # until the socket's buffers are full
                await link.send(bytes(STALL_SEND_BYTES))
        stalled.set()
    assert not isinstance(ended.value, SendFailed)
    assert "sending took over" in str(ended.value)


def cbor_map_of_type(kind: str) -> bytes:
    return codec.encode({"type": kind})


async def test_a_peer_linking_again_gets_no_new_quota_of_origins(
        make_node: NodeFactory) -> None:
    """One peer brings at most ``origins_new_max`` new origins per interval, however often
    it links again (a quota per link alone would let it fill the origins table by
    reconnecting)."""
    secret = "s" * 32
    node = await make_node(cluster_secret=secret,
                           sync=SyncConfig(origins_new_max=3, origins_new_interval_s=3600))
    stamp = int(time.time() * 1000)

    async def link_once(round_: int) -> dict[str, int]:
        items = tuple(Item(f"made-up-{round_}-{n}", 1, parse_event(
            {"agent_id": "main", "hlc": [stamp + n, round_],
             "kind": {"type": "session_ended", "reason": f"{round_} {n}"}},
            session_key="junk")) for n in range(5))
        async with aiohttp.ClientSession() as http, http.ws_connect(
                node.url + PEER_PATH, headers={"Authorization": f"Bearer {secret}"}) as ws:
            await ws.send_bytes(encode(Hello(f"flooder-{round_}", {})))
            await ws.send_bytes(encode(Events(items)))
            while True:
                answer = parse(await ws.receive_bytes(timeout=DEADLINE_S))
                if isinstance(answer, Ack):
                    return answer.version

    assert len(await link_once(0)) == 3
    assert len(await link_once(1)) == 3  # none more on a second link


async def test_a_new_quota_of_origins_takes_the_settings_as_they_are_at_the_link(
        make_node: NodeFactory) -> None:
    """A peer's quota of new origins is made, at its first link, from the node's sync
    settings as they are then, not as they were when the node started."""
    secret = "s" * 32
    node = await make_node(cluster_secret=secret,
                           sync=SyncConfig(origins_new_max=3, origins_new_interval_s=3600))
    accepted = node.gossip.accepted  # makes the quota of each peer linking to the node
    accepted.config = dataclasses.replace(
        accepted.config, sync=dataclasses.replace(accepted.config.sync, origins_new_max=2))
    stamp = int(time.time() * 1000)
    items = tuple(Item(f"made-up-{n}", 1, parse_event(
        {"agent_id": "main", "hlc": [stamp + n, 0],
         "kind": {"type": "session_ended", "reason": f"{n}"}},
        session_key="junk")) for n in range(5))
    async with aiohttp.ClientSession() as http, http.ws_connect(
            node.url + PEER_PATH, headers={"Authorization": f"Bearer {secret}"}) as ws:
        await ws.send_bytes(encode(Hello("flooder", {})))
        await ws.send_bytes(encode(Events(items)))
        while not isinstance(answer := parse(await ws.receive_bytes(timeout=DEADLINE_S)),
                             Ack):
            pass
    assert len(answer.version) == 2


async def test_a_peer_naming_made_up_nodes_leaves_no_checkpoints(
        make_node: NodeFactory) -> None:
    """A checkpoint is kept for good under the node a hello names: a peer linking again
    and again under new names must not fill the disk with them. One is kept for a node
    whose events this node holds."""
    secret = "s" * 32
    node = await make_node(cluster_secret=secret)
    stamp = int(time.time() * 1000)
    real = "a-real-node"
    event = parse_event({"agent_id": "main", "hlc": [stamp, 0],
                         "kind": {"type": "session_ended", "reason": "done"}},
                        session_key="s")

    async def link_once(name: str, batch: Events | None) -> None:
        async with aiohttp.ClientSession() as http, http.ws_connect(
                node.url + PEER_PATH, headers={"Authorization": f"Bearer {secret}"}) as ws:
            await ws.send_bytes(encode(Hello(name, {name: 1, "other": 5})))
            if batch is not None:
                await ws.send_bytes(encode(batch))
            while not isinstance(parse(await ws.receive_bytes(timeout=DEADLINE_S)), Ack):
                await ws.send_bytes(encode(Ack({})))  # until the node acks our batch
                if batch is None:
                    break
        # Once its link is no longer running, a peer is listed as down only after the
        # link's checkpoint was saved (or refused).
        await until(lambda: not node.gossip.runners
                    and any(row["node_id"] == name for row in node.gossip.peers()))

    await link_once("made-up-1", None)
    await link_once("made-up-2", None)
    await link_once(real, Events((Item(real, 1, event),)))
    checkpoints = await node.gossip.astore.read(
        lambda store: {name: store.checkpoint(f"node:{name}")
                       for name in ("made-up-1", "made-up-2", real)})
    assert checkpoints["made-up-1"] is None and checkpoints["made-up-2"] is None
    assert checkpoints[real] is not None and checkpoints[real][real] == 1


async def another_devices_origin(node: RunningNode) -> str:
    """An origin bound to a key not ``node``'s, which ``node`` holds an event of."""
    other = EventStore.open("memory:", signer=Signer(crdt_device.generate(), "other"))
    other.append(parse_event({"agent_id": "main", "hlc": [int(time.time() * 1000), 0],
                              "kind": {"type": "session_ended", "reason": "done"}},
                             session_key="s"))
    held = [(s.event, other.node_id, s.seq, s.signature)
            for s in other.origin_after(other.node_id, 0, 10)]
    other.close()
    await node.gossip.astore.write(lambda store: store.ingest(held))
    return held[0][1]


async def test_a_device_may_not_pass_itself_off_as_another(make_node: NodeFactory) -> None:
    """On a link proven by a device key, a hello naming another device's origin is a
    protocol fault (it would take that node's place: its link, its checkpoint)."""
    node = await make_node()
    origin = await another_devices_origin(node)
    async with member_link(node) as ws:
        await ws.send_bytes(encode(Hello(origin, {})))
        answer = await ws.receive(timeout=DEADLINE_S)
        assert answer.type == aiohttp.WSMsgType.CLOSE, answer
        assert "another device's origin" in answer.extra


async def test_a_secret_holder_may_not_pass_itself_off_as_a_keyed_node(
        make_node: NodeFactory) -> None:
    """The cluster secret proves no key: a hello on such a link naming an origin bound
    to a key is a protocol fault, and one naming a node of its own is taken."""
    secret = "s" * 32
    node = await make_node(cluster_secret=secret)
    origin = await another_devices_origin(node)
    sent = {"Authorization": f"Bearer {secret}", NODE_HEADER: origin}
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(node.url + PEER_PATH, headers=sent) as ws:
            await ws.send_bytes(encode(Hello(origin, {})))
            async with asyncio.timeout(DEADLINE_S):
                answer = await ws.receive()
                while answer.type == aiohttp.WSMsgType.BINARY:  # the node's own hellos
                    answer = await ws.receive()
            assert answer.type == aiohttp.WSMsgType.CLOSE, answer
            assert "device key this link did not prove" in answer.extra
        sent[NODE_HEADER] = own = "0123456789abcdef"
        async with http.ws_connect(node.url + PEER_PATH, headers=sent) as ws:
            await ws.send_bytes(encode(Hello(own, {})))
            await until(lambda: own in {r.node for r in node.gossip.runners.values()})


@pytest.mark.parametrize(("address", "reason"), [
    ("http://me:hunter2@phone:7878", "holds a user name or password"),
    ("http://phone:7878", None),
    ("http://phone:7878/?access_token=hunter2", "has a query: the node's paths would land in it"),
    ("http://phone:7878/#hunter2", "has a fragment")])
async def test_the_address_a_link_gives_for_itself_is_kept_only_if_a_node_could_dial_it(
        make_node: NodeFactory, address: str, reason: str | None) -> None:
    """The address a dialer advertises (``X-Clawsync-Advertise``) is checked as a
    ``--peer`` is: one with a password, a query or a fragment is dropped, so it is
    neither listed to peers nor shown in ``GET /v1/peers`` nor logged (the reason is);
    the link stays, with no address. One a node could dial is kept."""
    node = await make_node()
    with structlog.testing.capture_logs() as said:
        async with member_link(node, advertise=address), aiohttp.ClientSession() as http:
            async with http.get(node.url + "/v1/peers") as reply:
                body = await reply.text()
            listed = node.gossip.member_list()
            urls = [runner.url for runner in node.gossip.runners.values()]
    dropped = [entry["reason"] for entry in said
               if entry["event"] == "advertised address dropped"]
    if reason is not None:
        assert urls == [None] and dropped == [reason]
        assert "hunter2" not in body + repr(listed) + repr(said)
    else:
        assert urls == [address] and not dropped
        assert address in body and address in repr(listed)


async def test_an_address_a_node_gives_for_itself_that_no_node_could_dial_is_logged_once(
        make_node: NodeFactory) -> None:
    """A peer gives the same address at each of its links (each handshake): dropped
    each time, logged once for the node and reason; another node's is news, and so is
    another reason."""
    node = await make_node()
    given = [("n-laptop", "http://laptop:0"), ("n-laptop", "http://laptop:0"),
             ("n-laptop", "http:///laptop"), ("n-phone", "http://phone:0"),
             ("n-laptop", "http://laptop:0")]
    with structlog.testing.capture_logs() as said:
        for named, address in given:
            async with member_link(node, advertise=address, node_id=named):
                pass
    dropped = [(entry["said_by"], entry["reason"]) for entry in said
               if entry["event"] == "advertised address dropped"]
    port = "has a port that is not between 1 and 65535"
    assert dropped == [("n-laptop", port), ("n-laptop", "names no host"), ("n-phone", port)]
