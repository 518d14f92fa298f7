"""``OriginQuota``: how many new origins one peer link may bring per interval.

Every origin takes a row of every node's version vector, a table shared by the whole
cluster (``limits.ORIGINS_MAX``). A quota per link keeps a single peer from filling
it in one go; a node joining a cluster of fewer origins than the quota takes them all at
once. Both ends keep one: the receiver skips events of new origins past it, the sender
does not send them, so that an honest link does not wait on batches sent in vain.
"""

from __future__ import annotations


class OriginQuota:
    """At most ``per_interval`` new origins in each ``interval_s`` window (fixed windows,
    starting at ``now``)."""

    def __init__(self, per_interval: int, interval_s: float, now: float) -> None:
        self.per_interval = per_interval
        self.interval_s = interval_s
        self._window_start = now
        self._taken = 0

    def take(self, now: float) -> bool:
        """Count one new origin if the quota allows it now; False if it does not."""
        if now - self._window_start >= self.interval_s:
            self._window_start, self._taken = now, 0
        if self._taken >= self.per_interval:
            return False
        self._taken += 1
        return True
