"""Signatures on a link: which of a peer's events to take, by their origin's key.

An origin is bound to a device once a ``device_key`` record names it (``crdt.log.bound``;
the store knows, and so does a batch that carries the record). The rules, per event:

* Bound origin, signature that verifies with the device's key: taken (as any event).
* Bound origin, signature that does not verify: refused, the sender's fault
  (``"forged"``): not stored, not acknowledged. The key is the one the origin's hash
  names, so nobody signs for an origin of another device.
* Bound origin, no signature: not taken either, but not shown to be the sender's fault
  (``"unsigned"``); it comes signed from another peer. A peer that does not sign (a
  node of an earlier version) relays every event without one; and a peer that signs
  holds no signature for the copies it stored before it checked them: an origin bound
  (to this node's knowledge, ``crdt.log.bound``) after its events reached a folder
  unsigned, through such an older node. An earlier version sends those as it holds
  them, in good faith, whether we lack them or hold them already (this one offers them
  only to peers that do not sign: ``sync.peer.outbox``); the receiver cannot tell when
  the sender stored them. Taking no unsigned copy is what keeps the origin's events
  its device's.
* Unbound origin (written before events were signed, or by a node without a key):
  taken on the strength of the link's authentication, as before; but with
  ``require`` (``--require-signatures``) only an origin already held (or retired)
  here, so that a peer cannot bring new unsigned origins (``"unsigned"``).

Cost: one verification per event (Ed25519 by libsodium, about 70 us; ``crdt.device``).
``verify_ahead`` does that part beforehand, off the store's writer, in one call for the
batch (which a node may make in a worker process); ``judge`` then only looks the
results up. Both check the same bytes with the same function (``crdt.signing.verify``
is ``crdt.device.verifies`` of ``signed_bytes``; ``verifies_many`` is that per item), so
a result reused is one ``judge`` would compute itself.

>>> from crdt.clock import Hlc
>>> from crdt.device import private_key_from_seed
>>> from crdt.log.bound import device_key
>>> from crdt.signing import Signer
>>> from sync.peer.messages import Item
>>> signer = Signer(private_key_from_seed(bytes(32)), "laptop")
>>> origin, record = signer.origin(0), device_key(signer, 0).seal(Hlc(1, 0))
>>> good = Item(origin, 1, record, signer.sign(record.id, origin, 1))
>>> judge([good], keys=raw_keys([good], lambda o: None), held=set(),
...       require=True)
['take']
>>> unsigned = [good._replace(signature=None)]
>>> judge(unsigned, keys=raw_keys(unsigned, lambda o: None), held=set(),
...       require=False)
['unsigned']
>>> wrong = [good._replace(signature=bytes(64))]
>>> judge(wrong, keys=raw_keys(wrong, lambda o: None), held=set(),
...       require=False)
['forged']
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Literal

from crdt import device, signing
from crdt.log import bound
from sync.peer.messages import Item

Judgement = Literal["take", "forged", "unsigned"]
#: Per origin of a batch, its device's raw public key, or None if unbound (``raw_keys``).
Keys = Mapping[str, bytes | None]
#: Signatures checked (``verify_ahead``): (public key, signature, event id, origin, seq)
#: -> whether it verifies. Everything the result depends on is in the key, so a result
#: found here is the one ``judge`` would compute.
Verified = dict[tuple[bytes, bytes, bytes, str, int], bool]
#: Checks a batch of signatures (``crdt.device.verifies_many``): public keys, signatures,
#: signed bytes -> whether each verifies.
VerifyMany = Callable[[Sequence[bytes], Sequence[bytes], Sequence[bytes]], list[bool]]


def raw_keys(items: Sequence[Item],
             key_of: Callable[[str], bytes | None]) -> dict[str, bytes | None]:
    """Per origin of the batch, its device's raw public key, or None if unbound: from
    the store (``key_of``, asked once per origin), or from a ``device_key`` record the
    batch carries as the origin's seq 1."""
    keys: dict[str, bytes | None] = {}
    for item in items:
        if item.origin not in keys:
            keys[item.origin] = key_of(item.origin)
        if item.seq == 1 and keys[item.origin] is None:
            binding = bound.read(item.event)
            if binding is not None and binding.origin == item.origin:
                keys[item.origin] = binding.public_key
    return keys


def verify_ahead(items: Sequence[Item], keys: Keys,
                 verify_many: VerifyMany = device.verifies_many) -> Verified:
    """Check the signatures of ``items`` with their origins' keys (``raw_keys``), before
    ``judge`` runs, and without deciding anything: the costly part of ``judge``, which a
    node runs off its writer while the writer stores the previous batch. An origin
    whose key is not known yet is left to ``judge``.

    ``verify_many`` checks them all in one call (``crdt.device.verifies_many``, here by
    default; a node may pass one that runs it in a worker process). It must answer as
    that function does: ``judge`` trusts what it finds here.
    """
    slots = _slots(items, keys)
    if not slots:
        return {}
    valid = verify_many([slot[0] for slot in slots], [slot[1] for slot in slots],
                        [signing.signed_bytes(*slot[2:]) for slot in slots])
    if len(valid) != len(slots):
        raise ValueError(f"{len(valid)} answers for {len(slots)} signatures")
    return dict(zip(slots, valid, strict=True))


def judge(items: Sequence[Item], *, keys: Keys, held: Collection[str], require: bool,
          verified: Verified | None = None) -> list[Judgement]:
    """The judgement of each item (the module's rules). ``keys``: ``raw_keys``'s answer
    for these items (the public key each origin is bound to, None: unbound); ``held``:
    origins held here (active or retired); ``require``: refuse new unbound origins;
    ``verified``: results of ``verify_ahead``, used where they were computed with the
    same key (others are verified here)."""
    results = _check(items, keys, verified or {})
    out: list[Judgement] = []
    for item in items:
        key = keys.get(item.origin)
        if key is None:
            out.append("unsigned" if require and item.origin not in held else "take")
        elif item.signature is None:
            out.append("unsigned")
        else:
            valid = results[key, item.signature, item.event.id, item.origin, item.seq]
            out.append("take" if valid else "forged")
    return out


def _check(items: Sequence[Item], keys: Keys, ahead: Verified) -> Verified:
    """Whether each signed item of a bound origin verifies with its origin's key (its
    slot in ``Verified``); a result in ``ahead`` is taken as it is, since its slot names
    everything it was checked with."""
    out: Verified = {}
    for slot in _slots(items, keys):
        valid = ahead.get(slot)
        out[slot] = signing.verify(*slot) if valid is None else valid
    return out


def _slots(items: Sequence[Item], keys: Keys) -> list[tuple[bytes, bytes, bytes, str, int]]:
    """The slot in ``Verified`` of each signed item whose origin's key is known."""
    return [(key, item.signature, item.event.id, item.origin, item.seq) for item in items
            if (key := keys.get(item.origin)) is not None and item.signature is not None]
