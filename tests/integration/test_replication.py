"""Replication between real node processes: concurrent writers on every node, a node
killed with SIGKILL in the middle of a catch-up, and clocks hours off.

Every test ends with the same check (``cluster.assert_same_state``): every acknowledged
event is on every node, once, and every node serves the same projections and Automerge
documents.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from crdt.clock import DRIFT_MAX_MS, MS_MAX
from tests.support.cluster import (
    Cluster,
    all_events,
    append,
    assert_same_state,
    backlog,
    head,
    message,
    peer_rows,
    projection,
    proxy_url,
    sort_key,
    wait_converged,
    wait_until,
    write_concurrently,
)
from tests.support.processes import NodeProcess

pytestmark = pytest.mark.integration

SHARED = ["shared:alpha", "shared:beta", "agent:main:telegram:bot1:dm:u1"]
HOUR_MS = 3_600_000


def links_up(node: NodeProcess, count: int) -> bool:
    return sum(row["state"] == "up" for row in peer_rows(node)) >= count


def test_three_nodes_writing_the_same_sessions_converge(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        a = cluster.node("a", advertise=True)
        b = cluster.node("b", peers=[a.url], advertise=True)
        c = cluster.node("c", peers=[a.url], advertise=True)
        nodes = [a, b, c]
        wait_until(lambda: links_up(b, 1) and links_up(c, 1) and links_up(a, 2), 30,
                   "b and c linked to a")

        acknowledged = asyncio.run(write_concurrently(
            nodes, SHARED, writers_per_node=4, requests=25, seed=1))
        # The same event (a client retry with its own timestamp) sent to every node is
        # one event: each node stores it under its own origin, and replication must not
        # store it twice anywhere.
        retry = message("sent to every node", hlc=[int(time.time() * 1000), 7])
        retried = {stored["id"] for node in nodes for stored in append(node, SHARED[0],
                                                                         [retry])}
        assert len(retried) == 1

        ids = wait_converged(nodes, must_hold=set(acknowledged) | retried)
        assert ids == set(acknowledged) | retried  # nothing else appeared
        assert set(acknowledged.values()) == {"a", "b", "c"}
        assert_same_state(nodes, ids)


def kill_during_catch_up(victim: NodeProcess, watched: NodeProcess, reached: int,
                         total: int) -> int:
    """SIGKILL ``victim`` once ``watched`` holds ``reached`` of ``total`` events (and not
    all of them), then start it again; returns the head seen just before the kill."""
    seen = wait_until(lambda: (h := head(watched)) >= reached and h, 60,
                      f"{watched.name} holds {reached} events", poll_s=0.02)
    assert seen < total, f"the catch-up ended before the kill ({seen} of {total})"
    victim.kill(signal.SIGKILL)
    victim.start()
    return int(seen)


def test_sigkill_in_the_middle_of_a_catch_up_loses_and_duplicates_nothing(
        tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        a = cluster.node("a")
        from_a = backlog(a, "backlog", 12_000)
        # b reaches a through a link of about 600 kB/s, so the ~2 MB catch-up takes a few
        # seconds: long enough to be interrupted three times.
        slow = cluster.slow_link(a, bytes_per_s=600_000)
        b = cluster.node("b", peers=[proxy_url(slow)], start=False)
        b.start()
        from_b = backlog(b, "b-own", 1_000)  # b's own events travel the other way
        total = len(from_a) + len(from_b)

        seen = [kill_during_catch_up(b, b, total // 5, total),        # the receiver
                kill_during_catch_up(a, b, total // 2, total),        # the sender
                kill_during_catch_up(b, b, total * 4 // 5, total)]    # the receiver
        assert seen == sorted(seen)

        ids = wait_converged([a, b], must_hold=from_a | from_b)
        assert ids == from_a | from_b
        assert_same_state([a, b], ids)


def test_far_future_timestamps_replicate_without_dragging_clocks(tmp_path: Path) -> None:
    key = "clock:skewed"
    with Cluster(tmp_path) as cluster:
        a = cluster.node("a")
        b = cluster.node("b", peers=[a.url])
        now_ms = int(time.time() * 1000)
        sent = [
            message("normal, before"),
            message("three hours ahead", hlc=[now_ms + 3 * HOUR_MS, 0]),
            message("three hours ahead, later", hlc=[now_ms + 3 * HOUR_MS, 5]),
            message("in the year 9999", hlc=[MS_MAX, 0]),
            message("three hours behind", hlc=[now_ms - 3 * HOUR_MS, 0]),
        ]
        stored = append(a, key, sent)
        ids = {event["id"] for event in stored}
        wait_converged([a, b], must_hold=ids)

        # The next event each node stamps itself follows its own wall clock (at most
        # DRIFT_MAX_MS ahead), not the far-future timestamps it has seen.
        for node in (b, a):
            before_ms = int(time.time() * 1000)
            (event,) = append(node, key, [message(f"normal, after, on {node.name}")])
            after_ms = int(time.time() * 1000)
            assert before_ms <= event["hlc"][0] <= after_ms + DRIFT_MAX_MS, event
            ids.add(event["id"])

        b.restart()  # the persisted clock is not hours ahead either
        before_ms = int(time.time() * 1000)
        (event,) = append(b, key, [message("normal, after a restart")])
        assert event["hlc"][0] <= int(time.time() * 1000) + DRIFT_MAX_MS
        assert event["hlc"][0] >= before_ms
        ids.add(event["id"])

        assert wait_converged([a, b], must_hold=ids) == ids
        assert_same_state([a, b], ids)
        for node in (a, b):
            events = all_events(node, f"/v1/sessions/{key}/events")
            in_order = [e["id"] for e in sorted(events, key=sort_key)]
            view = projection(node, key)
            assert [m["id"] for m in view["messages"]] == in_order
            assert [m["key"] for m in view["messages"]] == sorted(
                m["key"] for m in view["messages"])
            # The far-future events sort last, the one from the past first.
            contents = [m["content"] for m in view["messages"]]
            assert contents[0] == "three hours behind"
            assert contents[-3:] == ["three hours ahead", "three hours ahead, later",
                                     "in the year 9999"]
            assert view["last_activity"] == "9999-12-31T23:59:59.999Z"


def test_a_node_with_accepted_peer_links_stops_promptly_on_sigterm(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        a = cluster.node("a")
        cluster.node("b", peers=[a.url])
        wait_until(lambda: links_up(a, 1), 30, "b linked to a")
        # kill() sends SIGTERM, waits STOP_TIMEOUT_S, then SIGKILLs (exit code -9).
        assert a.kill(signal.SIGTERM) == 0
        assert "stopped" in a.log_tail(3)
