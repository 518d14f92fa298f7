"""crdt.linkproof: what a link signature binds, and that a peer's bytes never raise."""

from __future__ import annotations

import pytest

from crdt import linkproof
from crdt.device import device_id, private_key_from_seed, public_bytes
from crdt.errors import InvalidInput, LimitExceeded

DIALER = private_key_from_seed(bytes([1]) * 32)
ACCEPTOR = private_key_from_seed(bytes([2]) * 32)
D_ID, A_ID = device_id(public_bytes(DIALER)), device_id(public_bytes(ACCEPTOR))
D_NONCE, A_NONCE = bytes([3]) * 32, bytes([4]) * 32


def test_a_proof_verifies_only_for_its_key_role_nonces_and_ids() -> None:
    proof = linkproof.sign(DIALER, "dial", D_NONCE, A_NONCE, D_ID, A_ID)
    key = public_bytes(DIALER)
    assert linkproof.proven(key, proof, D_ID, "dial", D_NONCE, A_NONCE, D_ID, A_ID)
    # Another claimed id (a key is the key of one id only), another role, another
    # nonce (a replay on a new link), other ids, another key: all refused.
    assert not linkproof.proven(key, proof, A_ID, "dial", D_NONCE, A_NONCE, D_ID, A_ID)
    assert not linkproof.proven(key, proof, D_ID, "accept", D_NONCE, A_NONCE, D_ID, A_ID)
    assert not linkproof.proven(key, proof, D_ID, "dial", D_NONCE, bytes(32), D_ID, A_ID)
    assert not linkproof.proven(key, proof, D_ID, "dial", D_NONCE, A_NONCE, D_ID, D_ID)
    assert not linkproof.proven(public_bytes(ACCEPTOR), proof, A_ID, "dial", D_NONCE,
                                A_NONCE, D_ID, A_ID)


def test_a_refusal_signs_its_detail() -> None:
    proof = linkproof.sign(ACCEPTOR, "refuse", D_NONCE, A_NONCE, D_ID, A_ID, "removed")
    key = public_bytes(ACCEPTOR)
    assert linkproof.proven(key, proof, A_ID, "refuse", D_NONCE, A_NONCE, D_ID, A_ID,
                            "removed")
    assert not linkproof.proven(key, proof, A_ID, "refuse", D_NONCE, A_NONCE, D_ID, A_ID,
                                "not removed")


@pytest.mark.parametrize("key,signature", [
    (b"", bytes(64)), (bytes(33), bytes(64)), (bytes(32), b"x"), ("text", bytes(64)),
])
def test_garbage_is_false_not_an_error(key: bytes, signature: bytes) -> None:
    assert not linkproof.proven(key, signature, D_ID, "dial", D_NONCE, A_NONCE, D_ID, A_ID)
    assert not linkproof.proven(public_bytes(DIALER), bytes(64), D_ID, "dial", b"short",
                                A_NONCE, D_ID, A_ID)


def test_frames_are_parsed_strictly() -> None:
    frame = linkproof.encode_frame(bytes(32), bytes(64))
    assert linkproof.parse_frame(frame, with_nonce=False) == (bytes(32), bytes(64), None)
    with pytest.raises(InvalidInput):
        linkproof.parse_frame(frame, with_nonce=True)  # the acceptor's has a nonce
    with pytest.raises(InvalidInput):
        linkproof.parse_frame(linkproof.encode_frame(bytes(31), bytes(64)), with_nonce=False)
    with pytest.raises(LimitExceeded):
        linkproof.parse_frame(bytes(linkproof.FRAME_BYTES_MAX + 1), with_nonce=False)
    with pytest.raises(InvalidInput):
        linkproof.parse_frame(b"\xff", with_nonce=False)
    with pytest.raises(InvalidInput):
        linkproof.unb64("!!!", 32, "nonce")


def test_a_refusal_detail_is_bounded() -> None:
    detail = "x" * (linkproof.DETAIL_BYTES_MAX + 1)
    with pytest.raises(LimitExceeded):
        linkproof.sign(ACCEPTOR, "refuse", D_NONCE, A_NONCE, D_ID, A_ID, detail)
    assert not linkproof.proven(public_bytes(ACCEPTOR), bytes(64), A_ID, "refuse", D_NONCE,
                                A_NONCE, D_ID, A_ID, detail)
