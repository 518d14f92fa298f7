"""Running a node: open the store, serve the API, stop cleanly on SIGTERM/SIGINT.

``run(config)`` is what ``clawsync serve`` calls. ``start(config)`` runs the same node
inside an existing event loop (tests, embedding) and returns a ``RunningNode`` to stop.

>>> import asyncio, tempfile
>>> from pathlib import Path
>>> async def demo():
...     node = await start(Config(data_dir=Path(tempfile.mkdtemp()), port=0))
...     head = node.astore.head
...     await node.stop()
...     return head
>>> asyncio.run(demo())
0
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from dataclasses import dataclass

import structlog
from aiohttp import web

from node import logs
from node.config import Config
from node.http.listener import BoundedSite
from node.peers import api as peering
from node.peers.gossip import Gossip
from node.server.app import make_app
from node.server.streams import KEEPALIVE_S
from node.store import AsyncStore

log = structlog.get_logger(__name__)

#: Seconds that requests in flight get to finish when the node stops. Long polls and
#: streams are ended at once; this only covers appends waiting for their commit and reads.
SHUTDOWN_TIMEOUT_S = 10.0
#: Seconds to keep reading (and discarding) a refused body that is still arriving, so
#: the client reads our 413/408 instead of a connection reset. Short, because a client
#: can keep the connection busy for that long. Never longer than the read timeout.
LINGER_S = 1.0


@dataclass(slots=True)
class RunningNode:
    """A node serving in this event loop."""

    config: Config
    runner: web.AppRunner
    site: BoundedSite
    astore: AsyncStore
    gossip: Gossip
    stopped: bool = False

    @property
    def url(self) -> str:
        """Base URL of the API, with the real port."""
        return self.site.name

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish, commit what is queued, close."""
        if self.stopped:
            return
        self.stopped = True
        await self.gossip.stop()
        await self.runner.cleanup()
        await self.astore.close()


async def start(config: Config, *, sse_keepalive_s: float = KEEPALIVE_S) -> RunningNode:
    """Open the store in ``config.data_dir`` (created if missing) and start serving."""
    config.check()
    limits = config.limits
    config.data_dir.mkdir(parents=True, exist_ok=True)
    astore = await AsyncStore.open(config.data_dir,
                                   commit_events_max=limits.commit_events_max,
                                   queue_events_max=limits.queue_events_max,
                                   documents_in_memory_max=limits.documents_in_memory_max)
    try:
        app = make_app(config, astore, sse_keepalive_s=sse_keepalive_s)
        gossip = Gossip(config, astore, peering.client_tls(config))
        peering.setup(app, config, gossip)
        runner = web.AppRunner(
            app,
            # aiohttp's keep-alive timer runs from the moment a connection opens until a
            # request's headers are complete, and again between requests: it is the
            # header read timeout. Bodies are timed by node.http.wire.read_body.
            keepalive_timeout=limits.read_timeout_s,
            lingering_time=min(LINGER_S, limits.read_timeout_s),
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
            access_log=None,  # requests are counted in /metrics instead
        )
        await runner.setup()
        site = BoundedSite(runner, config.host, config.port,
                           connections_max=limits.connections_max,
                           ssl_context=peering.server_tls(config))
        try:
            await site.start()
            await gossip.start()
        except BaseException:
            await gossip.stop()
            await runner.cleanup()
            raise
    except BaseException:
        await astore.close()
        raise
    return RunningNode(config, runner, site, astore, gossip)


async def serve(config: Config) -> None:
    """Serve until SIGTERM or SIGINT, then stop gracefully."""
    node = await start(config)
    log.info("serving", url=node.url, node_id=node.astore.node_id, head=node.astore.head,
             data_dir=str(config.data_dir))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
        log.info("stopping", head=node.astore.head)
    finally:
        await node.stop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(signum)
    log.info("stopped", head=node.astore.head)


def run(config: Config) -> None:
    """Configure logging and serve ``config`` until told to stop (``clawsync serve``)."""
    logs.configure(config.log_level, config.log_format)
    asyncio.run(serve(config))
