"""``Client.stream`` at a node whose live streams are all taken (503 ``streams_full``):
each change of the stream's failure is news once (a refusal asked again is not news
again), a stream open again is "back", and a refusal that asks for no wait backs off as
any failure. A real node behind a relay that cuts, refuses or rewrites as a proxy may.
A node that is stopping (the node's 503 with a ``Retry-After``) is given the wait it asks
too, as is a first stream refused for its address's many streams (429)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import types
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import hdrs, web

from node.client import api
from node.client.api import Client
from node.http.errors import STOPPING_RETRY_AFTER_S
from node.limits import ClientLimits
from node.server.app import STREAMS
from node.server.run import RunningNode
from node.server.streams import RETRY_AFTER_S
from tests.node.conftest import NodeFactory
from tests.support.processes import NodeProcess
from tests.support.waits import DEADLINE_S, until


class Relay:
    """An HTTP relay in front of a node: it passes each request on and streams its answer
    back. ``retry_after`` is what it puts in place of a refusal's Retry-After (None: it
    drops it); ``down`` answers 502 as a proxy whose node is out of reach; ``cut()`` ends
    the streams it relays."""

    def __init__(self, node_url: str, retry_after: str | None) -> None:
        self.node_url = node_url
        self.retry_after = retry_after
        self.down = False
        self.refusals = 0  # the node's 503s relayed
        self.unreached = 0  # requests answered 502
        #: The streams relayed: each client's connection and its answer from the node.
        self._open: dict[asyncio.Transport, aiohttp.ClientResponse] = {}
        self._runner = web.AppRunner(web.Application())
        self._runner.app.router.add_route("*", "/{path:.*}", self._relay)
        self.url = ""

    async def __aenter__(self) -> Relay:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = site.name
        self._session = aiohttp.ClientSession(auto_decompress=False)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.cut()
        await self._session.close()
        await self._runner.cleanup()

    def cut(self) -> None:
        for transport, upstream in self._open.items():
            transport.close()
            upstream.close()

    async def _relay(self, request: web.Request) -> web.StreamResponse:
        if self.down:
            self.unreached += 1
            return web.Response(status=502, text="bad gateway")
        headers = {key: value for key, value in request.headers.items()
                   if key.lower() not in ("host", "content-length")}
        async with self._session.request(request.method, self.node_url + request.path_qs,
                                         headers=headers, data=await request.read()
                                         ) as upstream:
            answer = web.StreamResponse(status=upstream.status)
            answer.headers.update({key: value for key, value in upstream.headers.items()
                                   if key.lower() not in ("content-length",
                                                          "transfer-encoding")})
            if upstream.status == 503:
                self.refusals += 1
                answer.headers.popall(hdrs.RETRY_AFTER, None)
                if self.retry_after is not None:
                    answer.headers[hdrs.RETRY_AFTER] = self.retry_after
            assert isinstance(request.transport, asyncio.Transport)
            self._open[request.transport] = upstream
            try:
                await answer.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await answer.write(chunk)
                await answer.write_eof()
            finally:
                self._open.pop(request.transport, None)
            return answer


@contextlib.asynccontextmanager
async def following(client: Client, news: list[str]) -> AsyncIterator[asyncio.Task[None]]:
    """``client`` follows the stream from 0, its news in ``news``, while the block runs;
    the block is given the task that follows it."""
    async def follow() -> None:
        async for _item in client.stream(0, on_news=lambda what, _at, _why: news.append(what)):
            pass

    task = asyncio.create_task(follow())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def streams_open(node: RunningNode) -> int:
    return node.runner.app[STREAMS].open


@dataclasses.dataclass
class Waits:
    """The waits the stream followed by ``task`` asks for, in ``seconds``."""

    task: asyncio.Task[None] | None = None
    seconds: list[float] = dataclasses.field(default_factory=list)


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> Waits:
    """The client's stream's waits, seen without changing them or the rest of asyncio
    (the task of the client's stream, not a rival's, is given as ``task``)."""
    seen = Waits()

    async def sleep(seconds: float) -> None:
        if seen.task is not None and asyncio.current_task() is seen.task:
            seen.seconds.append(seconds)
        await asyncio.sleep(seconds)

    monkeypatch.setattr(api, "asyncio", types.SimpleNamespace(**{**vars(asyncio), "sleep": sleep}))
    return seen


async def test_a_stream_cut_then_refused_as_full_says_each_change_once(
        make_node: NodeFactory) -> None:
    """Cut, then refused twice as full (said once), then out of reach, then full again:
    each change is news; the stream that opens once the other closes is "back"."""
    node = await make_node(streams_max=1)
    news: list[str] = []
    other: list[str] = []
    limits = dataclasses.replace(ClientLimits(), reconnect_delay_max_s=0.4)
    async with Relay(node.url, retry_after="1") as relay, \
            Client(relay.url, limits=limits) as client, \
            Client(node.url) as rival, following(client, news):
        await until(lambda: news == ["open"])
        relay.down = True  # the reconnection of the cut stream reaches no node
        relay.cut()
        await until(lambda: "lost" in news and streams_open(node) == 0)
        async with following(rival, other):  # takes the only stream
            await until(lambda: other == ["open"])
            relay.down = False
            await until(lambda: relay.refusals >= 2)  # asked again: not news again
            unreached, relay.down = relay.unreached, True
            await until(lambda: relay.unreached > unreached)
            relay.down = False
            await until(lambda: relay.refusals >= 3)
        await until(lambda: news[-1] == "back")
    assert news == ["open", "lost", "full", "lost", "full", "back"]


async def test_a_stream_refused_as_full_then_out_of_reach_before_it_opened_waits_on(
        make_node: NodeFactory) -> None:
    """A node that said its streams are full was reached (its URL and the token are
    right): a failure after that, before any stream opened (a proxy whose node restarts),
    is "lost" and asked again, not raised; the stream opens once one is free."""
    node = await make_node(streams_max=1)
    news: list[str] = []
    limits = dataclasses.replace(ClientLimits(), reconnect_delay_max_s=0.4)
    async with Relay(node.url, retry_after="0") as relay, \
            Client(relay.url, limits=limits) as client, Client(node.url) as rival, \
            contextlib.AsyncExitStack() as holding:
        await holding.enter_async_context(following(rival, []))  # takes the only stream
        await until(lambda: streams_open(node) == 1)
        async with following(client, news) as task:
            await until(lambda: news == ["full"])
            relay.down = True
            await until(lambda: "lost" in news or task.done())
            assert not task.done()
            await until(lambda: relay.unreached >= 2)  # asked again
            await holding.aclose()  # the rival's stream closes
            await until(lambda: streams_open(node) == 0)
            relay.down = False
            await until(lambda: news[-1] == "open")
    assert news == ["full", "lost", "open"]


@pytest.mark.parametrize("retry_after", [None, "0"], ids=["none", "zero"])
async def test_a_full_refusal_that_asks_no_wait_backs_off(
        make_node: NodeFactory, waits: Waits, retry_after: str | None) -> None:
    """A proxy that drops the Retry-After, or a wait of 0: the client waits as after any
    failure, doubling, not asking again at the shortest wait for as long as it is full."""
    node = await make_node(streams_max=1)
    limits = dataclasses.replace(ClientLimits(), reconnect_delay_min_s=0.01,
                                 reconnect_delay_max_s=0.04)
    news: list[str] = []
    async with Relay(node.url, retry_after) as relay, Client(node.url) as rival, \
            Client(relay.url, limits=limits) as client, following(rival, []):
        await until(lambda: streams_open(node) == 1)
        async with following(client, news) as waits.task:
            await until(lambda: len(waits.seconds) >= 5)
    assert news == ["full"]
    assert relay.refusals >= 5
    assert waits.seconds[:5] == [0.01, 0.02, 0.04, 0.04, 0.04]


async def test_a_stopping_node_that_refuses_the_stream_again_is_given_its_wait(
        tmp_path: Path, waits: Waits) -> None:
    """A node that stops ends the stream, and answers the one asked for again 503 with
    the wait of a restart (``Retry-After``): the client waits that long, not its own
    shorter back-off, then follows on."""
    news: list[str] = []
    with NodeProcess(tmp_path, program="tests.support.closing_node") as node:
        async with Client(node.url) as client, following(client, news) as waits.task:
            await until(lambda: news[-1:] == ["back"])
    assert news == ["open", "lost", "back"]
    assert waits.seconds == [ClientLimits().reconnect_delay_min_s, STOPPING_RETRY_AFTER_S]


async def test_a_first_stream_refused_for_its_address_waits_then_follows(
        make_node: NodeFactory, waits: Waits) -> None:
    """Before any stream of its own opened, a refusal for this address's many streams
    (429 ``too_many_streams``: the node was reached, and took the token) is waited on as
    once it followed: told once, then the stream opens once the other closes."""
    node = await make_node(streams_max=2, streams_per_address_max=1)
    news: list[str] = []
    async with Client(node.url) as rival, Client(node.url) as client, \
            contextlib.AsyncExitStack() as holding:
        await holding.enter_async_context(following(rival, []))
        await until(lambda: streams_open(node) == 1)
        async with following(client, news) as waits.task:
            await until(lambda: len(waits.seconds) >= 1)
            assert news == ["full"] and not waits.task.done()
            await holding.aclose()  # the rival's stream closes
            # Asked again only once the node's wait is over: give it that on top.
            await until(lambda: news[-1:] == ["open"], within_s=RETRY_AFTER_S + DEADLINE_S)
    assert news == ["full", "open"]
    assert waits.seconds[0] == RETRY_AFTER_S


async def test_a_first_stream_at_a_stopping_node_waits_as_it_asks(
        make_node: NodeFactory, waits: Waits) -> None:
    """A node that is stopping refuses the first stream asked for (503 with the wait of
    a restart): the client waits that long, as once it followed, and is not ended."""
    node = await make_node()
    node.astore.begin_stopping()  # what the node's stop does first
    news: list[str] = []
    async with Client(node.url) as client, following(client, news) as waits.task:
        await until(lambda: len(waits.seconds) >= 1)
        assert not waits.task.done()
    assert news == ["lost"]
    assert waits.seconds == [STOPPING_RETRY_AFTER_S]
