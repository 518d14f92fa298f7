"""Accepted handshakes that end after the node signed its link proof, without a valid
proof of the dialer's, counted in ``clawsync_peer_link_proofs_failed_total`` by reason:
``invalid`` (a proof that does not verify, or a frame too big), ``missing`` (the dialer
had the node's signature and sent no proof: it closed, reset or dropped the connection,
or stayed silent), ``lost`` (the node's proof failed to go out: no signature given).
Nothing refuses the dialer's address for them: a member behind the same address links
at once. Real nodes in this process, over real sockets."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator

import aiohttp
import pytest

from crdt import device as crdt_device
from crdt import linkproof
from node.peers import transport
from node.peers.transport import LINK_PROTOCOL, PEER_PATH
from node.server.run import RunningNode
from tests.node.conftest import NodeFactory
from tests.node.peers.support import FAST, headers, new_member, prove, until
from tests.support.metrics import scrape, value
from tests.support.waits import DEADLINE_S


async def failed(node: RunningNode) -> dict[str, float | None]:
    """The node's counts of failed link proofs, by reason, as scraped."""
    families = await scrape(node.url)
    return {reason: value(families, "clawsync_peer_link_proofs_failed", "_total",
                          reason=reason) for reason in ("invalid", "missing", "lost")}


@contextlib.asynccontextmanager
async def signed_for(node: RunningNode, member: str
                     ) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A link to ``node`` dialed as ``member``, once the node's signed proof came."""
    async with aiohttp.ClientSession() as http, http.ws_connect(
            node.url + PEER_PATH, headers=headers(member, linkproof.new_nonce()),
            protocols=(LINK_PROTOCOL,)) as ws:
        await ws.receive_bytes(timeout=DEADLINE_S)
        yield ws


async def signature_taken(node: RunningNode, member: str, *, silent: bool) -> None:
    """Dial ``node`` as ``member``, read its signed proof and send none: close at once,
    or (``silent``) wait for the node to close the link."""
    async with signed_for(node, member) as ws:
        if silent:
            answer = await ws.receive(timeout=DEADLINE_S)
            assert answer.type == aiohttp.WSMsgType.CLOSE


async def test_a_proof_that_does_not_verify_is_counted_and_refuses_nothing_more(
        make_node: NodeFactory) -> None:
    node = await make_node()
    member, key = await new_member(node)
    assert await failed(node) == {"invalid": 0, "missing": 0, "lost": 0}
    forger = crdt_device.generate()
    for _ in range(12):  # more than any budget would let through
        assert (await prove(node, member, forger))[0] == "link proof refused"
    await until(lambda: not node.gossip.accepted.handlers)
    assert await failed(node) == {"invalid": 12, "missing": 0, "lost": 0}
    # The member, from the same address, links at once.
    assert (await prove(node, member, key))[0] == "open"
    assert await failed(node) == {"invalid": 12, "missing": 0, "lost": 0}


async def test_a_dialer_that_takes_the_signature_and_sends_no_proof_is_counted(
        make_node: NodeFactory) -> None:
    """Closing once the node's proof came in, or staying silent until
    ``connect_timeout_s``: each is a handshake the node signed for, counted as
    ``missing``."""
    node = await make_node(sync=dataclasses.replace(FAST, connect_timeout_s=0.5))
    member, _ = await new_member(node)
    for _ in range(3):
        await signature_taken(node, member, silent=False)
    await signature_taken(node, member, silent=True)
    await until(lambda: not node.gossip.accepted.handlers)
    assert await failed(node) == {"invalid": 0, "missing": 4, "lost": 0}


async def test_a_connection_reset_after_the_signature_is_counted_missing_not_lost(
        make_node: NodeFactory) -> None:
    """A dialer that resets the connection once the node's proof came (no close frame)
    took the signature as one that closes does: ``missing``, or a harvester would keep
    out of it by resetting (a network fault then looks the same, and is counted so)."""
    node = await make_node()
    member, _ = await new_member(node)
    async with signed_for(node, member) as ws:
        # The websocket's connection, reset: aiohttp gives no public way to it.
        connection = ws._response.connection
        assert connection is not None and connection.transport is not None
        connection.transport.abort()
        await until(lambda: not node.gossip.accepted.handlers)
    assert await failed(node) == {"invalid": 0, "missing": 1, "lost": 0}


async def test_a_proof_frame_over_the_message_limit_is_counted_invalid(
        make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A frame over ``MESSAGE_BYTES_MAX`` where the proof goes: malformed, so
    ``invalid``, not a proof that never came (the node closes the link with 1009)."""
    monkeypatch.setattr(transport, "MESSAGE_BYTES_MAX", 1024)  # a small frame is too big
    node = await make_node()
    member, _ = await new_member(node)
    async with signed_for(node, member) as ws:
        await ws.send_bytes(bytes(2048))
        answer = await ws.receive(timeout=DEADLINE_S)
        assert answer.type == aiohttp.WSMsgType.CLOSE
        assert answer.data == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
        await until(lambda: not node.gossip.accepted.handlers)
    assert await failed(node) == {"invalid": 1, "missing": 0, "lost": 0}
