"""Moves peer-protocol messages over websockets with aiohttp. Decides nothing.

One binary frame carries one message of ``sync.peer.messages``. The dialing node names itself
in the handshake (node id, and the URL where it can be reached, if any); the accepting
node checks credentials before upgrading. aiohttp's heartbeat pings the link and closes
it when pongs stop, so a stalled peer is noticed; sends time out. Every number it waits
by comes from ``SyncConfig``.

Device keys (``crdt.linkproof``): the dialer names its device id and a fresh nonce in
headers and offers the websocket subprotocol ``LINK_PROTOCOL``. An acceptor that turns
it away answers 403 with the reason and its signed refusal in headers (``Refusal``); one
that takes it picks the subprotocol, and the first frame each way is a proof: the
acceptor's key, nonce and signature, then the dialer's key and signature. Only then
does the peer protocol start. A node of 0.2 ignores the headers and does not pick the
subprotocol: such a link is authenticated by the cluster secret alone, as before. What
the acceptor reads of the handshake and answers before the upgrade, a refusal among
them, is ``node.peers.handshake``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass

import aiohttp
import structlog
from aiohttp import web

from crdt import device as crdt_device
from crdt import linkproof
from crdt.errors import InvalidInput
from node.asked_waits import ASKED_WAIT_STATUSES, asked_wait_s
from node.device import DeviceKey
from node.peers.addresses import RefusalsLogged, dialable
from node.peers.dial_words import why
from node.peers.link_errors import (
    NETWORK_ERRORS,
    FrameTooBig,
    LinkClosed,
    LinkLost,
    LinkRefused,
    PeerBusy,
    ProofLost,
    ProofMissing,
    Refusal,
    SelfLink,
    SendFailed,
)
from node.peers.refusals import Refusing, refusing_now
from sync.peer.config import SyncConfig
from sync.peer.limits import MESSAGE_BYTES_MAX

log = structlog.get_logger(__name__)

#: Path of the peer websocket.
PEER_PATH = "/peer/v1/ws"
NODE_HEADER = "X-Clawsync-Node"
ADVERTISE_HEADER = "X-Clawsync-Advertise"
#: Sent by a dialing node whose hello parser takes ``about`` (``sync.peer.messages``):
#: nodes of version 0.1 refuse a hello with fields they do not know.
HELLO_HEADER = "X-Clawsync-Hello"
HELLO_ABOUT = "about"
#: The dialer's device id and nonce (``crdt.linkproof``), and the subprotocol that says
#: the acceptor proves its key in the first frame and wants the dialer's proof back.
DEVICE_HEADER = "X-Clawsync-Device"
NONCE_HEADER = "X-Clawsync-Nonce"
LINK_PROTOCOL = "clawsync.link.v1"
#: A refusal (403): its reason code, its text (JSON of ``Refusal.detail``), and the
#: refusing device's key, nonce and signature over it.
REFUSED_HEADER = "X-Clawsync-Refused"
DETAIL_HEADER = "X-Clawsync-Refused-Detail"
KEY_HEADER = "X-Clawsync-Key"
SIGNATURE_HEADER = "X-Clawsync-Signature"
#: Reason codes of a refusal.
NOT_MEMBER = "not_member"
DEVICE_REMOVED = "device_removed"
#: Also the code of a peer refused for proving no device key (``node.peers.admission``).
KEY_REQUIRED = "device_key_required"
#: The reason a link closes with when it is dropped as a second link to one node.
DUPLICATE_LINK = "duplicate link"


@dataclass(frozen=True, slots=True)
class Proven:
    """A device that proved its key on a link."""

    device_id: str
    public_key: bytes


#: Most seconds a stopping node waits for a peer's answer to its close frame, in place of
#: ``close_timeout_s``: the answer is of no use to a node that stops, and a paused or
#: unreachable peer would hold every link's close, and so the stop, that long. Long
#: enough for a peer that answers at once to close cleanly; one that does not answer by
#: then finds the connection dropped, as after a crash (``close_timeout_s`` when shorter).
#: A link whose handshake failed waits no longer (``Link.drop``).
STOP_CLOSE_WAIT_S = 0.2


class Link:
    """One open websocket to a peer, dialed or accepted."""

    def __init__(self, ws: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
                 peer_node: str | None, peer_url: str | None, config: SyncConfig,
                 peer_reads_about: bool = False, peer_device: Proven | None = None) -> None:
        self._ws = ws
        self._send_timeout_s = config.send_timeout_s
        self._close_timeout_s = config.close_timeout_s
        #: The peer dialed saying that it reads ``about`` in a hello.
        self.peer_reads_about = peer_reads_about
        self.peer_node = peer_node  # as the peer named itself in the handshake
        self.peer_url = peer_url
        #: The device that proved its key on this link; None on a link of a 0.2 peer.
        self.peer_device = peer_device
        #: The reason the peer's close frame gave (``receive``); None before, or none given.
        self.peer_reason: str | None = None
        #: Dialed over TLS, the peer showed a certificate our CA verified (``dial``): not
        #: on a plain http:// address, where no certificate is asked for.
        self.peer_certified = False
        #: A dialed link's read under way (``receive``), left running when its caller is
        #: cancelled (a link's end cancels its read-ahead): aiohttp's client takes a read
        #: cancelled as the connection lost, and its close then sends the close frame and
        #: drops the connection at once, without the peer's answer (``close``).
        self._reading: asyncio.Future[aiohttp.WSMessage] | None = None

    @property
    def closed(self) -> bool:
        """Whether this end of the websocket has closed, or begun to: its close frame
        went out or is going (``close``, or the answer to the peer's close frame once
        read), or a lost connection or a missing pong was found. Not when the peer's
        close frame, or the loss of the connection, waits unread behind messages not
        yet received: a send then fails (``SendFailed``) while this is still false."""
        return self._ws.closed

    async def send(self, data: bytes) -> None:
        try:
            async with asyncio.timeout(self._send_timeout_s):
                await self._ws.send_bytes(data)
        except TimeoutError:
            # A slow or stalled peer, or a network that stopped carrying: from here the
            # two look alike (the socket's buffers stay full).
            raise LinkClosed(f"sending took over {self._send_timeout_s:g} s: the peer, or "
                             "the network to it, takes in too little") from None
        except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
            # The library's words ("Cannot write to closing transport") for diagnosis
            # only: the reason people read says what happened to the link.
            log.debug("sending failed", peer=self.peer_url or self.peer_node,
                      error=str(exc) or type(exc).__name__)
            raise SendFailed("the link closed while sending") from None

    async def receive(self) -> bytes:
        """The next message; raises ``LinkClosed`` when the link ends. A text frame is
        returned as its UTF-8 bytes, for the protocol to refuse."""
        try:
            message = await self._next()
        except NETWORK_ERRORS as exc:  # a reset while reading, or while answering a ping
            raise LinkLost(f"receiving failed: {exc or type(exc).__name__}") from None
        if message.type == aiohttp.WSMsgType.BINARY:
            return bytes(message.data)
        if message.type == aiohttp.WSMsgType.TEXT:
            return str(message.data).encode()
        if message.type == aiohttp.WSMsgType.CLOSE and isinstance(message.extra, str) \
                and message.extra:
            self.peer_reason = message.extra
        said = f": {self.peer_reason}" if self.peer_reason else ""
        ended = f"link ended ({message.type.name.lower()}{said})"
        if message.type == aiohttp.WSMsgType.CLOSE:  # the peer closed it
            raise LinkClosed(ended)
        # aiohttp's error carries the code it closed with: 1009 for a frame too big.
        if getattr(message.data, "code", None) == aiohttp.WSCloseCode.MESSAGE_TOO_BIG:
            raise FrameTooBig(f"{ended}: a frame over {MESSAGE_BYTES_MAX} bytes")
        raise LinkLost(ended)

    async def _next(self) -> aiohttp.WSMessage:
        """The websocket's next message. A dialed link's read is shielded from its
        caller's cancellation (``_reading``): ``close`` ends it, as aiohttp's client
        does a read under way, and then waits for the peer's answer."""
        if not isinstance(self._ws, aiohttp.ClientWebSocketResponse):
            return await self._ws.receive()
        reading = self._reading or self._start_read(self._ws)
        try:
            return await asyncio.shield(reading)
        finally:
            if reading.done():
                self._reading = None

    def _start_read(self, ws: aiohttp.ClientWebSocketResponse) -> asyncio.Future[aiohttp.WSMessage]:
        """Start a dialed link's read (``_reading``)."""
        self._reading = asyncio.ensure_future(ws.receive())
        # Left to itself if its caller goes: what ends it then is nobody's news.
        self._reading.add_done_callback(lambda read: read.cancelled() or read.exception())
        return self._reading

    async def close(self, reason: str = "", *, short_wait: bool = False) -> None:
        """Close, waiting at most ``close_timeout_s`` for the peer's answer to our close
        frame (the peer may be paused or gone); ``short_wait``, at most
        ``STOP_CLOSE_WAIT_S``: the node is stopping, or the handshake failed (``drop``).
        A wait cut short drops the connection. The answer means that the peer read the
        close, and all sent before it: a connection dropped while the peer still sends
        is reset, which may lose at the peer what it had not read yet (a removed
        device's last push, say). Dialed or accepted alike: a dialed link's read,
        cancelled as a link's end does, is left running (``_next``) for aiohttp's close
        to end."""
        wait_s = min(STOP_CLOSE_WAIT_S, self._close_timeout_s) if short_wait \
            else self._close_timeout_s
        with contextlib.suppress(*NETWORK_ERRORS, RuntimeError):
            # aiohttp bounds its own wait by ``close_timeout_s``; cut short here, it
            # drops the connection.
            async with asyncio.timeout(wait_s):
                await self._ws.close(message=close_reason(reason))

    async def drop(self, reason: str) -> None:
        """Close a link whose handshake failed, without waiting for the peer's answer as
        a link that was up does: a peer silent for ``connect_timeout_s`` will not answer
        a close either, and one whose proof failed has nothing of ours to read first. A
        dialed link's read (one is started if none is under way) is cancelled, which
        aiohttp's client takes as the connection lost: its close sends the close frame
        and drops the connection at once. If the peer sent more after its proof, which
        that read takes, and on an accepted link, the wait is ``STOP_CLOSE_WAIT_S`` at most."""
        try:
            if isinstance(self._ws, aiohttp.ClientWebSocketResponse) and not self._ws.closed \
                    and (self._reading is None or self._reading.done()):
                self._start_read(self._ws)
                await asyncio.sleep(0)  # it starts, and waits on the peer
        finally:  # also if a stopping node cancels us right there: nothing is left open
            if self._reading is not None:
                self._reading.cancel()
                await asyncio.wait((self._reading,))
                self._reading = None
            await self.close(reason, short_wait=True)


