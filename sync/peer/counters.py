"""``Counters``: the traffic of one peer link, for metrics."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Counters:
    """Traffic with one peer, for metrics."""

    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    events_sent: int = 0
    events_received: int = 0  # in valid batches, held before or not
    events_new: int = 0  # of those, the ones this node did not hold yet
    events_conflicting: int = 0  # sent for a slot that holds another event; kept anyway
    faults: int = 0  # messages refused as a PeerFault
    events_ahead: int = 0  # left out for a timestamp too far ahead of our clock, for now
    resends: int = 0  # times in-flight batches were given up as lost
    batches_resent: int = 0  # batches given up as lost: what they held goes again
    events_skipped: int = 0  # beyond a gap in their origin: not stored, sent again later
    origins_refused: int = 0  # events of a new origin past the table's free part: skipped
    events_late: int = 0  # copies of a retired origin's events, held already: dropped
    events_refused: int = 0  # numbered past a retired origin's final seq: refused
    events_forged: int = 0  # of a bound origin, its signature wrong: refused
    events_unsigned: int = 0  # of a bound origin without a signature, or new unbound
    last_contact: float | None = None  # ``now`` of the last message received
