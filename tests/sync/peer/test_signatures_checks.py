"""``sync.peer.signatures`` on its own: which items of a batch are taken, forged or
unsigned (``judge``), the keys they are checked with (``raw_keys``), and checks made
ahead, in one call (``verify_ahead``)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crdt import device, signing
from crdt.events import Draft
from crdt.linkproof import b64
from crdt.log import bound
from crdt.membership import AGENT_ID, DEVICES_SESSION
from crdt.signing import Signer
from sync.peer.messages import Item
from sync.peer.signatures import judge, raw_keys, verify_ahead
from tests.support.ed25519 import IDENTITY, crafted_by_holder
from tests.sync.peer.support import KEYS


@settings(max_examples=40)
@given(byte=st.integers(0, 63), bit=st.integers(0, 7), seq=st.integers(1, 5))
def test_any_flipped_bit_of_a_signature_is_forged(byte: int, bit: int, seq: int) -> None:
    from tests.support.events import event

    signer = Signer(KEYS[2], "phone")
    origin = signer.origin(0)
    record = bound.device_key(signer, 0).seal(event().timestamp)
    chain = [Item(origin, 1, record, signer.sign(record.id, origin, 1))]
    for n in range(2, 6):
        body = event(ms=n, content=str(n))
        chain.append(Item(origin, n, body, signer.sign(body.id, origin, n)))
    tampered = bytearray(chain[seq - 1].signature or b"")
    tampered[byte] ^= 1 << bit
    chain[seq - 1] = chain[seq - 1]._replace(signature=bytes(tampered))
    verdicts = judge(chain, keys=raw_keys(chain, lambda _o: None), held=set(),
                     require=True)
    assert verdicts == ["forged" if n == seq else "take" for n in range(1, 6)]


def test_signatures_verified_ahead_decide_only_for_the_key_they_were_checked_with() -> None:
    from tests.support.events import event

    signer = Signer(KEYS[2], "phone")
    origin = signer.origin(0)
    record = bound.device_key(signer, 0).seal(event().timestamp)
    chain = [Item(origin, 1, record, signer.sign(record.id, origin, 1)),
             Item(origin, 2, event(ms=2), bytes(64))]  # the second forged
    ahead = verify_ahead(chain, raw_keys(chain, lambda _o: None))  # the key comes with seq 1
    assert sorted(ahead.values()) == [False, True]
    verdicts = judge(chain, keys=raw_keys(chain, lambda _o: None), held=set(),
                     require=True, verified=ahead)
    assert verdicts == ["take", "forged"]
    other = device.public_bytes(KEYS[3])  # results for another key are not used
    lies = {(other, item.signature or b"", item.event.id, origin, item.seq): True
            for item in chain}
    assert judge(chain, keys=raw_keys(chain, lambda _o: None), held=set(),
                 require=True, verified=lies) == ["take", "forged"]


def signed_chain(n: int, count: int) -> list[Item]:
    """Key n's first origin: its device_key record, then ``count`` events, all signed."""
    from tests.support.events import event

    signer = Signer(KEYS[n], f"device {n}")
    origin = signer.origin(0)
    record = bound.device_key(signer, 0).seal(event().timestamp)
    chain = [Item(origin, 1, record, signer.sign(record.id, origin, 1))]
    for seq in range(2, count + 2):
        body = event(ms=seq, content=f"{n} {seq}")
        chain.append(Item(origin, seq, body, signer.sign(body.id, origin, seq)))
    return chain


def test_keys_are_asked_once_per_origin_and_may_be_passed_resolved() -> None:
    chains = [signed_chain(2, 3), signed_chain(3, 3)]
    items = [item for pair in zip(*chains, strict=True) for item in pair]  # interleaved
    items += [Item("0123456789abcdef", seq, chains[0][seq].event, None)  # unbound
              for seq in (1, 2)]
    asked: list[str] = []

    def key_of(origin: str) -> bytes | None:
        asked.append(origin)
        return None

    keys = raw_keys(items, key_of)
    assert sorted(asked) == sorted({item.origin for item in items})  # each once
    assert keys == {chains[0][0].origin: device.public_bytes(KEYS[2]),
                    chains[1][0].origin: device.public_bytes(KEYS[3]),
                    "0123456789abcdef": None}
    expected = ["take"] * 8 + ["unsigned"] * 2
    assert judge(items, keys=raw_keys(items, key_of), held=set(),
                 require=True) == expected
    asked.clear()
    assert judge(items, keys=keys, held=set(), require=True) == expected
    assert asked == []


def test_crafted_signatures_are_forged_never_an_error() -> None:
    # Signatures that OpenSSL takes and libsodium refuses (crdt.device's docstring): a
    # node of an earlier version takes these events, this one refuses them.
    chain = signed_chain(2, 2)
    origin = chain[0].origin
    crafted = crafted_by_holder(bytes([2]) * 32,
                                signing.signed_bytes(chain[2].event.id, origin, 3))
    chain[2] = chain[2]._replace(signature=crafted)
    assert judge(chain, keys=raw_keys(chain, lambda _o: None), held=set(),
                 require=True) == ["take", "take", "forged"]
    ahead = verify_ahead(chain, raw_keys(chain, lambda _o: None))
    assert sorted(ahead.values()) == [False, True, True]
    # An origin bound to a small-order key, with a signature that fits any message.
    origin = signing.bound_origin(IDENTITY, 0)
    record = Draft(DEVICES_SESSION, AGENT_ID, bound.KIND, {
        "device_id": device.device_id(IDENTITY), "public_key": b64(IDENTITY),
        "name": "nobody", "origin": origin, "n": 0}).seal(chain[0].event.timestamp)
    assert bound.read(record) is not None  # it binds: its events must be signed
    anything = IDENTITY + bytes(32)
    rogue = [Item(origin, 1, record, anything), Item(origin, 2, chain[1].event, anything)]
    assert judge(rogue, keys=raw_keys(rogue, lambda _o: None), held=set(),
                 require=False) == ["forged", "forged"]


def test_a_batch_is_verified_in_one_call_with_the_results_of_each_check() -> None:
    chain = signed_chain(2, 4)
    chain[3] = chain[3]._replace(signature=bytes(64))  # forged
    chain.append(Item("0123456789abcdef", 1, chain[1].event, None))  # unbound: not checked
    calls: list[int] = []

    def counted(keys: Sequence[bytes], sigs: Sequence[bytes], signed: Sequence[bytes]
                ) -> list[bool]:
        calls.append(len(keys))
        return device.verifies_many(keys, sigs, signed)

    keys = raw_keys(chain, lambda _o: None)
    ahead = verify_ahead(chain, keys, counted)
    assert calls == [5]
    assert ahead == verify_ahead(chain, keys) == {
        (keys[item.origin], item.signature, item.event.id, item.origin, item.seq):
            signing.verify(keys[item.origin] or b"", item.signature or b"", item.event.id,
                           item.origin, item.seq) for item in chain[:5]}
    assert sorted(ahead.values()) == [False, True, True, True, True]
    assert verify_ahead(chain[5:], keys, counted) == {} and calls == [5]  # nothing to check
    with pytest.raises(ValueError, match="4 answers for 5 signatures"):
        verify_ahead(chain, keys, lambda k, s, m: device.verifies_many(k, s, m)[1:])
