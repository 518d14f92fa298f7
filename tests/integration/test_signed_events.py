"""Signed events between real node processes.

* An authenticated peer (it holds the cluster secret) sends an event under another
  device's bound origin, with a valid id but no signature, a signature of another key,
  or bytes that are no signature: the node refuses it (not stored, not acknowledged),
  keeps the link, and the event reaches no node of the cluster.
* A data folder written before events were signed (unsigned events, a random origin)
  starts: its events stay valid and replicate to a new node, its random origin is
  retired and the node writes under an origin bound to its key.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from crdt import device
from crdt.events import parse_event
from crdt.log.store import EventStore
from crdt.signing import Signer
from sync.peer.messages import About, Ack, Events, Hello, Item, encode, parse
from tests.support.cluster import (
    Cluster,
    all_events,
    append,
    appended_ids,
    message,
    wait_converged,
    wait_until,
)
from tests.support.peer_attack import attack, sealed

pytestmark = pytest.mark.integration

#: What the attacker says it runs: a node that signs (so a missing signature is its fault).
SIGNS = About("9.9.9", 1, retires=True, forgets=True, signs=True)


def test_an_event_under_another_devices_origin_without_its_signature_reaches_no_node(
        tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        a = cluster.node("a")
        b = cluster.node("b", peers=[a.url])
        c = cluster.node("c", peers=[a.url])
        first = {e["id"] for e in append(b, "victim", [message(f"b's {n}") for n in range(3)])}
        wait_converged([a, b, c], must_hold=first)
        b_id = b.get("/healthz")["node_id"]
        seq = max(e["seq"] for e in all_events(a) if e["origin"] == b_id)
        now_ms = int(time.time() * 1000)
        intruder = Signer(device.generate(), "intruder")
        forged = {}
        for n, how in enumerate(["none", "zeros", "another key"]):
            event = sealed(f"written as b by someone else ({how})", now_ms + n, key="victim")
            signature = {"none": None, "zeros": bytes(64),
                         "another key": intruder.sign(event.id, b_id, seq + 1)}[how]
            forged[how] = event
            for about in (SIGNS, None):  # a peer that signs, and one that does not
                answer = asyncio.run(attack(
                    a.url, encode(Hello("attacker-node", {}, about=about)),
                    encode(Events((Item(b_id, seq + 1, event, signature),)))))
                assert answer.type == aiohttp.WSMsgType.BINARY, f"{how}: {answer}"
                ack = parse(answer.data)
                assert isinstance(ack, Ack) and ack.version[b_id] == seq, how  # not taken
        (real,) = append(b, "victim", [message("b's real next event")])
        wait_converged([a, b, c], must_hold=first | {real["id"]})
        assert real["seq"] == seq + 1
        for node in (a, b, c):
            held = {e["id"] for e in all_events(node)}
            assert not held & {event.id.hex() for event in forged.values()}, node.name


def test_a_folder_written_before_signing_keeps_its_events_and_takes_a_bound_origin(
        tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        old = cluster.node("old", start=False)
        old.data_dir.mkdir(parents=True)
        with EventStore.open(old.data_dir) as store:  # as a node of an earlier version
            drafts = [parse_event(message(f"before signing {n}", hlc=[1_700_000_000_000 + n, 0]),
                                  session_key="history") for n in range(5)]
            stored = store.append_batch(drafts)
            random_origin = store.node_id
        before = {result.stored.event.id.hex() for result in stored}
        assert not (old.data_dir / "device.key").exists()
        old.start()
        origins = {row["origin"]: row for row in old.get("/v1/origins")["origins"]}
        assert origins[random_origin]["state"] == "retired"
        assert origins[random_origin]["final_seq"] == 5
        own = next(row["origin"] for row in origins.values() if row["own"])
        key = (old.data_dir / "device.key").read_bytes()
        assert own == Signer(device.load_private_pem(key), "x").origin(0)
        after = {e["id"] for e in append(old, "history", [message("after signing")])}

        new = cluster.node("new", peers=[old.url])
        ids = wait_converged([old, new], must_hold=before | after)
        on_new = {e["id"]: e for e in all_events(new)}
        assert {on_new[i]["origin"] for i in before} == {random_origin}
        assert {on_new[i]["origin"] for i in after} == {own}
        assert appended_ids(on_new.values()) == ids
        wait_until(lambda: any(row["origin"] == random_origin and row["state"] == "retired"
                               for row in new.get("/v1/origins")["origins"]), 30,
                   "the new node retired the random origin too")
