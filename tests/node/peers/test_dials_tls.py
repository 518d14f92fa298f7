"""What a dial over TLS says when the peer refuses it in the handshake, closes during
it, or closes after it: real TLS sites and certificates in this process."""

from __future__ import annotations

import asyncio
import contextlib
import re
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
from tests.support.certs import (
    make_ca,
    make_cert,
    make_cert_expiring,
    make_cert_with_unknown_critical_extension,
)
from tests.support.tls_alerts import (
    NO_APPLICATION_PROTOCOL,
    UNKNOWN_ALERT_LEVEL,
    answering_hello,
    close_in_tls,
)


@contextlib.asynccontextmanager
async def tls_site(cert: tuple[Path, Path], ca: Path, version: ssl.TLSVersion,
                   refuse: int | None = None, *,
                   required: bool = False) -> AsyncIterator[str]:
    """A site of the node's own (``BoundedSite``) serving HTTPS with ``cert``, asking
    for client certificates of ``ca`` (requiring one if ``required``), up to TLS
    ``version``; its URL. ``refuse``: an alert it refuses every handshake with, at its
    start."""
    runner = web.AppRunner(web.Application())
    await runner.setup()
    context = server_tls(Config(tls_cert=cert[0], tls_key=cert[1], tls_ca=ca))
    assert context is not None
    context.maximum_version = version
    if required:
        context.verify_mode = ssl.CERT_REQUIRED
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
    async with tls_site(make_cert(tmp_path, "peer", ca), ca[0], version) as url:
        told = await failed_dial(url, tls)
    assert told == f"cannot reach {url}: it refused the TLS connection {said}"


@pytest.mark.parametrize(("version", "said"), [
    (ssl.TLSVersion.TLSv1_2, "(SSLV3_ALERT_HANDSHAKE_FAILURE): the peer may want a client "
                             "certificate and this node sent none (--tls-cert, "
                             "--tls-key), or accept none of the TLS versions and ciphers "
                             "it offers"),
    (ssl.TLSVersion.TLSv1_3, "(TLSV13_ALERT_CERTIFICATE_REQUIRED): the peer wants a client "
                             "certificate and this node sent none: give it one "
                             "(--tls-cert, --tls-key)")], ids=["tls1.2", "tls1.3"])
async def test_a_dial_without_the_client_certificate_the_peer_requires_says_so(
        tmp_path: Path, version: ssl.TLSVersion, said: str) -> None:
    """A peer that requires a client certificate (a proxy in front of a node: a node
    asks for one, apps connect without), dialed by a node of ``--tls-ca`` alone: the
    dial says the peer wants one, and the options that give it."""
    ca = make_ca(tmp_path, "ca")
    tls = client_tls(Config(tls_ca=ca[0]))
    async with tls_site(make_cert(tmp_path, "peer", ca), ca[0], version,
                        required=True) as url:
        told = await failed_dial(url, tls)
    assert told == f"cannot reach {url}: it refused the TLS connection {said}"


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
async def test_a_dial_whose_certificate_is_not_valid_yet_says_what_bad_certificate_means(
        tmp_path: Path, version: ssl.TLSVersion) -> None:
    """A certificate that begins tomorrow (a clock behind, or one issued ahead): OpenSSL
    refuses it as a ``bad certificate``, which the dial says may be a clock."""
    ca = make_ca(tmp_path, "ca")
    dialer = make_cert_expiring(tmp_path, "dialer", ca, days=2, begins_days=1)
    tls = client_tls(Config(tls_cert=dialer[0], tls_key=dialer[1], tls_ca=ca[0]))
    async with tls_site(make_cert(tmp_path, "peer", ca), ca[0], version) as url:
        told = await failed_dial(url, tls)
    assert told == (
        f"cannot reach {url}: it refused the TLS connection (SSLV3_ALERT_BAD_CERTIFICATE): "
        "this node's certificate may not be valid yet (check the clocks of both machines), "
        "or its key or signature may be too weak for the peer")


