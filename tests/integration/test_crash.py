"""A node killed with SIGKILL during concurrent appends loses no acknowledged event.

Writers append over HTTP as fast as they can; once enough appends have been acknowledged
the node process is killed mid-stream (other requests are still in flight), restarted on
the same data, and checked: every acknowledged event is there, positions are gap-free, and
every session's projection equals a rebuild from its events. Several rounds, one folder.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from crdt.events import Event, parse_event
from crdt.log.projection import rebuild
from tests.support.processes import NodeProcess

pytestmark = pytest.mark.integration

ROUNDS = 3
WRITERS = 16
SESSIONS = [f"crash:{n}" for n in range(5)]


def event_body(rng: random.Random, writer: int, n: int) -> list[dict[str, Any]]:
    """One to five events of assorted kinds, so projections have something to fold."""
    events = []
    for i in range(rng.randint(1, 5)):
        kind: dict[str, Any] = rng.choice([
            {"type": "message_received", "content": f"w{writer} n{n}.{i}"},
            {"type": "agent_response", "content": f"reply {n}", "model": "m"},
            {"type": "state_changed", "key": f"k{rng.randint(0, 3)}", "value": n},
            {"type": "session_started", "channel": f"c{writer}", "peer_id": "p"},
            {"type": "session_ended", "reason": "bye"},
        ])
        events.append({"agent_id": f"agent{writer % 3}", "kind": kind})
    return events


async def writer(http: aiohttp.ClientSession, url: str, number: int, seed: int,
                 acknowledged: dict[str, str]) -> None:
    """Append until the node goes away; record the ids of acknowledged events."""
    rng = random.Random(seed * 1000 + number)
    n = 0
    while True:
        key = rng.choice(SESSIONS)
        try:
            async with http.post(f"{url}/v1/sessions/{quote(key, safe='')}/events",
                                 json=event_body(rng, number, n)) as response:
                if response.status not in (200, 201):
                    raise AssertionError(f"append answered {response.status}: "
                                         f"{await response.text()}")
                body = await response.json()
        except (TimeoutError, aiohttp.ClientError):
            return  # the node was killed: this request was never acknowledged
        for stored in body["events"]:
            acknowledged[stored["id"]] = key
        n += 1


async def append_then_kill(node: NodeProcess, seed: int, kill_after: int) -> dict[str, str]:
    acknowledged: dict[str, str] = {}
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        tasks = [asyncio.create_task(writer(http, node.url, w, seed, acknowledged))
                 for w in range(WRITERS)]
        while len(acknowledged) < kill_after:
            if all(task.done() for task in tasks):
                raise AssertionError("every writer stopped before the kill")
            await asyncio.sleep(0.005)
        assert node.process is not None
        os.kill(node.process.pid, signal.SIGKILL)  # while requests are in flight
        await asyncio.gather(*tasks)
    node.kill(signal.SIGKILL)  # reap the process
    return acknowledged


def read_all(node: NodeProcess, path: str) -> list[dict[str, Any]]:
    """Every event behind a paged events endpoint."""
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        separator = "&" if "?" in path else "?"
        page = node.get(f"{path}{separator}after={after}&limit=1000")
        events += page["events"]
        after = page["next"]
        if not page["more"]:
            return events


def check_node(node: NodeProcess, acknowledged: dict[str, str]) -> None:
    everything = read_all(node, "/v1/events")
    positions = [event["position"] for event in everything]
    assert positions == list(range(1, len(everything) + 1)), "positions have gaps"
    stored_ids = {event["id"] for event in everything}
    lost = set(acknowledged) - stored_ids
    assert not lost, f"{len(lost)} acknowledged events are missing after the crash"
    assert len(stored_ids) == len(everything), "an event is stored twice"
    for key in SESSIONS:
        path = f"/v1/sessions/{quote(key, safe='')}"
        events = read_all(node, f"{path}/events")
        sealed = [parse_event(event) for event in events]
        assert all(isinstance(event, Event) for event in sealed)
        assert [e.id.hex() for e in sealed if isinstance(e, Event)] == [
            event["id"] for event in events], "a stored event no longer hashes to its id"
        expected = rebuild(key, [e for e in sealed if isinstance(e, Event)]).to_json()
        projection = node.get(path)
        projection.pop("automerge_url", None)
        assert projection.pop("forgotten") is False  # served beside it; nothing forgotten
        assert projection == expected


def test_sigkill_during_concurrent_appends_loses_no_acknowledged_event(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path, name="crash")
    acknowledged: dict[str, str] = {}
    rng = random.Random(20261121)
    try:
        for round_number in range(ROUNDS):
            node.start()
            if round_number:
                check_node(node, acknowledged)
            kill_after = len(acknowledged) + rng.randint(200, 600)
            acknowledged |= asyncio.run(append_then_kill(node, round_number, kill_after))
        node.start()
        check_node(node, acknowledged)
        assert len(acknowledged) >= 600
    finally:
        node.stop()