#: Most bytes of a close frame's reason (RFC 6455 allows 123).
CLOSE_REASON_BYTES_MAX = 120


def close_reason(reason: str) -> bytes:
    """``reason`` as a close frame carries it: UTF-8, cut to ``CLOSE_REASON_BYTES_MAX``
    bytes on a character boundary (a peer refuses a reason that is not UTF-8).

    >>> close_reason("é" * 100).decode() == "é" * 60
    True
    """
    return reason.encode()[:CLOSE_REASON_BYTES_MAX].decode(errors="ignore").encode()


async def dial(http: aiohttp.ClientSession, url: str, *, node_id: str,
               secret: str | None, advertise: str | None,
               tls: ssl.SSLContext | None, config: SyncConfig,
               device: DeviceKey | None = None) -> Link:
    """Open a link to the peer at base URL ``url``; raises ``LinkClosed`` on failure,
    ``LinkRefused`` if the peer refused this device or its proof does not verify. With
    ``device`` the link proves both keys (``Link.peer_device``); whether the peer may
    link is the caller's to decide."""
    headers = {NODE_HEADER: node_id, HELLO_HEADER: HELLO_ABOUT}
    nonce = linkproof.new_nonce()
    if device is not None:
        headers[DEVICE_HEADER] = device.device_id
        headers[NONCE_HEADER] = linkproof.b64(nonce)
    if secret is not None:
        headers["Authorization"] = f"Bearer {secret}"
    if advertise is not None:
        headers[ADVERTISE_HEADER] = advertise
    refusing = Refusing((secret,))
    reset = refusing_now.set(refusing)
    try:
        async with asyncio.timeout(config.connect_timeout_s) as within:
            refusing.deadline = within.when() or refusing.deadline
            ws = await http.ws_connect(
                url.rstrip("/") + PEER_PATH, headers=headers, heartbeat=config.heartbeat_s,
                max_msg_size=MESSAGE_BYTES_MAX, ssl=tls if tls is not None else True,
                protocols=(LINK_PROTOCOL,) if device is not None else (),
                timeout=aiohttp.ClientWSTimeout(ws_close=config.close_timeout_s), compress=0)
    except aiohttp.WSServerHandshakeError as exc:
        raise _not_linked(url, exc.status, exc.headers, why(exc), refusing, node_id,
                          device, nonce) from None
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        if isinstance(exc, TimeoutError) and refusing.status is not None:
            # The time-out ended the read of a refusal's body (a loop held past both
            # its deadlines, and the read's own time-out was passed on as ours).
            raise _not_linked(url, refusing.status, refusing.headers,
                              f"it answered HTTP {refusing.status}", refusing, node_id,
                              device, nonce) from None
        raise LinkClosed(f"cannot reach {url}: {why(exc, config.connect_timeout_s)}") \
            from None
    finally:
        refusing_now.reset(reset)
    link = Link(ws, None, url, config)
    # The context verifies the peer against our CA alone; a certificate shown is one it
    # verified. A plain connection shows none, whatever the context.
    link.peer_certified = tls is not None and bool(ws.get_extra_info("peercert"))
    if device is not None and ws.protocol == LINK_PROTOCOL:
        await _proven(link, _prove_dialed(link, device, nonce, config))
    return link


