"""Ed25519 signatures on raw bytes, made and checked by libsodium (PyNaCl's
``nacl.bindings``): what a signature check needs, and nothing else.

A node checks its peers' signatures in a worker process (``node.peers.verifying``) that
imports only this module: its start is CPU the node pays on every catch-up, and
``crdt.device``, which holds keys as ``cryptography`` objects and reads key files,
costs about 40 ms more of imports there. ``crdt.device`` says why libsodium does the
signing and checking, and what its stricter checks mean for nodes of earlier versions;
it offers these functions under the same names.

>>> import nacl.bindings
>>> public, secret = nacl.bindings.crypto_sign_seed_keypair(bytes(32))
>>> signature = sign_bytes(secret, b"hello")
>>> [verifies(public, signature, text) for text in (b"hello", b"hullo")]
[True, False]
"""

from __future__ import annotations

from collections.abc import Sequence

import nacl.bindings
from nacl.exceptions import BadSignatureError

PUBLIC_KEY_BYTES = 32
#: libsodium's secret key: the 32-byte RFC 8032 seed, then the public key.
SECRET_KEY_BYTES = 64
SIGNATURE_BYTES = 64


def sign_bytes(secret: bytes, message: bytes) -> bytes:
    """The 64-byte Ed25519 signature of ``message`` by the key whose secret key (in
    libsodium's form, ``crdt.device.secret_key``) this is."""
    if len(secret) != SECRET_KEY_BYTES:  # libsodium would read past a shorter one
        raise ValueError(f"a secret key is {SECRET_KEY_BYTES} bytes, not {len(secret)}")
    return nacl.bindings.crypto_sign(message, secret)[:SIGNATURE_BYTES]


def verifies(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """True if ``signature`` is the Ed25519 signature of ``message`` by the raw 32-byte
    ``public_key`` (libsodium's rules, ``crdt.device``). Anything else is False,
    whatever is wrong with it: a peer's bytes never make it raise."""
    if not isinstance(public_key, bytes) or len(public_key) != PUBLIC_KEY_BYTES \
            or not isinstance(signature, bytes) or len(signature) != SIGNATURE_BYTES:
        return False
    try:
        # The combined form (signature, then message) is the one PyNaCl binds; its
        # detached functions are not exposed. The copy costs well under a microsecond.
        nacl.bindings.crypto_sign_open(signature + message, public_key)
    except BadSignatureError:
        return False
    return True


def verifies_many(public_keys: Sequence[bytes], signatures: Sequence[bytes],
                  messages: Sequence[bytes]) -> list[bool]:
    """``verifies`` of each (public key, signature, message) of three lists of the same
    length, in order: one call for a peer's batch, which a node makes in a worker
    process (``node.peers.verifying``) so that its own threads do not wait for the GIL
    between checks. The lists pickle as bytes; nothing else crosses.

    >>> public, secret = nacl.bindings.crypto_sign_seed_keypair(bytes(32))
    >>> signature = sign_bytes(secret, b"a")
    >>> verifies_many([public, public, public[:5]], [signature] * 3, [b"a", b"b", b"a"])
    [True, False, False]
    """
    if not len(public_keys) == len(signatures) == len(messages):
        raise ValueError(f"lists of {len(public_keys)} keys, {len(signatures)} signatures "
                         f"and {len(messages)} messages")
    return [verifies(key, signature, message)
            for key, signature, message in zip(public_keys, signatures, messages, strict=True)]
