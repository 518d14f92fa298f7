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

    >>> quotas = OriginQuotas(quotas_max=1)
    >>> first = quotas.of("device:A", SyncConfig(), 0.0)
    >>> quotas.of("device:A", SyncConfig(), 1.0) is first
    True
    >>> _ = quotas.of("device:B", SyncConfig(), 2.0)
    >>> quotas.of("device:A", SyncConfig(), 3.0) is first
    False
    """

    def __init__(self, quotas_max: int = ORIGIN_QUOTAS_MAX) -> None:
        self._quotas_max = quotas_max
        self._quotas: dict[str, OriginQuota] = {}

    def of(self, peer: str, sync: SyncConfig, now: float) -> OriginQuota:
        """The quota kept for ``peer``, or a new one from ``now`` under ``sync``'s
        settings if none is. The settings are read at each new quota, not kept: a kept
        quota goes on under those it was made with."""
        quota = self._quotas.pop(peer, None)
        if quota is None:
            quota = OriginQuota(sync.origins_new_max, sync.origins_new_interval_s, now)
            while len(self._quotas) >= self._quotas_max:
                del self._quotas[next(iter(self._quotas))]
        self._quotas[peer] = quota  # the newest last
        return quota
