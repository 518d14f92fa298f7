"""Links peers opened to this node (``Gossip.accepted``): their handlers, from the
handshake on (stopping ends them), and each link's life once its dialer proved what it
is, until it ends (the peer dials again).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from node.config import Config
from node.peers.admission import Admission
from node.peers.driver import Driver
from node.peers.learning import Learning
from node.peers.origin_quotas import OriginQuotas
from node.peers.rows import Rows
from node.peers.runner import Runner
from node.peers.transport import KEY_REQUIRED, Link
from sync.peer.quota import OriginQuota

#: Makes a link's runner (``Gossip._new_runner``): key, url, direction, checkpoint key,
#: the quota of new origins its peer may bring.
NewRunner = Callable[[str, str | None, str, str | None, OriginQuota | None],
                     Awaitable[Runner]]


class Accepted:
    """The links peers opened to us, over ``Gossip``'s parts."""

    def __init__(self, config: Config, admission: Admission, learning: Learning,
                 driver: Driver, rows: Rows, runners: dict[str, Runner], *,
                 new_runner: NewRunner, now: Callable[[], float]) -> None:
        self.config = config
        self.admission = admission
        self.learning = learning
        self.driver = driver
        self.rows = rows
        self.runners = runners
        self._new_runner = new_runner
        self._now = now  # the event loop's clock
        #: Handlers of links peers opened to us, from their handshake on (``inbound``).
        self.handlers: set[asyncio.Task[Any]] = set()
        #: Links taken in since start (``serve``): each one's runner key counts them.
        self.count = 0
        #: Per peer that links to us, the quota of new origins it may bring.
        self._origin_quotas = OriginQuotas()

    @contextlib.contextmanager
    def inbound(self) -> Iterator[None]:
        """Run a peer's link handler in here, from before its handshake: stopping ends
        it too. A dialer that went silent mid-handshake would otherwise hold the handler
        for ``connect_timeout_s``, and the web server's shutdown waits for every
        handler."""
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            yield
        finally:
            self.handlers.discard(task)

    async def serve(self, link: Link, *, shared: bool = False, remote: str | None = None,
                    gave_secret: bool = False) -> None:
        """Run a link a peer opened to us, until it ends (the peer re-dials).
        ``remote``: the peer's address, which names a peer that proved no device key;
        ``gave_secret``: the peer gave the cluster secret (its address may be given it)."""
        if link.peer_device is not None \
                and self.admission.admit(link.peer_device.device_id, shared=shared) is not None:
            await link.close("device not a member")  # removed during the handshake
            return
        if link.peer_device is None \
                and self.admission.keyless_refusal(shared=shared, peer=remote) is not None:
            await link.close(KEY_REQUIRED)  # the first record arrived during the handshake
            return
        self.count += 1
        key = f"in:{link.peer_node or '?'}:{self.count}"
        if link.peer_url and len(self.learning.members) < self.config.sync.peers_max:
            url = link.peer_url.rstrip("/")
            self.learning.members[url] = link.peer_node
            if gave_secret:
                self.learning.secret_urls.add(url)
        # A peer that names itself resumes from its checkpoint; its hello must agree.
        checkpoint_key = f"node:{link.peer_node}" if link.peer_node else None
        peer = f"device:{link.peer_device.device_id}" if link.peer_device is not None \
            else f"address:{remote}"
        quota = self._origin_quotas.of(peer, self.config.sync, self._now())
        runner = await self._new_runner(key, link.peer_url, "in", checkpoint_key, quota)
        runner.device, runner.shared = link.peer_device, shared
        runner.handshake_node = link.peer_node
        runner.gave_secret, runner.keyless = gave_secret, link.peer_device is None
        runner.task = asyncio.current_task()  # so that Gossip.stop can end this link too
        # A record stored while the runner was made found no runner: check again (its
        # loop ends the link before the hello if so).
        self.admission.recheck(runner)
        try:
            await self.driver.run_until_down(runner, link, key)
        finally:
            self.runners.pop(key, None)
            try:
                await self.driver.save_checkpoint(runner, force=True)
            finally:
                self.rows.went(runner)
