"""Who may link, in words for people: why a device is refused, and this node's own
removal as a member told it (kept in the data folder, so that ``clawsync status`` still
says so after a restart).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crdt.device import (
    DEVICE_NAME_BYTES_MAX,
    hiding_characters,
    name_key,
    shown_name,
    stored_device_name,
)
from crdt.errors import InvalidInput
from crdt.membership import Removal
from node.command_lines import add_command
from node.peers.link_errors import Refusal
from node.peers.transport import DEVICE_REMOVED
from node.text import utc_text

#: This node's removal, as told: ``by``, ``at_ms``, ``reason``, ``told_by``, ``told_at_ms``
#: and ``device_id``, the device removed (absent in files older nodes wrote).
REMOVED_FILE = "removed.json"
#: Characters of a removal's reason carried in a refusal (an HTTP header, ASCII-escaped:
#: up to 12 bytes a character, so that the detail stays within its signed bound).
REASON_CHARS_MAX = 64


def when(at_ms: int) -> str:
    """A time for people, as the commands write them (``utc_text``).

    >>> when(0), when(2**62)
    ('1970-01-01 00:00:00Z', '4611686018427387904 ms since 1970')
    """
    try:
        return utc_text(datetime.fromtimestamp(at_ms / 1000, UTC))
    except (ValueError, OverflowError, OSError):  # a time no calendar holds: as told
        return f"{at_ms} ms since 1970"


def waiting_text(member: str, new: str, name: str | None = None, *,
                 member_name: str | None = None, address: str | None = None) -> str:
    """What a device not yet added is told, and says in ``clawsync status``: the command
    to run on the member, whole (``devices add`` needs ``--name``; the member that refuses
    does not know it, the waiting device does). The member is named by ``member_name``
    too when its refusal gave one; ``address``, the member's as this device dialed it,
    goes in the command as ``--node``, so that it reaches that node and not whichever
    answers at the default address where it is run. A name that is the member's own
    (both default to the host name, the same for two nodes on one machine) is made to
    differ (``distinct_name``): ``devices add`` takes a name twice, and lists of devices
    all called alike would tell them apart by id alone.

    >>> waiting_text("AAA", "BBB", "my phone")
    "waiting to be added on AAA: run `clawsync devices add BBB --name 'my phone'` there"
    >>> waiting_text("AAA", "BBB")
    'waiting to be added on AAA: run `clawsync devices add BBB --name NAME` there'
    >>> said = waiting_text("AAA", "BBB", "phone", member_name="laptop",
    ...                     address="http://laptop:7878")
    >>> said.partition(": ")[0]
    'waiting to be added on laptop (AAA)'
    >>> said.partition(": ")[2]
    'run `clawsync devices add BBB --name phone --node http://laptop:7878` there'
    >>> waiting_text("AAA", "BBBBBBB-CCC", "vm", member_name="vm").partition(": ")[2]
    'run `clawsync devices add BBBBBBB-CCC --name vm-BBBBBBB` there'
    >>> for named in ("lap\u3164", "lap\\\\u3164"):
    ...     print(waiting_text("AAA", "BBB", member_name=named).partition(":")[0])
    waiting to be added on lap\\u3164 (AAA)
    waiting to be added on lap\\\\u3164 (AAA)
    >>> {waiting_text("AAA", "BBB", name) for name in ("lap\u200btop", " ")}
    {'waiting to be added on AAA: run `clawsync devices add BBB --name NAME` there'}
    """
    if name is not None and (hiding_characters(name) or not name_key(name)):
        name = None  # this node's own name, held as given: the member would refuse it new
    if name and member_name and name_key(name) == name_key(member_name):
        name = distinct_name(name, new)
    # The member's name as the tables show it: a name typed ``\\u3164`` is told from one
    # holding U+3164 by every reader of the line (the CLI, the console, the API).
    on = f"{shown_name(member_name)} ({member})" if member_name else member
    return f"waiting to be added on {on}: run `{add_command(new, name, address)}` there"


def distinct_name(name: str, device_id: str) -> str:
    """``name`` followed by the first group of ``device_id`` (which the user sees at the
    start of the id), cut so that the whole is still a device's name.

    >>> distinct_name("vm", "U7CO6AL-5T4CZ37")
    'vm-U7CO6AL'
    >>> len(distinct_name("é" * 32, "U7CO6AL-5T4CZ37").encode())
    64
    """
    tail = "-" + device_id.partition("-")[0]
    room = DEVICE_NAME_BYTES_MAX - len(tail.encode())
    head = name.encode()[:room].decode(errors="ignore")  # not a character cut in two
    return head + tail


def member_name(detail: Mapping[str, Any]) -> str | None:
    """The name a member's refusal gives itself, if it gives one that is a device's name
    (printable, bounded); older nodes give none.

    >>> member_name({"name": "laptop"}), member_name({}), member_name({"name": "a\\x1b[2J"})
    ('laptop', None, None)

    A name given before invisible characters were refused in new names is a name still:

    >>> member_name({"name": "laptop\\u200b"})
    'laptop\\u200b'
    """
    try:
        return stored_device_name(detail["name"]) if "name" in detail else None
    except InvalidInput:
        return None


def removal_text(removal: Mapping[str, Any]) -> str:
    """What a removed device says in ``clawsync status``.

    >>> removal_text({"by": "AAA", "at_ms": 0, "reason": "lost"})
    'removed from the cluster by AAA at 1970-01-01 00:00:00Z (lost)'
    """
    reason = f" ({removal['reason']})" if removal.get("reason") else ""
    return f"removed from the cluster by {removal.get('by')} at " \
           f"{when(int(removal.get('at_ms') or 0))}{reason}"


def refusal_for(removal: Removal) -> tuple[str, dict[str, Any], str]:
    """The refusal of a removed device: its code, signed detail and text."""
    detail = {"by": removal.by, "at_ms": removal.at_ms,
              "reason": removal.reason[:REASON_CHARS_MAX]}
    return DEVICE_REMOVED, detail, f"this device was {removal_text(detail)}"


class Removed:
    """This device's removal, once a member has told it (signed: ``Refusal.by``).

    Bound to the device it was told to: a folder given a new key (``device.key`` moved
    away, the README's way back for a removed device) is a new device, which the old
    removal does not concern. A file without ``device_id`` (older nodes wrote none) is
    taken as this device's, as they took it."""

    def __init__(self, data_dir: Path, device_id: str) -> None:
        self._path = Path(data_dir) / REMOVED_FILE
        self._device_id = device_id
        self._view: dict[str, Any] | None = None
        with contextlib.suppress(OSError, ValueError):
            loaded = json.loads(self._path.read_text())
            if isinstance(loaded, dict) and loaded.get("device_id", device_id) == device_id:
                self._view = loaded

    @property
    def known(self) -> bool:
        return self._view is not None

    def view(self) -> dict[str, Any] | None:
        """As ``GET /v1/node`` shows it (which names the device already)."""
        if self._view is None:
            return None
        return {key: value for key, value in self._view.items() if key != "device_id"}

    def record(self, refusal: Refusal, now_ms: int | None = None) -> None:
        """Keep the first removal told (later ones only repeat it)."""
        if self._view is not None:
            return
        detail = refusal.detail
        self._view = {"by": str(detail.get("by")), "at_ms": _int(detail.get("at_ms")),
                      "reason": str(detail.get("reason", "")), "told_by": refusal.by,
                      "told_at_ms": now_ms if now_ms is not None else int(time.time() * 1000),
                      "device_id": self._device_id}
        spare = self._path.with_suffix(".new")
        with contextlib.suppress(OSError):
            spare.write_text(json.dumps(self._view))
            os.replace(spare, self._path)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
