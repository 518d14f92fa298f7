"""A peer's old, dead address is left alone once it moved; the address it advertises is
taken up again as soon as it is back, whatever name its link was dialed at."""

from __future__ import annotations

import json
import signal
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.cluster import SECRET, Cluster, peer_rows, proxy_url, serve_args, wait_until
from tests.support.processes import NodeProcess

pytestmark = pytest.mark.integration

#: Members rounds twice a second, a dead address given up within a second or so.
FAST_SYNC = """[sync]
backoff_base_s = 0.05
backoff_max_s = 0.1
"""
#: Members rounds, after the moved node is back, that must not take its old address up.
ROUNDS = 5


def fast(tmp_path: Path, *args: str) -> list[str]:
    config = tmp_path / "fast.toml"
    config.write_text(FAST_SYNC)
    return ["--config", str(config), "--members-interval", "0.5", "--log-format", "json",
            *args]


def held_off(node: NodeProcess) -> dict[str, dict[str, Any]]:
    return {row["url"]: row for row in node.get("/v1/peers")["held_off"]}


def linked_ids(node: NodeProcess) -> set[str]:
    return {row["node_id"] for row in peer_rows(node) if row["state"] == "up"}


def learned(node: NodeProcess, url: str) -> int:
    """How often ``node`` took ``url`` up from a peer's list (its JSON log lines)."""
    lines = [json.loads(line) for line in node.log_path.read_text().splitlines()
             if line.startswith("{")]
    return len([line for line in lines
                if line.get("event") == "learned peer" and line.get("url") == url])


def members_asked(node: NodeProcess) -> float:
    """How often peers asked ``node`` for its member list (its ``/metrics``)."""
    with urllib.request.urlopen(node.url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == "clawsync_http_requests_total"
               and sample.labels.get("route") == "/peer/v1/members")


def member_rows(node: NodeProcess) -> dict[str, dict[str, Any]]:
    """``node``'s member list, as a peer holding the cluster secret reads it."""
    request = urllib.request.Request(node.url + "/peer/v1/members",
                                     headers={"Authorization": f"Bearer {SECRET}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return {row["url"]: row for row in json.loads(response.read())["peers"]}


def test_the_old_address_of_a_node_that_moved_is_not_dialed_round_after_round(
        tmp_path: Path) -> None:
    """c learns b from a and links; b stops, c gives its address up; b comes back from
    its data on a new port behind a NAT (it dials a, advertises nothing). a is linked to
    b, but not at the old address: c leaves it held off round after round (it took it up
    again, dialed it and gave it up at each when a's list said "linked" of every address
    of b)."""
    with Cluster(tmp_path) as cluster:
        a = cluster.node("a", advertise=True)
        b = cluster.node("b", peers=[a.url], advertise=True)
        b_id, old = b.get("/healthz")["node_id"], b.url
        c = cluster.node("c", peers=[a.url], extra_args=fast(tmp_path))
        wait_until(lambda: b_id in linked_ids(c), 60, "c linked with b, learned from a")
        b.stop()
        wait_until(lambda: old in held_off(c), 60, "c gave b's old address up")
        assert held_off(c)[old]["node_id"] == b_id
        moved = NodeProcess(tmp_path, name="b", extra_args=[
            *serve_args([a.url]), "--members-interval", "3600"])  # asks a once: c alone asks
        assert moved.port != b.port and moved.data_dir == b.data_dir
        cluster.add(moved)
        wait_until(lambda: b_id in linked_ids(a), 60, "a linked with b, moved")
        row = member_rows(a)[old]
        assert (row["node_id"], row["linked"], row["node_linked"]) == (b_id, False, True)
        asked = members_asked(a)
        wait_until(lambda: members_asked(a) >= asked + ROUNDS, 60, "c's members rounds")
        assert learned(c, old) == 1
        assert [(row["url"], row["times_forgotten"]) for row in held_off(c).values()] \
            == [(old, 1)]
        assert all(row["url"] != old for row in peer_rows(c))


def test_a_node_back_at_its_advertised_address_is_taken_up_though_dialed_at_another(
        tmp_path: Path) -> None:
    """a dials b through a proxy (another name for b, as a LAN name only a reaches would
    be), b advertises its own address. b stops: c, which learned both from a, gives both
    up. b comes back and a's link up is the proxied one, which takes no new connection:
    a's list says linked of b's advertised address too, so c dials it at once rather than
    after its hold-off (the proxied name does not reach b from c)."""
    with Cluster(tmp_path) as cluster:
        b = NodeProcess(tmp_path, name="b")
        proxy = cluster.proxy(b)
        a = cluster.node("a", peers=[proxy_url(proxy)], advertise=True,
                         extra_args=fast(tmp_path))
        b.extra_args = [*serve_args([a.url], advertise_url=b.url)]
        cluster.add(b)
        b_id = b.get("/healthz")["node_id"]
        c = cluster.node("c", peers=[a.url], extra_args=fast(tmp_path))
        wait_until(lambda: b_id in linked_ids(c), 60, "c linked with b, learned from a")
        wait_until(lambda: b.url in member_rows(a), 60, "a lists b's advertised address")
        b.stop()
        wait_until(lambda: b.url in held_off(c), 60, "c gave b's address up")
        before = learned(c, b.url)
        assert c.process is not None
        c.process.send_signal(signal.SIGSTOP)  # no members round until the proxy is shut
        try:
            b.extra_args = [*serve_args(advertise_url=b.url)]  # dials no one: a dials it
            b.start()
            wait_until(lambda: b_id in linked_ids(a) and members_asked(b) >= 1, 60,
                       "a linked with b through the proxy, b's own list asked")
            proxy.shut()
        finally:
            c.process.send_signal(signal.SIGCONT)
        # a's list names b's advertised address once a has taken in b's hello on the
        # new link, which may come after b's own list was asked.
        def listed() -> dict[str, dict[str, Any]] | None:
            rows = member_rows(a)
            return rows if b.url in rows else None

        rows = wait_until(listed, 60, "a lists b's advertised address again")
        assert (rows[b.url]["linked"], rows[b.url]["node_linked"]) == (True, True)
        assert rows[proxy_url(proxy)]["linked"] is True
        wait_until(lambda: any(row["url"] == b.url and row["node_id"] == b_id
                               and row["state"] == "up" for row in peer_rows(c)), 60,
                   "c dialed b's advertised address and linked")
        assert learned(c, b.url) == before + 1
        assert b.url not in held_off(c)
