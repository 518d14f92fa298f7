"""Moves peer-protocol messages over websockets with aiohttp. Decides nothing.

One binary frame carries one message of ``sync.peer.messages``. The dialing node names itself
in the handshake (node id, and the URL where it can be reached, if any); the accepting
node checks credentials before upgrading. aiohttp's heartbeat pings the link and closes
it when pongs stop, so a stalled peer is noticed; sends time out. Every number it waits
by comes from ``SyncConfig``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl

import aiohttp
from aiohttp import web

from sync.peer.config import SyncConfig
from sync.peer.messages import MESSAGE_BYTES_MAX

#: Path of the peer websocket.
PEER_PATH = "/peer/v1/ws"
#: Path that lists the peers a node knows (for learning members).
MEMBERS_PATH = "/peer/v1/members"
NODE_HEADER = "X-Clawsync-Node"
ADVERTISE_HEADER = "X-Clawsync-Advertise"
#: Sent by a dialing node whose hello parser takes ``about`` (``sync.peer.messages``):
#: nodes of version 0.1 refuse a hello with fields they do not know.
HELLO_HEADER = "X-Clawsync-Hello"
HELLO_ABOUT = "about"


class LinkClosed(Exception):
    """The link is gone (closed by either side, reset, or stalled)."""


class SelfLink(LinkClosed):
    """The address dialed reaches this very node (it answered with our node id)."""


#: What a lost connection raises, in aiohttp and below it: an ordinary network fault.
NETWORK_ERRORS = (ConnectionError, aiohttp.ClientError, TimeoutError)


class Link:
    """One open websocket to a peer, dialed or accepted."""

    def __init__(self, ws: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
                 peer_node: str | None, peer_url: str | None, config: SyncConfig,
                 peer_reads_about: bool = False) -> None:
        self._ws = ws
        self._send_timeout_s = config.send_timeout_s
        self._close_timeout_s = config.close_timeout_s
        #: The peer dialed saying that it reads ``about`` in a hello.
        self.peer_reads_about = peer_reads_about
        self.peer_node = peer_node  # as the peer named itself in the handshake
        self.peer_url = peer_url

    async def send(self, data: bytes) -> None:
        try:
            async with asyncio.timeout(self._send_timeout_s):
                await self._ws.send_bytes(data)
        except (ConnectionError, TimeoutError, aiohttp.ClientError, RuntimeError) as exc:
            raise LinkClosed(f"sending failed: {exc}") from None

    async def receive(self) -> bytes:
        """The next message; raises ``LinkClosed`` when the link ends. A text frame is
        returned as its UTF-8 bytes, for the protocol to refuse."""
        try:
            message = await self._ws.receive()
        except NETWORK_ERRORS as exc:  # a reset while reading, or while answering a ping
            raise LinkClosed(f"receiving failed: {exc or type(exc).__name__}") from None
        if message.type == aiohttp.WSMsgType.BINARY:
            return bytes(message.data)
        if message.type == aiohttp.WSMsgType.TEXT:
            return str(message.data).encode()
        raise LinkClosed(f"link ended ({message.type.name.lower()})")

    async def close(self, reason: str = "") -> None:
        """Close, waiting at most ``close_timeout_s`` for the peer (which may be paused
        or gone): a stopping node must not wait on it."""
        with contextlib.suppress(*NETWORK_ERRORS, RuntimeError):
            async with asyncio.timeout(self._close_timeout_s):
                await self._ws.close(message=reason.encode()[:120])


async def dial(http: aiohttp.ClientSession, url: str, *, node_id: str,
               secret: str | None, advertise: str | None,
               tls: ssl.SSLContext | None, config: SyncConfig) -> Link:
    """Open a link to the peer at base URL ``url``; raises ``LinkClosed`` on failure."""
    headers = {NODE_HEADER: node_id, HELLO_HEADER: HELLO_ABOUT}
    if secret is not None:
        headers["Authorization"] = f"Bearer {secret}"
    if advertise is not None:
        headers[ADVERTISE_HEADER] = advertise
    try:
        async with asyncio.timeout(config.connect_timeout_s):
            ws = await http.ws_connect(
                url.rstrip("/") + PEER_PATH, headers=headers, heartbeat=config.heartbeat_s,
                max_msg_size=MESSAGE_BYTES_MAX, ssl=tls if tls is not None else True,
                timeout=aiohttp.ClientWSTimeout(ws_close=config.close_timeout_s), compress=0)
    except aiohttp.WSServerHandshakeError as exc:
        if exc.status == 409 and exc.headers is not None \
                and exc.headers.get(NODE_HEADER) == node_id:
            raise SelfLink(f"{url} is this node") from None
        raise LinkClosed(f"cannot reach {url}: {exc}") from None
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise LinkClosed(f"cannot reach {url}: {exc}") from None
    return Link(ws, None, url, config)


def refuse_self(node_id: str) -> web.Response:
    """The answer to a dialer that names this very node: 409 with our node id, which
    ``dial`` turns into ``SelfLink`` so that the address is not dialed again."""
    return web.Response(status=409, text="that address is the dialing node itself",
                        headers={NODE_HEADER: node_id})


async def accept(request: web.Request, config: SyncConfig) -> Link:
    """Upgrade an (already authenticated) request to a link; ``LinkClosed`` if the peer
    went away during the handshake."""
    ws = web.WebSocketResponse(heartbeat=config.heartbeat_s, max_msg_size=MESSAGE_BYTES_MAX,
                               compress=False, timeout=config.close_timeout_s)
    try:
        await ws.prepare(request)
    except NETWORK_ERRORS as exc:
        raise LinkClosed(f"handshake failed: {exc or type(exc).__name__}") from None
    return Link(ws, request.headers.get(NODE_HEADER), request.headers.get(ADVERTISE_HEADER),
                config, peer_reads_about=request.headers.get(HELLO_HEADER) == HELLO_ABOUT)


async def fetch_members(http: aiohttp.ClientSession, url: str, *, secret: str | None,
                        tls: ssl.SSLContext | None, config: SyncConfig) -> object:
    """The peer's member list as decoded JSON (checked by the caller)."""
    headers = {"Authorization": f"Bearer {secret}"} if secret is not None else {}
    try:
        async with http.get(url.rstrip("/") + MEMBERS_PATH, headers=headers,
                            ssl=tls if tls is not None else True,
                            timeout=aiohttp.ClientTimeout(total=config.connect_timeout_s)) as reply:
            reply.raise_for_status()
            body = await reply.content.read(config.members_bytes_max + 1)
            if len(body) > config.members_bytes_max:
                raise ValueError(f"member list over {config.members_bytes_max} bytes")
            return json.loads(body)
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
        raise LinkClosed(f"cannot list members of {url}: {exc}") from None
