"""A client with a write token cannot make the node pay without bound for its Automerge
changes: a real node process, and a client whose every sync message adds 1,000 concurrent
values to one ``custom_state`` key (each message slower to apply than the one before,
without end). The node tries each message in a worker process first; once one takes
longer than the worker's time limit, that client is disconnected with a reason, while
``/healthz`` keeps answering and another client's edit still becomes an event."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from automerge.core import ROOT, Document, ScalarType

from crdt.automerge.binreader import uleb
from tests.support.automerge import App, set_custom, text_id
from tests.support.nodes import S1, WsApp, has_messages
from tests.support.processes import NodeProcess
from tests.support.waits import until

pytestmark = pytest.mark.integration

WORKER_TIME_S = 1.0
#: Concurrent changes per hostile message: each puts the same key (all conflicts).
CONFLICTS = 1000
#: Hostile messages sent at most; the node applying all of them in process takes many
#: minutes (the last ones over ten seconds each, holding the event loop).
ROUNDS_MAX = 60
#: Seconds /healthz may take to answer while the hostile client works.
HEALTHZ_DEADLINE_S = 10.0
#: Seconds the node may take to answer one hostile message (or close the client).
ROUND_DEADLINE_S = 30.0
#: Seconds the honest client's edit may take to become an event.
EDIT_DEADLINE_S = 30.0
#: Resident memory the node may reach meanwhile.
RSS_BYTES_MAX = 512 * 1024 * 1024
BASE_MS = 1_790_000_000_000
S2 = text_id("s2")


def conflicts(base: bytes, first_actor: int) -> bytes:
    """A sync message of ``CONFLICTS`` changes made concurrently on the document ``base``,
    each by an actor of its own, each putting ``custom_state.k``."""
    changes = []
    for i in range(first_actor, first_actor + CONFLICTS):
        doc = Document.load(base)
        doc.set_actor(b"\x01" + i.to_bytes(15, "big"))
        heads = doc.get_heads()
        with doc.transaction() as tx:
            custom = tx.get(ROOT, "custom_state")
            assert custom is not None
            tx.put(custom[1], "k", ScalarType.Int, i)
        changes += [change.bytes for change in doc.get_changes(heads)]
    body = b"".join(uleb(len(change)) + change for change in changes)
    return b"\x42" + uleb(0) * 3 + uleb(len(changes)) + body  # no heads, needs or haves


async def open_client(http: aiohttp.ClientSession, node: NodeProcess, peer: str,
                      doc: str) -> WsApp:
    ws = await http.ws_connect(node.url + "/automerge")
    client = WsApp(ws, App(peer=peer))
    await client.send(client.app.join())
    await client.pump(lambda: client.app.server is not None)
    await client.send(client.app.request(doc))
    await client.pump(lambda: has_messages(client.app, doc))
    return client


async def hostile_rounds(client: WsApp) -> tuple[int, int | None]:
    """Send conflicting changes until the node closes the connection; the rounds sent
    and the close code."""
    base = client.app.docs[S1].save()
    for round_ in range(ROUNDS_MAX):
        frame = client.app.frame(type="sync", targetId=client.app.server, documentId=S1,
                                 data=conflicts(base, 1 + round_ * CONFLICTS))
        await client.ws.send_bytes(frame)
        async with asyncio.timeout(ROUND_DEADLINE_S):
            message = await client.ws.receive()
        if message.type != aiohttp.WSMsgType.BINARY:  # the node closed the connection
            return round_ + 1, client.ws.close_code
        client.app.receive(bytes(message.data))  # an error message, or the node's heads
    return ROUNDS_MAX, None


async def watch_healthz(http: aiohttp.ClientSession, node: NodeProcess,
                        slow: list[str]) -> None:
    """Ask /healthz again and again; note each answer that did not come in time."""
    while True:
        try:
            async with asyncio.timeout(HEALTHZ_DEADLINE_S), http.get(
                    node.url + "/healthz") as response:
                if response.status != 200:
                    slow.append(f"status {response.status}")
        except TimeoutError:
            slow.append(f"no answer within {HEALTHZ_DEADLINE_S} s")
        await asyncio.sleep(0.2)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def append(node: NodeProcess, session: str, *events: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{node.url}/v1/sessions/{session}/events", method="POST",
        data=json.dumps(events).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status in (200, 201)


async def hostile_beside_honest(node: NodeProcess) -> None:
    async with aiohttp.ClientSession() as http:
        honest = await open_client(http, node, "honest", S2)
        hostile = await open_client(http, node, "hostile", S1)
        slow: list[str] = []
        watcher = asyncio.create_task(watch_healthz(http, node, slow))
        try:
            rounds, code = await hostile_rounds(hostile)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        assert code == 1008, f"still connected after {rounds} rounds"
        assert any("took more than" in error for error in hostile.app.errors), \
            hostile.app.errors
        assert slow == []
        assert rss_bytes(node.process.pid) < RSS_BYTES_MAX  # type: ignore[union-attr]
        assert node.get("/healthz")["status"] == "ok"
        # Another session: s1 itself now holds thousands of concurrent heads, which make
        # any change to it slow to apply (about as slow as the hostile's last message).
        honest.app.change(S2, set_custom("mood", "calm"))
        await honest.send(honest.app.sync(S2))
        answering = asyncio.create_task(honest.pump(lambda: False, timeout_s=EDIT_DEADLINE_S))

        def calm_stored() -> bool:
            return {"type": "state_changed", "key": "mood", "value": "calm"} in [
                e["kind"] for e in node.get("/v1/sessions/s2/events")["events"]]

        try:
            await until(calm_stored, within_s=EDIT_DEADLINE_S, poll_s=0.1)
        finally:
            answering.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await answering


@pytest.mark.timeout(240)
def test_costly_changes_cost_their_sender_the_connection_not_the_node(
        tmp_path: Path) -> None:
    config = tmp_path / "clawsync.toml"
    config.write_text(f"[automerge_limits]\nworker_time_s = {WORKER_TIME_S}\n")
    with NodeProcess(tmp_path, extra_args=["--config", str(config)]) as node:
        for session in ("s1", "s2"):
            append(node, session, {"agent_id": "main", "hlc": [BASE_MS, 0],
                                   "kind": {"type": "message_received", "content": "hi"}})
        asyncio.run(hostile_beside_honest(node))
