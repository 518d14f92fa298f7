"""A node's 503 through ``Client``: the node cannot take the request now (its disk full,
its writer busy, shutting down), said as that with the wait it asked for, not as a
failure of the request; any other 5xx is still the node failing it. The full disk and
the busy writer are real faults; the rest are raised in the node's store."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from crdt.errors import StorageBusy
from node.client.answers import GATEWAY
from node.client.api import Client, ClientError
from node.group_commit import StoreClosing
from node.server.run import RunningNode
from tests.node.conftest import NodeFactory
from tests.support.storage import tmpfs

EVENT = {"agent_id": "main", "kind": {"type": "session_ended", "reason": "done"}}
#: Appends sent one after another until the node refuses one.
TRIES = 50


@pytest.mark.parametrize(("raised", "said"), [
    (StorageBusy("the database stayed locked for more than 60 s", location="/data"),
     "the node could not handle the event now (HTTP 503, try again in 1 s): the database "
     "stayed locked for more than 60 s (/data)"),
    (StoreClosing("the node is shutting down"),
     "the node could not handle the event now (HTTP 503, try again in 5 s): the node is "
     "shutting down"),
    (RuntimeError("a bug"),
     "the node failed to handle the event (HTTP 500): internal error")],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else "")
async def test_a_503_says_the_node_cannot_take_it_now(node: RunningNode, raised: Exception,
                                                     said: str) -> None:
    """The node's store raises ``raised`` at the append: the node answers it as it would
    (503 with its Retry-After, or 500), and the client words it. Raised here, not caused:
    the database stays locked 60 s (``BUSY_TIMEOUT_S``) before the first; a stopping
    node stops taking requests before its store closes, so none meets the second; the
    last is a bug."""
    async def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise raised

    node.astore.append = refuse  # type: ignore[method-assign]
    async with Client(node.url) as client:
        with pytest.raises(ClientError) as refused:
            await client.append("s", [EVENT])
    assert str(refused.value) == said
    assert refused.value.status == (500 if isinstance(raised, RuntimeError) else 503)



def fill(disk: Path) -> Path:
    """A file that takes every free block of ``disk``."""
    ballast = disk / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 65536)
    finally:
        os.close(fd)
    return ballast


async def test_a_full_disk(tmp_path: Path, make_node: NodeFactory) -> None:
    with tmpfs(tmp_path / "small", "size=2m") as disk:
        node = await make_node(data_dir=disk / "data")
        ballast = fill(disk)
        big = {"agent_id": "main", "kind": {"type": "message_received",
                                            "content": "x" * 60_000}}
        async with Client(node.url) as client:
            with pytest.raises(ClientError) as refused:
                for n in range(TRIES):
                    await client.append(f"s{n}", [big])
            ballast.unlink()
            await client.append("after", [big])  # space back: taken again
        await node.stop()
    assert str(refused.value).startswith(
        "the node could not handle the event now (HTTP 503, try again in 30 s): the disk is "
        f"full ({disk / 'data'}")
    assert refused.value.status == 503


#: The refusal of an append while another waits for the disk (``queue_events_max=1``).
QUEUE_FULL = ("the node could not handle the event now (HTTP 503, try again in 1 s): 1 "
              "event already waits for the disk; try again shortly")


async def test_a_writer_held_up(make_node: NodeFactory) -> None:
    """Another process holds the database's write lock: of three appends sent at once,
    one waits for it in the writer, at most one waits behind it in the queue, and the
    rest are refused. Nothing is stored while the lock is held, so a refusal is the first
    answer; once the lock is let go of, what waited is taken. Whether the second waits
    in the queue or is refused depends on whether the writer took the first out of it
    before the second came: either is right."""
    node = await make_node(queue_events_max=1, commit_events_max=1, batch_events_max=1)
    outside = sqlite3.connect(node.config.data_dir / "cache.db", timeout=0)
    try:
        outside.execute("BEGIN IMMEDIATE")
        async with Client(node.url) as client:
            sent = [asyncio.create_task(client.append(f"s{n}", [EVENT])) for n in range(3)]
            first, _ = await asyncio.wait(sent, return_when=asyncio.FIRST_COMPLETED)
            outside.rollback()
            await asyncio.wait(sent)
    finally:
        outside.close()
    assert [str(task.exception()) for task in first] == [QUEUE_FULL] * len(first)
    refused = [task for task in sent if task.exception() is not None]
    assert [str(task.exception()) for task in refused] == [QUEUE_FULL] * len(refused)
    assert [task.result()["created"] for task in sent if task not in refused] in ([1], [1, 1])


@contextlib.asynccontextmanager
async def answering(handler: Any) -> AsyncIterator[str]:
    """Serve ``handler`` for every request on a loopback port; yield its base URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("status", sorted(GATEWAY))
async def test_a_proxys_plain_answer_is_not_worded_as_the_nodes(status: int) -> None:
    """A 502, 503 or 504 without a node's JSON error (a reverse proxy whose node is down)
    is said as from something in between, not as the node's full disk or busy writer."""
    async def down(_request: web.Request) -> web.Response:
        return web.Response(status=status, text="no upstream\n", headers={"Retry-After": "5"})

    async with answering(down) as url, Client(url) as client:
        with pytest.raises(ClientError) as refused:
            await client.append("s", [EVENT])
    reason = HTTPStatus(status).phrase
    assert str(refused.value) == (
        f"{url} could not pass on the event ({status} {reason}, try again "
        "in 5 s) without a clawsync answer: a reverse proxy or another service in between? "
        "Is the node behind it running?")
    assert (refused.value.status, refused.value.code) == (status, None)


@pytest.mark.parametrize("retry_after", ["0", "Thu, 01 Jan 1970 00:00:00 GMT"])
async def test_no_wait_asked_is_not_said_as_one(retry_after: str) -> None:
    """A node's 503 that asks to wait for nothing (0 s, or until a date past) is said
    without "try again in 0 s"."""
    async def busy(_request: web.Request) -> web.Response:
        return web.json_response({"error": {"code": "busy", "message": "busy"}}, status=503,
                                 headers={"Retry-After": retry_after})

    async with answering(busy) as url, Client(url) as client:
        with pytest.raises(ClientError) as refused:
            await client.append("s", [EVENT])
    assert str(refused.value) == "the node could not handle the event now (HTTP 503): busy"
