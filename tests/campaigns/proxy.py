"""TCP proxies on loopback whose links can pass, reset or blackhole, for the fault campaign.

One ``FaultProxy`` runs an event loop in a thread and serves any number of links; each
link listens on its own port and forwards to one node. Modes of a link:

- ``PASS``: bytes flow.
- ``RESET``: open connections are reset (RST), new ones are accepted and reset at once,
  as when a peer's host reboots or a firewall rejects.
- ``BLACKHOLE``: nothing moves, both ways, and nothing is closed: new connections are
  accepted but never reach the node, as when a route disappears. Bytes sent meanwhile
  wait in the kernel's buffers; when the link passes again they flow, as TCP
  retransmissions would deliver them, unless an end gave up in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading

#: Bytes moved per read.
CHUNK_BYTES = 64 * 1024
#: Seconds to wait for the proxy's loop to start a link or change a mode.
LOOP_TIMEOUT_S = 10.0

PASS = "pass"
RESET = "reset"
BLACKHOLE = "blackhole"


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST rather than FIN (SO_LINGER 0), as a rejecting host does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class Link:
    """One listening port forwarding to ``target_port``; lives on the proxy's loop."""

    def __init__(self, name: str, target_port: int) -> None:
        self.name = name
        self.target_port = target_port
        self.port = 0
        self.mode = PASS
        self.passing = asyncio.Event()
        self.passing.set()
        self.writers: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None

    async def listen(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0,
                                                 family=socket.AF_INET)
        self.port = self.server.sockets[0].getsockname()[1]

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        if mode == PASS:
            self.passing.set()
            return
        self.passing.clear()
        if mode == RESET:
            for writer in list(self.writers):
                _reset(writer)
            self.writers.clear()

    async def _accept(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        if self.mode == RESET:
            _reset(writer)
            return
        self.writers.add(writer)
        await self.passing.wait()  # a blackholed link holds new connections
        if self.mode == RESET or writer.is_closing():
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            self.writers.discard(writer)
            _reset(writer)
            return
        self.writers.add(up_writer)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self.writers -= {writer, up_writer}

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await self.passing.wait()
                data = await reader.read(CHUNK_BYTES)
                if not data:
                    break
                await self.passing.wait()  # bytes read just before a blackhole wait too
                if writer.is_closing():
                    break
                writer.write(data)
                await writer.drain()
            if not writer.is_closing() and writer.can_write_eof():
                writer.write_eof()
        except (OSError, RuntimeError):
            _reset(writer)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in list(self.writers):
            _reset(writer)
        self.passing.set()  # let waiting pipes notice and end


class FaultProxy:
    """Every link of one campaign, on one event loop in a thread (callers are not async)."""

    def __init__(self) -> None:
        self.links: dict[str, Link] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="fault-proxy")
        self._thread.start()

    def add(self, name: str, target_port: int) -> Link:
        link = Link(name, target_port)
        asyncio.run_coroutine_threadsafe(self._make(link), self._loop).result(LOOP_TIMEOUT_S)
        self.links[name] = link
        return link

    async def _make(self, link: Link) -> None:
        link.passing = asyncio.Event()  # bound to this loop
        link.passing.set()
        await link.listen()

    def set_mode(self, name: str, mode: str) -> None:
        link = self.links[name]
        self._loop.call_soon_threadsafe(link.set_mode, mode)

    def heal_all(self) -> None:
        for name in self.links:
            self.set_mode(name, PASS)

    def close(self) -> None:
        for link in self.links.values():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(link.close(), self._loop).result(LOOP_TIMEOUT_S)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(LOOP_TIMEOUT_S)
