"""Replication between real node processes: concurrent writers on every node, a node
killed with SIGKILL in the middle of a catch-up, and clocks hours off.

Every test ends with the same check (``cluster.assert_same_state``): every acknowledged
event is on every node, once, and every node serves the same projections and Automerge
documents.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.error
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from crdt.clock import DRIFT_MAX_MS, MS_MAX
from crdt.events import Event, parse_event
from sync.peer.messages import Ack, Events, Hello, Item, encode, parse
from tests.support.cluster import (
    SECRET,
    Cluster,
    append,
    assert_same_state,
    backlog,
    head,
    message,
    peer_rows,
    projection,
    proxy_url,
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


def refused_with(node: NodeProcess, key: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    """POST ``events`` expecting a refusal; the error object of the answer."""
    with pytest.raises(urllib.error.HTTPError) as caught:
        append(node, key, events)
    assert caught.value.code == 400
    error: dict[str, Any] = json.loads(caught.value.read())["error"]
    return error


async def send_as_peer(node: NodeProcess, batch: Events) -> object:
    """Send ``batch`` over the peer websocket (with the cluster secret); the node's first
    answer that is not its own hello or batch."""
    headers = {"Authorization": f"Bearer {SECRET}", "X-Clawsync-Node": "fast-peer"}
    async with aiohttp.ClientSession() as http, http.ws_connect(
            node.url + "/peer/v1/ws", headers=headers) as ws:
        await ws.send_bytes(encode(batch))
        while True:
            answer = await ws.receive(timeout=30)
            assert answer.type == aiohttp.WSMsgType.BINARY, answer
            parsed = parse(answer.data)
            if not isinstance(parsed, Hello | Events):
                return parsed


def test_far_future_timestamps_never_win(tmp_path: Path) -> None:
    key = "clock:skewed"
    with Cluster(tmp_path) as cluster:
        a = cluster.node("a")
        b = cluster.node("b", peers=[a.url])
        now_ms = int(time.time() * 1000)
        before = append(a, key, [message("normal, before"),
                                 message("three hours behind", hlc=[now_ms - 3 * HOUR_MS, 0])])
        ids = {event["id"] for event in before}
        wait_converged([a, b], must_hold=ids)

        # A client's far-future timestamp: 400, and nothing of the request is stored.
        for late in ([now_ms + 3 * HOUR_MS, 0], [MS_MAX, 0]):
            error = refused_with(a, key, [message("fine"), message("from a fast clock",
                                                                   hlc=late)])
            assert (error["code"], error["field"]) == ("timestamp_ahead",
                                                       "events[1].timestamp")
        assert head(a) == 2 + 1  # and a's device key's record

        # A peer's: left out of its batch, the rest stored; it wins nothing.
        forever = parse_event({"agent_id": "main", "hlc": [MS_MAX, 0], "kind": {
            "type": "session_ended", "reason": "in the year 9999"}}, session_key=key)
        fine = parse_event(message("from the peer, on time", hlc=[now_ms, 7]),
                           session_key=key)
        assert isinstance(forever, Event) and isinstance(fine, Event)
        answer = asyncio.run(send_as_peer(a, Events((Item("fastpeer00000001", 1, forever),
                                                     Item("fastpeer00000002", 1, fine)))))
        assert isinstance(answer, Ack)
        assert answer.version.get("fastpeer00000001", 0) == 0
        assert answer.version["fastpeer00000002"] == 1
        ids.add(fine.id.hex())

        # The next event each node stamps itself follows its own wall clock.
        for node in (b, a):
            before_ms = int(time.time() * 1000)
            (event,) = append(node, key, [message(f"normal, after, on {node.name}")])
            assert before_ms <= event["hlc"][0] <= int(time.time() * 1000) + DRIFT_MAX_MS
            ids.add(event["id"])

        assert wait_converged([a, b], must_hold=ids) == ids
        assert_same_state([a, b], ids)
        for node in (a, b):
            view = projection(node, key)
            assert view["state"] == "active"
            assert view["last_activity"] < "9999"
            contents = [m["content"] for m in view["messages"]]
            assert contents[0] == "three hours behind"
            assert "from the peer, on time" in contents


def test_a_node_with_accepted_peer_links_stops_promptly_on_sigterm(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        a = cluster.node("a")
        cluster.node("b", peers=[a.url])
        wait_until(lambda: links_up(a, 1), 30, "b linked to a")
        # kill() sends SIGTERM, waits STOP_TIMEOUT_S, then SIGKILLs (exit code -9).
        assert a.kill(signal.SIGTERM) == 0
        assert "stopped" in a.log_tail(3)