@pytest.mark.parametrize(("name", "hint"), [
    ("SSLV3_ALERT_UNSUPPORTED_CERTIFICATE", "this node's certificate may not be for a "
                                            "client: its extended key usage must list "
                                            "clientAuth"),
    ("SSLV3_ALERT_CERTIFICATE_REVOKED", "this node's certificate was revoked: it needs a "
                                        "new one"),
    ("TLSV1_ALERT_PROTOCOL_VERSION", "the peer accepts none of the TLS versions this node "
                                     "offers"),
    ("TLSV1_UNRECOGNIZED_NAME", "the peer does not serve the name dialed: check the "
                                "address"),
    ("TLSV1_ALERT_UNKNOWN_PSK_IDENTITY", "the peer's TLS may expect pre-shared keys "
                                         "(TLS-PSK), which nodes do not use: check that "
                                         "the address is a node's")],
    ids=["unsupported", "revoked", "version", "name", "psk"])
async def test_an_alert_a_user_can_act_on_is_said_with_what_to_do(
        tmp_path: Path, name: str, hint: str) -> None:
    """The alerts a peer commonly sends that this node cannot make its own TLS send
    here (a certificate not for a client, one revoked, no version in common, a name
    not served, pre-shared keys, which Python names not: OpenSSL's words do), sent by
    the peer's handshake: the dial says what to do."""
    ca = make_ca(tmp_path, "ca")
    dialer = make_cert(tmp_path, "dialer", ca)
    tls = client_tls(Config(tls_cert=dialer[0], tls_key=dialer[1], tls_ca=ca[0]))
    refuse = alert_named(name)
    async with tls_site(make_cert(tmp_path, "peer", ca), ca[0], ssl.TLSVersion.TLSv1_3,
                        refuse) as url:
        told = await failed_dial(url, tls)
    assert told == \
        f"cannot reach {url}: it refused the TLS connection ({name}): {hint}"


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
    refuse = alert_named(name)
    ca = make_ca(tmp_path, "ca")
    dialer = make_cert(tmp_path, "dialer", ca)
    tls = client_tls(Config(tls_cert=dialer[0], tls_key=dialer[1], tls_ca=ca[0]))
    async with tls_site(make_cert(tmp_path, "peer", ca), ca[0], version, refuse) as url:
        told = await failed_dial(url, tls)
    assert told.startswith(
        f"cannot reach {url}: it refused the TLS connection ({name})"), told


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
@pytest.mark.parametrize(("signed_by", "said"), [
    ("unknown-extension", "(SSLV3_ALERT_CERTIFICATE_UNKNOWN): the peer refused this node's "
                          "certificate without saying why (OpenSSL does so of an extension "
                          "marked critical it does not know, for one): the peer's log "
                          "says why (peer tls refused), if it is a clawsync node"),
    ("same-name-ca", "(TLSV1_ALERT_DECRYPT_ERROR): a signature did not verify with the key "
                     "the peer holds: this node's certificate may be signed by another key "
                     "than the peer's CA of that name (a CA made again under the same name, "
                     "of certificates without an authority key identifier): the peer's log "
                     "says why (peer tls refused), if it is a clawsync node")])
async def test_a_certificate_refused_as_unknown_or_of_a_signature_that_fails_says_why(
        tmp_path: Path, version: ssl.TLSVersion, signed_by: str, said: str) -> None:
    """What OpenSSL really refuses a certificate with ``certificate unknown`` for (an
    extension marked critical it does not know) and ``decrypt error`` (signed by a CA of
    the name the peer trusts, made again with another key): the dial says what may be
    wrong and where to read why."""
    ca = make_ca(tmp_path, "ca")
    if signed_by == "same-name-ca":
        (tmp_path / "again").mkdir()
        # Of a certificate without an authority key identifier (make_cert_expiring's):
        # the peer finds its CA by name alone, and the signature fails with that CA's
        # key. One with it (make_cert's) names the key too, finds no CA: UNKNOWN_CA.
        dialer = make_cert_expiring(tmp_path, "dialer", make_ca(tmp_path / "again", "ca"), 2)
    else:
        dialer = make_cert_with_unknown_critical_extension(tmp_path, "dialer", ca)
    tls = client_tls(Config(tls_cert=dialer[0], tls_key=dialer[1], tls_ca=ca[0]))
    async with tls_site(make_cert(tmp_path, "peer", ca), ca[0], version) as url:
        told = await failed_dial(url, tls)
    assert told == f"cannot reach {url}: it refused the TLS connection {said}"


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
async def test_an_alert_python_has_no_name_for_is_named_by_openssl_s_words(
        tmp_path: Path, version: ssl.TLSVersion) -> None:
    """An alert Python's table of OpenSSL's reasons lacks (no application protocol): its
    error has OpenSSL's words alone, and the dial names it from them, as OpenSSL does."""
    ca = make_ca(tmp_path, "ca")
    dialer = make_cert(tmp_path, "dialer", ca)
    tls = client_tls(Config(tls_cert=dialer[0], tls_key=dialer[1], tls_ca=ca[0]))
    async with tls_site(make_cert(tmp_path, "peer", ca), ca[0], version,
                        NO_APPLICATION_PROTOCOL) as url:
        told = await failed_dial(url, tls)
    assert told == \
        f"cannot reach {url}: it refused the TLS connection (TLSV1_ALERT_NO_APPLICATION_PROTOCOL)"


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
async def test_an_alert_openssl_has_no_name_for_is_said_as_a_refusal(
        tmp_path: Path, version: ssl.TLSVersion) -> None:
    """A peer whose TLS refuses the hello with close_notify, sent as fatal (an OpenSSL
    server whose hello callback answers it), which OpenSSL has no words for: the dial
    says the peer refused it, not "TLS failed ([SSL] unknown error)"."""
    ca = make_ca(tmp_path, "ca")
    dialer = make_cert(tmp_path, "dialer", ca)
    tls = client_tls(Config(tls_cert=dialer[0], tls_key=dialer[1], tls_ca=ca[0]))
    async with tls_site(make_cert(tmp_path, "peer", ca), ca[0], version,
                        ssl.AlertDescription.ALERT_DESCRIPTION_CLOSE_NOTIFY) as url:
        told = await failed_dial(url, tls)
    assert told == f"cannot reach {url}: it refused the TLS connection with an alert " \
        "OpenSSL has no name for (close_notify, or one no TLS version defines)"


