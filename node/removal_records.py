"""Where the records of a device's removal are held here, for a link's last push to the
device (``node.devices.Devices.removal_records``, ``sync.peer.machine.PeerSync.push_through``).

The push goes, per origin, up to a seq: the slot of the record that removes the device,
and of this node's retirement of its origins when that may ride along (``rides``).

A peer's origin keeps its slots here: a node that holds an origin past a retirement's
final seq retires it again at what it holds. This node's own origin does not: retired at
a final seq below events it wrote (by a node that held less of it), it takes a new
origin and numbers those events again there, right after the new origin's
``device_key`` record, clearing their old slots (``crdt.log.origins.OwnOrigin``), while
the stored event still names its first slot. So each record is kept with its id
(``Held``), and ``locate`` finds it where it is now.

Use these functions on a thread of the store (they read it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from crdt.log import bound, retire
from crdt.log.records import StoredEvent
from crdt.log.store import EventStore

#: Events read per page while checking what lies between a removal record and a
#: retirement (``rides``): a client's event, the usual answer, is found in the first.
BETWEEN_PAGE = 32


class Held(NamedTuple):
    """A record and the slot that holds it here (as last located)."""

    event_id: bytes
    origin: str
    seq: int


def held(stored: StoredEvent) -> Held:
    return Held(stored.event.id, stored.origin, stored.seq)


def through(records: Iterable[Held]) -> dict[str, int]:
    """Per origin, the highest seq of ``records``: where a last push goes up to."""
    seqs: dict[str, int] = {}
    for record in records:
        seqs[record.origin] = max(seqs.get(record.origin, 0), record.seq)
    return seqs


def locate(store: EventStore, records: Iterable[Held]) -> list[Held]:
    """``records`` where they are held now, each once. A slot that still holds its
    record stays; a record moved with this node's origin is looked for in the other
    origins of this node's device, from seq 1 to at most its old seq less the old
    origin's final seq, plus one (for the ``device_key`` record before it): where a move
    numbers it, however often it moved since. One not found (it cannot move elsewhere)
    keeps its last slot."""
    found: dict[bytes, Held] = {}
    for record in records:
        if record.event_id not in found:
            found[record.event_id] = _locate(store, record)
    return list(found.values())


def _locate(store: EventStore, record: Held) -> Held:
    if store.id_at(record.origin, record.seq) == record.event_id:
        return record
    device = store.origin_device(store.node_id)
    if device is None or store.origin_device(record.origin) != device:
        return record  # not this node's own: its slots do not move here
    final_seq = store.retired.get(record.origin, store.retiring.get(record.origin, 1))
    highest = record.seq - final_seq + 1
    for origin, seq in store.device_origins(device).items():
        if origin == record.origin:
            continue
        ids = store.ids_at(origin, range(1, min(highest, seq) + 1))
        if record.event_id in ids:
            return Held(record.event_id, origin, ids.index(record.event_id) + 1)
    return record


def rides(store: EventStore, records: list[Held], retirement: StoredEvent) -> bool:
    """Whether this node's ``retirement`` (just written, in its origin) may ride along a
    last push that carries ``records`` (located): if what the push would then carry
    more of the retirement's origin, before it, is only ``device_key`` records and
    retirements. A client's event among them is not the removed device's to have."""
    if not records:
        return False
    origin, cursor = retirement.origin, through(records).get(retirement.origin, 0)
    while cursor < retirement.seq - 1:
        page = store.origin_after(origin, cursor,
                                  min(BETWEEN_PAGE, retirement.seq - 1 - cursor))
        if not page:
            return False
        if any(bound.read(stored.event) is None and retire.read(stored.event) is None
               for stored in page):
            return False
        cursor = page[-1].seq
    return True
