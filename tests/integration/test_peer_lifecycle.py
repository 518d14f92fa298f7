"""Peer links over their whole life, with real processes: ordinary network faults are one
log line, a stop is short whatever the peers do, and two nodes share one link however
many addresses they are known by."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import struct
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from node.peers.transport import PEER_PATH
from tests.support.cluster import SECRET, Cluster, peer_rows, wait_until
from tests.support.flood import FLOODER, Appends, Flooded, append_while, flood, unless_set
from tests.support.processes import NodeProcess, free_port

pytestmark = pytest.mark.integration

FAST = ["--members-interval", "0.5"]
#: How long a flood may go on before the flooder must be shown throttled: the test stops
#: it as soon as it is, so this only bounds a failing run. A flooder starved of CPU sends
#: less, so its link falls behind its share later: measured, a few seconds on an idle
#: machine, up to 80 s with both cores busy (load average 12).
FLOOD_DEADLINE_S = 180.0
#: Client appends that must be answered while the flooder is held back.
APPENDS_WHILE_THROTTLED = 5
#: What a log must never hold after ordinary network faults.
BUG_SIGNS = ("Traceback", "Task was destroyed", "unexpected error", "peer link failed")


def _bug_lines(node: NodeProcess) -> list[str]:
    text = node.log_path.read_text(errors="replace")
    return [line for line in text.splitlines() if any(sign in line for sign in BUG_SIGNS)]


def _drop_mid_handshake(node: NodeProcess) -> None:
    """Send a valid websocket upgrade to the peer path, then reset the connection."""
    with socket.create_connection(("127.0.0.1", node.port), timeout=5) as sock:
        sock.sendall(
            f"GET {PEER_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            f"Authorization: Bearer {SECRET}\r\n\r\n".encode())
        # Linger 0: close sends a reset, as a peer that vanishes does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _up_links(node: NodeProcess) -> list[dict[str, object]]:
    return [row for row in peer_rows(node) if row["state"] == "up"]


def test_dropped_handshakes_and_a_killed_peer_are_one_line_each(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        hub = cluster.node("hub")
        peer = cluster.node("peer", peers=[hub.url])
        wait_until(lambda: _up_links(hub), 30, "the peer linked to the hub")
        for _ in range(20):
            _drop_mid_handshake(hub)
        peer.kill(signal.SIGKILL)
        wait_until(lambda: not _up_links(hub), 60, "the hub saw the link end")
        hub.stop()
        assert hub.process is not None and hub.process.returncode == 0
        assert _bug_lines(hub) == []
        assert "peer link down" in hub.log_path.read_text()


#: Dials of a closed port seen before its log lines are counted.
FAILED_DIALS = 4


def _dial_lines(node: NodeProcess, url: str) -> list[dict[str, Any]]:
    """``node``'s log lines of its failed dials of ``url``, at any level."""
    lines = [json.loads(line) for line in node.log_path.read_text().splitlines()
             if line.startswith("{")]
    return [line for line in lines
            if line.get("event") == "peer dial failed" and line.get("peer") == url]


def test_a_peer_never_reached_says_so_once_not_at_every_dial(tmp_path: Path) -> None:
    """A ``--peer`` where nothing listens is dialed again and again: its failure is said
    once at info, the dials after it (which fail the same way) at debug only, and no
    link that never came up is said to go down."""
    closed = f"http://127.0.0.1:{free_port()}"
    config = tmp_path / "sync.toml"
    config.write_text("[sync]\nbackoff_base_s = 0.05\nbackoff_max_s = 0.1\n")
    with Cluster(tmp_path) as cluster:
        node = cluster.node("lonely", peers=[closed], extra_args=[
            "--log-format", "json", "--config", str(config)])
        wait_until(lambda: len(_dial_lines(node, closed)) >= FAILED_DIALS, 30,
                   f"{FAILED_DIALS} dials of a closed port")
        node.stop()
    dials = _dial_lines(node, closed)
    assert [line["level"] for line in dials] == ["info"] + ["debug"] * (len(dials) - 1)
    assert {line["reason"] for line in dials} == {f"cannot reach {closed}: connection refused"}
    assert "peer link down" not in node.log_path.read_text()


