"""Automerge-client Prometheus families: the hub counts frames and refusals in plain
integers (no lock, no metrics library on the frame path) and the collector reads them,
with the clients and documents in memory, when scraped.

>>> counts = Counts()
>>> counts.refused(1009)
>>> counts.refusals["too_big"], counts.refusals["policy"]
(1, 0)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sync.repo.host import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL,
    CLOSE_INVALID,
    CLOSE_POLICY,
    CLOSE_PROTOCOL,
    CLOSE_TOO_BIG,
    CLOSE_UNSUPPORTED,
)

#: The ``reason`` label, from the websocket close code the node sent (or the HTTP answer
#: before the upgrade). A fixed set, so the label cannot grow.
REASONS = {
    CLOSE_GOING_AWAY: "stopping",  # the node is stopping
    CLOSE_PROTOCOL: "protocol",  # no join in time, a wrong first message, a bad target
    CLOSE_UNSUPPORTED: "unsupported",  # text frames
    CLOSE_INVALID: "invalid",  # frames or sync messages that do not decode
    CLOSE_POLICY: "policy",  # over a rate or count limit, read-only token, slow reader
    CLOSE_TOO_BIG: "too_big",  # a frame, a document or ephemeral data over its size
    CLOSE_INTERNAL: "internal",  # the node failed (a bug, a worker crashed)
}
UNAUTHORIZED = "unauthorized"  # no valid token: 401 before the websocket opens
OTHER = "other"
REASON_NAMES = (*REASONS.values(), UNAUTHORIZED, OTHER)


@dataclass
class Counts:
    """What the hub counts for metrics; read from the event loop, where it is written."""

    frames_in: int = 0
    frames_out: int = 0
    refusals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASON_NAMES, 0))

    def refused(self, code: int | str) -> None:
        """A client refused or disconnected by the node: a close code or a reason name."""
        reason = code if isinstance(code, str) else REASONS.get(code, OTHER)
        self.refusals[reason] += 1


class RepoCollector(Collector):
    """Automerge clients of one node: ``clients`` and ``documents`` count them now."""

    def __init__(self, counts: Counts, clients: Callable[[], int],
                 documents: Callable[[], int]) -> None:
        self.counts = counts
        self.clients = clients
        self.documents = documents

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("clawsync_automerge_clients",
                                "Automerge clients connected to /automerge",
                                value=self.clients())
        yield GaugeMetricFamily("clawsync_automerge_documents",
                                "Automerge documents held in memory", value=self.documents())
        yield CounterMetricFamily("clawsync_automerge_frames_received",
                                  "Websocket frames received from Automerge clients",
                                  value=self.counts.frames_in)
        yield CounterMetricFamily("clawsync_automerge_frames_sent",
                                  "Websocket frames sent to Automerge clients",
                                  value=self.counts.frames_out)
        refused = CounterMetricFamily(
            "clawsync_automerge_clients_refused", "Automerge clients refused or "
            "disconnected by the node, by reason (the close code's name, or unauthorized)",
            labels=["reason"])
        for reason, count in self.counts.refusals.items():
            refused.add_metric([reason], count)
        yield refused
