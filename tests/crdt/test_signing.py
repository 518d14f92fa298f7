"""Signatures of origin: the signed bytes, a golden signature, and everything that must
not verify.

Ed25519 signatures are deterministic (RFC 8032), so a signature is a golden vector as
well: a node of any version or language must sign and verify these bytes the same way.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crdt import codec, device, signing
from crdt.errors import InvalidInput
from tests.support.ed25519 import IDENTITY, crafted_by_holder, openssl_verifies

# RFC 8032 section 7.1, test 1: the library is Ed25519 as the RFC defines it.
RFC_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC_EMPTY_SIGNATURE = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9"
    "b46bd25bf5f0595bbe24655141438e7a100b")
KEY = device.private_key_from_seed(RFC_SEED)
PUBLIC = device.public_bytes(KEY)
EVENT_ID = bytes(range(32))
ORIGIN = "3f9c0a1b2c3d4e5f"
SEQ = 7
# The signed bytes of (EVENT_ID, ORIGIN, 7), hand-assembled from RFC 8949: an array of 4
# (0x84); a text of 24 bytes (0x78 0x18); a byte string of 32 (0x58 0x20); a text of 16
# (0x70); the integer 7 (0x07).
SIGNED_HEX = ("84" + "7818" + b"clawsync/event-origin/v1".hex() + "5820" + EVENT_ID.hex()
              + "70" + ORIGIN.encode().hex() + "07")
GOLDEN_SIGNATURE = bytes.fromhex(
    "e597c4989cb167b88b88723410961c35f8335cd396e822147dd301b9fbc74f3f4d03196463ef59e120c215e1"
    "388eecf618619595209e75a11e3aa90657ef8308")


def test_both_libraries_are_rfc_8032_ed25519() -> None:
    assert KEY.sign(b"") == RFC_EMPTY_SIGNATURE  # cryptography, which reads key files
    assert device.sign_bytes(device.secret_key(KEY), b"") == RFC_EMPTY_SIGNATURE  # libsodium


def test_golden_signed_bytes_and_signature() -> None:
    assert signing.signed_bytes(EVENT_ID, ORIGIN, SEQ).hex() == SIGNED_HEX
    assert signing.sign(KEY, EVENT_ID, ORIGIN, SEQ) == GOLDEN_SIGNATURE
    assert signing.Signer(KEY, "x").sign(EVENT_ID, ORIGIN, SEQ) == GOLDEN_SIGNATURE
    assert signing.verify(PUBLIC, GOLDEN_SIGNATURE, EVENT_ID, ORIGIN, SEQ)


@settings(max_examples=300)
@given(st.binary(min_size=32, max_size=32), st.text(min_size=1, max_size=80),
       st.integers(1, signing.SEQ_MAX))
def test_the_signed_bytes_are_canonical_cbor(event_id: bytes, origin: str, seq: int) -> None:
    expected = codec.encode([signing.EVENT_ORIGIN_TAG, event_id, origin, seq])
    assert signing.signed_bytes(event_id, origin, seq) == expected


@settings(max_examples=100)
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32),
       st.text(min_size=1, max_size=20), st.integers(1, signing.SEQ_MAX))
def test_event_signatures_of_either_library_verify_with_the_other(
        seed: bytes, event_id: bytes, origin: str, seq: int) -> None:
    key = device.private_key_from_seed(seed)
    public = device.public_bytes(key)
    ours = signing.Signer(key, "x").sign(event_id, origin, seq)
    theirs = key.sign(signing.signed_bytes(event_id, origin, seq))  # as earlier versions
    assert ours == theirs
    assert signing.verify(public, theirs, event_id, origin, seq)
    assert openssl_verifies(public, ours, signing.signed_bytes(event_id, origin, seq))


def test_a_signature_binds_id_origin_and_seq() -> None:
    good = signing.sign(KEY, EVENT_ID, ORIGIN, SEQ)
    other_id = bytes(32)
    assert not signing.verify(PUBLIC, good, other_id, ORIGIN, SEQ)
    assert not signing.verify(PUBLIC, good, EVENT_ID, "another-origin", SEQ)
    assert not signing.verify(PUBLIC, good, EVENT_ID, ORIGIN, SEQ + 1)
    # The same event under another slot needs a signature of its own.
    assert signing.verify(PUBLIC, signing.sign(KEY, EVENT_ID, ORIGIN, SEQ + 1), EVENT_ID,
                          ORIGIN, SEQ + 1)


def test_another_device_cannot_sign_for_this_one() -> None:
    thief = device.generate()
    forged = signing.sign(thief, EVENT_ID, ORIGIN, SEQ)
    assert not signing.verify(PUBLIC, forged, EVENT_ID, ORIGIN, SEQ)
    assert signing.verify(device.public_bytes(thief), forged, EVENT_ID, ORIGIN, SEQ)


def test_a_signature_of_other_bytes_does_not_verify() -> None:
    # Domain separation: the same fields signed without the tag, or in another order.
    from crdt import codec

    for message in (codec.encode([EVENT_ID, ORIGIN, SEQ]),
                    codec.encode(["clawsync/event-origin/v2", EVENT_ID, ORIGIN, SEQ]),
                    EVENT_ID + ORIGIN.encode() + SEQ.to_bytes(8, "big")):
        assert not signing.verify(PUBLIC, KEY.sign(message), EVENT_ID, ORIGIN, SEQ)


@pytest.mark.parametrize("signature", [
    b"", GOLDEN_SIGNATURE[:-1], GOLDEN_SIGNATURE + b"\x00", bytes(64),
    bytes([GOLDEN_SIGNATURE[0] ^ 1]) + GOLDEN_SIGNATURE[1:],
    GOLDEN_SIGNATURE[:63] + bytes([GOLDEN_SIGNATURE[63] ^ 0x80]),
    "not bytes",
])
def test_a_bad_signature_is_false_never_an_error(signature: object) -> None:
    assert signing.verify(PUBLIC, signature, EVENT_ID, ORIGIN, SEQ) is False  # type: ignore[arg-type]


def test_a_crafted_signature_of_the_key_holder_is_false_never_an_error() -> None:
    # R the identity point: OpenSSL takes it, libsodium does not (crdt.device's docstring).
    crafted = crafted_by_holder(RFC_SEED, signing.signed_bytes(EVENT_ID, ORIGIN, SEQ))
    assert signing.verify(PUBLIC, crafted, EVENT_ID, ORIGIN, SEQ) is False


@pytest.mark.parametrize("public", [b"", PUBLIC[:31], PUBLIC + b"\x00", bytes(32),
                                    b"\xff" * 32, IDENTITY, "text"])
def test_a_bad_public_key_is_false_never_an_error(public: bytes) -> None:
    assert signing.verify(public, GOLDEN_SIGNATURE, EVENT_ID, ORIGIN, SEQ) is False


@pytest.mark.parametrize(("event_id", "origin", "seq", "field"), [
    (bytes(31), ORIGIN, 1, "id"), ("00" * 32, ORIGIN, 1, "id"),
    (EVENT_ID, "", 1, "origin"), (EVENT_ID, 5, 1, "origin"),
    (EVENT_ID, ORIGIN, 0, "seq"), (EVENT_ID, ORIGIN, 2**63, "seq"),
    (EVENT_ID, ORIGIN, True, "seq"), (EVENT_ID, ORIGIN, 1.0, "seq"),
])
def test_fields_that_no_event_has_are_refused(event_id: object, origin: object, seq: object,
                                              field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        signing.sign(KEY, event_id, origin, seq)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_a_signers_origins_are_its_keys_bound_origins_each_time_asked() -> None:
    signer = signing.Signer(KEY, "laptop")
    for n in (0, 1, 0, 5, 1):  # asked again: the same answer as when first asked
        assert signer.origin(n) == signing.bound_origin(PUBLIC, n)
    assert signing.Signer(device.private_key_from_seed(bytes(32)), "other").origin(0) \
        != signer.origin(0)