async def test_a_peer_that_closes_its_tls_during_the_handshake_is_said_to_have_closed_it(
        tmp_path: Path) -> None:
    """A peer that answers the dialer's hello with TLS's own close (close_notify, as a
    warning, in the clear as alerts before the keys are): the dial says it closed the
    connection during the handshake, not "TLS failed"."""
    ca = make_ca(tmp_path, "ca")
    dialer = make_cert(tmp_path, "dialer", ca)

    server = await asyncio.start_server(close_in_tls, "127.0.0.1", 0)
    url, said = await dial_refused(server, dialer, ca)
    assert said == f"cannot reach {url}: it closed the connection during the TLS handshake"


async def test_an_alert_record_openssl_cannot_read_is_a_tls_failure_not_a_refusal(
        tmp_path: Path) -> None:
    """A peer that answers the hello with an alert record of a level neither warning nor
    fatal: OpenSSL fails it as ``UNKNOWN_ALERT_TYPE``, a reason of its own with
    ``_ALERT_`` in it, not an alert the peer sent, and the dial says TLS failed."""
    ca = make_ca(tmp_path, "ca")
    dialer = make_cert(tmp_path, "dialer", ca)

    server = await asyncio.start_server(answering_hello(UNKNOWN_ALERT_LEVEL), "127.0.0.1", 0)
    url, said = await dial_refused(server, dialer, ca)
    assert said == f"cannot reach {url}: TLS failed (UNKNOWN_ALERT_TYPE)"


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


def alert_named(name: str) -> ssl.AlertDescription:
    """The alert OpenSSL names ``name`` when it comes (``SSLV3_ALERT_BAD_CERTIFICATE``,
    ``TLSV1_UNRECOGNIZED_NAME``)."""
    return ssl.AlertDescription[
        "ALERT_DESCRIPTION_" + re.sub(r"^(SSLV3|TLSV1|TLSV13)_(ALERT_)?", "", name)]


async def dial_refused(server: asyncio.Server, dialer: tuple[Path, Path],
                       ca: tuple[Path, Path]) -> tuple[str, str]:
    """Dial ``server`` over TLS with the certificate ``dialer`` of ``ca``, expecting the
    dial to fail; closes the server. Its URL and what the dial said."""
    url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    tls = client_tls(Config(tls_cert=dialer[0], tls_key=dialer[1], tls_ca=ca[0]))
    try:
        return url, await failed_dial(url, tls)
    finally:
        server.close()
        await server.wait_closed()


async def failed_dial(url: str, tls: ssl.SSLContext | None) -> str:
    """What a dial of ``url`` with ``tls`` said as it failed (it must)."""
    async with aiohttp.ClientSession() as http:
        with pytest.raises(LinkClosed) as raised:
            await dial(http, url, node_id="n" * 32, secret=None, advertise=None, tls=tls,
                       config=FAST)
    return str(raised.value)
