"""Retiring an origin across real nodes: a wiped device's old data folder is retired on
one node, every node drops it from its version vector, late copies of its events are not
stored again, a new event under it is refused, a restored copy of the folder writes on
under a new origin without losing anything, and replication keeps working."""

from __future__ import annotations

import asyncio
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from crdt import codec
from crdt.log.store import EventStore
from node.peers.transport import NODE_HEADER, PEER_PATH
from sync.peer.messages import Events, Hello, Item, encode
from tests.support.cluster import (
    SECRET,
    Cluster,
    all_events,
    append,
    assert_same_state,
    message,
    wait_converged,
    wait_until,
)
from tests.support.events import event
from tests.support.processes import NodeProcess, run_cli

pytestmark = pytest.mark.integration

STRANGER = "5e4d000000000000"


def origins(node: NodeProcess) -> dict[str, dict[str, Any]]:
    return {row["origin"]: row for row in node.get("/v1/origins")["origins"]}


def hello_version(node: NodeProcess) -> dict[str, int]:
    """The version vector the node's hellos carry: its active origins."""
    return {o: row["seq"] for o, row in origins(node).items() if row["state"] != "retired"}


async def send_as_peer(node: NodeProcess, items: list[Item]) -> dict[str, Any]:
    """Send one batch over a peer link, as a node that holds a copy of the old folder
    would; returns the node's ``/v1/peers`` row for that link once it acknowledged."""
    async with aiohttp.ClientSession() as http, http.ws_connect(
            node.url + PEER_PATH, max_msg_size=0,
            headers={"Authorization": f"Bearer {SECRET}", NODE_HEADER: STRANGER}) as ws:
        await ws.send_bytes(encode(Hello(STRANGER, {})))
        await ws.send_bytes(encode(Events(tuple(items))))
        async for frame in ws:
            if codec.decode(frame.data)["type"] == "ack":
                break
        async with http.get(node.url + "/v1/peers") as answer:
            rows = (await answer.json())["peers"]
        return next(row for row in rows if row["node_id"] == STRANGER)


def test_a_wiped_devices_old_origin_is_retired_everywhere(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        a = cluster.node("a")
        b = cluster.node("b", peers=[a.url])
        c = cluster.node("c", peers=[a.url, b.url])
        old_ids = {e["id"] for e in append(c, "phone", [message(f"old {n}") for n in range(5)])}
        wait_converged([a, b, c], must_hold=old_ids)
        old = c.get("/healthz")["node_id"]
        # The device is wiped and set up again: a new data folder, a new origin.
        c.kill(signal.SIGTERM)
        backup = tmp_path / "c-backup"
        shutil.copytree(c.data_dir, backup)
        shutil.rmtree(c.data_dir)
        c.start()
        assert c.get("/healthz")["node_id"] != old
        ids = wait_converged([a, b, c], must_hold=old_ids)
        assert all(old in hello_version(n) for n in (a, b, c))

        listed = run_cli(b, "origins")
        assert listed.returncode == 0 and old in listed.stdout and "active" in listed.stdout
        retired = run_cli(b, "origins", "retire", old)
        assert retired.returncode == 0, retired.stderr
        # 6: the device's key record (its seq 1) and its 5 events.
        assert f"{old} retired at seq 6" in retired.stdout
        again = run_cli(b, "origins", "retire", old)
        assert again.returncode == 0 and "already retired" in again.stdout

        def dropped_everywhere() -> bool:
            return all(origins(n)[old]["state"] == "retired" and old not in hello_version(n)
                       for n in (a, b, c))

        wait_until(dropped_everywhere, 60, "every node dropped the old origin")
        for node in (a, b, c):
            row = origins(node)[old]
            assert (row["seq"], row["final_seq"], row["events"]) == (6, 6, 6)
            assert row["last_activity"] is not None
        # Its events stay where they were, and readable.
        assert len([e for e in all_events(a) if e["id"] in old_ids]) == 5

        # Late copies from the old folder are acknowledged and not stored again; an
        # event claiming the old origin past its final seq is refused.
        with EventStore.open(backup) as copy:
            held = copy.origin_after(old, 0)
        head = a.get("/healthz")["head"]
        beyond = event(ms=int(time.time() * 1000), session="phone", content="after the wipe")
        row = asyncio.run(send_as_peer(a, [*(Item(old, s.seq, s.event) for s in held),
                                           Item(old, 7, beyond)]))
        assert row["events_late"] == 6 and row["events_refused"] == 1 and row["faults"] == 0
        assert a.get("/healthz")["head"] == head
        assert beyond.id.hex() not in {e["id"] for e in all_events(a)}

        # The old folder itself comes back (restored from its backup) and wrote before
        # it heard of the retirement: it takes a new origin, and its event travels.
        d = cluster.node("d", start=False)
        shutil.copytree(backup, d.data_dir)
        d.start()
        assert d.get("/healthz")["node_id"] == old
        stranded = {e["id"] for e in append(d, "phone", [message("written by the copy")])}
        d.stop()
        d.extra_args += ["--peer", a.url]
        d.start()
        ids = wait_converged([a, b, c, d], must_hold=ids | stranded)
        wait_until(lambda: d.get("/healthz")["node_id"] != old, 30, "d took a new origin")
        assert origins(d)[old]["state"] == "retired"

        # Replication keeps working, and every node holds the same state.
        after = {e["id"] for e in append(b, "phone", [message("after the retirement")])}
        ids = wait_converged([a, b, c, d], must_hold=ids | after)
        assert_same_state([a, b, c, d], ids)
        assert all(old not in hello_version(n) for n in (a, b, c, d))
