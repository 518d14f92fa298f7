"""The quotas of new origins kept per peer that links to this node, at their real bound
(``ORIGIN_QUOTAS_MAX``): kept across links up to it, the one linked longest ago starting
afresh past it."""

from __future__ import annotations

from node.peers.origin_quotas import ORIGIN_QUOTAS_MAX, OriginQuotas
from sync.peer.config import SyncConfig

#: One new origin an interval: a quota kept says no to a second, a new one says yes.
ONE = SyncConfig(origins_new_max=1, origins_new_interval_s=3600)


def test_quotas_are_kept_for_the_last_peers_to_link_and_the_oldest_starts_afresh() -> None:
    quotas = OriginQuotas()
    peers = [f"address:10.0.{n // 256}.{n % 256}" for n in range(ORIGIN_QUOTAS_MAX)]
    for peer in peers:
        assert quotas.of(peer, ONE, 0.0).take(0.0)  # each uses up its quota
    # All kept: linking again gives none of them a new quota. The first links again
    # here, so the one linked longest ago becomes the second.
    for peer in peers:
        assert not quotas.of(peer, ONE, 1.0).take(1.0)
    assert not quotas.of(peers[0], ONE, 2.0).take(2.0)
    # One peer more drops the one linked longest ago: the second.
    assert quotas.of("device:new", ONE, 3.0).take(3.0)
    for peer in [peers[0], *peers[2:], "device:new"]:
        assert not quotas.of(peer, ONE, 4.0).take(4.0)
    assert quotas.of(peers[1], ONE, 5.0).take(5.0)  # afresh, with a full quota
