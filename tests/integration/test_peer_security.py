"""The peer API under attack, with real node processes.

* Without the cluster secret (missing, wrong, or the client token instead) the peer
  websocket and the member list answer 401 and nothing else; a node configured with
  another secret never receives an event, nor delivers one.
* A peer that holds the secret but misbehaves (garbage, a text frame, tampered or forged
  batches, an oversized frame, deep nesting, a stall before or inside a frame) loses its
  link; the node keeps serving and replicating with honest peers, and its log holds
  nothing the attacker sent but valid events, which any member may add. Events of a
  node's origin carry its device's signature, so a valid event the peer sends unsigned
  for another node's slot is not taken (``test_signed_events``), and the slot's real
  event reaches every node.
* With mutual TLS and no secret, nodes whose certificates the cluster CA signed
  replicate over HTTPS; a node with a certificate from another CA gets nothing. A node
  with a CA counts a link as resting on a certificate only where the peer showed one
  the CA verified: at a plain http:// address none is asked for, so a device there that
  is no member links only at a ``--peer`` address, and is said to.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from crdt.device import device_id, private_key_from_seed, public_bytes
from crdt.events import Event, parse_event
from sync.peer.config import SyncConfig
from sync.peer.messages import (
    BATCH_EVENTS_MAX,
    MESSAGE_BYTES_MAX,
    ORIGINS_MAX,
    ORIGINS_RESERVED,
    Ack,
    Events,
    Hello,
    Item,
    encode,
    parse,
)
from tests.support.certs import make_ca, make_cert
from tests.support.cluster import (
    SECRET,
    Cluster,
    all_events,
    append,
    appended_ids,
    assert_same_state,
    backlog,
    head,
    message,
    peer_rows,
    request,
    serve_args,
    wait_converged,
    wait_until,
)
from tests.support.metrics import scrape, value
from tests.support.processes import NodeProcess, run_cli

pytestmark = pytest.mark.integration

PEER_WS = "/peer/v1/ws"
MEMBERS = "/peer/v1/members"
TOKEN = "client-token-for-apps"
#: Seconds an attack may take to be answered (the node closing the link, or acking).
ANSWER_TIMEOUT_S = 20.0


def ids_of(node: NodeProcess) -> set[str]:
    return appended_ids(all_events(node))


def peer_headers(secret: str | None, name: str = "attacker") -> dict[str, str]:
    headers = {"X-Clawsync-Node": name}
    if secret is not None:
        headers["Authorization"] = f"Bearer {secret}"
    return headers


def sealed(content: str, ms: int, key: str = "attack") -> Event:
    """A valid event with a fixed timestamp (as a peer would send it)."""
    event = parse_event(message(content, hlc=[ms, 0]), session_key=key)
    assert isinstance(event, Event)
    return event


# -- credentials ---------------------------------------------------------------------------


async def peer_api_status(url: str, secret: str | None) -> tuple[int, int, str]:
    """(websocket handshake status, members status, members body) with ``secret``."""
    async with aiohttp.ClientSession() as http:
        try:
            async with http.ws_connect(url + PEER_WS, headers=peer_headers(secret)) as ws:
                await ws.close()
                ws_status = 101
        except aiohttp.WSServerHandshakeError as error:
            ws_status = error.status
        async with http.get(url + MEMBERS, headers=peer_headers(secret)) as reply:
            return ws_status, reply.status, await reply.text()


def test_peer_api_needs_the_cluster_secret(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        a = cluster.node("a", token=TOKEN)
        append(a, "private", [message("not for strangers")])
        node_id = a.get("/healthz")["node_id"]
        for secret in (None, "wrong-secret", TOKEN, SECRET + "x", SECRET[:-1]):
            ws_status, members_status, body = asyncio.run(peer_api_status(a.url, secret))
            assert (ws_status, members_status) == (401, 401), secret
            assert json.loads(body)["error"]["code"] == "unauthorized"
            assert node_id not in body and "private" not in body
        # The right secret opens both (so the refusals above are about credentials) ...
        ws_status, members_status, body = asyncio.run(peer_api_status(a.url, SECRET))
        assert (ws_status, members_status) == (101, 200)
        assert json.loads(body)["node_id"] == node_id
        # ... and the cluster secret does not open the client API.
        events_url = f"{a.url}/v1/events"
        for credential in (SECRET, None):
            headers = {} if credential is None else {"Authorization": f"Bearer {credential}"}
            status = asyncio.run(get_status(events_url, headers))
            assert status == 401

        lone = cluster.node("lone", secret=None)  # no secret: no peer API at all
        assert asyncio.run(peer_api_status(lone.url, SECRET))[:2] == (401, 401)


async def get_status(url: str, headers: dict[str, str]) -> int:
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as reply:
        return reply.status


def test_node_with_another_secret_never_exchanges_events(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        a = cluster.node("a")
        from_a = {e["id"] for e in append(a, "cluster", [message(f"a{n}") for n in range(20)])}
        outsider = cluster.node("outsider", peers=[a.url], secret="another-secret")
        from_outsider = {e["id"] for e in append(outsider, "cluster",
                                                 [message(f"o{n}") for n in range(20)])}
        # It dials a and is refused: its secret is wrong and its device no member (403).
        wait_until(lambda: any(row["state"] == "refused" for row in peer_rows(outsider)), 30,
                   "the outsider was refused")
        # Meanwhile an honest node started later has long converged with a.
        b = cluster.node("b", peers=[a.url])
        from_b = {e["id"] for e in append(b, "cluster", [message(f"b{n}") for n in range(20)])}
        ids = wait_converged([a, b], must_hold=from_a | from_b)
        assert ids == from_a | from_b
        assert ids_of(outsider) == from_outsider
        assert head(outsider) == 20 + 1  # and its device key's record
        assert all(row["state"] != "up" for row in peer_rows(outsider))
        outsider_id = outsider.get("/healthz")["node_id"]
        assert outsider_id not in {row["node_id"] for row in peer_rows(a)}


# -- a misbehaving peer that holds the secret ------------------------------------------------


async def attack(url: str, *frames: bytes | str) -> aiohttp.WSMessage:
    """Connect as a peer, send ``frames``, and return the node's first answer that is not
    a hello or a batch (which it sends on its own): an ack, or the close of the link."""
    async with aiohttp.ClientSession() as http, http.ws_connect(
            url + PEER_WS, headers=peer_headers(SECRET), max_msg_size=0) as ws:
        for frame in frames:
            if isinstance(frame, str):
                await ws.send_str(frame)
            else:
                await ws.send_bytes(frame)
        while True:
            answer = await ws.receive(timeout=ANSWER_TIMEOUT_S)
            if answer.type != aiohttp.WSMsgType.BINARY or not isinstance(
                    parse(answer.data), Hello | Events):
                return answer


def closed(answer: aiohttp.WSMessage) -> bool:
    return answer.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                           aiohttp.WSMsgType.CLOSING)


def refused_frames(node_id: str, now_ms: int) -> dict[str, tuple[bytes | str, str]]:
    """Frames that each must cost the attacker its link and store nothing, with what the
    node logs as the fault."""
    fresh = sealed("a valid event riding with a tampered one", now_ms)
    victim = sealed("tamper me", now_ms + 1)
    batch = encode(Events((Item("attacker00000001", 1, fresh),
                           Item("attacker00000001", 2, victim))))
    # Same length, so the CBOR stays well-formed: only the events are wrong. (A renamed
    # kind would be a newer version's kind, and kept: a known kind loses its field.)
    tampered = batch.replace(b"content", b"cantent")
    assert tampered.count(b"cantent") == 2
    flipped = bytearray(batch)
    flipped[-1] ^= 0xFF  # the last byte of the last event: no longer valid UTF-8
    backwards = encode(Events((Item("attacker00000001", 2, fresh),
                               Item("attacker00000001", 1, victim))))
    return {
        "garbage bytes": (b"\xff" + os.urandom(64), "CBOR"),
        "a text frame": (json.dumps({"type": "hello"}), "CBOR"),
        "a batch with one tampered event": (tampered, "payload.content: is required"),
        "a batch with a flipped byte": (bytes(flipped), "events.items[1]: CBOR"),
        "a batch numbered backwards": (backwards, "sequence numbers of an origin must"),
        "a hello of another protocol": (encode(Hello("attacker00000001", {}, protocol=2)),
                                        "protocol 2 is not supported"),
        "a hello with this node's own id": (encode(Hello(node_id, {})), "our own node id"),
        "deep nesting": (b"\x81" * 5000 + b"\x00", "CBOR nesting deeper than"),
        "an array of 2**64-1 items": (b"\x9b" + b"\xff" * 8, "a CBOR container of"),
        "an unknown message type": (encode(Hello("x", {})).replace(b"hello", b"hallo"),
                                    "unknown message type 'hallo'"),
    }


def test_misbehaving_peer_cannot_crash_stall_or_corrupt_a_node(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        a = cluster.node("a")
        b = cluster.node("b", peers=[a.url])
        honest = backlog(a, "honest", 3000)  # enough to keep a staller's link busy
        honest |= {e["id"] for e in append(b, "honest", [message(f"b{n}") for n in range(20)])}
        wait_converged([a, b], must_hold=honest)
        assert a.process is not None
        pid = a.process.pid
        a_id = a.get("/healthz")["node_id"]
        now_ms = int(time.time() * 1000)

        for what, (frame, fault) in refused_frames(a_id, now_ms).items():
            answer = asyncio.run(attack(a.url, frame))
            assert closed(answer), f"{what}: the node answered {answer}"
            wait_until(lambda fault=fault: fault in a.log_path.read_text(), 10,
                       f"{what}: the node logs {fault!r}")
        # Past the size limit, aiohttp ends the link before the protocol sees the frame.
        answer = asyncio.run(attack(a.url, b"\xa0" + b"\x00" * MESSAGE_BYTES_MAX))
        assert closed(answer) and answer.data == aiohttp.WSCloseCode.MESSAGE_TOO_BIG

        # Valid events claiming to be a's own, numbered right after what a issued,
        # without a's signature: not taken, and a's own numbering carries on.
        own_seq = max(e["seq"] for e in all_events(a) if e["origin"] == a_id)
        claimed = [sealed(f"forged as a's own #{n}", now_ms + 10 + n) for n in range(1, 4)]
        forged = encode(Events(tuple(
            Item(a_id, own_seq + n, event) for n, event in enumerate(claimed, start=1))))
        answer = asyncio.run(attack(a.url, forged))
        assert answer.type == aiohttp.WSMsgType.BINARY and isinstance(parse(answer.data), Ack)
        assert not {e["id"] for e in all_events(a)} & {event.id.hex() for event in claimed}
        (after,) = append(a, "honest", [message("a's next own event")])
        assert (after["origin"], after["seq"]) == (a_id, own_seq + 1)
        honest |= {after["id"]}

        # Stalls, held open while honest replication goes on.
        asyncio.run(stalled_while(a, lambda: replicate_both_ways(a, b, honest)))

        assert a.running and a.process.pid == pid
        ids = wait_converged([a, b], must_hold=honest)
        assert ids == honest, "events other than the honest and the kept ones reached the log"
        assert_same_state([a, b], ids, automerge=False)
        assert "peer misbehaved" in a.log_path.read_text()
        # Every refused frame came on a link the attacker dialed: gone, with its series.
        faulted = value(asyncio.run(scrape(a.url)), "clawsync_peer_links_faulted", "_total")
        assert faulted is not None and faulted >= len(refused_frames(a_id, now_ms))


def replicate_both_ways(a: NodeProcess, b: NodeProcess, honest: set[str]) -> None:
    """Append on each node and see it arrive on the other; adds the ids to ``honest``."""
    for source, target in ((a, b), (b, a)):
        (event,) = append(source, "honest", [message(f"while stalled, on {source.name}")])
        honest.add(event["id"])
        wait_until(lambda target=target, event=event: event["id"] in ids_of(target), 30,
                   f"{source.name}'s event reached {target.name}")


async def raw_upgrade(node: NodeProcess) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A websocket handshake by hand, so the test can then send half a frame."""
    reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET {PEER_WS} HTTP/1.1\r\nHost: 127.0.0.1:{node.port}\r\n"
                  "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                  f"Authorization: Bearer {SECRET}\r\nX-Clawsync-Node: staller-raw\r\n\r\n")
                 .encode())
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), ANSWER_TIMEOUT_S)
    assert answer.startswith(b"HTTP/1.1 101"), answer
    return reader, writer


