"""Per-peer Prometheus families, read from ``Gossip.status()`` when scraped.

Nothing is updated as messages flow: a scrape reads the links' counters, which the
links keep anyway, so appends and replication cost the same with or without metrics.

The ``peer`` label is the peer's node id, or the dialed URL (the link's key for an
accepted link) until its hello names it. Only current links are listed, so the label
set is bounded by ``peers_max`` and a peer whose link is gone leaves no series behind.
Two links to one node (a dialed address waiting on standby while the node's own link
is up) are one peer: its state is the best of theirs, counters are summed. A link is
``up`` once the peer's hello named it; until then it is ``connecting``, so a peer is
never shown up under its URL and then under its node id (the alert rules in
``deploy/prometheus`` take a series that was up and is gone for a peer that left).

>>> from prometheus_client import CollectorRegistry, generate_latest
>>> class Links:
...     links_faulted = 2
...     proofs_failed = {"invalid": 1, "missing": 0, "lost": 0}
...     def held_off_kinds(self):
...         return {"failing": 0, "answered_by_another_device": 0, "asked_to_wait": 1}
...     def status(self):
...         return [{"link": "url:http://b", "url": "http://b", "node_id": "nb",
...                  "state": "up", "last_contact_s_ago": 0.5, "events_we_lack": 0,
...                  "events_peer_lacks": 3, "bytes_in": 10, "bytes_out": 20,
...                  "faults": 0, "batches_resent": 1}]
>>> registry = CollectorRegistry()
>>> registry.register(PeerCollector(Links()))
>>> text = generate_latest(registry).decode()
>>> 'clawsync_peer_events_lacking{direction="remote",peer="nb"} 3.0' in text
True
>>> 'clawsync_peer_state{peer="nb",state="backoff"} 0.0' in text
True
>>> 'clawsync_peer_addresses_held_off{kind="asked_to_wait"} 1.0' in text
True
>>> 'clawsync_peer_links_faulted_total 2.0' in text
True
>>> 'clawsync_peer_link_proofs_failed_total{reason="invalid"} 1.0' in text
True
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

#: A link's states, best first: the state shown for a peer is the best of its links'.
#: ``refused``: the peer refuses this device (not added yet, or removed), which an alert
#: should tell from a peer that is only away.
STATES = ("up", "connecting", "standby", "backoff", "refused", "down")

#: Counter families: (name without ``_total``, help, the status field summed over links).
COUNTERS = (
    ("clawsync_peer_received_bytes", "Bytes of peer messages received from the peer",
     "bytes_in"),
    ("clawsync_peer_sent_bytes", "Bytes of peer messages sent to the peer", "bytes_out"),
    ("clawsync_peer_faults", "Messages from the peer refused as a protocol fault",
     "faults"),
    ("clawsync_peer_batches_resent", "Event batches to the peer not acknowledged within "
     "the ack timeout, taken as lost and sent again", "batches_resent"),
)


class Links(Protocol):
    """What the collector reads (``node.peers.gossip.Gossip`` has it)."""

    def status(self) -> list[dict[str, Any]]: ...

    def held_off_kinds(self) -> dict[str, int]: ...

    @property
    def links_faulted(self) -> int: ...

    @property
    def proofs_failed(self) -> Mapping[str, int]: ...


class PeerCollector(Collector):
    """The per-peer families of one node's links."""

    def __init__(self, links: Links) -> None:
        self.links = links

    def collect(self) -> Iterator[Metric]:
        peers = by_peer(self.links.status())
        up = GaugeMetricFamily("clawsync_peer_up", "1 while a link to the peer is up, "
                               "else 0", labels=["peer"])
        state = GaugeMetricFamily("clawsync_peer_state", "1 for the current state of the "
                                  "link to the peer (the best, with several links), 0 for "
                                  "the others", labels=["peer", "state"])
        lacking = GaugeMetricFamily(
            "clawsync_peer_events_lacking", "Events one side lacks, as far as known: "
            "direction local = this node lacks them, remote = the peer does",
            labels=["peer", "direction"])
        contact = GaugeMetricFamily("clawsync_peer_last_contact_age_seconds",
                                    "Seconds since the last message from the peer",
                                    labels=["peer"])
        counters = [(CounterMetricFamily(name, text, labels=["peer"]), field)
                    for name, text, field in COUNTERS]
        for peer, rows in sorted(peers.items()):
            best = rows[0]
            up.add_metric([peer], 1.0 if best["state"] == "up" else 0.0)
            for name in STATES:
                state.add_metric([peer, name], 1.0 if best["state"] == name else 0.0)
            for direction, field in (("local", "events_we_lack"),
                                     ("remote", "events_peer_lacks")):
                if best[field] is not None:  # unknown until the peer says what it holds
                    lacking.add_metric([peer, direction], float(best[field]))
            ages = [row["last_contact_s_ago"] for row in rows
                    if row["last_contact_s_ago"] is not None]
            if ages:
                contact.add_metric([peer], float(min(ages)))
            for family, field in counters:
                family.add_metric([peer], float(sum(row[field] for row in rows)))
        yield from (up, state, lacking, contact, *(family for family, _ in counters))
        held = GaugeMetricFamily(
            "clawsync_peer_addresses_held_off", "Peer addresses not dialed now, by why: "
            "kind failing = a learned address forgotten after its failures, "
            "answered_by_another_device = a device that may not link answered there, "
            "asked_to_wait = the peer asked for a wait (node.peers.rows.HELD_OFF_KINDS)",
            labels=["kind"])
        for kind, count in self.links.held_off_kinds().items():
            held.add_metric([kind], float(count))
        yield held
        # Unlabelled: a peer that only dials this node leaves no per-peer series once its
        # link ends, which a fault does at once.
        yield CounterMetricFamily(
            "clawsync_peer_links_faulted", "Peer links dropped because the peer broke the "
            "protocol, links it dialed and links this node dialed", value=self.links.links_faulted)
        proofs = CounterMetricFamily(
            "clawsync_peer_link_proofs_failed", "Handshakes of dialers that ended after this "
            "node signed its link proof, without theirs: reason invalid = it did not verify "
            "or was malformed, missing = the dialer closed, reset or stayed silent, lost = "
            "the connection was lost before this node's proof went out "
            "(node.peers.admission.PROOF_FAILURES)",
            labels=["reason"])
        for reason, count in sorted(self.links.proofs_failed.items()):
            proofs.add_metric([reason], float(count))
        yield proofs


def by_peer(rows: Iterable[dict[str, Any]]) -> dict[str, Sequence[dict[str, Any]]]:
    """Links grouped by the peer they reach, each group's best state first."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(peer_label(row), []).append(row)
    for group in groups.values():
        group.sort(key=_rank)
    return dict(groups)


def peer_label(row: dict[str, Any]) -> str:
    """The node id once a hello gave it, else how the link is known."""
    return str(row["node_id"] or row["url"] or row["link"])


def _rank(row: dict[str, Any]) -> int:
    state = str(row["state"])
    return STATES.index(state) if state in STATES else len(STATES)
