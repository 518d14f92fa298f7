"""Peers that prove no device key, as real processes (``tests.support.keyless_node``: a
node of 0.2, or one leaving its proof out), linked by the cluster secret. While no
device was added or removed they link both ways (a cluster part way through the upgrade
the README gives); from the first membership record on they are refused both ways, links
up closed, with ``device_key_required``, unless ``--keyless-peers`` lets them: so a
removed phone holding the secret cannot link again by leaving its key out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import (
    Cluster,
    all_events,
    append,
    message,
    peer_rows,
    request,
    serve_args,
    wait_until,
)
from tests.support.devices import device_id, linked_devices
from tests.support.processes import NodeProcess, run_cli
from tests.support.waits import PROCESS_DEADLINE_S

pytestmark = pytest.mark.integration

KEYLESS = "tests.support.keyless_node"
REFUSED = "peer refused: no device key"
#: Redials within a fraction of a second, so that a node back from a stop is dialed soon.
FAST_SYNC = "[sync]\nbackoff_base_s = 0.05\nbackoff_max_s = 0.2\n"


def fast(tmp_path: Path) -> list[str]:
    config = tmp_path / "fast.toml"
    config.write_text(FAST_SYNC)
    return ["--config", str(config), "--members-interval", "0.5", "--log-format", "json"]


def node(cluster: Cluster, name: str, peers: list[str], *, program: str = "node.main",
         start: bool = True, extra: tuple[str, ...] = ()) -> NodeProcess:
    """A node of the cluster (the cluster secret, JSON logs, quick redials)."""
    process = NodeProcess(cluster.tmp_path, name=name, program=program)
    process.extra_args = [*serve_args(peers), *fast(cluster.tmp_path), *extra]
    return cluster.add(process, start)


def refusals(node: NodeProcess) -> list[dict[str, Any]]:
    """The lines ``node`` logged on refusing a peer that proved no key."""
    lines = [json.loads(line) for line in node.log_path.read_text().splitlines()
             if line.startswith("{")]
    return [line for line in lines if line.get("event") == REFUSED]


def refused_both_ways(node: NodeProcess, dialed: str) -> bool:
    """``node`` refused a keyless peer it dialed at ``dialed``, and one that dialed it."""
    peers = {line["peer"] for line in refusals(node)}
    return dialed in peers and any(peer != dialed for peer in peers)


def told(node: NodeProcess, words: str) -> bool:
    """Whether ``node`` logged a link to a peer going down, or a dial of one failing,
    for ``words``."""
    lines = [json.loads(line) for line in node.log_path.read_text().splitlines()
             if line.startswith("{")]
    return any(words in str(line.get("reason")) for line in lines
               if line.get("event") in ("peer link down", "peer dial failed"))


def closed_keyless(node: NodeProcess) -> set[str]:
    """The links ``node`` let in and then closed, a record having come, on a peer that
    proved no key (dialed: by address; accepted: ``in:<node>:<n>``). One refused at its
    dial or handshake is closed before its loop runs: not logged as down."""
    lines = [json.loads(line) for line in node.log_path.read_text().splitlines()
             if line.startswith("{")]
    return {line["peer"] for line in lines if line.get("event") == "peer link down"
            and line.get("reason") == "device_key_required"}


def faulted(node: NodeProcess) -> bool:
    """Whether ``node`` dropped a link for a protocol fault: a keyless node never does
    (``tests.support.keyless_node``), so its links end by the other node's doing."""
    return "peer misbehaved; link dropped" in node.log_path.read_text()


def holds(node: NodeProcess, event_id: str) -> bool:
    return event_id in {event["id"] for event in all_events(node)}


def links_up(node: NodeProcess) -> int:
    return len([row for row in peer_rows(node) if row["state"] == "up"])