async def stalled_while(node: NodeProcess, check: Callable[[], None]) -> None:
    """Run ``check`` (in a thread) while three peers stall on ``node``: one that said
    hello as a node holding nothing and then never reads what it is sent, one stopped
    in the middle of a frame, and one stopped in the middle of its request headers."""
    async with aiohttp.ClientSession() as http:
        reader_ws = await http.ws_connect(node.url + PEER_WS, autoping=False,
                                          headers=peer_headers(SECRET, "staller-ws"))
        await reader_ws.send_bytes(encode(Hello("staller0000000001", {})))
        _, mid_frame = await raw_upgrade(node)
        # A masked binary frame announcing 4,096 bytes, of which 10 are sent.
        mid_frame.write(b"\x82\xfe\x10\x00" + os.urandom(4) + b"0123456789")
        await mid_frame.drain()
        _, mid_headers = await asyncio.open_connection("127.0.0.1", node.port)
        mid_headers.write(f"GET {PEER_WS} HTTP/1.1\r\nAuthoriz".encode())
        await mid_headers.drain()
        try:
            await asyncio.to_thread(wait_until, lambda: stallers_linked(node), 30,
                                    "both stalled links are open on the node")
            await asyncio.to_thread(check)
        finally:
            for writer in (mid_frame, mid_headers):
                writer.close()
            await reader_ws.close()


