"""Replication with peers: one ``PeerSync`` machine per link, driven over websockets.

Every link runs the same loop (``Runner.run``): feed the machine what the peer sends,
what this node appends (pushed at once) and the passing of time (pulls, resends), and
send whatever it answers. The machine reads and writes the event log, so every call into
it runs on the store's writer thread (``AsyncStore.write``), one at a time; the event
loop only moves bytes and so keeps serving clients while a backlog streams in.

Links come from ``--peer`` URLs (dialed, with back-off when unreachable), from peers
that dial us, and from members learned from peers (``/peer/v1/members``), so a new
device needs one address.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import structlog

from crdt.errors import StorageUnavailable
from crdt.events import SCHEMA_VERSION
from crdt.log.store import EventStore
from node.config import Config, software_version
from node.peers.transport import Link, LinkClosed, dial, fetch_members
from node.store import AsyncStore, Commit
from sync.errors import PeerFault
from sync.peer.machine import PeerSync
from sync.peer.messages import About

T = TypeVar("T")
log = structlog.get_logger(__name__)


@dataclass
class Runner:
    """One link's state: its machine, what wakes it, and how it is known."""

    key: str  # "url:<peer url>" for dialed links, "in:<node>:<n>" for accepted ones
    url: str | None
    machine: PeerSync
    direction: str  # "out" or "in"
    checkpoint_key: str | None  # where its checkpoint is kept: by URL, or by node id
    learned: bool = False  # dialed because a peer listed it, not because we were told
    state: str = "connecting"
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    saved: dict[str, int] | None = None
    saved_at: float = 0.0
    task: asyncio.Task[None] | None = None


