"""One address is enough: nodes learn the rest of the cluster from the peer they dial."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cluster import Cluster, append, message, peer_rows, wait_converged, wait_until

pytestmark = pytest.mark.integration

FAST = ["--members-interval", "0.5"]


def test_a_dialed_peer_is_asked_for_members_when_its_link_comes_up(tmp_path: Path) -> None:
    """Not at the next members round: with rounds an hour apart, the phone still finds
    the laptop the hub knows as soon as its link to the hub is up."""
    hourly = ["--members-interval", "3600"]
    with Cluster(tmp_path) as cluster:
        hub = cluster.node("hub", advertise=True, extra_args=hourly)
        laptop = cluster.node("laptop", peers=[hub.url], advertise=True, extra_args=hourly)
        wait_until(lambda: any(row["state"] == "up" for row in peer_rows(laptop)), 30,
                   "the laptop linked with the hub")
        phone = cluster.node("phone", peers=[hub.url], advertise=True, extra_args=hourly)
        laptop_id = laptop.get("/healthz")["node_id"]
        wait_until(lambda: laptop_id in {row["node_id"] for row in peer_rows(phone)
                                         if row["state"] == "up"},
                   30, "the phone linked with the laptop the hub knows")


def test_two_devices_that_know_only_the_hub_find_each_other(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        hub = cluster.node("hub", advertise=True, extra_args=FAST)
        laptop = cluster.node("laptop", peers=[hub.url], advertise=True, extra_args=FAST)
        phone = cluster.node("phone", peers=[hub.url], advertise=True, extra_args=FAST)
        ids = {name: node.get("/healthz")["node_id"]
               for name, node in (("laptop", laptop), ("phone", phone))}

        def linked_directly() -> bool:
            # Either side may dial: the one that learned of the other first.
            laptop_sees = {row["node_id"] for row in peer_rows(laptop) if row["state"] == "up"}
            phone_sees = {row["node_id"] for row in peer_rows(phone) if row["state"] == "up"}
            return ids["phone"] in laptop_sees or ids["laptop"] in phone_sees

        wait_until(linked_directly, 30, "laptop and phone linked without being told")
        written = {e["id"] for e in append(laptop, "s", [message("hello from the laptop")])}
        wait_converged([hub, laptop, phone], must_hold=written)
