"""``answers_tls``: whether an http:// address that hung up speaks TLS, against real
servers on loopback, names looked up as the client looks them up."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.abc import AbstractResolver

from node.client.tls_probe import TLS_PROBE_TIMEOUT_S, answers_tls
from node.http.tls_accept import accept_tls
from node.lookups import LookupResolver
from tests.support.certs import make_ca, make_cert
from tests.support.tls_alerts import (
    NO_APPLICATION_PROTOCOL,
    UNKNOWN_ALERT_LEVEL,
    answering_hello,
    close_in_tls,
)
from tests.support.waits import DEADLINE_S


@pytest.fixture
async def resolver() -> AsyncIterator[LookupResolver]:
    lookups = LookupResolver()
    yield lookups
    await lookups.close()


async def test_a_tls_server_answers(tmp_path: Path, resolver: LookupResolver) -> None:
    cert, key = make_cert(tmp_path, "node", make_ca(tmp_path, "ca"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = await asyncio.start_server(lambda _r, w: w.close(), "127.0.0.1", 0, ssl=context)
    async with server:
        port = server.sockets[0].getsockname()[1]
        assert await answers_tls("127.0.0.1", port, resolver)
        assert await answers_tls("localhost", port, resolver)


async def test_a_tls_server_that_refuses_the_probe_with_an_alert_answers(
        tmp_path: Path, resolver: LookupResolver) -> None:
    """A node that wants a client certificate, which the probe does not show: its
    alert (in TLS 1.2 it refuses within the handshake; the node's TLS sends it, asyncio's
    own would not) is an answer in TLS."""
    context = server_context(tmp_path)
    context.verify_mode = ssl.CERT_REQUIRED
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    assert await answers_refusing(context, resolver)


@pytest.mark.parametrize("refuse", [
    ssl.AlertDescription.ALERT_DESCRIPTION_CLOSE_NOTIFY,  # as fatal: OpenSSL has no words
    NO_APPLICATION_PROTOCOL])  # words, and no name in Python's table
async def test_a_tls_server_that_refuses_the_hello_with_an_alert_python_names_not_answers(
        tmp_path: Path, resolver: LookupResolver, refuse: int) -> None:
    """A server whose TLS refuses the hello with an alert Python has no name for (its
    error has no reason, only OpenSSL's words): it spoke TLS all the same."""
    context = server_context(tmp_path)
    # Called for every hello: its answer is the alert sent.
    context.sni_callback = lambda _sock, _name, _context: refuse
    assert await answers_refusing(context, resolver)


async def test_a_server_that_closes_its_tls_at_the_hello_answers(
        resolver: LookupResolver) -> None:
    """A server that answers the hello with TLS's own close (close_notify, as a warning)
    spoke TLS."""
    server = await asyncio.start_server(close_in_tls, "127.0.0.1", 0)
    async with server:
        assert await answers_tls("127.0.0.1", server.sockets[0].getsockname()[1], resolver)


def server_context(folder: Path) -> ssl.SSLContext:
    """A server's TLS context, with a certificate of a CA of ``folder``'s own."""
    cert, key = make_cert(folder, "node", make_ca(folder, "ca"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(cert))
    context.load_cert_chain(cert, key)
    return context


async def answers_refusing(context: ssl.SSLContext, resolver: LookupResolver) -> bool:
    """What the probe says of a server whose TLS, of ``context``, refuses its handshake
    (as a node's does: ``accept_tls``, which sends the alert)."""
    loop = asyncio.get_running_loop()
    with socket.create_server(("127.0.0.1", 0)) as listening:
        listening.setblocking(False)

        async def refusing() -> None:
            conn, _ = await loop.sock_accept(listening)
            with pytest.raises(ssl.SSLError):
                await accept_tls(loop, conn, asyncio.Protocol(), context, DEADLINE_S)

        refused = asyncio.create_task(refusing())
        answered = await answers_tls("127.0.0.1", listening.getsockname()[1], resolver)
        await refused
    return answered


async def test_a_plain_or_silent_server_does_not(resolver: LookupResolver) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(4096)
        writer.close()

    held: list[asyncio.StreamWriter] = []
    plain = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    # Accepts and never says a word: the probe gives up after its timeout.
    silent = await asyncio.start_server(lambda _r, w: held.append(w), "127.0.0.1", 0)
    async with plain, silent:
        assert not await answers_tls("127.0.0.1", plain.sockets[0].getsockname()[1], resolver)
        assert not await answers_tls("127.0.0.1", silent.sockets[0].getsockname()[1],
                                     resolver, timeout_s=TLS_PROBE_TIMEOUT_S / 10)
        for writer in held:
            writer.close()


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    b"SSH-2.0-OpenSSH_9.2p1\r\n",
    UNKNOWN_ALERT_LEVEL], ids=["http", "ssh", "unreadable-alert"])
async def test_a_server_that_answers_the_hello_not_in_tls_does_not(
        resolver: LookupResolver, answer: bytes) -> None:
    """A server that answers the hello, but not in TLS (a plain HTTP server's answer, an
    SSH banner, an alert record OpenSSL cannot read): the handshake fails of this side's
    own reading (WRONG_VERSION_NUMBER, UNKNOWN_ALERT_TYPE), which is no answer in TLS,
    so no "try https://" advice."""
    server = await asyncio.start_server(answering_hello(answer), "127.0.0.1", 0)
    async with server:
        assert not await answers_tls("127.0.0.1", server.sockets[0].getsockname()[1], resolver)


class _Stalled(AbstractResolver):
    """A name server that never answers."""

    async def resolve(self, host: str, port: int = 0, family: Any = 0) -> Any:
        await asyncio.Event().wait()

    async def close(self) -> None:
        pass


async def test_a_name_whose_lookup_stalls_is_given_up_within_the_timeout() -> None:
    assert not await answers_tls("stalls.example", 80, _Stalled(),
                                 timeout_s=TLS_PROBE_TIMEOUT_S / 10)
