"""Partitions and offline nodes, with real node processes and cut-able links.

b and c reach the hub a only through ``LinkProxy`` links. Cutting them splits the cluster
into three islands that keep accepting writes (to the same session, too); healing them
must bring every node to the same history, and ``GET /v1/peers`` / ``clawsync status``
must show the link going down and coming back, with the events each side lacks.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import (
    Cluster,
    all_events,
    append,
    assert_same_state,
    message,
    peer_rows,
    proxy_url,
    wait_converged,
    wait_until,
)
from tests.support.processes import NodeProcess, run_cli

pytestmark = pytest.mark.integration

SHARED = "split:shared"


def only_row(node: NodeProcess) -> dict[str, Any]:
    (row,) = peer_rows(node)
    return row


def write(node: NodeProcess, label: str, count: int) -> set[str]:
    """``count`` messages to the shared session and to one of ``node``'s own."""
    ids = set()
    for key in (SHARED, f"own:{node.name}"):
        stored = append(node, key, [message(f"{label} {node.name} #{n}") for n in range(count)])
        ids |= {event["id"] for event in stored}
    return ids


def status_json(node: NodeProcess) -> dict[str, Any]:
    result = run_cli(node, "status", "--json")
    assert result.returncode == 0, result.stderr
    view: dict[str, Any] = json.loads(result.stdout)
    return view


def status_line(node: NodeProcess, url: str) -> str:
    """The table row of ``clawsync status`` for the link to ``url`` (a line after the
    table may say why it backs off)."""
    result = run_cli(node, "status")
    assert result.returncode == 0, result.stderr
    (line,) = [line for line in result.stdout.splitlines() if line.split()[:1] == [url]]
    return line


def lacks(line: str) -> list[str]:
    """The "we lack" and "peer lacks" cells of a status row: those after its last contact
    (``N s ago``, ``N min ago``, ..., or ``just now``)."""
    return re.split(r" (?:ago|just now) ", line, maxsplit=1)[1].split()[:2]


def test_partition_heals_and_status_shows_the_links(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        a = cluster.node("a")
        to_a_from_b, to_a_from_c = cluster.proxy(a), cluster.proxy(a)
        b = cluster.node("b", peers=[proxy_url(to_a_from_b)])
        c = cluster.node("c", peers=[proxy_url(to_a_from_c)])
        nodes = [a, b, c]
        before = set().union(*(write(node, "before", 20) for node in nodes))
        wait_converged(nodes, must_hold=before)
        for node in (b, c):
            wait_until(lambda node=node: only_row(node)["state"] == "up", 30,
                       f"{node.name}'s link is up")

        to_a_from_b.cut()
        to_a_from_c.cut()
        for node in (b, c):
            wait_until(lambda node=node: only_row(node)["state"] in ("backoff", "connecting"),
                       30, f"{node.name} sees its link down")
        during = {node.name: write(node, "during", 30) for node in nodes}
        for node in nodes:  # three islands: each holds only its own new events
            held = {event["id"] for event in all_events(node)}
            for other in nodes:
                assert (during[other.name] <= held) == (other is node)

        # What b says while cut: the link waits to retry, and a lacks b's 60 new events.
        row = only_row(b)
        assert row["url"] == proxy_url(to_a_from_b)
        assert row["node_id"] == a.get("/healthz")["node_id"]
        assert row["events_peer_lacks"] >= 60
        view = status_json(b)
        assert view["node_id"] == b.get("/healthz")["node_id"]
        assert view["head"] == len(before) + 60 + len(nodes)  # and 3 device keys' records
        (shown,) = view["peers"]
        assert shown["state"] in ("backoff", "connecting") and shown["events_peer_lacks"] >= 60
        wait_until(lambda: " backoff " in status_line(b, proxy_url(to_a_from_b)), 30,
                   "clawsync status shows the link backing off")
        # What each side lacks is not known on a link that is down: no stale figures.
        assert lacks(status_line(b, proxy_url(to_a_from_b))) == ["-", "-"]

        to_a_from_b.heal()
        to_a_from_c.heal()
        everything = before.union(*during.values())
        ids = wait_converged(nodes, must_hold=everything)
        assert ids == everything
        assert_same_state(nodes, ids)

        for node in (b, c):
            wait_until(lambda node=node: (row := only_row(node))["state"] == "up"
                       and row["events_peer_lacks"] == 0 and row["events_we_lack"] == 0,
                       30, f"{node.name}'s link is up and even")
            line = status_line(node, only_row(node)["url"])
            assert " up " in line and lacks(line) == ["0", "0"], line
        assert " up " in status_line(b, proxy_url(to_a_from_b))
        rows = peer_rows(a)  # the hub sees both links, accepted
        assert sorted(r["node_id"] for r in rows if r["state"] == "up") == sorted(
            n.get("/healthz")["node_id"] for n in (b, c))


def test_node_written_offline_rejoins(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        a = cluster.node("a")
        to_a_from_c = cluster.proxy(a)
        b = cluster.node("b", peers=[a.url])
        c = cluster.node("c", peers=[proxy_url(to_a_from_c)])
        nodes = [a, b, c]
        before = set().union(*(write(node, "before", 10) for node in nodes))
        wait_converged(nodes, must_hold=before)

        c.kill(signal.SIGTERM)
        while_down = write(a, "while c is down", 25) | write(b, "while c is down", 25)
        # c starts alone: its only peer is unreachable, it serves and accepts writes.
        to_a_from_c.cut()
        c.start()
        offline = write(c, "offline", 25)
        wait_until(lambda: only_row(c)["state"] in ("backoff", "connecting"), 30,
                   "c cannot reach a")
        assert not offline & {event["id"] for event in all_events(a)}
        assert not while_down & {event["id"] for event in all_events(c)}

        to_a_from_c.heal()
        everything = before | while_down | offline
        ids = wait_converged(nodes, must_hold=everything)
        assert ids == everything
        assert_same_state(nodes, ids)
