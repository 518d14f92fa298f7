"""Timing of a peer link: pull interval, ack timeout, in-flight window, back-off."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from sync.errors import ProtocolMisuse
from sync.peer.messages import BATCH_EVENTS_MAX


@dataclass(frozen=True, slots=True)
class SyncConfig:
    """Timing and window of one peer link. Every default is a trade-off:

    * ``pull_interval_s`` (5 s): how often we send a hello to repair what was lost. An
      idle link costs one hello per interval each way; shorter repairs faster.
    * ``ack_timeout_s`` (15 s): batches unacknowledged this long are taken as lost and
      sent again. Shorter recovers sooner but resends batches that were only slow.
    * ``inflight_batches_max`` (2): unacknowledged batches per peer. Two keeps the link
      busy while the peer stores the previous batch; more costs memory and resends.
    * ``backoff_base_s`` (1 s), ``backoff_max_s`` (60 s): the first retry delay after a
      failure, doubled per failure up to the cap. A lower cap finds a returning peer
      sooner; a higher one wastes less on a peer that is gone.
    * ``batch_events_max`` (512): most events this node puts in one batch; at most the
      protocol's ``BATCH_EVENTS_MAX``, which every node accepts. Smaller batches cost
      more round trips in a catch-up; each batch is one commit on the receiver.
    """

    pull_interval_s: float = 5.0
    ack_timeout_s: float = 15.0
    inflight_batches_max: int = 2
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    batch_events_max: int = BATCH_EVENTS_MAX

    def __post_init__(self) -> None:
        times = (self.pull_interval_s, self.ack_timeout_s, self.backoff_base_s,
                 self.backoff_max_s)
        if not all(math.isfinite(t) and t > 0 for t in times):
            raise ProtocolMisuse("intervals must be positive and finite")
        if self.backoff_base_s > self.backoff_max_s:
            raise ProtocolMisuse("backoff_base_s must not exceed backoff_max_s")
        if not 1 <= self.inflight_batches_max <= 64:
            raise ProtocolMisuse("inflight_batches_max must be from 1 to 64")
        if not 1 <= self.batch_events_max <= BATCH_EVENTS_MAX:
            raise ProtocolMisuse(f"batch_events_max must be from 1 to {BATCH_EVENTS_MAX}")


def backoff_delay_s(failures: int, config: SyncConfig, rng: random.Random) -> float:
    """Seconds to wait after ``failures`` consecutive failures: "equal jitter", a random
    point in the upper half of ``base * 2**(failures-1)`` capped at ``backoff_max_s``.
    The fixed half makes the delay grow; the random half spreads peers that failed
    together (a restarted hub) so they do not all retry in the same instant.

    >>> [round(backoff_delay_s(n, SyncConfig(), random.Random(0)), 2) for n in (1, 2, 8)]
    [0.92, 1.84, 55.33]
    """
    ceiling = min(config.backoff_max_s, config.backoff_base_s * 2.0 ** min(failures - 1, 62))
    return ceiling / 2 + rng.random() * ceiling / 2
