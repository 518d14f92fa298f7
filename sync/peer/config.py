"""Everything about peer links: the machine's timing and window (pull interval, ack
timeout, in-flight batches, back-off), and the numbers the node's transport and gossip
use (heartbeat, timeouts, membership). Numbers only: the node does the waiting."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from sync.errors import ProtocolMisuse
from sync.peer.limits import BATCH_EVENTS_MAX


@dataclass(frozen=True, slots=True)
class SyncConfig:
    """Peer links (the ``[sync]`` table of a node's config file). Every default is a
    trade-off. Used by the machine (``PeerSync``):

    * ``pull_interval_s`` (5 s): how often we send a hello to repair what was lost. An
      idle link costs one hello per interval each way; shorter repairs faster.
    * ``ack_timeout_s`` (15 s): batches unacknowledged this long are taken as lost and
      sent again. Shorter recovers sooner but resends batches that were only slow.
    * ``inflight_batches_max`` (3): unacknowledged batches per peer. A node takes a
      batch in three stages at once (``node.peers.driver``: it stores one while it checks
      the signatures of the next and parses the one after): three keep them all busy,
      where two leave its parsing waiting for the next batch (a catch-up took about 5%
      longer); more costs memory and resends (four was no faster, in one run).
    * ``backoff_base_s`` (1 s), ``backoff_max_s`` (60 s): the first retry delay after a
      failure, doubled per failure up to the cap. A lower cap finds a returning peer
      sooner; a higher one wastes less on a peer that is gone. The cap also bounds
      the wait a busy peer asks for (``Retry-After``: ``node.asked_waits``).
    * ``batch_events_max`` (512): most events this node puts in one batch; at most the
      protocol's ``BATCH_EVENTS_MAX``, which every node accepts. Smaller batches cost
      more round trips in a catch-up; each batch is one commit on the receiver.
    * ``origins_new_max`` (1,024) per ``origins_new_interval_s`` (1 h): new origins one
      link may bring (``sync.peer.quota``). A node joining a cluster of fewer origins
      takes them all at once; a single peer cannot fill the shared table of 4,096 at
      once. Higher lets a larger cluster be joined at once; lower slows a flood more.

    Used by the node's transport and gossip (``node.peers``):

    * ``peers_max`` (64): peers a node keeps, configured and learned; learning stops
      beyond it. Each costs a link, a machine and a hello per ``pull_interval_s``.
    * ``members_interval_s`` (30 s): how often dialed peers are asked which nodes they
      know (and each one once as soon as its link comes up). Shorter finds nodes that
      join later sooner, at one small request per peer and round.
    * ``learned_failures_max`` (8): failed links in a row after which a learned (not
      configured) peer is forgotten, so that dead addresses and this node's own under
      another name do not fill ``peers_max``; a peer that still lists it brings it back
      after a hold-off, or at once if it is linked to it (``sync.peer.forgotten``).
    * ``forgotten_hold_s`` (300 s), ``forgotten_hold_max_s`` (3,600 s): how long a
      forgotten address is held off from peers' member lists after it was first
      forgotten (ten members rounds at the default 30 s), doubled at each forgetting
      that follows, up to the cap. Shorter tries a node that was down (and that no
      lister says it is linked to, as an older lister's list never does) again sooner;
      longer costs fewer dials of a node gone for good: ``learned_failures_max`` per
      node and cap at most.
    * ``forgotten_kept_max`` (1,024): forgotten addresses remembered; past it, the one
      forgotten longest ago is dropped, and a list may bring it back at the next round
      as if it had never been forgotten. Each costs a few hundred bytes.
    * ``checkpoint_interval_s`` (5 s): how often a busy link saves what its peer holds.
      Longer writes less; a crash then resends up to that much.
    * ``heartbeat_s`` (15 s): pings on a link; one without a pong is closed. Shorter
      finds dead links sooner; each ping costs a few bytes.
    * ``connect_timeout_s`` (10 s): connecting and upgrading to a peer, and asking it
      for members, before the attempt counts as failed.
    * ``send_timeout_s`` (30 s): delivering one message to a peer before the link is
      taken as stalled and closed.
    * ``close_timeout_s`` (2 s): waiting for the peer's answer to our close frame when
      a link that was up is dropped (a peer refused, removed or at fault); shorter drops the
      connection of a peer that is gone sooner, cutting off a slow one's clean close.
      A stopping node waits less, as does a link whose handshake failed
      (``node.peers.transport.STOP_CLOSE_WAIT_S``).
    * ``members_bytes_max`` (256 KiB): largest member list read from a peer;
      ``peers_max`` entries fit easily.
    * ``peer_writer_share`` (0.25), ``peer_writer_burst_s`` (0.5 s): the share of the
      store's single writer one link may use, in writer seconds per second, and how
      much it may use at once; a link over it handles nothing more from its peer
      until paid back, but only while clients append (``node.peers.budget``): a catch-up
      into a node nobody writes to runs at full speed. Lower keeps client appends
      quicker under a flooding peer; higher lets a catch-up beside clients run faster.
    """

    pull_interval_s: float = 5.0
    ack_timeout_s: float = 15.0
    inflight_batches_max: int = 3
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    batch_events_max: int = BATCH_EVENTS_MAX
    origins_new_max: int = 1024
    origins_new_interval_s: float = 3600.0
    peers_max: int = 64
    members_interval_s: float = 30.0
    learned_failures_max: int = 8
    forgotten_hold_s: float = 300.0
    forgotten_hold_max_s: float = 3600.0
    forgotten_kept_max: int = 1024
    checkpoint_interval_s: float = 5.0
    heartbeat_s: float = 15.0
    connect_timeout_s: float = 10.0
    send_timeout_s: float = 30.0
    close_timeout_s: float = 2.0
    members_bytes_max: int = 256 * 1024
    peer_writer_share: float = 0.25
    peer_writer_burst_s: float = 0.5

    def __post_init__(self) -> None:
        times = (self.pull_interval_s, self.ack_timeout_s, self.backoff_base_s,
                 self.backoff_max_s, self.members_interval_s, self.checkpoint_interval_s,
                 self.heartbeat_s, self.connect_timeout_s, self.send_timeout_s,
                 self.close_timeout_s, self.peer_writer_share, self.peer_writer_burst_s,
                 self.origins_new_interval_s, self.forgotten_hold_s,
                 self.forgotten_hold_max_s)
        if not all(math.isfinite(t) and t > 0 for t in times):
            raise ProtocolMisuse("intervals must be positive and finite")
        if self.peer_writer_share > 1:
            raise ProtocolMisuse("peer_writer_share must be from 0 to 1")
        if self.backoff_base_s > self.backoff_max_s:
            raise ProtocolMisuse("backoff_base_s must not exceed backoff_max_s")
        if self.forgotten_hold_s > self.forgotten_hold_max_s:
            raise ProtocolMisuse("forgotten_hold_s must not exceed forgotten_hold_max_s")
        if self.forgotten_kept_max < 1:
            raise ProtocolMisuse("forgotten_kept_max must be at least 1")
        if not 1 <= self.inflight_batches_max <= 64:
            raise ProtocolMisuse("inflight_batches_max must be from 1 to 64")
        if self.origins_new_max < 1:
            raise ProtocolMisuse("origins_new_max must be at least 1")
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
