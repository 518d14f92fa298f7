"""node.peers.members_fetch.fetch_members against a server on loopback that sends its answer
in pieces, nests it too deep, or repeats our credentials in a refusal: the whole answer
is read (up to its limit), a JSON nested too deep is a failure said plainly, and our
credentials are never shown."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Sequence

import aiohttp
import pytest
from aiohttp import web

from crdt import linkproof
from crdt.device import PUBLIC_KEY_BYTES
from node.peers.dial_words import REFUSAL_BYTES_MAX
from node.peers.hiding import HIDDEN_TEXT
from node.peers.link_errors import LinkClosed
from node.peers.members_fetch import MEMBERS_PATH, fetch_members
from node.peers.transport import (
    DETAIL_HEADER,
    KEY_HEADER,
    NONCE_HEADER,
    REFUSED_HEADER,
    SIGNATURE_HEADER,
    _refused,
)
from sync.peer.config import SyncConfig
from tests.node.peers.support import serving

SECRET = "cluster-secret-" + "k" * 24
TOKEN = "api-token-" + "t" * 24
#: Time between the pieces of an answer: long enough for the first to be read alone.
PAUSE_S = 0.3


@contextlib.asynccontextmanager
async def answering(status: int, pieces: Sequence[bytes]) -> AsyncIterator[str]:
    """The address of a server that answers ``status`` at the members path, its body
    ``pieces`` written one by one, ``PAUSE_S`` apart (as TCP segments may come)."""
    async def members(request: web.Request) -> web.StreamResponse:
        reply = web.StreamResponse(status=status, headers={"Content-Type": "application/json"})
        reply.content_length = sum(len(piece) for piece in pieces)
        await reply.prepare(request)
        for n, piece in enumerate(pieces):
            if n:
                await asyncio.sleep(PAUSE_S)
            await reply.write(piece)
        await reply.write_eof()
        return reply

    async with serving(members) as url:
        yield url


async def fetch(status: int, pieces: Sequence[bytes]) -> object:
    async with answering(status, pieces) as url, aiohttp.ClientSession() as http:
        return await fetch_members(http, url, secret=SECRET, tls=None, config=SyncConfig(),
                                   hide=(SECRET, TOKEN, None))


async def failure(status: int, pieces: Sequence[bytes]) -> str:
    with pytest.raises(LinkClosed) as raised:
        await fetch(status, pieces)
    return str(raised.value).split(": ", 1)[1]


async def test_a_member_list_in_pieces_is_read_whole() -> None:
    listed = {"node_id": "n1", "advertise_url": None,
              "peers": [{"url": f"http://10.0.0.{n}:8765", "node_id": f"n{n}"}
                        for n in range(40)]}
    body = json.dumps(listed).encode()
    assert await fetch(200, [body[:1000], body[1000:]]) == listed


async def test_a_refusal_in_pieces_is_read_up_to_its_limit() -> None:
    said = await failure(403, [b" " * 1000, b"  Blocked by the proxy\n"])
    assert said == "it answered HTTP 403: Blocked by the proxy"


async def test_a_member_list_nested_too_deep_is_a_failure_said_plainly() -> None:
    assert await failure(200, [b"[" * 100_000]) == "member list nested too deep"


async def test_a_refusal_nested_too_deep_is_shown_as_text() -> None:
    said = await failure(401, [b'{"error": ' + b"[" * 3000])
    assert said.startswith('it answered HTTP 401: {"error": [[[')


async def test_a_refusal_repeating_our_credentials_shows_neither() -> None:
    page = (f"<pre>GET {MEMBERS_PATH}\nAuthorization: Bearer {SECRET}\r\n"
            f"X-Note: {TOKEN}</pre>").encode()
    said = await failure(401, [page])
    assert said == f"it answered HTTP 401: <pre>GET {MEMBERS_PATH}"
    said = await failure(401, [page.replace(b"\r", b"").replace(b"\n", b" ")])
    assert SECRET not in said and TOKEN not in said
    assert f"Bearer {HIDDEN_TEXT}" in said and f"X-Note: {HIDDEN_TEXT}" in said
    # In a JSON error's message too, and where it is cut short after the bytes read. (Not
    # "bad token": five characters in a row of TOKEN, which holds the word, are hidden.)
    error = json.dumps({"error": {"code": "x", "message": f"bad key {SECRET}"}}).encode()
    assert await failure(401, [error]) == f"it answered HTTP 401: bad key {HIDDEN_TEXT}"
    start = REFUSAL_BYTES_MAX - 10 - len("Bearer ")
    cut = b" " * start + f"Bearer {SECRET}".encode()
    assert await failure(401, [cut]) == f"it answered HTTP 401: Bearer {HIDDEN_TEXT}"


def test_a_refusal_header_nested_too_deep_is_not_believed() -> None:
    """A 403 whose signed detail is JSON nested too deep: refused, no refusal believed."""
    headers = {REFUSED_HEADER: "not_member", DETAIL_HEADER: "[" * 4000,
               KEY_HEADER: linkproof.b64(os.urandom(PUBLIC_KEY_BYTES)),
               SIGNATURE_HEADER: linkproof.b64(os.urandom(linkproof.SIGNATURE_BYTES)),
               NONCE_HEADER: linkproof.b64(os.urandom(linkproof.NONCE_BYTES))}
    refused = _refused("http://peer", headers, "own", os.urandom(linkproof.NONCE_BYTES))
    assert refused.refusal is None
    assert str(refused) == "http://peer refused this device (not_member)"
