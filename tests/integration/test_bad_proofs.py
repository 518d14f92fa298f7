"""A dialer that gives the cluster secret and a device id, then a link proof that does
not verify, with a real node process: after ``BAD_PROOFS_MAX`` of them its address is
refused before the upgrade (429), said once in the log and counted in the metrics; the
node serves on."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from crdt import device as crdt_device
from crdt import linkproof
from node.peers.bad_proofs import BAD_PROOFS_MAX
from node.peers.transport import DEVICE_HEADER, LINK_PROTOCOL, NONCE_HEADER
from tests.support.cluster import SECRET, Cluster
from tests.support.metrics import scrape, value
from tests.support.peer_attack import ANSWER_TIMEOUT_S, PEER_WS, peer_headers
from tests.support.processes import NodeProcess

pytestmark = pytest.mark.integration

async def bad_proof(node: NodeProcess, secret: str) -> str:
    """Dial as a new device, giving ``secret``, and send a proof another key signed:
    the node's close reason."""
    claimed = crdt_device.device_id(crdt_device.public_bytes(crdt_device.generate()))
    nonce = linkproof.new_nonce()
    headers = peer_headers(secret) | {DEVICE_HEADER: claimed,
                                      NONCE_HEADER: linkproof.b64(nonce)}
    async with aiohttp.ClientSession() as http, http.ws_connect(
            node.url + PEER_WS, headers=headers, protocols=(LINK_PROTOCOL,)) as ws:
        key, _, theirs = linkproof.parse_frame(
            await ws.receive_bytes(timeout=ANSWER_TIMEOUT_S), with_nonce=True)
        assert theirs is not None
        acceptor = crdt_device.device_id(key)
        forger = crdt_device.generate()
        await ws.send_bytes(linkproof.encode_frame(
            crdt_device.public_bytes(forger),
            linkproof.sign(forger, "dial", nonce, theirs, claimed, acceptor)))
        answer = await ws.receive(timeout=ANSWER_TIMEOUT_S)
        return str(answer.extra)


async def dial_answer(node: NodeProcess, secret: str) -> tuple[int, str | None]:
    claimed = crdt_device.device_id(crdt_device.public_bytes(crdt_device.generate()))
    headers = peer_headers(secret) | {DEVICE_HEADER: claimed,
                                      NONCE_HEADER: linkproof.b64(linkproof.new_nonce())}
    async with aiohttp.ClientSession() as http:
        try:
            async with http.ws_connect(node.url + PEER_WS, headers=headers,
                                       protocols=(LINK_PROTOCOL,)):
                return 101, None
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status, (exc.headers or {}).get("Retry-After")


def test_an_address_of_bad_link_proofs_is_refused(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        a = cluster.node("a")
        for _ in range(BAD_PROOFS_MAX):
            assert asyncio.run(bad_proof(a, SECRET)) == "link proof refused"
        status, retry_after = asyncio.run(dial_answer(a, SECRET))
        assert status == 429 and retry_after is not None and int(retry_after) > 0
        said = a.log_path.read_text()
        assert said.count("peer address refused: link proofs that do not verify") == 1
        families = asyncio.run(scrape(a.url, a.token))
        assert value(families, "clawsync_peer_link_proofs_failed", "_total") \
            == BAD_PROOFS_MAX
        assert value(families, "clawsync_peer_dials_refused_for_proofs", "_total") == 1
        assert a.get("/healthz")["node_id"]
