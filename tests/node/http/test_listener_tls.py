"""The node's own accept loop given new TLS (``BoundedSite.use_tls``), in process with real
handshakes on loopback: a CA trusted no more ends the connections that showed a client
certificate, those open and one whose handshake began under the old CA and ended after;
one without a certificate (an app, with its token) stays; a CA added, or the same CA
given again (a running node's look retried after it failed partway), ends none."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import ssl
import warnings
from asyncio import sslproto
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from node.config import Config
from node.http import listener, tls_refusals
from node.http.listener import BoundedSite
from node.http.tls_accept import SSLPROTOCOL_HOOKS
from node.limits import Limits
from node.peers.api import server_tls
from node.peers.tls_pem import CA_FILE, read_file
from node.server.run import PLAIN_ENDED, start
from node.tls_trust import DialsEnded
from tests.node.conftest import NodeFactory
from tests.node.http.support import CannotWarn
from tests.support.certs import bundle, install, make_ca, make_cert
from tests.support.waits import DEADLINE_S, until

#: The line of a node that ended peer links at a change of its CA.
ENDED = "peer links ended: tls ca changed"
#: The cluster secret of the nodes started here.
SECRET = "s" * 32
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Cas:
    """The old CA, a new one, and both in one file; the site's certificate and key, and a
    peer's, of the old CA; the peer's renewed, of the new CA."""

    def __init__(self, folder: Path) -> None:
        self.old, self.new = make_ca(folder, "old-ca"), make_ca(folder, "new-ca")
        self.both = bundle(folder / "both.pem", self.old[0], self.new[0])
        self.served = make_cert(folder, "site", self.old)
        self.peer = make_cert(folder, "peer", self.old)
        self.renewed_peer = make_cert(folder, "peer-renewed", self.new)

    def trusting(self, ca: Path) -> tuple[ssl.SSLContext, frozenset[bytes]]:
        """The site's context verifying client certificates with ``ca``, and its digests."""
        context = server_tls(Config(tls_cert=self.served[0], tls_key=self.served[1],
                                    tls_ca=ca))
        read = read_file(ca, CA_FILE)
        assert context is not None and read is not None
        return context, read.block_digests

    def dialer(self, cert: tuple[Path, Path] | None) -> ssl.SSLContext:
        """A client's TLS, showing ``cert`` (a peer's), or none (an app's)."""
        context = ssl.create_default_context(cafile=str(self.old[0]))
        if cert is not None:
            context.load_cert_chain(*cert)
        return context


@pytest.fixture
def cas(tmp_path: Path) -> Cas:
    return Cas(tmp_path)


@contextlib.asynccontextmanager
async def serving(cas: Cas, limits: Limits) -> AsyncIterator[BoundedSite]:
    """A site serving /healthz over TLS within ``limits``, its client certificates
    verified by the old CA."""
    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app)
    await runner.setup()
    context, ca = cas.trusting(cas.old[0])
    served = BoundedSite(runner, "127.0.0.1", 0, limits, ssl_context=context, ca=ca)
    await served.start()
    try:
        yield served
    finally:
        await runner.cleanup()


@pytest.fixture
async def site(cas: Cas) -> AsyncIterator[BoundedSite]:
    async with serving(cas, Limits()) as served:
        yield served


async def tcp(site: BoundedSite) -> Stream:
    """A connection the site has accepted and begun its handshake on (with the context
    it had then), the client's hello held back."""
    opened = site.connections
    stream = await asyncio.open_connection("127.0.0.1", site.port)
    await until(lambda: site.connections != opened)
    for _ in range(3):  # the site's task for it runs up to the handshake's first wait
        await asyncio.sleep(0)
    return stream


async def handshaken(site: BoundedSite, dialer: ssl.SSLContext) -> Stream:
    reader, writer = await tcp(site)
    await writer.start_tls(dialer)
    assert await served((reader, writer))
    return reader, writer


async def served(stream: Stream) -> bool:
    """Whether the connection answers /healthz (False: the site closed it)."""
    reader, writer = stream
    try:
        writer.write(HEALTHZ)
        async with asyncio.timeout(DEADLINE_S):
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)content-length: *(\d+)", head)
            assert length is not None, head
            await reader.readexactly(int(length.group(1)))  # the next answer starts clean
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        return False
    return head.startswith(b"HTTP/1.1 200")


def test_asyncios_tls_still_has_the_hooks_the_alert_is_sent_by() -> None:
    """The site's TLS sends a refused handshake's alert from within private methods of
    asyncio's TLS protocol: a Python without them would drop the alert with no error."""
    missing = [name for name in SSLPROTOCOL_HOOKS
               if not callable(getattr(sslproto.SSLProtocol, name, None))]
    assert not missing, f"asyncio.sslproto.SSLProtocol has no {missing}: the alert of " \
        "a refused handshake would not be sent (node.http.tls_accept)"


