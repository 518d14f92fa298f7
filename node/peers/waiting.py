"""The devices that dialed this node and were refused as waiting to be added, for
``clawsync status`` on the member (``GET /v1/peers``'s ``device.to_add``).

The id and address are what the dialer claims: it proves its key only once admitted, so
anyone reaching this node can fill this memory with made-up ids. It is bounded
(``WAITING_SHOWN_MAX`` distinct ids, the longest unseen forgotten first), in memory only,
and holds nothing secret: no header, no token, no secret, only the id, the address the
dial came from and when it came last.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

#: Devices waiting to be added that ``clawsync status`` shows: the last ones to dial,
#: distinct ids. A real device redials every few seconds, so it stays among them unless
#: more than this many other ids dial in between.
WAITING_SHOWN_MAX = 16


class Waiting:
    """The last ``WAITING_SHOWN_MAX`` devices refused as waiting, newest last."""

    def __init__(self, shown_max: int = WAITING_SHOWN_MAX) -> None:
        self._shown_max = shown_max
        #: Per claimed device id: the address the dial came from, and when (loop clock).
        self._seen: OrderedDict[str, tuple[str | None, float]] = OrderedDict()

    def seen(self, device_id: str, remote: str | None, now: float) -> None:
        """``device_id`` dialed from ``remote`` at ``now`` and was refused as waiting."""
        self._seen.pop(device_id, None)
        self._seen[device_id] = (remote, now)
        while len(self._seen) > self._shown_max:
            self._seen.popitem(last=False)

    def rows(self, now: float, waits: Callable[[str], bool]) -> list[dict[str, Any]]:
        """The devices that still wait (``waits``: not added nor removed since), the
        newest first: claimed id, claimed address and how long ago it dialed.

        >>> waiting = Waiting(shown_max=2)
        >>> for n, device in enumerate("ABC"):
        ...     waiting.seen(device, "192.0.2.1", float(n))
        >>> [row["device_id"] for row in waiting.rows(3.0, lambda device: device != "C")]
        ['B']
        """
        return [{"device_id": device, "address": remote,
                 "last_seen_s_ago": round(now - at, 3)}
                for device, (remote, at) in reversed(self._seen.items()) if waits(device)]
