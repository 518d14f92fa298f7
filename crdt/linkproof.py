"""Link proofs: how two devices prove their keys to each other when a peer link opens.

The dialer names its device id and a fresh nonce when it opens the link; the acceptor
answers with its public key, its own fresh nonce and its signature; the dialer answers
with its public key and signature. Each signature is Ed25519 (``crdt.device`` keys, and
its libsodium rules, as for events) over the canonical CBOR (``crdt.codec``) of

    ["clawsync/link/v1", role, dialer nonce, acceptor nonce, dialer id, acceptor id, detail]

``role`` is ``"accept"``, ``"dial"`` or ``"refuse"`` (an acceptor that turns the dialer
away signs why, in ``detail``; else ``detail`` is empty), so a signature made in one
role never passes for another, and the tag keeps it apart from event signatures
(``crdt.signing``). Both nonces are in every signature: a proof recorded on one link
does not verify on another, since the other side's nonce is new each time. The device
id is derived from the key that signs, so nobody can prove an id that is not theirs.

Pure functions, bytes in and bytes out; the node moves them (``node.peers.transport``).

>>> from crdt.device import private_key_from_seed, public_bytes, device_id
>>> key = private_key_from_seed(bytes(32))
>>> me, you = device_id(public_bytes(key)), "peer"
>>> d, a = bytes(NONCE_BYTES), bytes([1]) * NONCE_BYTES
>>> proof = sign(key, "accept", d, a, you, me)
>>> proven(public_bytes(key), proof, me, "accept", d, a, you, me)
True
>>> proven(public_bytes(key), proof, me, "dial", d, a, you, me)
False
"""

from __future__ import annotations

import base64
import binascii
import secrets

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from crdt import codec
from crdt.device import PUBLIC_KEY_BYTES, device_id, secret_key, sign_bytes, verifies
from crdt.errors import InvalidInput, LimitExceeded

#: What every link signature signs first (see the module's docstring).
LINK_TAG = "clawsync/link/v1"
ROLES = ("accept", "dial", "refuse")
#: Random bytes of a nonce: enough that one never repeats.
NONCE_BYTES = 32
SIGNATURE_BYTES = 64
#: Longest ``detail`` of a refusal, in UTF-8 bytes (a reason, who removed, when).
DETAIL_BYTES_MAX = 1024
#: Largest proof frame (key, nonce, signature and CBOR framing, with room to spare).
FRAME_BYTES_MAX = 512


def new_nonce() -> bytes:
    """A fresh nonce from the operating system's random source."""
    return secrets.token_bytes(NONCE_BYTES)


def signed_bytes(role: str, dialer_nonce: bytes, acceptor_nonce: bytes, dialer_id: str,
                 acceptor_id: str, detail: str = "") -> bytes:
    """The bytes a link signature in ``role`` signs."""
    if role not in ROLES:
        raise InvalidInput(f"must be one of {', '.join(ROLES)}", field="role")
    for name, nonce in (("dialer_nonce", dialer_nonce), ("acceptor_nonce", acceptor_nonce)):
        if not isinstance(nonce, bytes) or len(nonce) != NONCE_BYTES:
            raise InvalidInput(f"must be {NONCE_BYTES} bytes", field=name)
    if len(detail.encode()) > DETAIL_BYTES_MAX:
        raise LimitExceeded(f"is over {DETAIL_BYTES_MAX} bytes", field="detail")
    return codec.encode([LINK_TAG, role, dialer_nonce, acceptor_nonce, dialer_id,
                         acceptor_id, detail])


def sign(private_key: Ed25519PrivateKey, role: str, dialer_nonce: bytes,
         acceptor_nonce: bytes, dialer_id: str, acceptor_id: str, detail: str = "") -> bytes:
    """This device's signature in ``role`` of the link between the two ids."""
    return sign_bytes(secret_key(private_key), signed_bytes(
        role, dialer_nonce, acceptor_nonce, dialer_id, acceptor_id, detail))


def proven(public_key: bytes, signature: bytes, claimed_id: str, role: str,
           dialer_nonce: bytes, acceptor_nonce: bytes, dialer_id: str, acceptor_id: str,
           detail: str = "") -> bool:
    """True if ``public_key`` is the key of ``claimed_id`` and ``signature`` is its
    signature in ``role``. Anything else is False (a peer's bytes never raise here)."""
    if not isinstance(public_key, bytes) or len(public_key) != PUBLIC_KEY_BYTES \
            or not isinstance(signature, bytes) or len(signature) != SIGNATURE_BYTES:
        return False
    try:
        if device_id(public_key) != claimed_id:
            return False
        message = signed_bytes(role, dialer_nonce, acceptor_nonce, dialer_id, acceptor_id,
                               detail)
    except InvalidInput:
        return False
    return verifies(public_key, signature, message)


def encode_frame(public_key: bytes, signature: bytes, nonce: bytes | None = None) -> bytes:
    """A proof as one frame: ``{"key", "signature"}`` and, from the acceptor, ``"nonce"``.

    >>> frame = encode_frame(bytes(32), bytes(64), bytes(32))
    >>> parse_frame(frame, with_nonce=True) == (bytes(32), bytes(64), bytes(32))
    True
    """
    fields: dict[str, bytes] = {"key": public_key, "signature": signature}
    if nonce is not None:
        fields["nonce"] = nonce
    return codec.encode(fields)


def parse_frame(data: bytes, *, with_nonce: bool) -> tuple[bytes, bytes, bytes | None]:
    """``(key, signature, nonce)`` of a proof frame; ``InvalidInput`` if it is not one."""
    if len(data) > FRAME_BYTES_MAX:
        raise LimitExceeded(f"a link proof is at most {FRAME_BYTES_MAX} bytes")
    value = codec.decode(data, depth_max=2)
    expected = {"key", "signature", "nonce"} if with_nonce else {"key", "signature"}
    if not isinstance(value, dict) or set(value) != expected:
        raise InvalidInput(f"a link proof is a map of {', '.join(sorted(expected))}")
    sizes = {"key": PUBLIC_KEY_BYTES, "signature": SIGNATURE_BYTES, "nonce": NONCE_BYTES}
    for name in expected:
        if not isinstance(value[name], bytes) or len(value[name]) != sizes[name]:
            raise InvalidInput(f"must be {sizes[name]} bytes", field=name)
    return value["key"], value["signature"], value.get("nonce")


def b64(data: bytes) -> str:
    """Bytes for an HTTP header: base64url without padding."""
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64(text: str | None, size: int, field: str) -> bytes:
    """The ``size`` bytes of a header written by ``b64``; ``InvalidInput`` otherwise.

    >>> unb64(b64(bytes(32)), 32, "nonce") == bytes(32)
    True
    """
    if not isinstance(text, str) or len(text) > 4 * size:
        raise InvalidInput("missing or too long", field=field)
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidInput("is not base64url", field=field) from None
    if len(data) != size:
        raise InvalidInput(f"must be {size} bytes", field=field)
    return data