def test_a_removed_device_leaving_its_key_out_is_refused_both_ways(tmp_path: Path) -> None:
    """The lost phone holds the cluster secret: restarted without proving its key, it is
    not taken for a node of 0.2. a refuses it when it dials a (403), and when a dials
    it at an address a was given (its link is closed before anything is pushed), and
    says why."""
    with Cluster(tmp_path) as cluster:
        a = node(cluster, "a", [])
        p = node(cluster, "p", [a.url])
        phone = device_id(p)
        request(a, "POST", "/v1/devices", {"device_id": phone, "name": "phone"})
        wait_until(lambda: phone in linked_devices(a), PROCESS_DEADLINE_S, "a linked with p")
        p.stop()
        done = run_cli(a, "devices", "remove", phone, "--reason", "lost")
        assert done.returncode == 0, done.stderr
        after = append(a, "s1", [message("after the removal")])[0]["id"]

        # Leaving its key out, it takes any holder of the secret itself (a's dial too).
        p.program = KEYLESS
        p.extra_args.append("--keyless-peers")
        p.start()
        # a is told p's address anew (a link to a removed device's address, up or being
        # dialed when the removal arrived, is not dialed again).
        a.stop()
        a.extra_args += ["--peer", p.url]
        a.start()
        wait_until(lambda: refused_both_ways(a, p.url), PROCESS_DEADLINE_S,
                   "a refused p both ways")
        assert {line["code"] for line in refusals(a)} == {"device_key_required"}
        assert not holds(p, after) and links_up(a) == 0
        # Its dial is answered 403; a's dial of it closes with the code.
        wait_until(lambda: told(p, "403") and told(p, "close: device_key_required"),
                   PROCESS_DEADLINE_S, "p told why, both ways")
        assert not faulted(p)


def test_keyless_peers_link_until_a_device_is_recorded(tmp_path: Path) -> None:
    """Upgrading a 0.2 cluster (README, Pairing), nodes without keys link both ways while
    no device was added or removed. The first add closes their links, and both ways they
    are refused; a node with ``--keyless-peers`` links with them both ways still."""
    with Cluster(tmp_path) as cluster:
        # As nodes of 0.2 they take every holder of the secret: the membership records
        # reach them too, and their admission is this version's.
        old = ("--keyless-peers",)
        dialed = node(cluster, "dialed", [], program=KEYLESS, extra=old)
        a = node(cluster, "a", [dialed.url])
        dialing = node(cluster, "dialing", [a.url], program=KEYLESS, extra=old)
        first = append(a, "s1", [message("before any device")])[0]["id"]
        wait_until(lambda: holds(dialed, first) and holds(dialing, first), PROCESS_DEADLINE_S,
                   "both keyless nodes took a's event")

        other = device_id(dialed)  # any device id will do: a record now counts
        request(a, "POST", "/v1/devices", {"device_id": other, "name": "a device"})
        wait_until(lambda: refused_both_ways(a, dialed.url), PROCESS_DEADLINE_S,
                   "a closed and refused both keyless nodes")
        wait_until(lambda: links_up(a) == 0, PROCESS_DEADLINE_S, "a's links with them closed")
        # a closed them, up, with the code: the link it dialed, and the one dialed to it
        # (the keyless nodes take a's hello and records as they come). A link is said
        # down before its close is done and logged: the log is waited for.
        ids = {keyless.url: keyless.get("/v1/node")["node_id"] for keyless in (dialed, dialing)}

        def each_closed_by_a() -> bool:
            ended = closed_keyless(a)
            return all(any(peer == url or peer.startswith(f"in:{node_id}:") for peer in ended)
                       for url, node_id in ids.items())  # a link each kept

        wait_until(each_closed_by_a, PROCESS_DEADLINE_S,
                   "a logged closing a link of each keyless node")
        assert not faulted(dialed) and not faulted(dialing)
        second = append(a, "s1", [message("after the first device")])[0]["id"]
        assert not holds(dialed, second) and not holds(dialing, second)

        # c takes a's records and events over a keyed link, and relays them to a keyless
        # node it dials and to one that dials it, once it holds the records too.
        c = node(cluster, "c", [a.url, dialed.url], extra=("--keyless-peers",))
        wait_until(lambda: holds(c, second), PROCESS_DEADLINE_S, "c took a's records and events")
        late = node(cluster, "late", [c.url], program=KEYLESS, extra=old)
        wait_until(lambda: holds(dialed, second) and holds(late, second), PROCESS_DEADLINE_S,
                   "both keyless nodes took a's later event through c")
        assert refusals(c) == []
