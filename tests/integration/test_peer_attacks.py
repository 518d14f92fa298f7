"""A peer that holds the cluster secret but misbehaves, with real node processes.

Sending garbage, a text frame, tampered or forged batches, an oversized frame, deep
nesting, a stall before or inside a frame, it loses its link; the node keeps serving and
replicating with honest peers, and its log holds nothing the attacker sent but valid
events, which any member may add. Events of a node's origin carry its device's
signature, so a valid event the peer sends unsigned for another node's slot is not taken
(``test_signed_events``), and the slot's real event reaches every node; made-up origins
and claims on a node's numbers split nothing and stop no writes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import aiohttp
import pytest

from sync.peer.config import SyncConfig
from sync.peer.limits import (
    BATCH_EVENTS_MAX,
    MESSAGE_BYTES_MAX,
    ORIGINS_MAX,
    ORIGINS_RESERVED,
)
from sync.peer.messages import Ack, Events, Hello, Item, encode, parse
from tests.support.cluster import (
    SECRET,
    Cluster,
    all_events,
    append,
    assert_same_state,
    backlog,
    message,
    peer_rows,
    wait_converged,
    wait_until,
)
from tests.support.metrics import scrape, value
from tests.support.peer_attack import (
    PEER_WS,
    attack,
    ids_of,
    peer_headers,
    sealed,
)
from tests.support.processes import NodeProcess
from tests.support.raw_http import ANSWER_TIMEOUT_S

pytestmark = pytest.mark.integration


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