def test_a_stop_is_short_while_a_peer_is_paused(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        first = cluster.node("first")
        second = cluster.node("second", peers=[first.url])
        first.extra_args += ["--peer", second.url]
        first.restart()
        # A live peer too, that dials again as soon as its link drops.
        cluster.node("third", peers=[first.url])
        wait_until(lambda: len({r["node_id"] for r in _up_links(first)}) == 2, 30,
                   "first linked to second and third")
        assert second.process is not None
        second.process.send_signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            # Generous: a node that never stops is killed by kill() after this long.
            code = first.kill(signal.SIGTERM, timeout_s=60)
            stop_s = time.monotonic() - started
        finally:
            second.process.send_signal(signal.SIGCONT)
        print(f"stop took {stop_s:.2f} s with a paused peer")
        assert code == 0, first.log_tail()
        # The node's own shutdown_timeout_s is 10 s: a stop must not lean on it.
        assert stop_s < 10.0, f"stop took {stop_s:.1f} s"
        assert _bug_lines(first) == []


#: A wait for the peer's answer to our close far longer than a stop may take: a stopping
#: node must not wait it out (``node.peers.transport.STOP_CLOSE_WAIT_S``).
LONG_CLOSE_TIMEOUT_S = 30.0


def test_a_stop_does_not_wait_out_close_timeout_s_on_paused_peers(tmp_path: Path) -> None:
    """A node linked both ways (a link it dialed, one it accepted) to peers that are
    paused stops long before ``close_timeout_s``: it does not wait for their answers to
    its close frames (the accepted link's close did). Pings come too seldom to end the
    links first."""
    settings = tmp_path / "slow-close.toml"
    settings.write_text(f"[sync]\nclose_timeout_s = {LONG_CLOSE_TIMEOUT_S:g}\n"
                        f"heartbeat_s = {4 * LONG_CLOSE_TIMEOUT_S:g}\n")
    with Cluster(tmp_path) as cluster:
        dialed = cluster.node("dialed")
        node = cluster.node("node", peers=[dialed.url], extra_args=["--config", str(settings)])
        dialer = cluster.node("dialer", peers=[node.url])
        wait_until(lambda: len({r["node_id"] for r in _up_links(node)}) == 2, 30,
                   "the node linked to both peers")
        paused = [peer.process for peer in (dialed, dialer) if peer.process is not None]
        for process in paused:
            process.send_signal(signal.SIGSTOP)
        try:
            assert node.process is not None
            node.process.send_signal(signal.SIGTERM)
            try:
                # Generous, yet short of what waiting on the peers would take.
                code = node.process.wait(LONG_CLOSE_TIMEOUT_S / 2)
            except subprocess.TimeoutExpired:
                pytest.fail(f"still running {LONG_CLOSE_TIMEOUT_S / 2:g} s after SIGTERM: "
                            f"{node.log_tail()}")
        finally:
            for process in paused:
                process.send_signal(signal.SIGCONT)
        assert code == 0, node.log_tail()
        assert _bug_lines(node) == []


def test_one_link_per_pair_of_nodes_whatever_their_addresses(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        a = cluster.node("a", advertise=True, extra_args=FAST)
        b = NodeProcess(tmp_path, name="b", port=free_port())
        # b knows a by two names, and itself (by two names too) as a peer.
        b.extra_args = ["--pull-interval", "0.2", "--cluster-secret", SECRET,
                        "--advertise-url", b.url, "--peer", a.url,
                        "--peer", f"http://localhost:{a.port}", "--peer", b.url,
                        "--peer", f"http://localhost:{b.port}", *FAST]
        cluster.add(b)
        c = cluster.node("c", peers=[b.url, f"http://localhost:{b.port}"], advertise=True,
                         extra_args=FAST)
        ids = {n.name: n.get("/healthz")["node_id"] for n in (a, b, c)}

        def one_link_each() -> bool:
            for node in (a, b, c):
                seen = [row["node_id"] for row in _up_links(node)]
                if sorted(seen) != sorted(v for k, v in ids.items() if k != node.name):
                    return False
            return True

        wait_until(one_link_each, 60, "each node linked once to each other node")
        time.sleep(5)  # members are relearned every 0.5 s: nothing may come back
        counts = {n.name: [r["node_id"] for r in _up_links(n)] for n in (a, b, c)}
        assert one_link_each(), counts
        warnings = sum(n.log_path.read_text().count("has our own node id") for n in (a, b, c))
        assert warnings == 0
        # Its own other name was dialed once, found to be itself, and dropped.
        said = b.log_path.read_text()
        assert said.count(f"cannot reach http://localhost:{b.port}") == 0
        assert said.count(f"cannot link with http://localhost:{b.port}") == 0
        assert "peer address is this node" in b.log_path.read_text()


def _cannot_succeed(node: NodeProcess, client: asyncio.Task[None], appends: Appends,
                    row: dict[str, Any] | None) -> str | None:
    """What, if anything, already makes the flood test fail however long it goes on:
    the node exited, the client stopped appending or had an append refused (the test
    wants every one answered 200 or 201), or the node ended the flooder's link (no
    wait can be shown on a link that is gone)."""
    if not node.running:
        assert node.process is not None
        return f"the node exited with {node.process.returncode}"
    if client.done():
        error = None if client.cancelled() else client.exception()
        return f"the client stopped appending: {error!r}"
    refused = sorted({status for status in appends.statuses if status not in (200, 201)})
    if refused:
        return f"the node answered client appends with {refused}"
    if row is not None and (row["state"] in ("down", "refused") or row.get("refused")):
        return f"the node ended the flooder's link ({row['state']}: {row.get('refused')})"
    return None


@dataclass
class FloodRun:
    """What the flood test saw: the flood, the client's appends, the flooder's last row
    (None if the node never listed it), the appends answered since that row first showed
    a wait (None if none did), the ``throttled_s`` once that held, and what stopped the
    run early, if anything did."""

    flooded: Flooded = field(default_factory=Flooded)
    appends: Appends = field(default_factory=Appends)
    row: dict[str, Any] | None = None
    answered_since_wait: int | None = None
    throttled_s: float | None = None
    ended: str | None = None

    def seen(self) -> str:
        """What a failure says."""
        row = "never listed" if self.row is None else ", ".join(
            f"{key} {self.row.get(key)}" for key in (
                "state", "throttled_s", "bytes_in", "faults", "last_contact_s_ago"))
        since = ("no wait ever shown" if self.answered_since_wait is None
                 else f"{self.answered_since_wait} answered since a wait first showed")
        return (f"{self.flooded.summary()}; {len(self.appends.statuses)} client appends, "
                f"{since}; the flooder's last row: {row}")


async def _flood_until_throttled(node: NodeProcess) -> FloodRun:
    """Flood ``node`` while a client appends, until the flooder's row shows it was made
    to wait and the client then had ``APPENDS_WHILE_THROTTLED`` more appends answered
    with its link still up, or ``FLOOD_DEADLINE_S`` passed, or the test can no longer
    pass (``_cannot_succeed``: then at once, not at the deadline). The flood's handshake
    and sends (one the node holds among them) and the client's appends end at the
    deadline or at that stop (``tests.support.flood``); after it, the flooder's link
    takes up to ``tests.support.flood.CLOSE_TIMEOUT_S`` to close, and a look at the
    node's peers still in flight up to its socket timeout (10 s for each wait of
    ``NodeProcess.get``).
    ``run.flooded`` holds what the flood did even when its link failed."""
    run, stop, done = FloodRun(), asyncio.Event(), asyncio.Event()

    async def watch() -> None:
        answered_before: int | None = None  # appends answered when the wait first showed
        while not stop.is_set():
            try:
                rows = await asyncio.to_thread(peer_rows, node)
            except (OSError, ValueError):  # a loaded node answers late: ask again
                rows = []
            row = next((r for r in rows if r["node_id"] == FLOODER), None)
            run.row = row or run.row
            reason = _cannot_succeed(node, client, run.appends, row)
            if reason is not None:
                run.ended = run.ended or reason
                stop.set()
            elif row is not None and row.get("throttled_s", 0.0) > 0:
                if answered_before is None:
                    answered_before = len(run.appends.statuses)
                run.answered_since_wait = len(run.appends.statuses) - answered_before
                if run.answered_since_wait >= APPENDS_WHILE_THROTTLED:
                    run.throttled_s = row["throttled_s"]
                    stop.set()
            await unless_set(stop, asyncio.sleep(0.2))

    client = asyncio.create_task(append_while(node.url, "t0ken", done, run.appends))
    watcher = asyncio.create_task(watch())
    try:
        await flood(node.url, SECRET, FLOOD_DEADLINE_S, stop, run.flooded)
    except (aiohttp.ClientError, ConnectionError) as error:  # the node closed its link
        run.ended = run.ended or (_cannot_succeed(node, client, run.appends, None)
                                  or f"the flooder's link failed: {error!r}")
    finally:
        stop.set()
        done.set()
        await watcher
        if run.ended:  # the client's own end, if it failed too, is told there
            with contextlib.suppress(Exception):
                await client
        else:
            await client
    return run


def test_a_flooding_peer_is_throttled_and_clients_keep_appending(tmp_path: Path) -> None:
    """Counts, not rates: the flooder's link was made to wait, and clients' appends were
    answered while it was (conditions awaited, with a deadline a loaded machine meets)."""
    with Cluster(tmp_path) as cluster:
        node = cluster.node("node", token="t0ken")
        run = asyncio.run(_flood_until_throttled(node))
        assert run.ended is None, f"the flood was stopped early, {run.ended}: {run.seen()}"
        print(f"{run.flooded.sent} hellos of 4,096 origins; {run.appends.summary()}; "
              f"flooder throttled {run.throttled_s} s")
        assert run.throttled_s is not None, (
            f"within {FLOOD_DEADLINE_S} s the flooder was never shown throttled with "
            f"{APPENDS_WHILE_THROTTLED} appends answered since: {run.seen()}")
        assert run.appends.statuses and set(run.appends.statuses) <= {200, 201}


async def _flood_a_paused_node(node: NodeProcess) -> tuple[Flooded, Flooded, Appends]:
    """Flood ``node`` until it is paused and has held the flooder's sends a while, then
    stop the flood; then, still paused, flood it until a deadline, with a client
    appending that is then told to stop too."""
    assert node.process is not None
    stop, flooded = asyncio.Event(), Flooded()
    flooding = asyncio.create_task(flood(node.url, SECRET, 3_600.0, stop, flooded))
    while flooded.sent == 0 and not flooding.done():
        await asyncio.sleep(0.1)
    node.process.send_signal(signal.SIGSTOP)
    try:
        sent = -1
        while flooded.sent != sent and not flooding.done():  # until a send is held
            sent = flooded.sent
            await asyncio.sleep(1.0)
        stop.set()
        by_stop = await flooding
        appends, done = Appends(), asyncio.Event()
        client = asyncio.create_task(append_while(node.url, "t0ken", done, appends))
        by_deadline = await flood(node.url, SECRET, 2.0)  # its handshake is held
        done.set()
        await client
    finally:
        node.process.send_signal(signal.SIGCONT)
    return by_stop, by_deadline, appends


def test_a_flood_ends_on_time_while_the_node_reads_nothing(tmp_path: Path) -> None:
    """A paused node takes no byte: a flood's sends and handshake, and the client's
    appends, still end when told to stop or at the flood's deadline (the bound below
    only keeps a failing run from hanging)."""
    with Cluster(tmp_path) as cluster:
        node = cluster.node("node", token="t0ken")
        by_stop, by_deadline, appends = asyncio.run(
            asyncio.wait_for(_flood_a_paused_node(node), 120))
        assert by_stop.ended_by == "stop" and by_stop.sent > 0, by_stop
        assert by_stop.waiting_s is not None, by_stop  # the node held a send
        assert by_deadline.ended_by == "deadline" and by_deadline.sent == 0, by_deadline
        assert appends.statuses == []  # the append the node held counts nowhere
        assert node.get("/healthz")["status"] == "ok"
