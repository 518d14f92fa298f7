"""Retiring an origin across real nodes: a wiped device's old data folder is retired on
one node, every node drops it from its version vector, late copies of its events are not
stored again, a new event under it is refused, a restored copy of the folder writes on
under a new origin without losing anything, and replication keeps working."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import time
import urllib.error
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
    peer_rows,
    request,
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


def _device_id(node: NodeProcess) -> str:
    found: str = node.get("/v1/node")["device_id"]
    return found


def _node_id(node: NodeProcess) -> str:
    found: str = node.get("/healthz")["node_id"]
    return found


def _linked(node: NodeProcess, other: NodeProcess) -> bool:
    return any(row["state"] == "up" and row["node_id"] == _node_id(other)
               for row in peer_rows(node))


def test_an_origin_that_still_writes_is_retired_only_when_forced(tmp_path: Path) -> None:
    """Retiring a member device's current origin is refused (409, exit 1), naming the
    device and what to do, and writes nothing; with --force it is retired, and that
    device writes on under a new origin, which is refused in its turn. A peer linked by
    the cluster secret alone (no member) is known by its link."""
    fast = ["--members-interval", "0.5"]
    with Cluster(tmp_path) as cluster:
        a = cluster.node("a", secret=None, advertise=True, extra_args=[*fast, "--name", "a"])
        b = cluster.node("b", secret=None, peers=[a.url], advertise=True,
                         extra_args=[*fast, "--name", "phone"])
        added = run_cli(a, "devices", "add", _device_id(b), "--name", "phone")
        assert added.returncode == 0, added.stderr
        wait_until(lambda: _linked(a, b), 60, "b linked to a")
        ids = {e["id"] for e in append(b, "phone", [message("hi")])}
        wait_converged([a, b], must_hold=ids)
        first = _node_id(b)
        head = a.get("/healthz")["head"]

        refused = run_cli(a, "origins", "retire", first)
        assert refused.returncode == 1, refused.stdout
        assert f"{first} still writes: the member device phone ({_device_id(b)})" \
            in refused.stderr
        assert f"clawsync devices remove {_device_id(b)}" in refused.stderr
        assert "--force" in refused.stderr
        assert a.get("/healthz")["head"] == head and origins(a)[first]["state"] == "active"
        with pytest.raises(urllib.error.HTTPError) as answer:
            request(a, "DELETE", f"/v1/origins/{first}")
        assert answer.value.code == 409
        assert json.loads(answer.value.read())["error"]["code"] == "origin_live"

        forced = run_cli(a, "origins", "retire", first, "--force")
        assert forced.returncode == 0, forced.stderr
        assert f"{first} retired at seq" in forced.stdout
        wait_until(lambda: _node_id(b) != first, 60, "b under a new origin")
        later = {e["id"] for e in append(b, "phone", [message("on")])}
        wait_converged([a, b], must_hold=ids | later)
        second = _node_id(b)
        wait_until(lambda: second in origins(a), 60, "b's new origin on a")
        again = run_cli(a, "origins", "retire", second)
        assert again.returncode == 1 and "still writes" in again.stderr


def test_a_peer_linked_by_the_secret_names_the_origin_it_writes_under(
        tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        a = cluster.node("a")
        b = cluster.node("b", peers=[a.url])
        ids = {e["id"] for e in append(b, "s", [message("hi")])}
        wait_converged([a, b], must_hold=ids)
        wait_until(lambda: _linked(a, b), 60, "b linked to a")
        refused = run_cli(a, "origins", "retire", _node_id(b))
        assert refused.returncode == 1
        assert f"{_node_id(b)} still writes: the node linked from" in refused.stderr
        assert "devices remove" not in refused.stderr  # no member to remove
