"""Per-peer metrics of real nodes in this process, linked over real sockets: what
``/metrics`` shows of a link that is up, of one that went down, and that a link that
is gone leaves no series behind."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client.metrics_core import Metric

from node.peers.metrics import STATES, PeerCollector
from node.server.run import RunningNode
from sync.peer.config import SyncConfig
from tests.support.metrics import label_values, scraped_until, value
from tests.support.nodes import post

NodeFactory = Callable[..., Awaitable[RunningNode]]
EventFactory = Callable[..., dict[str, Any]]
SECRET = "s" * 32
FAST = SyncConfig(backoff_base_s=0.05, backoff_max_s=0.1, pull_interval_s=0.2)
PEER_FAMILIES = {
    "clawsync_peer_up": "gauge",
    "clawsync_peer_state": "gauge",
    "clawsync_peer_events_lacking": "gauge",
    "clawsync_peer_last_contact_age_seconds": "gauge",
    "clawsync_peer_received_bytes": "counter",
    "clawsync_peer_sent_bytes": "counter",
    "clawsync_peer_faults": "counter",
    "clawsync_peer_batches_resent": "counter",
}


def in_sync(peer: str) -> Callable[[dict[str, Metric]], bool]:
    def check(families: dict[str, Metric]) -> bool:
        return (value(families, "clawsync_peer_up", peer=peer) == 1
                and value(families, "clawsync_peer_events_lacking", peer=peer,
                          direction="local") == 0
                and value(families, "clawsync_peer_events_lacking", peer=peer,
                          direction="remote") == 0)
    return check


async def test_a_link_up_then_down(make_node: NodeFactory, event_body: EventFactory) -> None:
    hub = await make_node(cluster_secret=SECRET, sync=FAST)
    dialer = await make_node(cluster_secret=SECRET, sync=FAST, peers=(hub.url,))
    await post(dialer, "s1", event_body(1), event_body(2))
    hub_id, dialer_id = hub.astore.node_id, dialer.astore.node_id
    # Both ends name the other by node id, once its hello came.
    await scraped_until(hub.url, in_sync(dialer_id), "the hub in sync with the dialer")
    families = await scraped_until(dialer.url, in_sync(hub_id), "the dialer in sync with the hub")
    for name, kind in PEER_FAMILIES.items():
        assert families[name].type == kind, name
        assert label_values(families, name, "peer") == {hub_id}, name
    assert label_values(families, "clawsync_peer_state", "state") == set(STATES)
    assert value(families, "clawsync_peer_state", peer=hub_id, state="up") == 1
    assert value(families, "clawsync_peer_state", peer=hub_id, state="backoff") == 0
    assert label_values(families, "clawsync_peer_events_lacking", "direction") \
        == {"local", "remote"}
    age = value(families, "clawsync_peer_last_contact_age_seconds", peer=hub_id)
    assert age is not None and age >= 0
    for name in ("clawsync_peer_received_bytes", "clawsync_peer_sent_bytes"):
        sent = value(families, name, "_total", peer=hub_id)
        assert sent is not None and sent > 0, name
    assert value(families, "clawsync_peer_faults", "_total", peer=hub_id) == 0
    assert value(families, "clawsync_peer_batches_resent", "_total", peer=hub_id) == 0
    assert value(families, "clawsync_peer_links_faulted", "_total") == 0  # no peer label

    await hub.stop()
    await post(dialer, "s1", event_body(3), event_body(4), event_body(5))

    def behind(families: dict[str, Metric]) -> bool:
        return (value(families, "clawsync_peer_up", peer=hub_id) == 0
                and value(families, "clawsync_peer_events_lacking", peer=hub_id,
                          direction="remote") == 3)

    # A dialed peer that went away stays listed (it is redialed), down and behind.
    families = await scraped_until(dialer.url, behind, "the hub down and 3 events behind")
    states = {state for state in STATES
              if value(families, "clawsync_peer_state", peer=hub_id, state=state) == 1}
    assert len(states) == 1 and states <= {"connecting", "backoff", "down"}


async def test_a_link_that_is_gone_leaves_no_series(make_node: NodeFactory,
                                                    event_body: EventFactory) -> None:
    hub = await make_node(cluster_secret=SECRET, sync=FAST)
    dialers = [await make_node(cluster_secret=SECRET, sync=FAST, peers=(hub.url,))
               for _ in range(2)]
    await post(dialers[0], "s1", event_body(1))
    ids = {dialer.astore.node_id for dialer in dialers}

    def both_up(families: dict[str, Metric]) -> bool:
        return all(value(families, "clawsync_peer_up", peer=peer) == 1 for peer in ids)

    families = await scraped_until(hub.url, both_up, "both dialers linked")
    assert label_values(families, "clawsync_peer_up", "peer") == ids
    await dialers[0].stop()
    gone = dialers[0].astore.node_id

    def forgotten(families: dict[str, Metric]) -> bool:
        return all(gone not in label_values(families, name, "peer") for name in PEER_FAMILIES)

    # An accepted link ends with its peer: every family drops the peer's series.
    families = await scraped_until(hub.url, forgotten, "the stopped dialer's series gone")
    for name in PEER_FAMILIES:
        assert label_values(families, name, "peer") <= ids - {gone}, name
    assert value(families, "clawsync_peer_up", peer=dialers[1].astore.node_id) == 1


def test_a_peer_that_refuses_this_device_shows_as_refused() -> None:
    """Waiting to be added, or removed: an alert must tell it from a peer that is away."""
    row = {"node_id": "n1", "url": "http://hub:7878", "link": "out:1", "state": "refused",
           "events_we_lack": None, "events_peer_lacks": None, "last_contact_s_ago": None,
           "bytes_in": 0, "bytes_out": 0, "faults": 0, "batches_resent": 0}

    class OneLink:
        links_faulted = 0
        proofs_failed = {"invalid": 0, "missing": 0}

        def held_off_kinds(self) -> dict[str, int]:
            return {}

        def status(self) -> list[dict[str, Any]]:
            return [row]

    [state] = [f for f in PeerCollector(OneLink()).collect() if f.name == "clawsync_peer_state"]
    shown = {sample.labels["state"]: sample.value for sample in state.samples}
    assert shown.get("refused") == 1.0 and sum(shown.values()) == 1.0, shown
    assert set(shown) == set(STATES)