async def test_a_client_that_never_ends_its_handshake_is_closed_and_its_slot_freed(
        cas: Cas) -> None:
    """A client that connects and never sends its hello is closed once
    ``tls_handshake_timeout_s`` has passed, and its slot (the site's only one) taken by
    the next client."""
    limits = Limits(tls_handshake_timeout_s=0.2, connections_max=1,
                    connections_per_address_max=1)
    async with serving(cas, limits) as site:
        silent = await tcp(site)
        async with asyncio.timeout(DEADLINE_S):
            assert await silent[0].read() == b""  # closed by the site
        await until(lambda: not site.connections)
        silent[1].close()
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", site.port, ssl=cas.dialer(None), server_hostname="localhost")
        assert await served((reader, writer))
        writer.close()


async def test_a_refused_certificate_frees_its_slot_even_if_saying_so_fails(
        cas: Cas, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client certificate the site refuses (of a CA it does not trust) frees the
    connection's slot (the site's only one) though its refusal's line cannot be
    written."""
    monkeypatch.setattr(tls_refusals, "log", CannotWarn(tls_refusals.log))
    limits = Limits(connections_max=1, connections_per_address_max=1)
    async with serving(cas, limits) as site:
        reader, writer = await tcp(site)
        with pytest.raises(ssl.SSLError):  # the refusal's alert, before or after its end
            await writer.start_tls(cas.dialer(cas.renewed_peer))
            await reader.read()
        writer.close()
        await until(lambda: not site.connections)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", site.port, ssl=cas.dialer(None), server_hostname="localhost")
        assert await served((reader, writer))
        writer.close()


async def test_a_refusal_that_cannot_be_said_is_logged_once_and_ends_no_task_in_error(
        site: BoundedSite, cas: Cas, monkeypatch: pytest.MonkeyPatch) -> None:
    """Refusals whose line cannot be written are counted, the failure logged once, as
    an error, and the connections' tasks end cleanly: asyncio says nothing of an
    exception never retrieved."""
    monkeypatch.setattr(tls_refusals, "log", CannotWarn(tls_refusals.log))
    loop = asyncio.get_running_loop()
    said: list[dict[str, Any]] = []
    handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: said.append(context))
    try:
        with capture_logs() as logs:
            for _ in range(2):
                reader, writer = await tcp(site)
                with pytest.raises(ssl.SSLError):  # the refusal's alert
                    await writer.start_tls(cas.dialer(cas.renewed_peer))
                    await reader.read()
                writer.close()
                await until(lambda: not site.connections)
            await until(lambda: site.tls_refusals.count == 2)
        gc.collect()  # a task's exception never retrieved is said of as it is collected
    finally:
        loop.set_exception_handler(handler)
    assert [context["message"] for context in said] == []
    assert [(line["event"], line["error_type"]) for line in logs] == \
        [("peer tls refusal not said", "OSError")]


async def test_a_ca_trusted_no_more_ends_the_certified_connections_once(
        site: BoundedSite, cas: Cas) -> None:
    peer = await handshaken(site, cas.dialer(cas.peer))
    app = await handshaken(site, cas.dialer(None))
    # A CA added: the one that let the peer in is trusted still.
    assert site.use_tls(*cas.trusting(cas.both)) is None
    assert await served(peer)
    # The old CA taken out: the peer's connection ends, the app's stays.
    assert site.use_tls(*cas.trusting(cas.new[0])) == 1
    assert not await served(peer)
    assert await served(app)
    # The same CA given again (a look retried after it failed partway): no link made
    # under it meanwhile ends.
    later = await handshaken(site, cas.dialer(cas.renewed_peer))
    assert site.use_tls(*cas.trusting(cas.new[0])) is None
    assert await served(later)


async def test_a_handshake_begun_under_a_ca_trusted_no_more_is_ended(
        site: BoundedSite, cas: Cas) -> None:
    """Handshakes begun under the old CA, finished after it was taken out: the peer's
    certificate was verified by the old CA, so its connection ends as those open; an
    app's, without one, stays."""
    peer, app = await tcp(site), await tcp(site)
    assert site.use_tls(*cas.trusting(cas.new[0])) == 0
    await peer[1].start_tls(cas.dialer(cas.peer))
    await app[1].start_tls(cas.dialer(None))
    assert await served(app)
    assert not await served(peer)


