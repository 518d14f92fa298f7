"""A real node's ``/metrics``: every family it exposes is in the README's table, and over
a forget ``clawsync_sessions`` keeps counting a session forgotten whole while
``clawsync_sessions_forgotten`` says how many of them were, on the node that forgot, on
its peer, across a restart, and until the session writes again. Both agree with
``GET /v1/node``'s ``sessions`` and ``sessions_live``."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.cluster import (
    Cluster,
    append,
    appended_ids,
    message,
    request,
    session_path,
    wait_converged,
    wait_until,
)
from tests.support.processes import ROOT, NodeProcess

pytestmark = pytest.mark.integration

#: Seconds a forget or an event gets to reach the peer.
REACH_S = 60
#: The sessions a node holds beside the test's: the cluster's ``clawsync:devices``.
CLUSTER_SESSIONS = 1


def exposition(node: NodeProcess) -> str:
    with urllib.request.urlopen(f"{node.url}/metrics", timeout=10) as response:
        return str(response.read().decode())


def gauges(node: NodeProcess) -> dict[str, float]:
    """The node's unlabelled gauges by name, scraped as Prometheus would."""
    return {sample.name: sample.value
            for family in text_string_to_metric_families(exposition(node))
            if family.type == "gauge" for sample in family.samples if not sample.labels}


def test_the_readme_lists_every_family_a_node_exposes(node: NodeProcess) -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`(clawsync_[a-z0-9_]+)`", table))
    # Counters by the name a query uses (the parser drops their ``_total``).
    exposed = {family.name + ("_total" if family.type == "counter" else "")
               for family in text_string_to_metric_families(exposition(node))
               if family.name.startswith("clawsync_")}
    assert exposed == documented


def sessions(node: NodeProcess) -> tuple[float, float]:
    """``clawsync_sessions`` and ``clawsync_sessions_forgotten``, in one scrape."""
    found = gauges(node)
    return found["clawsync_sessions"], found["clawsync_sessions_forgotten"]


def told(node: NodeProcess) -> tuple[int, int]:
    """The same two counts as ``GET /v1/node`` says them (it leaves the cluster's
    sessions out of ``sessions``)."""
    about = node.get("/v1/node")
    return (about["sessions"] + about["cluster_sessions"],
            about["sessions"] - about["sessions_live"])


def settled(node: NodeProcess, expected: tuple[int, int], what: str) -> None:
    """Wait until the gauges read ``expected`` and ``GET /v1/node`` says the same. The
    two are read in two requests: a forget or an event the peer sends between them
    makes them differ for that one read, so a disagreement is read again, and only one
    that lasts fails."""
    wait_until(lambda: sessions(node) == expected == told(node), REACH_S, what)


def test_the_sessions_forgotten_gauge_follows_a_forget_everywhere(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        a = cluster.node("a")
        b = cluster.node("b", peers=[a.url])
        ids = appended_ids(append(a, "gone", [message("bye")])
                           + append(b, "kept", [message("stay")]))
        wait_converged([a, b], must_hold=ids)
        for node in (a, b):
            settled(node, (2 + CLUSTER_SESSIONS, 0), "both sessions counted, none forgotten")

        request(a, "DELETE", session_path("gone"))
        assert sessions(a) == (2 + CLUSTER_SESSIONS, 1)  # counted as the forget commits
        settled(a, (2 + CLUSTER_SESSIONS, 1), "a tells the forget as it counts it")
        settled(b, (2 + CLUSTER_SESSIONS, 1), "b counts the forgotten session")

        # The count is the log's, kept in its meta record: a restart finds it there.
        b.restart()
        assert sessions(b) == (2 + CLUSTER_SESSIONS, 1)
        settled(b, (2 + CLUSTER_SESSIONS, 1), "b tells the count it found")

        # An event after the forget makes it a session with events again.
        append(b, "gone", [message("back")])
        assert sessions(b) == (2 + CLUSTER_SESSIONS, 0)
        settled(b, (2 + CLUSTER_SESSIONS, 0), "b tells the session live again")
        settled(a, (2 + CLUSTER_SESSIONS, 0), "a counts the session live again")
