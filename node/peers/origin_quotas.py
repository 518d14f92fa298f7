"""The quotas of new origins kept per peer that links to us (``sync.peer.quota``), across
its links: a peer that links again gets no new quota by it. Bounded, in memory only.
"""

from __future__ import annotations

from sync.peer.config import SyncConfig
from sync.peer.quota import OriginQuota

#: Peers whose quota of new origins is kept across their links (``OriginQuotas``): more
#: drop the one that linked longest ago, which then starts afresh at its next link.
ORIGIN_QUOTAS_MAX = 1024


class OriginQuotas:
    """Per peer (its device, else its address), the quota of new origins it may bring;
    at most ``quotas_max``, the one used longest ago dropped first.

    >>> quotas = OriginQuotas(SyncConfig(), quotas_max=1)
    >>> first = quotas.of("device:A", 0.0)
    >>> quotas.of("device:A", 1.0) is first
    True
    >>> _ = quotas.of("device:B", 2.0)
    >>> quotas.of("device:A", 3.0) is first
    False
    """

    def __init__(self, sync: SyncConfig, quotas_max: int = ORIGIN_QUOTAS_MAX) -> None:
        self._sync = sync
        self._quotas_max = quotas_max
        self._quotas: dict[str, OriginQuota] = {}

    def of(self, peer: str, now: float) -> OriginQuota:
        """The quota kept for ``peer``, or a new one from ``now`` if none is."""
        quota = self._quotas.pop(peer, None)
        if quota is None:
            quota = OriginQuota(self._sync.origins_new_max, self._sync.origins_new_interval_s,
                                now)
            while len(self._quotas) >= self._quotas_max:
                del self._quotas[next(iter(self._quotas))]
        self._quotas[peer] = quota  # the newest last
        return quota
