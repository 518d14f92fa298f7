"""Bound origins: an origin derived from a device's key, announced by a ``device_key``
record as its seq 1. From then on every event of the origin must carry the device's
signature (``crdt.signing``), checked on receipt (``sync.peer.signatures``).

A node with a key takes origins ``signing.bound_origin(public_key, n)`` for n = 0, 1, ...
and writes, as seq 1 of each, in the session ``DEVICES_SESSION``:

    {"type": "device_key", "device_id", "public_key" (base64url, no padding), "name",
     "origin", "n"}

A record binds its origin only if the origin re-derives from ``public_key`` and ``n``:
since the origin is a hash of the key, nobody can bind another device's origin to their
own key, and a record that only looks like one is kept as any event and binds nothing.
The log keeps what it learned in two records (``crdt.log.records``):

    b␟<origin>      [public key, device id, n]
    v␟<device id>   [origin, ...]   -- the device's bound origins, in the order learned

>>> from crdt.device import private_key_from_seed
>>> from crdt.signing import Signer
>>> signer = Signer(private_key_from_seed(bytes(32)), "laptop")
>>> from crdt.clock import Hlc
>>> record = device_key(signer, 0).seal(Hlc(1, 0))
>>> read(record).origin == signer.origin(0)
True
"""

from __future__ import annotations

from typing import NamedTuple

from crdt import codec
from crdt.device import PUBLIC_KEY_BYTES, device_id, load_public_key, stored_device_name
from crdt.errors import InvalidInput
from crdt.events import Draft, Event
from crdt.linkproof import b64, unb64
from crdt.log.records import key
from crdt.membership import AGENT_ID, DEVICE_KEY, DEVICES_SESSION
from crdt.signing import Signer, bound_origin

KIND = DEVICE_KEY
#: Highest ``n`` a record may name: a device takes a new origin only when its old one
#: retires, a handful of times in its life.
N_MAX = 2**32


class Binding(NamedTuple):
    """What a well-formed ``device_key`` record says."""

    origin: str
    public_key: bytes
    device_id: str
    n: int

    def to_record(self) -> bytes:
        return codec.encode_fast([self.public_key, self.device_id, self.n])

    @classmethod
    def from_record(cls, origin: str, raw: bytes) -> Binding:
        public_key, device, n = codec.decode_trusted(raw)
        return cls(origin, public_key, device, n)


def binding_key(origin: str) -> str:
    return key("b", origin)


def device_record_key(device: str) -> str:
    # Not "d": that prefix lists the sessions with a stored Automerge document.
    return key("v", device)


def device_key(signer: Signer, n: int) -> Draft:
    """The record that binds ``signer``'s ``n``-th origin (stamped when appended)."""
    return Draft(DEVICES_SESSION, AGENT_ID, KIND, {
        "device_id": device_id(signer.public_key), "public_key": b64(signer.public_key),
        "name": signer.name, "origin": signer.origin(n), "n": n})


def read(event: Event) -> Binding | None:
    """The binding ``event`` makes, if it is a well-formed ``device_key`` record whose
    origin re-derives from its key; else None."""
    if event.kind != KIND or event.session_key != DEVICES_SESSION:
        return None
    payload = event.payload
    n, origin, text = payload.get("n"), payload.get("origin"), payload.get("public_key")
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= N_MAX:
        return None
    if not isinstance(origin, str):
        return None
    try:
        public_key = unb64(text, PUBLIC_KEY_BYTES, "public_key")
        stored_device_name(payload.get("name"))
    except InvalidInput:
        return None
    if bound_origin(public_key, n) != origin:
        return None
    try:
        load_public_key(public_key)  # a point on the curve, or no key at all
    except (InvalidInput, ValueError):
        return None
    device = device_id(public_key)
    if payload.get("device_id") != device:
        return None
    return Binding(origin, public_key, device, n)
