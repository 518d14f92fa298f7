"""The node's own accept loop: a silent client must not keep others out."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from node.config import Config
from node.server.run import RunningNode, start
from tests.support.waits import until

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True,
                   capture_output=True)
    return cert, key


async def test_a_silent_client_does_not_block_tls_handshakes(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    node = await start(Config(data_dir=tmp_path / "data", port=0, tls_cert=cert, tls_key=key))
    try:
        port = int(node.url.rsplit(":", 1)[1])
        _, silent = await asyncio.open_connection("127.0.0.1", port)  # never says a word
        trust = ssl.create_default_context(cafile=str(cert))
        # The deadline is far below the 10 s handshake limit the silent client was given.
        async with aiohttp.ClientSession() as http, asyncio.timeout(5), http.get(
                f"https://127.0.0.1:{port}/healthz", ssl=trust) as reply:
            assert reply.status == 200
        silent.close()
    finally:
        await node.stop()


NodeFactory = Callable[..., Awaitable[RunningNode]]
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


async def connect_from(node: RunningNode, source: str
                       ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = node.url.removeprefix("http://").rsplit(":", 1)
    return await asyncio.open_connection(host, int(port), local_addr=(source, 0))


async def served(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    writer.write(HEALTHZ)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    return head.startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("sent", [b"", b"GET /healthz HTTP/1.1\r\n"])
async def test_a_silent_connection_is_closed_before_the_keepalive_timeout(
        make_node: NodeFactory, sent: bytes) -> None:
    """Nothing, or headers that never end: closed after the first-byte or headers limit,
    long before ``read_timeout_s`` (which times requests once headers have come)."""
    node = await make_node(first_byte_timeout_s=0.1, headers_timeout_s=0.3,
                           read_timeout_s=60)
    reader, writer = await connect_from(node, "127.0.0.1")
    writer.write(sent)
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()
    assert node.site.connections == 0


async def test_headers_sent_in_pieces_within_the_limit_are_served(
        make_node: NodeFactory) -> None:
    node = await make_node(first_byte_timeout_s=5, headers_timeout_s=10)
    reader, writer = await connect_from(node, "127.0.0.1")
    for piece in (HEALTHZ[:5], HEALTHZ[5:18], HEALTHZ[18:]):  # "\r\n\r\n" split too
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(0.05)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 200")
    writer.close()


async def test_one_address_gets_its_share_of_connections_and_others_still_connect(
        make_node: NodeFactory) -> None:
    node = await make_node(connections_max=8, connections_per_address_max=2)
    held = [await connect_from(node, "127.0.0.1") for _ in range(2)]
    for reader, writer in held:
        assert await served(reader, writer)
    # A third from the same address is closed at once, unanswered ...
    reader, writer = await connect_from(node, "127.0.0.1")
    writer.write(HEALTHZ)
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()
    # ... while another address is served, and the first gets its slot back on close.
    other = await connect_from(node, "127.0.0.2")
    assert await served(*other)
    held[0][1].close()
    await held[0][1].wait_closed()
    # The slot given back is what this part tests: without it, the next connection
    # would still be served, by trading an idle one for it.
    await until(lambda: node.site.connections == 2)
    again = await connect_from(node, "127.0.0.1")
    assert await served(*again)
    for _, writer in (*held[1:], other, again):
        writer.close()


async def test_at_its_cap_an_address_trades_its_oldest_idle_connection_for_a_new_one(
        make_node: NodeFactory) -> None:
    """Every local client shares 127.0.0.1: silent sockets of that address must not keep
    out a client of the same address that asks at once."""
    node = await make_node(connections_max=8, connections_per_address_max=2)
    silent = [await connect_from(node, "127.0.0.1") for _ in range(2)]
    asker = await connect_from(node, "127.0.0.1")
    assert await served(*asker)
    # The oldest silent one made room; the other is still open, and still idle.
    assert await asyncio.wait_for(silent[0][0].read(), 10) == b""
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(silent[1][0].read(1), 0.2)
    for _, writer in (*silent, asker):
        writer.close()


async def test_when_every_slot_is_idle_a_waiting_client_takes_the_oldest_ones_place(
        make_node: NodeFactory) -> None:
    """Silent sockets from many addresses fill every slot: a client that asks is still
    served at once (far within the first-byte limit the silent ones were given)."""
    node = await make_node(connections_max=4, first_byte_timeout_s=60, headers_timeout_s=60)
    silent = [await connect_from(node, f"127.0.0.{2 + n}") for n in range(4)]
    await until(lambda: node.site.connections == 4)  # every slot taken, before the asker
    asker = await connect_from(node, "127.0.0.10")
    assert await served(*asker)
    assert await asyncio.wait_for(silent[0][0].read(), 10) == b""  # the oldest made room
    for _, writer in (*silent, asker):
        writer.close()


async def test_a_burst_of_silent_sockets_does_not_crowd_out_a_client_queued_behind_it(
        make_node: NodeFactory) -> None:
    """Silent sockets and then a client that asks, all waiting in the kernel's queue
    before the node accepts one: the accept loop takes them in one burst, and each at the
    cap must find an older silent one to trade for, not a count of connections it has
    accepted but not yet set up."""
    node = await make_node(connections_max=64, connections_per_address_max=2,
                           first_byte_timeout_s=60, headers_timeout_s=60)
    host, port = node.url.removeprefix("http://").rsplit(":", 1)
    # Blocking connects: the event loop (and so the accept loop) does not run meanwhile.
    silent = [socket.create_connection((host, int(port))) for _ in range(8)]
    asker = socket.create_connection((host, int(port)))
    asker.sendall(HEALTHZ)
    reader, writer = await asyncio.open_connection(sock=asker)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 200")
    writer.close()
    for sock in silent:
        sock.close()
