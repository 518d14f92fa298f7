"""What a dial over TLS says when the peer refuses it in the handshake, closes during
it, or closes after it: real TLS sites and certificates in this process."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from node.config import Config
from node.http.listener import BoundedSite
from node.limits import Limits
from node.peers.api import client_tls, server_tls
from node.peers.link_errors import LinkClosed
from node.peers.transport import dial
from tests.node.peers.support import FAST
from tests.support.certs import make_ca, make_cert, make_cert_expiring


@contextlib.asynccontextmanager
async def tls_site(cert: tuple[Path, Path], ca: Path, version: ssl.TLSVersion,
                   refuse: ssl.AlertDescription | None = None) -> AsyncIterator[str]:
    """A site of the node's own (``BoundedSite``) serving HTTPS with ``cert``, asking
    for client certificates of ``ca``, up to TLS ``version``; its URL. ``refuse``: an
    alert it refuses every handshake with, at its start."""
    runner = web.AppRunner(web.Application())
    await runner.setup()
    context = server_tls(Config(tls_cert=cert[0], tls_key=cert[1], tls_ca=ca))
    assert context is not None
    context.maximum_version = version
    if refuse is not None:
        # Called for every hello, with or without a name: its answer is the alert sent.
        context.sni_callback = lambda _sock, _name, _context: refuse
    site = BoundedSite(runner, "127.0.0.1", 0, Limits(), ssl_context=context)
    await site.start()
    try:
        yield f"https://127.0.0.1:{site.port}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
@pytest.mark.parametrize(("expired", "said"), [
    (False, "(TLSV1_ALERT_UNKNOWN_CA): this node's certificate may not be signed by a CA "
            "the peer trusts"),
    (True, "(SSLV3_ALERT_CERTIFICATE_EXPIRED): this node's certificate, or a CA of its "
           "chain, may have expired: its log says which (tls certificate expired)")],
    ids=["unknown-ca", "expired"])
async def test_a_dial_whose_certificate_the_peer_refuses_says_so(
        tmp_path: Path, version: ssl.TLSVersion, expired: bool, said: str) -> None:
    """The dialer trusts the peer's CA, but shows a certificate of another CA, or one
    expired: the peer refuses it in the TLS handshake, telling why (its alert:
    ``BoundedSite`` sends it), and the dial says so, and what may be wrong with this
    node's certificate, whether the alert fails the connect (TLS 1.2) or the first read
    (TLS 1.3, where the dialer's side of the handshake ended first)."""
    ca, other = make_ca(tmp_path, "ca"), make_ca(tmp_path, "other-ca")
    dialer = make_cert_expiring(tmp_path, "dialer", ca, days=-1, begins_days=-2) \
        if expired else make_cert(tmp_path, "dialer", other)
    tls = client_tls(Config(tls_cert=dialer[0], tls_key=dialer[1], tls_ca=ca[0]))
    async with tls_site(make_cert(tmp_path, "peer", ca), ca[0], version) as url, \
            aiohttp.ClientSession() as http:
        with pytest.raises(LinkClosed) as raised:
            await dial(http, url, node_id="n" * 32, secret=None, advertise=None, tls=tls,
                       config=FAST)
    assert str(raised.value) == f"cannot reach {url}: it refused the TLS connection {said}"


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
@pytest.mark.parametrize("name", [
    "TLSV1_UNRECOGNIZED_NAME", "TLSV1_UNSUPPORTED_EXTENSION", "TLSV1_CERTIFICATE_UNOBTAINABLE",
    "TLSV1_BAD_CERTIFICATE_STATUS_RESPONSE", "TLSV1_BAD_CERTIFICATE_HASH_VALUE"])
async def test_an_alert_openssl_names_without_alert_is_said_as_a_refusal(
        tmp_path: Path, version: ssl.TLSVersion, name: str) -> None:
    """OpenSSL names a few alerts without ``_ALERT_`` (``TLSV1_UNRECOGNIZED_NAME``, as a
    server sends that does not serve the name asked): the peer refused the connection
    all the same, and the dial says so with the alert's name, not "TLS failed", as of
    a handshake this node could not make."""
    refuse = ssl.AlertDescription[f"ALERT_DESCRIPTION_{name.removeprefix('TLSV1_')}"]
    ca = make_ca(tmp_path, "ca")
    dialer = make_cert(tmp_path, "dialer", ca)
    tls = client_tls(Config(tls_cert=dialer[0], tls_key=dialer[1], tls_ca=ca[0]))
    async with tls_site(make_cert(tmp_path, "peer", ca), ca[0], version, refuse) as url, \
            aiohttp.ClientSession() as http:
        with pytest.raises(LinkClosed) as raised:
            await dial(http, url, node_id="n" * 32, secret=None, advertise=None, tls=tls,
                       config=FAST)
    assert str(raised.value) == f"cannot reach {url}: it refused the TLS connection ({name})"


async def test_a_peer_that_closes_during_the_tls_handshake_is_said_to_have_closed_it(
        tmp_path: Path) -> None:
    """A peer that reads the dialer's hello and closes, without a word of TLS (a node of
    an older build that refused the certificate, with no alert): the
    dial says it closed the connection during the handshake, not aiohttp's words (the
    address again and the TLS context's repr)."""
    ca = make_ca(tmp_path, "ca")
    dialer = make_cert(tmp_path, "dialer", ca)

    async def closing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)  # the hello came
        writer.close()

    server = await asyncio.start_server(closing, "127.0.0.1", 0)
    url, said = await dial_refused(server, dialer, ca)
    assert said == f"cannot reach {url}: it closed the connection during the TLS handshake"


async def test_a_tls_peer_that_closes_after_the_handshake_is_said_to_have_disconnected(
        tmp_path: Path) -> None:
    """A peer whose TLS handshake took the dialer's certificate, then closes before it
    answers: nothing was refused in the handshake, and the dial says the peer
    disconnected, as aiohttp does."""
    ca = make_ca(tmp_path, "ca")
    dialer, peer = make_cert(tmp_path, "dialer", ca), make_cert(tmp_path, "peer", ca)
    context = server_tls(Config(tls_cert=peer[0], tls_key=peer[1], tls_ca=ca[0]))

    async def closing(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert writer.get_extra_info("peercert")  # the handshake took its certificate
        writer.close()

    server = await asyncio.start_server(closing, "127.0.0.1", 0, ssl=context)
    url, said = await dial_refused(server, dialer, ca)
    assert said == f"cannot reach {url}: Server disconnected"


async def dial_refused(server: asyncio.Server, dialer: tuple[Path, Path],
                       ca: tuple[Path, Path]) -> tuple[str, str]:
    """Dial ``server`` over TLS with the certificate ``dialer`` of ``ca``, expecting the
    dial to fail; closes the server. Its URL and what the dial said."""
    url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    tls = client_tls(Config(tls_cert=dialer[0], tls_key=dialer[1], tls_ca=ca[0]))
    try:
        async with aiohttp.ClientSession() as http:
            with pytest.raises(LinkClosed) as raised:
                await dial(http, url, node_id="n" * 32, secret=None, advertise=None,
                           tls=tls, config=FAST)
    finally:
        server.close()
        await server.wait_closed()
    return url, str(raised.value)
