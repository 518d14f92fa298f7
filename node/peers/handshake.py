"""What an accepting node reads of a dialer's handshake before it upgrades the request to
a link (``node.peers.transport.accept``), and the answers that turn a dialer away: a
refusal of its device, signed, or of a dialer that proved no key, and the answer to a
node that dialed itself."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from crdt import device as crdt_device
from crdt import linkproof
from crdt.errors import InvalidInput
from node.device import DeviceKey
from node.http.wire import JSON_TYPE, error_body
from node.peers.link_errors import Refusal
from node.peers.transport import (
    DETAIL_HEADER,
    DEVICE_HEADER,
    KEY_HEADER,
    KEY_REQUIRED,
    LINK_PROTOCOL,
    NODE_HEADER,
    NONCE_HEADER,
    REFUSED_HEADER,
    SIGNATURE_HEADER,
)


def refuse(device: DeviceKey, code: str, detail: dict[str, Any], dialer_id: str,
           dialer_nonce: bytes, text: str) -> web.Response:
    """The 403 answer that turns the device ``dialer_id`` away, signed by ``device``."""
    refusal = Refusal(code, detail, device.device_id)
    ours = linkproof.new_nonce()
    signature = linkproof.sign(device.private_key, "refuse", dialer_nonce, ours, dialer_id,
                               device.device_id, refusal.text())
    return web.Response(status=403, body=error_body(code, text), content_type=JSON_TYPE, headers={
        REFUSED_HEADER: code, DETAIL_HEADER: refusal.text(),
        KEY_HEADER: linkproof.b64(device.public_key), NONCE_HEADER: linkproof.b64(ours),
        SIGNATURE_HEADER: linkproof.b64(signature)})


def refuse_keyless(text: str) -> web.Response:
    """The 403 answer that turns away a dialer that proved no device key: its code in
    ``REFUSED_HEADER`` as in every refusal, unsigned (the dialer sent no nonce to sign)."""
    return web.Response(status=403, body=error_body(KEY_REQUIRED, text),
                        content_type=JSON_TYPE, headers={REFUSED_HEADER: KEY_REQUIRED})


def refuse_self(node_id: str) -> web.Response:
    """The answer to a dialer that names this very node: 409 with our node id, which
    ``node.peers.transport.dial`` turns into
    ``SelfLink`` so that the address is not dialed again."""
    return web.Response(status=409, text="that address is the dialing node itself",
                        headers={NODE_HEADER: node_id})


def claimed_device(request: web.Request) -> tuple[str, bytes] | None:
    """The device id and nonce a dialer named, None if it named none (a node of 0.2);
    ``InvalidInput`` if they are malformed or the dialer did not offer ``LINK_PROTOCOL``."""
    named = request.headers.get(DEVICE_HEADER)
    if named is None:
        return None
    device_id = crdt_device.parse_device_id(named, field=DEVICE_HEADER)
    nonce = linkproof.unb64(request.headers.get(NONCE_HEADER), linkproof.NONCE_BYTES,
                            NONCE_HEADER)
    offered = request.headers.get("Sec-WebSocket-Protocol", "")
    if LINK_PROTOCOL not in (part.strip() for part in offered.split(",")):
        raise InvalidInput(f"a device must offer the subprotocol {LINK_PROTOCOL}",
                           field="Sec-WebSocket-Protocol")
    return device_id, nonce
