"""What ``node.devices`` does on the store's threads: reading the membership records
stored since a position (with the bindings of their origins and where removals are
held), writing an add only if no record that bears on it came in after those its
checks read, and retiring the origins of the devices this node removed."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from crdt import membership
from crdt.errors import InvalidInput, NotFound
from crdt.events import Draft
from crdt.log.records import Appended, StoredEvent
from crdt.log.store import EventStore
from crdt.membership import DEVICES_SESSION
from node import removal_records
from node.removal_records import Held

#: Records read per call while catching up.
READ_PAGE = 1000


def records_after(store: EventStore, position: int, limit: int = READ_PAGE
                  ) -> list[StoredEvent]:
    """Up to ``limit`` records of the devices session after ``position``."""
    try:
        return store.get_events_since(DEVICES_SESSION, position, limit)
    except NotFound:
        return []


def append_unless(store: EventStore, drafts: list[Draft], position: int,
                  bears: Callable[[StoredEvent], bool]) -> list[Appended]:
    """On the writer thread: ``drafts`` appended, unless the devices session holds a
    record after ``position`` (which the add's checks did not read) that ``bears`` on
    the add (empty: nothing written): a peer's removal stored meanwhile would otherwise
    leave a record written that counts for nothing, and the add refused. Other records
    (tokens, other devices' membership) do not hold the add back."""
    while True:
        page = records_after(store, position)
        if any(bears(stored) for stored in page):
            return []
        if len(page) < READ_PAGE:
            return store.append_batch(drafts)
        position = page[-1].position


class Read(NamedTuple):
    """What ``read_since`` read."""

    new: list[StoredEvent]  # the membership records read
    bindings: dict[str, str | None]
    writers: set[str]
    position: int
    #: The removal records (``Devices._removal_records``) located again, with this
    #: node's origin then; None: nothing new to locate (no removal, the origin as it was).
    located: tuple[dict[str, list[Held]], str] | None


def read_since(store: EventStore, position: int, waiting: set[str],
               held: dict[str, list[Held]], origin: str) -> Read:
    """On a reader thread: the membership records after ``position``, the bindings of
    their origins and of ``waiting`` ones, the devices that wrote any record after
    ``position`` (membership or not), the position reached, and ``held`` (where
    removal records are held, by removed device) with the removals read added,
    located again if there are any or this node's origin is no longer ``origin``."""
    # Read first: a move committed while this reads leaves it out of date, so that the
    # read after that commit locates the records again.
    own = store.node_id
    new: list[StoredEvent] = []
    writers: set[str] = set()
    while True:
        page = records_after(store, position)
        new.extend(stored for stored in page if membership.read(stored.event) is not None)
        writers.update(device for device in {store.origin_device(stored.origin)
                                             for stored in page} if device is not None)
        if page:
            position = page[-1].position
        if len(page) < READ_PAGE:
            break
    origins = waiting | {stored.origin for stored in new}
    bindings = {origin: store.origin_device(origin) for origin in origins}
    removals = [(record[1], stored) for stored in new
                if (record := membership.read(stored.event)) is not None
                and record[0] == membership.DEVICE_REMOVED]
    located = None
    if removals or own != origin:
        # A record this node wrote may have moved with its origin before it was read
        # (its stored event names its first slot), or since.
        held = {device: list(records) for device, records in held.items()}
        for device, stored in removals:
            held.setdefault(device, []).append(removal_records.held(stored))
        located = ({device: removal_records.locate(store, records)
                    for device, records in held.items()}, own)
    return Read(new, bindings, writers, position, located)


def retire_removed(store: EventStore, held: dict[str, list[Held]]
                   ) -> tuple[list[tuple[str, str, int]], dict[str, list[Held]]]:
    """On the writer thread: retire each origin of the devices of ``held`` (those
    this node removed, with where their removal records are held) at the highest seq
    held. Per retirement: the device, the origin and its final seq; and per device
    that got one, its records located again, with each retirement that rides along
    (``removal_records.rides``)."""
    done = []
    located: dict[str, list[Held]] = {}
    for device, records in held.items():
        for origin in store.device_origins(device):
            if origin == store.node_id:
                continue
            try:
                appended = store.retire(origin)
            except (NotFound, InvalidInput):
                continue
            if appended is None:
                continue
            stored = appended.stored
            done.append((device, origin, stored.event.payload["final_seq"]))
            if device not in located:
                located[device] = removal_records.locate(store, records)
            # The removed device's links carry it, with its removal, only if nothing
            # but such records came between: a client's append committed after the
            # removal record and before this write is not the removed device's to have,
            # so its last push then stops at the removal record.
            if removal_records.rides(store, located[device], stored):
                located[device].append(removal_records.held(stored))
    return done, located