def _not_linked(url: str, status: int, headers: Mapping[str, str] | None, said: str,
                refusing: Refusing, node_id: str, device: DeviceKey | None,
                nonce: bytes) -> LinkClosed:
    """What a handshake answered with ``status`` (not 101) raises: ``SelfLink``,
    ``LinkRefused``, ``PeerBusy`` (a wait asked), else ``LinkClosed``; each but the first
    two with ``said`` and what its body said."""
    if status == 409 and headers is not None and headers.get(NODE_HEADER) == node_id:
        return SelfLink(f"{url} is this node")
    if status == 403 and headers is not None and device is not None \
            and headers.get(REFUSED_HEADER):
        return _refused(url, headers, device.device_id, nonce)
    text = refusing.text()
    message = f"cannot link with {url}: {said}" + (f": {text}" if text else "")
    asked_s = asked_wait_s(headers.get("Retry-After"), time.time()) \
        if status in ASKED_WAIT_STATUSES and headers is not None else None
    return LinkClosed(message) if asked_s is None else PeerBusy(message, asked_s)


async def _proven(link: Link, proof: Awaitable[Proven]) -> None:
    """Run the key exchange ``proof`` on ``link`` and keep whom it proved; a link whose
    exchange fails is closed before the error goes on."""
    try:
        link.peer_device = await proof
    except asyncio.CancelledError:
        # Only a stopping node cancels a link's task (``Gossip.stop``).
        await link.close(short_wait=True)
        raise
    except BaseException:
        await link.drop("link proof refused")
        raise