class Gossip:
    """All of this node's peer links."""

    def __init__(self, config: Config, astore: AsyncStore,
                 tls: ssl.SSLContext | None) -> None:
        self.config = config
        self.astore = astore
        self.tls = tls
        self.runners: dict[str, Runner] = {}
        self.members: dict[str, str | None] = {}  # peer URL -> node id, when known
        self._http: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._accepted = 0
        self._rng = random.Random()
        self._loop = asyncio.get_running_loop()
        #: What this node runs, told to peers in the hello.
        self.about = About(software_version(), SCHEMA_VERSION)

    # -- life cycle --------------------------------------------------------------------

    async def start(self) -> None:
        self._http = aiohttp.ClientSession()
        self.astore.add_commit_listener(self._on_commit)
        for url in self.config.peers:
            await self.add_peer(url, learned=False)
        self._spawn(self._learn_members(), "members")

    async def stop(self) -> None:
        self.astore.remove_commit_listener(self._on_commit)
        current = asyncio.current_task()
        tasks = [*self._tasks, *(r.task for r in self.runners.values() if r.task)]
        tasks = [task for task in tasks if task is not current]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for runner in list(self.runners.values()):
            await self._save_checkpoint(runner, force=True)
        if self._http is not None:
            await self._http.close()

    def _spawn(self, work: Any, name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _on_commit(self, _commit: Commit) -> None:
        for runner in self.runners.values():
            runner.wake.set()  # push what was appended (or relayed) to every peer

    async def _call(self, work: Callable[[EventStore], T]) -> T:
        return await self.astore.write(work)

    async def _machine(self, method: Callable[..., T], *args: Any) -> T:
        """Call a ``PeerSync`` method on the writer thread: it reads and writes the log."""
        return await self.astore.write(lambda _store: method(*args))

    # -- dialed links ------------------------------------------------------------------

    async def add_peer(self, url: str, *, learned: bool) -> bool:
        """Dial ``url`` (and keep dialing it) unless it is known or the cap is reached."""
        url = url.rstrip("/")
        key = f"url:{url}"
        if key in self.runners or url == self.config.advertise_url:
            return False
        if len(self.runners) >= self.config.sync.peers_max:
            log.warning("peer not added: peers_max reached", url=url)
            return False
        runner = await self._new_runner(key, url, "out", checkpoint_key=key)
        runner.learned = learned
        self.members.setdefault(url, None)
        runner.task = asyncio.create_task(self._dial_loop(runner), name=key)
        return True

    async def _new_runner(self, key: str, url: str | None, direction: str,
                          checkpoint_key: str | None) -> Runner:
        now = self._loop.time()
        machine = await self._call(lambda store: PeerSync(
            store, url or key, now=now, rng=self._rng, config=self.config.sync,
            checkpoint=store.checkpoint(checkpoint_key) if checkpoint_key else None,
            about=self.about))
        runner = Runner(key, url, machine, direction, checkpoint_key,
                        saved=machine.checkpoint)
        self.runners[key] = runner
        return runner

    async def _dial_loop(self, runner: Runner) -> None:
        assert runner.url is not None and self._http is not None
        while True:
            runner.state = "connecting"
            try:
                link = await dial(self._http, runner.url, node_id=self.astore.node_id,
                                  secret=self.config.cluster_secret,
                                  advertise=self.config.advertise_url, tls=self.tls,
                                  config=self.config.sync)
            except LinkClosed as exc:
                log.info("peer link down", peer=runner.url, reason=str(exc))
            else:
                await self._run_until_down(runner, link, runner.url)
            await self._save_checkpoint(runner, force=True)
            retry_at = await self._machine(runner.machine.connection_failed, self._now())
            # Counted since a message from the peer was last handled, not since the last
            # dial that connected: an address that reaches this node itself connects
            # every time.
            if runner.learned and runner.machine.failures >= self.config.sync.learned_failures_max:
                log.info("forgetting learned peer", peer=runner.url,
                         failures=runner.machine.failures)
                self.runners.pop(runner.key, None)
                self.members.pop(runner.url, None)
                return
            runner.state = "backoff"
            await asyncio.sleep(max(0.0, retry_at - self._loop.time()))

    # -- accepted links ----------------------------------------------------------------

    async def serve_accepted(self, link: Link) -> None:
        """Run a link a peer opened to us, until it ends (the peer re-dials)."""
        self._accepted += 1
        key = f"in:{link.peer_node or '?'}:{self._accepted}"
        if link.peer_url and len(self.members) < self.config.sync.peers_max:
            self.members[link.peer_url.rstrip("/")] = link.peer_node
        # A peer that names itself resumes from its checkpoint; its hello must agree.
        checkpoint_key = f"node:{link.peer_node}" if link.peer_node else None
        runner = await self._new_runner(key, link.peer_url, "in", checkpoint_key)
        runner.task = asyncio.current_task()  # so that stop() can end this link too
        try:
            await self._run_until_down(runner, link, key)
        finally:
            await self._save_checkpoint(runner, force=True)
            del self.runners[key]

    # -- the link loop -----------------------------------------------------------------

    async def _run_until_down(self, runner: Runner, link: Link, peer: str) -> None:
        """``run`` the link and log why it ended; the caller decides what comes next."""
        try:
            await self.run(runner, link)
        except LinkClosed as exc:
            log.info("peer link down", peer=peer, reason=str(exc))
        except PeerFault as exc:
            log.warning("peer misbehaved; link dropped", peer=peer, fault=str(exc))
        except StorageUnavailable as exc:  # a full disk, say: redial once it may work
            log.warning("peer link stopped: storage unavailable", peer=peer, error=str(exc))
        except Exception:
            # Our own failure (the store, a bug): log it and carry on like a lost link,
            # rather than let this peer go silent until the node restarts.
            log.exception("peer link failed", peer=peer)

    async def run(self, runner: Runner, link: Link) -> None:
        """Drive ``runner.machine`` over ``link`` until the link ends or the peer errs."""
        machine = runner.machine
        receiving = asyncio.ensure_future(link.receive())
        try:
            await self._send(link, await self._machine(
                lambda: machine.start(self._now(), peer_reads_about=link.peer_reads_about)))
            runner.state = "up"
            while True:
                timeout_s = max(0.0, machine.wakeup_at - self._loop.time())
                waking = asyncio.ensure_future(runner.wake.wait())
                done, _ = await asyncio.wait({receiving, waking}, timeout=timeout_s,
                                             return_when=asyncio.FIRST_COMPLETED)
                waking.cancel()
                if receiving in done:
                    data = receiving.result()  # raises LinkClosed when the link ends
                    receiving = asyncio.ensure_future(link.receive())
                    out = await self._machine(machine.receive, data, self._now())
                elif runner.wake.is_set():
                    runner.wake.clear()
                    out = await self._machine(machine.local_appended, self._now())
                else:
                    out = await self._machine(machine.tick, self._now())
                await self._send(link, out)
                await self._save_checkpoint(runner)
        except PeerFault:
            await link.close("protocol fault")
            raise
        finally:
            receiving.cancel()
            runner.state = "down"
            await link.close()

    async def _send(self, link: Link, messages: list[bytes]) -> None:
        for data in messages:
            await link.send(data)

    def _now(self) -> float:
        return self._loop.time()

    async def _save_checkpoint(self, runner: Runner, force: bool = False) -> None:
        checkpoint, key = runner.machine.checkpoint, runner.checkpoint_key
        if runner.direction == "in" and runner.machine.peer_node is not None:
            key = f"node:{runner.machine.peer_node}"  # the node id its hello gave
        if checkpoint is None or checkpoint == runner.saved or key is None:
            return
        now = self._loop.time()
        if not force and now - runner.saved_at < self.config.sync.checkpoint_interval_s:
            return
        await self._call(lambda store: store.save_checkpoint(key, checkpoint))
        runner.saved, runner.saved_at = checkpoint, now

    # -- membership --------------------------------------------------------------------

    async def _learn_members(self) -> None:
        """Ask dialed peers which nodes they know; dial the ones we do not."""
        while True:
            await asyncio.sleep(self.config.sync.members_interval_s)
            try:
                await self.learn_once()
            except Exception:
                log.exception("learning members failed")

    async def learn_once(self) -> None:
        assert self._http is not None
        for runner in [r for r in self.runners.values() if r.direction == "out"]:
            if runner.state != "up" or runner.url is None:
                continue
            try:
                listed = await fetch_members(self._http, runner.url,
                                             secret=self.config.cluster_secret, tls=self.tls,
                                             config=self.config.sync)
            except LinkClosed as exc:
                log.info("members not listed", peer=runner.url, reason=str(exc))
                continue
            for url, node in _member_urls(listed):
                if node == self.astore.node_id or node in self._linked_nodes():
                    continue
                if await self.add_peer(url, learned=True):
                    log.info("learned peer", url=url, via=runner.url)

    def _linked_nodes(self) -> set[str | None]:
        return {r.machine.peer_node for r in self.runners.values() if r.state == "up"}

    def member_list(self) -> dict[str, Any]:
        """What ``/peer/v1/members`` answers: this node and the peers it can name."""
        peers = [{"url": url, "node_id": node} for url, node in sorted(self.members.items())]
        return {"node_id": self.astore.node_id, "advertise_url": self.config.advertise_url,
                "peers": peers}

    def status(self) -> list[dict[str, Any]]:
        """Per link: state, last contact, events behind, bytes in and out."""
        now = self._loop.time()
        rows = []
        for runner in self.runners.values():
            machine = runner.machine.status()
            contact = machine["last_contact"]
            rows.append({
                "link": runner.key, "url": runner.url, "direction": runner.direction,
                "node_id": machine["peer_node"], "state": runner.state,
                "last_contact_s_ago": None if contact is None else round(now - contact, 3),
                "events_we_lack": machine["events_we_lack"],
                "events_peer_lacks": machine["events_peer_lacks"],
                "bytes_in": machine["bytes_in"], "bytes_out": machine["bytes_out"],
                "events_sent": machine["events_sent"],
                "events_received": machine["events_received"],
                "faults": machine["faults"],
                "events_ahead": machine["events_ahead"],
                "software": machine["peer_software"], "schema": machine["peer_schema"],
                "retry_in_s": max(0.0, round(machine["retry_at"] - now, 3))
                if runner.state == "backoff" else None,
            })
        return rows


def _member_urls(listed: object) -> list[tuple[str, str | None]]:
    """Peer URLs (and node ids) from a members answer; anything malformed is skipped."""
    if not isinstance(listed, dict):
        return []
    found = []
    advertise = listed.get("advertise_url")
    if isinstance(advertise, str) and advertise.startswith(("http://", "https://")):
        found.append((advertise, listed.get("node_id")))
    for peer in listed.get("peers", []) if isinstance(listed.get("peers"), list) else []:
        if isinstance(peer, dict) and isinstance(peer.get("url"), str) \
                and peer["url"].startswith(("http://", "https://")):
            node = peer.get("node_id")
            found.append((peer["url"], node if isinstance(node, str) else None))
    return found
