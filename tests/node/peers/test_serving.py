"""The peer tests' plain server (``support.serving``) ends without waiting on a client:
a node a test made stops after the server (its fixture ends after the test), and a dial
of that node's under way then, its handler waiting on the node, held the server's end
for up to aiohttp's 60 s."""

from __future__ import annotations

import asyncio

from aiohttp import web

from tests.node.peers.support import DEADLINE_S, serving


async def test_a_server_ends_though_a_request_waits_on_its_client() -> None:
    waiting = asyncio.Event()

    async def handler(_request: web.Request) -> web.Response:
        waiting.set()
        await asyncio.Event().wait()  # as a handler waiting on a dialer's next frame
        return web.Response()

    clients: list[asyncio.StreamWriter] = []
    hung = "the request reaching its handler"
    try:
        async with asyncio.timeout(DEADLINE_S), serving(handler) as url:
            host, port = url.removeprefix("http://").rsplit(":", 1)
            _, client = await asyncio.open_connection(host, int(port))
            clients.append(client)
            client.write(b"GET / HTTP/1.1\r\nHost: peer\r\n\r\n")
            await waiting.wait()
            hung = "the server's end, its handler waiting on the client"
    except TimeoutError:
        raise AssertionError(f"not within {DEADLINE_S} s: {hung}") from None
    finally:  # open still, as the node's connection is until it stops
        for client in clients:
            client.close()