async def _prove_dialed(link: Link, device: DeviceKey, nonce: bytes,
                        config: SyncConfig) -> Proven:
    """Check the acceptor's proof (the first frame), then send ours."""
    frame = await _first_frame(link, config)
    try:
        key, signature, theirs = linkproof.parse_frame(frame, with_nonce=True)
    except InvalidInput as exc:
        raise LinkRefused(f"the peer's link proof is malformed: {exc}") from None
    assert theirs is not None
    acceptor = crdt_device.device_id(key)
    if not linkproof.proven(key, signature, acceptor, "accept", nonce, theirs,
                            device.device_id, acceptor):
        raise LinkRefused("the peer's link proof does not verify")
    ours = linkproof.sign(device.private_key, "dial", nonce, theirs, device.device_id,
                          acceptor)
    await link.send(linkproof.encode_frame(device.public_key, ours))
    return Proven(acceptor, key)


async def _first_frame(link: Link, config: SyncConfig) -> bytes:
    try:
        async with asyncio.timeout(config.connect_timeout_s):
            return await link.receive()
    except TimeoutError:
        raise LinkClosed("no link proof in time") from None


def _refused(url: str, headers: Mapping[str, str], own_id: str, nonce: bytes) -> LinkRefused:
    """The ``LinkRefused`` of a 403 answer: with its ``Refusal`` if the refusal is signed
    by the device whose key it shows (a refusal nobody signed is said, not believed)."""
    code = headers.get(REFUSED_HEADER, "")
    detail_text = headers.get(DETAIL_HEADER, "")
    refusal = None
    try:
        key = linkproof.unb64(headers.get(KEY_HEADER), crdt_device.PUBLIC_KEY_BYTES, "key")
        signature = linkproof.unb64(headers.get(SIGNATURE_HEADER), linkproof.SIGNATURE_BYTES,
                                    "signature")
        theirs = linkproof.unb64(headers.get(NONCE_HEADER), linkproof.NONCE_BYTES, "nonce")
        detail = json.loads(detail_text)
        by = crdt_device.device_id(key)
        if isinstance(detail, dict) and detail.get("code") == code \
                and linkproof.proven(key, signature, by, "refuse", nonce, theirs, own_id, by,
                                     detail_text):
            detail.pop("code")
            refusal = Refusal(code, detail, by)
    except (InvalidInput, ValueError, RecursionError):  # nested too deep: not JSON of ours
        pass
    return LinkRefused(f"{url} refused this device ({code or 'no reason'})", refusal)