def stallers_linked(node: NodeProcess) -> bool:
    links = {row["link"].rsplit(":", 1)[0] for row in peer_rows(node)}
    return {"in:staller-ws", "in:staller-raw"} <= links


# -- a peer cannot speak for another node -----------------------------------------------------


def test_a_peer_cannot_take_another_nodes_sequence_numbers(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        a = cluster.node("a")
        b = cluster.node("b", peers=[a.url])
        first = {e["id"] for e in append(b, "victim", [message("b's first")])}
        wait_converged([a, b], must_hold=first)
        b_id = b.get("/healthz")["node_id"]
        # An authenticated peer sends a a valid event as b's next one, unsigned: b's
        # origin is bound to b's key, so a does not take it, and b's real one follows.
        seq = max(e["seq"] for e in all_events(a) if e["origin"] == b_id)
        squatter = sealed("not b's next event", int(time.time() * 1000), key="victim")
        answer = asyncio.run(attack(a.url, encode(Events((Item(b_id, seq + 1, squatter),)))))
        assert answer.type == aiohttp.WSMsgType.BINARY and isinstance(parse(answer.data), Ack)
        (real,) = append(b, "victim", [message("b's real next event")])
        ids = wait_converged([a, b], must_hold={real["id"]} | first)
        assert squatter.id.hex() not in ids and real["seq"] == seq + 1


def test_claims_on_a_nodes_numbers_do_not_stop_its_writes(tmp_path: Path) -> None:
    """A peer with the secret claims a's next number in a hello and sends a valid event
    as a's number a few ahead: a's next writes still reach b, and no link shows lag."""
    with Cluster(tmp_path) as cluster:
        a = cluster.node("a")
        b = cluster.node("b", peers=[a.url])
        (first,) = append(a, "victim", [message("a's first")])
        wait_converged([a, b], must_hold={first["id"]})
        a_id, seq = first["origin"], first["seq"]
        ahead = sealed("not a's event", int(time.time() * 1000), key="victim")
        answer = asyncio.run(attack(
            a.url, encode(Hello("attacker-node", {a_id: seq + 1})),
            encode(Events((Item(a_id, seq + 3, ahead),)))))
        assert answer.type == aiohttp.WSMsgType.BINARY and isinstance(parse(answer.data), Ack)
        new = {e["id"] for e in append(a, "victim", [message(f"next {n}") for n in range(3)])}
        wait_converged([a, b], must_hold={first["id"]} | new)
        assert ahead.id.hex() not in ids_of(a)
        assert all(row["events_peer_lacks"] in (0, None) for row in peer_rows(a)
                   if row["node_id"] == b.get("/healthz")["node_id"])


async def send_all(url: str, frames: Sequence[bytes]) -> list[Ack]:
    """Connect as a peer, send each frame and wait for its ack; the acks, in order."""
    acks: list[Ack] = []
    async with aiohttp.ClientSession() as http, http.ws_connect(
            url + PEER_WS, headers=peer_headers(SECRET), max_msg_size=0) as ws:
        await ws.send_bytes(encode(Hello("flooder-node", {})))
        for frame in frames:
            await ws.send_bytes(frame)
            while True:
                answer = await ws.receive(timeout=ANSWER_TIMEOUT_S)
                assert answer.type == aiohttp.WSMsgType.BINARY, answer
                message_ = parse(answer.data)
                if isinstance(message_, Ack):
                    acks.append(message_)
                    break
    return acks


def test_made_up_origins_cannot_split_the_cluster(tmp_path: Path) -> None:
    """A peer sends events of enough made-up origins to fill the origins table, and one
    beyond a gap: a node joining afterwards still syncs both ways, and nothing held is
    left unforwarded. Past the table's free part a node takes a new origin only from
    that node itself, so the joining node reaches the others by dialing each member."""
    with Cluster(tmp_path) as cluster:
        a = cluster.node("a", advertise=True)
        b = cluster.node("b", peers=[a.url], advertise=True)
        first = {e["id"] for e in append(b, "s", [message("b's first")])}
        wait_converged([a, b], must_hold=first)
        now_ms = int(time.time() * 1000)
        junk = [Item(f"made-up-{n}", 1, sealed(f"junk {n}", now_ms + n, key="junk"))
                for n in range(ORIGINS_MAX - 1)]
        frames = [encode(Events(tuple(junk[i:i + BATCH_EVENTS_MAX])))
                  for i in range(0, len(junk), BATCH_EVENTS_MAX)]
        gapped = sealed("beyond a gap", now_ms, key="junk")
        frames.append(encode(Events((Item("gapped-origin", 2, gapped),))))
        acks = asyncio.run(send_all(a.url, frames))
        # One link brings at most its quota of new origins, never the whole table.
        assert len(acks[-1].version) == 1 + SyncConfig().origins_new_max  # and b
        assert len(acks[-1].version) < ORIGINS_MAX - ORIGINS_RESERVED
        assert "gapped-origin" not in acks[-1].version and gapped.id.hex() not in ids_of(a)
        c = cluster.node("c", peers=[a.url], advertise=True,
                         extra_args=["--members-interval", "1"])
        new = {e["id"] for e in append(c, "s", [message("c's first")])}
        new |= {e["id"] for e in append(b, "s", [message("b's second")])}
        for node in (a, b, c):
            wait_until(lambda node=node: new | first <= ids_of(node), 90,
                       f"{node.name} holds the new events")


# -- mutual TLS ----------------------------------------------------------------------------


def tls_node(tmp_path: Path, name: str, cert: tuple[Path, Path], ca: Path,
             peers: Sequence[str] = (), issuer: Path | None = None) -> NodeProcess:
    """A node serving HTTPS with ``cert`` (signed by ``issuer``, by default ``ca``) that
    trusts ``ca`` for its peers, and no cluster secret."""
    node = NodeProcess(tmp_path, name=name, tls_ca=issuer or ca)
    node.extra_args = [*serve_args(peers, secret=None), "--tls-cert", str(cert[0]),
                       "--tls-key", str(cert[1]), "--tls-ca", str(ca)]
    return node


async def mtls_peer_status(node: NodeProcess, ca: Path,
                           client_cert: tuple[Path, Path] | None) -> int | str:
    """The members status a client gets with ``client_cert`` (or the TLS failure)."""
    context = ssl.create_default_context(cafile=str(ca))
    if client_cert is not None:
        context.load_cert_chain(str(client_cert[0]), str(client_cert[1]))
    async with aiohttp.ClientSession() as http:
        try:
            async with http.get(node.url + MEMBERS, ssl=context) as reply:
                return reply.status
        except aiohttp.ClientError as error:
            return type(error).__name__


def test_mutual_tls_without_a_secret(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    ca = make_ca(certs, "cluster-ca")
    rogue_ca = make_ca(certs, "rogue-ca")
    with Cluster(tmp_path) as cluster:
        a = cluster.add(tls_node(tmp_path, "a", make_cert(certs, "a", ca), ca[0]))
        assert a.url.startswith("https://")
        # The rogue trusts the cluster CA (so it can reach a) but holds another CA's cert.
        rogue = cluster.add(tls_node(tmp_path, "rogue", make_cert(certs, "rogue", rogue_ca),
                                     ca[0], peers=[a.url], issuer=rogue_ca[0]))
        b = cluster.add(tls_node(tmp_path, "b", make_cert(certs, "b", ca), ca[0],
                                 peers=[a.url]))
        from_a = {e["id"] for e in append(a, "tls", [message(f"a{n}") for n in range(30)])}
        from_b = {e["id"] for e in append(b, "tls", [message(f"b{n}") for n in range(30)])}
        from_rogue = {e["id"] for e in append(rogue, "tls", [message("from the rogue")])}
        ids = wait_converged([a, b], must_hold=from_a | from_b)
        assert ids == from_a | from_b
        assert_same_state([a, b], ids)

        # The cluster's certificate opens the peer API; none, or the rogue's, does not.
        assert asyncio.run(mtls_peer_status(a, ca[0], (certs / "b.pem", certs / "b.key"))) \
            == 200
        assert asyncio.run(mtls_peer_status(a, ca[0], None)) == 401
        assert asyncio.run(mtls_peer_status(
            a, ca[0], (certs / "rogue.pem", certs / "rogue.key"))) != 200
        wait_until(lambda: rogue.log_path.read_text().count("peer link down") >= 2, 30,
                   "the rogue was refused twice")
        assert ids_of(rogue) == from_rogue
        assert all(row["state"] != "up" for row in peer_rows(rogue))
        assert ids_of(a) == ids


# -- a CA node and devices that are no members ---------------------------------------------

#: A member device that never runs: its record gives another node's address.
PHONE = device_id(public_bytes(private_key_from_seed(bytes([9]) * 32)))


def own_id(node: NodeProcess) -> str:
    found: str = node.get("/v1/node")["device_id"]
    return found


def linked_not_members(node: NodeProcess) -> dict[str, dict[str, Any]]:
    """``GET /v1/devices``' ``linked``, by device id."""
    view = json.loads(request(node, "GET", "/v1/devices"))
    return {row["device_id"]: row for row in view["linked"]}


def members(node: NodeProcess) -> set[str]:
    view = json.loads(request(node, "GET", "/v1/devices"))
    return {row["device_id"] for row in view["members"]}


def add(member: NodeProcess, device: str, name: str, *options: str) -> None:
    done = run_cli(member, "devices", "add", device, "--name", name, *options)
    assert done.returncode == 0, done.stderr


def secret_pair(cluster: Cluster) -> tuple[NodeProcess, NodeProcess]:
    """Two plain-HTTP nodes of a cluster secret, ``b`` dialing ``c``: a record ``c``
    writes reaches ``b``, which takes a device ``c`` adds (and, not a member itself,
    stays one no record names on a third node)."""
    c = cluster.node("c", advertise=True)
    b = cluster.node("b", peers=[c.url])
    return b, c


def test_a_ca_node_says_a_certificate_links_a_device_only_where_one_was_verified(
        tmp_path: Path) -> None:
    """A node with a CA and no secret dials two devices that are no members: ``d`` over
    HTTPS, whose certificate its CA verified, and ``b`` at an http:// address, which
    lets it in as a member (a record of ``c`` adds it) but showed no certificate.
    ``clawsync devices`` says ``d`` links by a certificate and ``b`` by the ``--peer``
    address it was given, not by a certificate no one checked; ``d`` says ``a`` links
    by its certificate."""
    certs = tmp_path / "certs"
    certs.mkdir()
    ca = make_ca(certs, "cluster-ca")
    with Cluster(tmp_path) as cluster:
        b, c = secret_pair(cluster)
        d = cluster.add(tls_node(tmp_path, "d", make_cert(certs, "d", ca), ca[0]))
        a = cluster.add(tls_node(tmp_path, "a", make_cert(certs, "a", ca), ca[0],
                                 peers=[b.url, d.url]))
        # Before c's records reach d through a (they add a, a member on d from then on).
        wait_until(lambda: own_id(a) in linked_not_members(d)
                   and own_id(d) in linked_not_members(a), 60, "a and d list each other")
        assert linked_not_members(d)[own_id(a)]["via"] == "certificate"
        add(c, own_id(a), "a")
        wait_until(lambda: own_id(b) in linked_not_members(a), 60, "a lists b as linked")
        linked = linked_not_members(a)
        assert (linked[own_id(b)]["via"], linked[own_id(b)]["address"]) \
            == ("peer_address", b.url)
        assert (linked[own_id(d)]["via"], linked[own_id(d)]["address"]) \
            == ("certificate", d.url)
        assert own_id(a) in members(b) and own_id(a) not in linked_not_members(b)


def test_a_ca_node_keeps_no_device_that_is_no_member_at_a_learned_plain_address(
        tmp_path: Path) -> None:
    """A member's record gives the http:// address of ``b``, a device that is no member
    and lets the CA node ``a`` in (a record adds ``a``). ``a`` dials it as learned: no
    certificate was verified there, nor the secret given, so ``a`` closes the link as
    ``not_member``, as a node with no CA does, and never lists ``b`` as linked."""
    certs = tmp_path / "certs"
    certs.mkdir()
    ca = make_ca(certs, "cluster-ca")
    with Cluster(tmp_path) as cluster:
        b, c = secret_pair(cluster)
        a = tls_node(tmp_path, "a", make_cert(certs, "a", ca), ca[0], peers=[c.url])
        a.extra_args += ["--log-format", "json"]
        cluster.add(a)
        add(c, own_id(a), "a")
        add(c, PHONE, "phone", "--address", b.url)  # the phone's address: b answers there
        wait_until(lambda: own_id(a) in members(b), 60, "b takes a as a member")

        def refused_b() -> list[dict[str, Any]]:
            lines = [json.loads(line) for line in a.log_path.read_text().splitlines()
                     if line.startswith("{")]
            return [line for line in lines if line.get("event") == "dialed device refused"
                    and line.get("peer") == b.url]

        wait_until(lambda: refused_b() or own_id(b) in linked_not_members(a), 60,
                   "a dials b at the phone's address")
        assert own_id(b) not in linked_not_members(a)
        [line, *_] = refused_b()
        assert (line["device_id"], line["code"]) == (own_id(b), "not_member")
        assert all(row["state"] != "up" for row in peer_rows(a) if row["url"] == b.url)
