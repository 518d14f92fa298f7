"""A dialer let in on a member's device id it claims, whose link proofs do not verify:
after ``BAD_PROOFS_MAX`` within a window its address is refused before the upgrade (429,
no signing), said once in the log, counted in the metrics, until the window ends.
Real nodes in this process, over real sockets; the admission's clock is moved by hand.
"""

from __future__ import annotations

import aiohttp
import structlog

from crdt import device as crdt_device
from crdt import linkproof
from node.peers.bad_proofs import BAD_PROOFS_MAX, BAD_PROOFS_WINDOW_S
from node.peers.transport import LINK_PROTOCOL, PEER_PATH
from tests.node.conftest import NodeFactory
from tests.node.peers.support import headers, new_member, prove, until
from tests.support.clock import Clock
from tests.support.metrics import scrape, value


async def dial_status(url: str, claimed: str) -> tuple[int, str | None, str | None]:
    """A dial's answer before any upgrade: status, ``Retry-After`` and error code."""
    async with aiohttp.ClientSession() as http, http.get(
            url + PEER_PATH, headers=headers(claimed, linkproof.new_nonce()) | {
                "Connection": "Upgrade", "Upgrade": "websocket",
                "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                "Sec-WebSocket-Protocol": LINK_PROTOCOL}) as reply:
        code = (await reply.json())["error"]["code"] if reply.status >= 400 else None
        return reply.status, reply.headers.get("Retry-After"), code


async def test_an_address_sending_bad_proofs_is_refused_for_the_window(
        make_node: NodeFactory) -> None:
    node = await make_node()
    clock = Clock()
    node.gossip.admission._now = clock
    member, key = await new_member(node)
    forger = crdt_device.generate()
    with structlog.testing.capture_logs() as said:
        for _ in range(BAD_PROOFS_MAX):
            answer, _, _ = await prove(node, member, forger)
            assert answer == "link proof refused"
        await until(lambda: not node.gossip._inbound)
        clock.now_s = 10.0
        # Refused before the upgrade, the real key too (one address), told when to retry.
        assert await dial_status(node.url, member) \
            == (429, str(int(BAD_PROOFS_WINDOW_S - 10.0)), "link_proofs_failed")
        assert await dial_status(node.url, member) == (429, "50", "link_proofs_failed")
    refused = [entry for entry in said
               if entry["event"] == "peer address refused: link proofs that do not verify"]
    assert len(refused) == 1 and refused[0]["proofs"] == BAD_PROOFS_MAX
    families = await scrape(node.url)
    assert value(families, "clawsync_peer_link_proofs_failed", "_total") == BAD_PROOFS_MAX
    assert value(families, "clawsync_peer_dials_refused_for_proofs", "_total") == 2
    # The window over, the member's own proof links.
    clock.now_s = BAD_PROOFS_WINDOW_S
    answer, _, _ = await prove(node, member, key)
    assert answer == "open"


async def test_fewer_bad_proofs_refuse_nothing(make_node: NodeFactory) -> None:
    node = await make_node()
    clock = Clock()
    node.gossip.admission._now = clock
    member, key = await new_member(node)
    forger = crdt_device.generate()
    for _ in range(BAD_PROOFS_MAX - 1):
        assert (await prove(node, member, forger))[0] == "link proof refused"
    assert (await prove(node, member, key))[0] == "open"


async def test_an_ipv6_dialer_is_counted_by_its_64(make_node: NodeFactory) -> None:
    """A host commonly holds a whole /64: its addresses count as one."""
    admission = (await make_node()).gossip.admission
    admission._now = Clock()
    for n in range(BAD_PROOFS_MAX):
        admission.proof_failed(f"2001:db8::{n + 1:x}", "the dialer's link proof does not verify")
    assert admission.proofs_refused_for("2001:db8::ffff") is not None
    assert admission.proofs_refused_for("2001:db8:0:1::1") is None
