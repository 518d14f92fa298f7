"""A TCP proxy on loopback that can be cut and healed, to make network partitions.

``clawsync demo`` puts one between nodes to show a partition and its repair; the
integration tests use it the same way.

    with LinkProxy(target_port=node_b.port) as link:   # node A dials link.port
        link.cut()     # open connections are reset, new ones are refused
        link.heal()    # traffic flows again
    link.shut()    # new connections are refused, open ones go on
    link.hold_replies()    # what the target sends is held (late acks), until released

It runs its own event loop in a thread, so callers that are not async can use it.

>>> import socket
>>> with (socket.create_server(("127.0.0.1", 0)) as server,
...       LinkProxy(target_port=server.getsockname()[1]) as link,
...       socket.create_connection(("127.0.0.1", link.port), timeout=5) as client):
...     peer, _ = server.accept()
...     client.sendall(b"ping")
...     received = peer.recv(4)
...     peer.close()
>>> received
b'ping'
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from types import TracebackType

#: Bytes moved per read; small enough that a cut interrupts a large transfer midway.
CHUNK_BYTES = 64 * 1024
#: Seconds to wait for the proxy's loop to start or stop.
LOOP_TIMEOUT_S = 10.0


class LinkProxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target_port`` until cut; with
    ``bytes_per_s``, at most that many bytes per second each way (a slow link, so that a
    transfer lasts long enough to be interrupted). ``port``: where it listens (0: a
    port the kernel picks)."""

    def __init__(self, target_port: int, bytes_per_s: int | None = None,
                 port: int = 0) -> None:
        self.target_port = target_port
        self.bytes_per_s = bytes_per_s
        self.port = port
        self.bytes_forwarded = 0
        self._up = True
        self._open = True  # new connections taken (``shut``)
        self._loop = asyncio.new_event_loop()
        # Named after the port it listens on once it does (0 until then): the target's
        # is shared by every proxy to one node.
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name=f"link-proxy-{port}")
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._replies = threading.Event()  # set: what the target sends goes through
        self._replies.set()

    def start(self) -> LinkProxy:
        """Listen on ``port`` and forward. An ``OSError`` (the port in use or refused
        for another reason; a ``TimeoutError`` if the loop does not listen within
        ``LOOP_TIMEOUT_S``) is raised with the proxy's thread ended: nothing of a proxy
        that did not start runs on."""
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        try:
            future.result(LOOP_TIMEOUT_S)
        except BaseException:
            self.stop()
            raise
        return self

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port,
                                                  family=socket.AF_INET)
        self.port = self._server.sockets[0].getsockname()[1]
        self._thread.name = f"link-proxy-{self.port}"

    async def _accept(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        if not (self._up and self._open):
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            _reset(writer)
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer),
                             self._pipe(up_reader, writer, replies=True))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    *, replies: bool = False) -> None:
        rate = self.bytes_per_s
        chunk_bytes = CHUNK_BYTES if rate is None else max(1, min(CHUNK_BYTES, rate // 20))
        try:
            while self._up and (data := await reader.read(chunk_bytes)):
                while replies and self._up and not self._replies.is_set():
                    await asyncio.sleep(0.01)  # held (``hold_replies``)
                if not self._up:
                    break
                writer.write(data)
                self.bytes_forwarded += len(data)
                await writer.drain()
                if rate is not None:
                    await asyncio.sleep(len(data) / rate)
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            if self._up:
                with contextlib.suppress(Exception):
                    writer.close()
            else:
                _reset(writer)

    def cut(self) -> None:
        """Partition: reset every open connection and refuse new ones."""
        def cut_now() -> None:
            self._up = False
            for writer in list(self._writers):
                _reset(writer)
            self._writers.clear()
        asyncio.run_coroutine_threadsafe(_call(cut_now), self._loop).result(LOOP_TIMEOUT_S)

    def heal(self) -> None:
        """End the partition: new connections go through again."""
        self._up = self._open = True

    def hold_replies(self) -> None:
        """Hold what the targets send on open connections (acks, answers), forwarding
        nothing of it, until ``release_replies``; what the clients send goes on."""
        self._replies.clear()

    def release_replies(self) -> None:
        """Forward what the targets send again, what was held first."""
        self._replies.set()

    def shut(self) -> None:
        """Refuse new connections; open ones go on (a name that only the peers linked
        through it already reach), until ``heal``."""
        self._open = False

    def stop(self) -> None:
        """Cut every connection, stop listening and end the proxy's thread."""
        if self._thread.is_alive():
            self.cut()
            if self._server is not None:
                self._loop.call_soon_threadsafe(self._server.close)
            # Connections still piping (one whose replies are held, say) end here, not
            # with the loop: a task left pending there is destroyed with a warning.
            asyncio.run_coroutine_threadsafe(_end_tasks(), self._loop).result(LOOP_TIMEOUT_S)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(LOOP_TIMEOUT_S)
        if not self._thread.is_alive() and not self._loop.is_closed():
            self._loop.close()

    def __enter__(self) -> LinkProxy:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()


async def _end_tasks() -> None:
    """Cancel every other task of the running loop and wait until they have ended."""
    tasks = asyncio.all_tasks() - {asyncio.current_task()}
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _call(function: object) -> None:
    assert callable(function)
    function()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST rather than FIN, as a dropped link looks to the other side."""
    with contextlib.suppress(Exception):
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()
