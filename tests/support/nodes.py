"""Real nodes in the test process, from outside: posting and reading over HTTP (server-sent
events too), and an automerge-repo test client (``tests.support.automerge.App``) on a real
websocket."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from node.server.run import RunningNode
from tests.support.automerge import App, text_id
from tests.support.waits import DEADLINE_S

S1 = text_id("s1")


class WsApp:
    """An App on a real websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, app: App) -> None:
        self.ws = ws
        self.app = app
        self.close_code: int | None = None

    async def send(self, frame: bytes | None) -> None:
        if frame is not None:
            await self.ws.send_bytes(frame)

    async def pump(self, until: Callable[[], bool], timeout_s: float = DEADLINE_S) -> None:
        """Answer the node's frames until ``until()`` holds (or the socket closes)."""
        async with asyncio.timeout(timeout_s):
            while not until():
                message = await self.ws.receive()
                if message.type != aiohttp.WSMsgType.BINARY:
                    # The code the node sent; the socket's may say 1006 when the node
                    # dropped the connection before our answering close went out.
                    self.close_code = message.data if message.type == aiohttp.WSMsgType.CLOSE \
                        else self.ws.close_code
                    return
                for reply in self.app.receive(bytes(message.data)):
                    await self.ws.send_bytes(reply)

    async def pump_beside(self, until: Callable[[], bool], *others: WsApp) -> None:
        """``pump`` while ``others`` keep answering the node too, as live clients do: a
        change may need more than one round trip to reach the node (when its hash is a
        false positive in the node's bloom filter, the node first asks for it)."""
        answering = [asyncio.create_task(other.pump(lambda: False)) for other in others]
        try:
            await self.pump(until)
        finally:
            for task in answering:
                task.cancel()
            for result in await asyncio.gather(*answering, return_exceptions=True):
                if not isinstance(result, (asyncio.CancelledError, type(None))):
                    raise result  # the other client failed: say so, not just "timeout"

    async def closed(self) -> int | None:
        await self.pump(lambda: False)
        return self.close_code

    async def open(self, doc: str = S1) -> None:
        await self.send(self.app.join())
        await self.pump(lambda: self.app.server is not None)
        await self.send(self.app.request(doc))
        await self.pump(lambda: doc in self.app.unavailable or has_messages(self.app, doc))


def has_messages(app: App, doc: str, count: int = 1) -> bool:
    return doc in app.docs and len(app.view(doc).get("messages", {})) >= count


def contents(app: App, doc: str = S1) -> list[str]:
    return [m["content"] for _, m in sorted(app.view(doc)["messages"].items())]


async def connect(node: RunningNode, app: App | None = None, token: str | None = None,
                  header: str | None = None) -> tuple[aiohttp.ClientSession, WsApp]:
    session = aiohttp.ClientSession()
    url = node.url + "/automerge" + (f"?token={quote(token)}" if token else "")
    headers = {"Authorization": f"Bearer {header}"} if header else {}
    ws = await session.ws_connect(url, headers=headers)
    return session, WsApp(ws, app or App())


async def post(node: RunningNode, key: str, *events: dict[str, Any],
               token: str | None = None) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.post(
            f"{node.url}/v1/sessions/{quote(key, safe='')}/events", json=list(events),
            headers=headers) as response:
        assert response.status in (200, 201), await response.text()


async def events(node: RunningNode, key: str, token: str | None = None
                 ) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.get(
            f"{node.url}/v1/sessions/{quote(key, safe='')}/events?limit=1000",
            headers=headers) as response:
        body: dict[str, Any] = await response.json()
        return list(body["events"])


async def read_sse(resp: aiohttp.ClientResponse, count: int) -> list[dict[str, str]]:
    """The next ``count`` server-sent events (comments skipped), as field dicts."""
    events: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    while len(events) < count:
        line = (await resp.content.readline()).decode()
        assert line, "stream ended"
        line = line.rstrip("\n")
        if not line:
            if fields:
                events.append(fields)
            fields = {}
        elif line.startswith(":"):
            fields.setdefault("comment", line)
        else:
            name, _, value = line.partition(": ")
            fields[name] = value
    return events



@contextlib.asynccontextmanager
async def stop_held(node: RunningNode, monkeypatch: pytest.MonkeyPatch
                    ) -> AsyncIterator[None]:
    """``node.stop()`` begun and held while its peer links close, before its site stops
    (the window a slow peer's close makes); let go of, and the stop awaited, at the end."""
    closing, go_on = asyncio.Event(), asyncio.Event()
    stop_gossip = node.gossip.stop

    async def held_gossip_stop() -> None:
        closing.set()
        await go_on.wait()
        await stop_gossip()

    monkeypatch.setattr(node.gossip, "stop", held_gossip_stop)
    stopping = asyncio.create_task(node.stop())
    try:
        async with asyncio.timeout(DEADLINE_S):
            await closing.wait()
        yield
    finally:
        go_on.set()
        await stopping
