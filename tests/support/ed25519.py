"""Ed25519 as the other library sees it: OpenSSL's verification (through
``cryptography``), and signatures crafted to pass it where libsodium refuses them
(``crdt.device``'s docstring)."""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from crdt import device

#: The order of the group, and the identity point as RFC 8032 encodes it (y = 1).
GROUP_ORDER = 2**252 + 27742317777372353535851937790883648493
IDENTITY = (1).to_bytes(32, "little")


def openssl_verifies(public: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except InvalidSignature:
        return False
    return True


def crafted_by_holder(seed: bytes, message: bytes) -> bytes:
    """A signature by the key of ``seed`` with R the identity point and S = k * a: it
    fits the equation [S]B = R + [k]A that OpenSSL checks, but no honest signer makes
    one (R = rB for a secret r derived from the message)."""
    digest = bytearray(hashlib.sha512(seed).digest()[:32])
    digest[0] &= 248  # the clamping of RFC 8032 section 5.1.5
    digest[31] = (digest[31] & 127) | 64
    scalar = int.from_bytes(digest, "little")
    public = device.public_bytes(device.private_key_from_seed(seed))
    k = int.from_bytes(hashlib.sha512(IDENTITY + public + message).digest(), "little")
    return IDENTITY + (k * scalar % GROUP_ORDER).to_bytes(32, "little")
