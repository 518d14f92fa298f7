"""Signatures of origin: a device signs each event it originates, under the (origin, seq)
slot the event takes, so that any node can check who wrote what where.

The signed bytes are the canonical CBOR (``crdt.codec``) of the array

    ["clawsync/event-origin/v1", event id (32 bytes), origin (text), seq (integer)]

The first item separates these signatures from anything else a device key may ever sign
(a membership record, a link challenge): a signature made for one purpose never verifies
for another. The event id already hashes the event's content (``crdt.events``), so the
signature covers the content too. The signature is Ed25519 (RFC 8032), 64 bytes, made
and checked by libsodium (``crdt.device`` says why, and what its stricter checks mean
for nodes of earlier versions).

Pure functions, bytes in and bytes out: no key files here (``node.device`` keeps them).

>>> from crdt.device import private_key_from_seed, public_bytes
>>> key = private_key_from_seed(bytes(32))
>>> signature = sign(key, bytes(32), "3f9c0a1b2c3d4e5f", 1)
>>> verify(public_bytes(key), signature, bytes(32), "3f9c0a1b2c3d4e5f", 1)
True
>>> verify(public_bytes(key), signature, bytes(32), "3f9c0a1b2c3d4e5f", 2)
False
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from crdt import codec, device
from crdt.errors import InvalidInput

#: What every event signature signs first (see the module's docstring).
EVENT_ORIGIN_TAG = "clawsync/event-origin/v1"
SIGNATURE_BYTES = device.SIGNATURE_BYTES
EVENT_ID_BYTES = 32
#: Highest sequence number (as the peer protocol's).
SEQ_MAX = 2**63 - 1
#: What the signed bytes start with: the array's head, the tag, the id's head. The rest
#: is encoded per event by hand (``codec.encode`` of the same array costs about three
#: times as much); a property test checks the bytes against ``codec.encode``.
_SIGNED_PREFIX = codec.head(4, 4) + codec.encode_text(EVENT_ORIGIN_TAG) + codec.head(
    2, EVENT_ID_BYTES)


def signed_bytes(event_id: bytes, origin: str, seq: int) -> bytes:
    """The bytes a signature of ``event_id`` at ``(origin, seq)`` signs.

    >>> signed_bytes(bytes(32), "o", 1).hex()[:24]  # an array of 4; a text of 24: "claws...
    '847818636c617773796e632f'
    """
    if not isinstance(event_id, bytes) or len(event_id) != EVENT_ID_BYTES:
        raise InvalidInput(f"must be {EVENT_ID_BYTES} bytes", field="id")
    if not isinstance(origin, str) or not origin:
        raise InvalidInput("must be a non-empty string", field="origin")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq <= SEQ_MAX:
        raise InvalidInput(f"must be a whole number from 1 to {SEQ_MAX}", field="seq")
    return _SIGNED_PREFIX + event_id + codec.encode_text(origin) + codec.head(0, seq)


def sign(private_key: Ed25519PrivateKey, event_id: bytes, origin: str, seq: int) -> bytes:
    """The 64-byte signature of ``event_id`` at ``(origin, seq)`` by ``private_key``
    (a store signs with a ``Signer``, which reads the key out of its object once)."""
    return device.sign_bytes(device.secret_key(private_key),
                             signed_bytes(event_id, origin, seq))


def verify(public_key: bytes, signature: bytes, event_id: bytes, origin: str,
           seq: int) -> bool:
    """True if ``signature`` is the raw 32-byte ``public_key``'s of ``event_id`` at
    ``(origin, seq)``.

    Anything that is not such a signature is False, whatever is wrong with it (its
    length, a public key that is not one, a crafted signature libsodium refuses): a
    peer's bytes cannot make it raise. ``event_id``, ``origin`` and ``seq`` come from
    the event as checked on receipt; ``InvalidInput`` if they cannot be.
    """
    return device.verifies(public_key, signature, signed_bytes(event_id, origin, seq))


#: What a bound origin's hash starts with (``bound_origin``).
ORIGIN_TAG = b"clawsync/origin/v1"
#: Hex digits of an origin, as a random node id has.
ORIGIN_HEX_CHARS = 16


def bound_origin(public_key: bytes, n: int) -> str:
    """The ``n``-th origin (0, 1, ...) of the device whose raw public key this is: a hash
    of the key, so no other key can claim it.

    >>> bound_origin(bytes(32), 0)
    'd77178f5cc01ea56'
    """
    digest = hashlib.sha256(ORIGIN_TAG + public_key + n.to_bytes(8, "big")).hexdigest()
    return digest[:ORIGIN_HEX_CHARS]


class Signer:
    """The capability to sign as one device, passed to a store that originates events
    (``crdt.log.store.EventStore``): the store never reads key files.

    >>> from crdt.device import private_key_from_seed
    >>> signer = Signer(private_key_from_seed(bytes(32)), "laptop")
    >>> signer.origin(0) == bound_origin(signer.public_key, 0)
    True
    >>> verify(signer.public_key, signer.sign(bytes(32), signer.origin(0), 1), bytes(32),
    ...        signer.origin(0), 1)
    True
    """

    def __init__(self, private_key: Ed25519PrivateKey, name: str) -> None:
        self.name = name
        self.public_key = device.public_bytes(private_key)
        self._secret = device.secret_key(private_key)  # never in a repr or a log
        #: ``origin(n)`` by ``n``: the log asks for its own origin's before each event
        #: it signs (``crdt.log.eventlog``), and a hash per event adds up.
        self._origins: dict[int, str] = {}

    def origin(self, n: int) -> str:
        """The ``n``-th origin of this device's key (``bound_origin``)."""
        origin = self._origins.get(n)
        if origin is None:
            origin = self._origins[n] = bound_origin(self.public_key, n)
        return origin

    def sign(self, event_id: bytes, origin: str, seq: int) -> bytes:
        return device.sign_bytes(self._secret, signed_bytes(event_id, origin, seq))

    def __repr__(self) -> str:  # never the key
        return f"Signer(name={self.name!r})"
