"""How a peer link ends or is turned away, as the transports raise it
(``node.peers.transport``, ``node.peers.members_fetch``): ``LinkClosed`` and the kinds a
caller tells apart, a peer's signed ``Refusal``, and the errors that are an ordinary
network fault (``NETWORK_ERRORS``). Plain data: no I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from crdt.errors import Picklable


class LinkClosed(Picklable):
    """The link is gone (closed by either side, reset, or stalled)."""


class LinkLost(LinkClosed):
    """The connection ended without the peer's close frame: reset, dropped, or failed
    while reading."""


class FrameTooBig(LinkClosed):
    """The peer sent a frame over ``MESSAGE_BYTES_MAX``: the link closed with 1009."""


class SendFailed(LinkClosed):
    """A message failed to go out other than by time-out: the link closed under it (the
    peer closed it, or the connection was lost). The connection reads nothing more than
    what it had received (aiohttp fails a send so only once its connection is closing or
    gone, or its close frame went out), which may be read still."""


class SelfLink(LinkClosed):
    """The address dialed reaches this very node (it answered with our node id)."""


class LinkRefused(LinkClosed):
    """The peer refused this device (``not_member``, ``device_removed``), or we refused
    the peer's proof. ``refusal`` is set when the peer signed its refusal and its
    signature verified: then ``refusal.by`` is who said it."""

    def __init__(self, message: str, refusal: Refusal | None = None) -> None:
        super().__init__(message)
        self.refusal = refusal


class PeerBusy(LinkClosed):
    """The peer answered the dial 429 or 503 with a ``Retry-After``
    (``node.asked_waits``): it asks for ``asked_s`` seconds before the next."""

    def __init__(self, message: str, asked_s: float) -> None:
        super().__init__(message)
        self.asked_s = asked_s


class ProofMissing(LinkClosed):
    """An accepted link ended after this node sent its proof, before the dialer's came:
    the dialer closed it, reset or dropped the connection (a network fault looks the
    same), or sent nothing within ``connect_timeout_s``."""


class ProofLost(LinkClosed):
    """An accepted link's connection was lost before this node's proof went out (its
    send failed): the dialer never had the signature, told apart from ``ProofMissing``."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an acceptor turned a device away: ``code`` (``NOT_MEMBER``, ``DEVICE_REMOVED``),
    ``detail`` (for ``device_removed``: ``by``, ``at_ms``, ``reason``), signed by ``by``."""

    code: str
    detail: dict[str, Any]
    by: str

    def text(self) -> str:
        """The signed detail: the code and the detail as canonical JSON."""
        return json.dumps({"code": self.code, **self.detail}, sort_keys=True,
                          separators=(",", ":"))


#: What a lost connection raises, in aiohttp and below it: an ordinary network fault.
NETWORK_ERRORS = (ConnectionError, aiohttp.ClientError, TimeoutError)