async def test_a_look_retried_after_a_failed_use_ends_no_link_twice(
        tmp_path: Path, cas: Cas, monkeypatch: pytest.MonkeyPatch) -> None:
    """A running node whose new CA was put in use partway (the site's connections ended,
    then the dials' part failed) is given it again at the next look: the connections
    peers made meanwhile, under the new CA, stay; only the part not done is done; each
    part's cut is said when done, with its count."""
    ca_file = tmp_path / "ca.pem"
    install(cas.old[0], ca_file)
    node = await start(Config(
        data_dir=tmp_path / "data", port=0, tls_cert=cas.served[0], tls_key=cas.served[1],
        tls_ca=ca_file, limits=Limits(tls_files_check_interval_s=0.05)))
    try:
        given: list[frozenset[bytes]] = []
        use_tls = node.gossip.use_tls

        def fails_once(context: ssl.SSLContext | None,
                       ca: frozenset[bytes]) -> DialsEnded | None:
            given.append(ca)
            if len(given) == 1:
                raise RuntimeError("the dials' part failed")
            return use_tls(context, ca)

        monkeypatch.setattr(node.gossip, "use_tls", fails_once)
        peer = await handshaken(node.site, cas.dialer(cas.peer))
        with capture_logs() as logs:
            install(cas.new[0], ca_file)
            await until(lambda: given)
            assert not await served(peer)  # the site's part was done
            renewed = await handshaken(node.site, cas.dialer(cas.renewed_peer))
            await until(lambda: len(given) == 2)
        assert given[0] == given[1]
        # The site's connection ended, said though the dials' part failed (with no count
        # of dials, as pending); the dials' part (no link up) at the retry.
        ended = [line for line in logs if line["event"] == ENDED]
        assert [(line["accepted_connections"], line.get("dialed_links")) for line in ended] \
            == [(1, None), (0, 0)]
        assert ended[0]["dials"].startswith("not ended yet")
        assert await served(renewed)
        assert use_tls(node.gossip.tls, given[1]) is None  # the dials' part, done once
    finally:
        await node.stop()


async def test_a_plain_link_a_ca_change_ends_is_not_counted_as_verified_again(
        tmp_path: Path, cas: Cas, make_node: NodeFactory) -> None:
    """A node of TLS that dials a peer over plain http://: a CA trusted no more ends
    that link too (the dials share one pool of connections), but the line counts it
    apart from the TLS links, of which alone it says that the CA trusted now verifies
    them again."""
    plain = await make_node(cluster_secret=SECRET)
    ca_file = tmp_path / "ca.pem"
    install(cas.old[0], ca_file)
    node = await make_node(cluster_secret=SECRET, peers=(plain.url,),
                           tls_cert=cas.served[0], tls_key=cas.served[1], tls_ca=ca_file,
                           tls_files_check_interval_s=0.05)
    await until(lambda: [runner.state for runner in node.gossip.runners.values()] == ["up"])
    with capture_logs() as logs:
        install(cas.new[0], ca_file)
        await until(lambda: any(line["event"] == ENDED for line in logs))
    ended = [line for line in logs if line["event"] == ENDED]
    assert [(line["accepted_connections"], line["dialed_links"],
             line.get("dialed_plain_links")) for line in ended] == [(0, 0, 1)]
    assert ended[0]["plain"] == PLAIN_ENDED


async def test_a_cut_that_failed_is_done_when_the_ca_is_given_again(
        site: BoundedSite, cas: Cas, monkeypatch: pytest.MonkeyPatch) -> None:
    """The site's connections not ended (a close that raised): the CA is not taken as
    given, so given again it ends them."""
    peer = await handshaken(site, cas.dialer(cas.peer))
    drop = listener._Counted.drop

    def fails(conn: listener._Counted) -> None:
        monkeypatch.setattr(listener._Counted, "drop", drop)
        raise RuntimeError("the close failed")

    monkeypatch.setattr(listener._Counted, "drop", fails)
    trusting = cas.trusting(cas.new[0])
    with pytest.raises(RuntimeError):
        site.use_tls(*trusting)
    assert site.use_tls(*trusting) == 1
    assert not await served(peer)


async def test_dials_whose_abort_cannot_start_leave_no_session_unclosed(
        tmp_path: Path, cas: Cas) -> None:
    """The loop takes no task (its task factory refuses them all), so the old dials'
    abort cannot start: no new session is left unclosed (aiohttp says so of one
    collected open), nor the abort unawaited; the new context is used already, but the
    CA is not taken as given, so given again, the loop taking tasks, the dials end then."""
    install(cas.old[0], tmp_path / "ca.pem")
    node = await start(Config(
        data_dir=tmp_path / "data", port=0, tls_cert=cas.served[0], tls_key=cas.served[1],
        tls_ca=tmp_path / "ca.pem"))
    loop = asyncio.get_running_loop()
    said: list[dict[str, Any]] = []
    handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: said.append(context))
    try:
        def refused(*_: object, **__: object) -> asyncio.Task[Any]:
            raise RuntimeError("the loop takes no task")

        context, ca = cas.trusting(cas.new[0])
        with warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always")
            loop.set_task_factory(refused)
            try:
                with pytest.raises(RuntimeError):
                    node.gossip.use_tls(context, ca)
            finally:
                loop.set_task_factory(None)
            assert node.gossip.tls is context  # new dials use it, on the old session
            gc.collect()  # what was left open is said of as it is collected
        assert [str(warning.message) for warning in warned] == []
        assert [context["message"] for context in said] == []
        assert node.gossip.use_tls(context, ca) == (0, 0)  # no link up, the dials ended
        assert node.gossip.use_tls(context, ca) is None  # once
    finally:
        loop.set_exception_handler(handler)
        await node.stop()
