"""The tries of one ``Devices.add``: its checks read the members, then its record is
written only if no record that bears on them (``bears``) came in after those the checks
read (``node.devices_store.append_unless``); else nothing is written and the checks are
made again, with it. Past ``ADD_TRIES_MAX`` tries the add gives up (``AddsKeepChanging``:
``POST /v1/devices`` answers 503 ``devices_changing``, with ``Retry-After``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from crdt import membership
from crdt.device import name_key
from crdt.errors import CrdtError
from crdt.log import bound
from crdt.log.records import StoredEvent

#: Most times ``Devices.add`` checks and tries to write, when each time a record that
#: bears on it (``bears``) came in between: then ``AddsKeepChanging`` (503). Each try
#: holds every other add waiting; a peer sending such records without pause is the
#: only way to use them all up.
ADD_TRIES_MAX = 8

T = TypeVar("T")


class AddsKeepChanging(CrdtError):
    """``ADD_TRIES_MAX`` times in a row, a membership record that bears on the add came
    in between its checks and its record: nothing was written; try again."""


async def tried(attempt: Callable[[], Awaitable[T | None]]) -> T:
    """What ``attempt`` (an add's checks and record) gives, tried again while it gives
    None (nothing written: a record that bears on the add, a peer's removal of the
    device say, came in after those the checks read), at most ``ADD_TRIES_MAX`` times."""
    for _ in range(ADD_TRIES_MAX):
        done = await attempt()
        if done is not None:
            return done
    raise AddsKeepChanging(
        f"the devices records kept changing while this add was checked ({ADD_TRIES_MAX} "
        "tries), so nothing was written; try again")


def bears(stored: StoredEvent, device_id: str, wanted: str, own: str) -> bool:
    """Whether ``stored``, come in after an add's checks, may change what they found:
    a membership record of the device added (a removal, a rename, another address) or
    of this device (its own add may ride along, its removal refuses the add), an add
    under a name that reads as the one wanted (``name_key``), or a ``device_key``
    record: it binds an origin, and a record of that origin stored before it (the log
    takes events past a gap) counts from then on, a rename to the name wanted say.
    There are a few in a device's life (one per origin), so they do not flood an add.
    Not token records, nor other devices' membership records: a removal frees a name,
    it takes none."""
    if bound.read(stored.event) is not None:
        return True
    found = membership.read(stored.event)
    if found is None:
        return False
    kind, device, fields = found
    if device in (device_id, own):
        return True
    return kind == membership.DEVICE_ADDED and name_key(fields["name"]) == wanted