async def accept(request: web.Request, config: SyncConfig, *,
                 device: DeviceKey | None = None,
                 claimed: tuple[str, bytes] | None = None,
                 logged: RefusalsLogged | None = None) -> Link:
    """Upgrade an (already authenticated) request to a link; ``LinkClosed`` if the peer
    went away during the handshake. With ``claimed``
    (``node.peers.handshake.claimed_device``), both sides prove their keys first;
    ``LinkRefused`` if the dialer's proof does not verify (or is too big),
    ``ProofMissing`` if it never came (``ProofLost``, ours failed to go out). The
    address the dialer gives for itself is kept only if a node could dial it; one that
    is not is logged once per node id and reason while ``logged`` remembers it (a peer
    gives the same at each of its links), at every link of a dialer that names no node."""
    ws = web.WebSocketResponse(heartbeat=config.heartbeat_s, max_msg_size=MESSAGE_BYTES_MAX,
                               compress=False, timeout=config.close_timeout_s,
                               protocols=(LINK_PROTOCOL,) if claimed is not None else ())
    try:
        await ws.prepare(request)
    except NETWORK_ERRORS as exc:
        raise LinkClosed(f"handshake failed: {exc or type(exc).__name__}") from None
    node, said = request.headers.get(NODE_HEADER), request.headers.get(ADVERTISE_HEADER)
    kept = dialable(said, node, "advertised address dropped",
                    logged if node is not None else None)
    link = Link(ws, node, said if kept else None, config,
                peer_reads_about=request.headers.get(HELLO_HEADER) == HELLO_ABOUT)
    if claimed is not None and device is not None:
        await _proven(link, _prove_accepted(link, device, claimed, config))
    return link


async def _prove_accepted(link: Link, device: DeviceKey, claimed: tuple[str, bytes],
                          config: SyncConfig) -> Proven:
    """Send our proof, then check the dialer's: its key must be that of the id it named."""
    dialer, theirs = claimed
    ours = linkproof.new_nonce()
    signature = linkproof.sign(device.private_key, "accept", theirs, ours, dialer,
                               device.device_id)
    try:
        await link.send(linkproof.encode_frame(device.public_key, signature, ours))
    except LinkClosed as exc:  # the dialer may never have had our signature
        raise ProofLost(str(exc)) from None
    try:
        frame = await _first_frame(link, config)
    except FrameTooBig as exc:
        raise LinkRefused(f"the dialer's link proof is malformed: {exc}") from None
    except LinkClosed as exc:
        # After our signature, what a dialer may have wanted of us: however the link
        # ended, a reset too, which a dialer chooses as easily as a close (it would keep
        # out of ``missing`` by it) and a network fault cannot be told apart from.
        raise ProofMissing(str(exc)) from None
    try:
        key, their_signature, _ = linkproof.parse_frame(frame, with_nonce=False)
    except InvalidInput as exc:
        raise LinkRefused(f"the dialer's link proof is malformed: {exc}") from None
    if not linkproof.proven(key, their_signature, dialer, "dial", theirs, ours, dialer,
                            device.device_id):
        raise LinkRefused(f"the dialer's link proof does not verify for {dialer}")
    return Proven(dialer, key)
