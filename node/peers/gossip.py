"""Replication with peers: one ``PeerSync`` machine per link, driven over websockets.

Every link runs the same loop (``Runner.run``): feed the machine what the peer sends,
what this node appends (pushed at once) and the passing of time (pulls, resends), and
send whatever it answers. The machine reads and writes the event log, so every call into
it runs on the store's writer thread (``AsyncStore.write``), one at a time; the event
loop only moves bytes and so keeps serving clients while a backlog streams in. What needs
no store, parsing a message and verifying its signatures, runs ahead of the writer in
each link's pipeline (``node.peers.ahead``), on pools this node shares among its links.

Links come from ``--peer`` URLs (dialed, with back-off when unreachable), from peers
that dial us, and from members learned from peers (``/peer/v1/members``), so a new
device needs one address.

One link per pair of nodes, whatever addresses they are known by: once a link's hello
names the peer, a second link to the same node is dropped (of a link each of the two
dialed, both keep the one dialed by the smaller node id; of two we dialed, the older),
and a dialed address that stands for a node already linked waits on standby. An
address that reaches this very node is answered 409 by it and never dialed again.
Each link may use only its share of the writer (``node.peers.budget``).

Devices (``crdt.linkproof``, ``node.peers.transport``): every link proves both keys when
both nodes have them. A dialer must be a member of the cluster unless it holds the
cluster secret or a CA certificate (``admit``); a dialed device must be a member too,
except the one at an address given with ``--peer`` (a new device pairs by dialing an
address it was told; it learns the membership from there). A removed device is refused
either way and its links close when the removal arrives (``sweep``). Member addresses
from the membership records are dialed like learned members: the introducer.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

import aiohttp
import structlog

from crdt.errors import StorageUnavailable
from crdt.events import SCHEMA_VERSION
from crdt.log.store import EventStore
from crdt.membership import Member
from node.config import Config, software_version
from node.device import DeviceKey
from node.devices import Devices
from node.peers.ahead import PARSE_THREADS, VERIFY_THREADS, Ahead
from node.peers.budget import CLIENTS_QUIET_S, WriterBudget
from node.peers.links import Removed, refusal_for, removal_text, waiting_text
from node.peers.transport import (
    DEVICE_REMOVED,
    NOT_MEMBER,
    Link,
    LinkClosed,
    LinkRefused,
    Proven,
    Refusal,
    SelfLink,
    dial,
    fetch_members,
)
from node.peers.verifying import WORKER_SIGNATURES_MIN, Verifier
from node.store import AsyncStore, Commit
from sync.errors import PeerFault
from sync.peer.forgotten import Forgotten
from sync.peer.machine import PeerSync, Prepared
from sync.peer.messages import About, Hello
from sync.peer.quota import OriginQuota

T = TypeVar("T")
#: Peers whose quota of new origins is kept across their links (``Gossip._origin_quotas``).
ORIGIN_QUOTAS_MAX = 1024
#: Devices remembered as having given a wrong cluster secret (each logged once).
WRONG_SECRETS_KEPT_MAX = 1024
#: Addresses whose last refusal of this device is remembered (``Gossip._refusals``).
REFUSALS_KEPT_MAX = 1024
log = structlog.get_logger(__name__)


class DuplicateLink(LinkClosed):
    """Another link to the same node is kept; this one ends."""


@dataclass
class Runner:
    """One link's state: its machine, what wakes it, and how it is known."""

    key: str  # "url:<peer url>" for dialed links, "in:<node>:<n>" for accepted ones
    url: str | None
    machine: PeerSync
    direction: str  # "out" or "in"
    checkpoint_key: str | None  # where its checkpoint is kept: by URL, or by node id
    learned: bool = False  # dialed because a peer listed it, not because we were told
    secret: bool = True  # dialed with the cluster secret (if any): not a member's address
    state: str = "connecting"
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    #: Ends a dialed link's back-off early: another peer was just reached (``_reached``).
    redial: asyncio.Event = field(default_factory=asyncio.Event)
    saved: dict[str, int] | None = None
    saved_at: float = 0.0
    task: asyncio.Task[None] | None = None
    #: The node the link's hello named (None until then): a node takes a new id mid-link
    #: when its origin is retired, and the link is then identified again under it.
    identified_as: str | None = None
    drop: str | None = None  # set to end the link (a duplicate), read by its own loop
    budget: WriterBudget | None = None
    device: Proven | None = None  # the device that proved its key on the current link
    shared: bool = False  # accepted on the cluster secret or a CA certificate
    gave_secret: bool = False  # accepted on the cluster secret
    refused: str | None = None  # why the peer refused this device, for people
    removal: Refusal | None = None  # the peer's last refusal as removed, if it was that
    failure: str | None = None  # why the last dial failed, until one connects

    @property
    def node(self) -> str | None:
        """The peer's node id, as its last hello gave it."""
        return self.machine.peer_node


class Gossip:
    """All of this node's peer links."""

    def __init__(self, config: Config, astore: AsyncStore,
                 tls: ssl.SSLContext | None, device: DeviceKey,
                 membership: Devices | None = None) -> None:
        self.config = config
        self.astore = astore
        self.tls = tls
        self.device = device
        #: The cluster's devices (``node.devices``); None: no device but this one.
        self.membership = membership
        #: This device's removal, as a member told it when refusing a link (persisted).
        self.removed = Removed(config.data_dir, device.device_id)
        self._membership_changed = asyncio.Event()
        self.runners: dict[str, Runner] = {}
        #: Held from add_peer's check to its runner's registration, which awaits the
        #: store: two learnings of one address at once would each start a dial loop, and
        #: a caller that returned before the other's runner was there would not see it.
        self._adding = asyncio.Lock()
        self.members: dict[str, str | None] = {}  # peer URL -> node id, when known
        #: The members' addresses a holder of the cluster secret gave (``--peer``, a link
        #: that gave the secret, a peer's list that says so): the only ones dialed with
        #: the secret. Any other came from a device or a certificate holder, who could
        #: name a server of their own to collect it.
        self.secret_urls: set[str] = set()
        self._http: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: Handlers of links peers opened to us, from their handshake on (``inbound``).
        self._inbound: set[asyncio.Task[Any]] = set()
        self._accepted = 0
        #: Peers whose accepted link ended, by node id: the link's last ``status`` row
        #: and last contact (``_went``).
        self._gone: dict[str, tuple[dict[str, Any], float | None]] = {}
        #: Devices that gave a wrong cluster secret, logged once (``admit``).
        self._wrong_secret: set[str] = set()
        #: The refusal last warned of, by dialed address, kept when its runner is
        #: forgotten: a peer's member list can name an address that refuses this device
        #: (a node of another cluster took a stopped node's port), which is forgotten
        #: after ``learned_failures_max`` refusals and learned again later.
        self._refusals: dict[str, str] = {}
        #: Learned addresses forgotten after their failures, held off from peers' member
        #: lists for a while unless a lister says it is linked to the node there now
        #: (``sync.peer.forgotten``; at most ``FORGOTTEN_KEPT_MAX``).
        self._forgotten = Forgotten()
        #: Per peer that links to us (its device, else its address), the quota of new
        #: origins it may bring (``sync.peer.quota``), kept across its links: a peer
        #: linking again gets no new quota. At most ``ORIGIN_QUOTAS_MAX``, oldest dropped.
        self._origin_quotas: dict[str, OriginQuota] = {}
        #: Links dropped because the peer broke the protocol, either way, since start:
        #: an accepted link's own counters leave the metrics when it ends.
        self.links_faulted = 0
        #: Set once stopping began: no new links, no redials.
        self.stopping = False
        #: Addresses found to reach this very node: never dialed again.
        self.own_urls: set[str] = set()
        self._rng = random.Random()
        self._loop = asyncio.get_running_loop()
        self._parse_pool = ThreadPoolExecutor(max_workers=PARSE_THREADS,
                                              thread_name_prefix="clawsync-peer-parse")
        self._verify_pool = ThreadPoolExecutor(max_workers=VERIFY_THREADS,
                                               thread_name_prefix="clawsync-peer-verify")
        #: Checks peers' batches of signatures in a worker process, started on the first.
        self.verifier = Verifier()
        #: When client appends last committed (``node.peers.budget``: links pay then).
        self._appended_at = -CLIENTS_QUIET_S
        #: What this node runs, told to peers in the hello.
        self.about = About(software_version(), SCHEMA_VERSION, retires=True,
                           forgets=True, signs=True)

    # -- life cycle --------------------------------------------------------------------

    async def start(self) -> None:
        self._http = aiohttp.ClientSession()
        self.astore.add_commit_listener(self._on_commit)
        for url in self.config.peers:
            await self.add_peer(url, learned=False)
        self._spawn(self._learn_members(), "members")

    async def stop(self) -> None:
        """Take no more links, end every link (each close waits ``close_timeout_s`` at
        most for its peer, which may be paused or gone), save checkpoints."""
        self.stopping = True
        self.astore.remove_commit_listener(self._on_commit)
        current = asyncio.current_task()
        # Once each: an accepted link's handler is both inbound and its runner's task,
        # and a second cancel() would count as a second request to cancel it.
        tasks = list(dict.fromkeys([*self._tasks, *self._inbound,
                                    *(r.task for r in self.runners.values() if r.task)]))
        tasks = [task for task in tasks if task is not current and not task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            # Closes are bounded; the margin covers a checkpoint write per link.
            _, late = await asyncio.wait(tasks, timeout=2 * self.config.sync.close_timeout_s)
            for task in late:
                log.warning("peer link did not end in time", link=task.get_name())
        for runner in list(self.runners.values()):
            with contextlib.suppress(Exception):
                await self._save_checkpoint(runner, force=True)
        if self._http is not None:
            await self._http.close()
        # Every link has ended, and with it its pipeline (``Ahead.close``), but for
        # checks it left running: the verifier's stop below ends the worker they wait
        # on, and their threads then finish them here, for nobody. A late link finds
        # the pools shut and ends as closed.
        self._parse_pool.shutdown(wait=False)
        self._verify_pool.shutdown(wait=False)
        await asyncio.to_thread(self.verifier.stop)  # a batch it was checking: checked here

    def _spawn(self, work: Any, name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _on_commit(self, commit: Commit) -> None:
        if commit.appends:  # clients are writing: links pay for the writer a while
            self._appended_at = self._loop.time()
        for runner in self.runners.values():
            runner.wake.set()  # push what was appended (or relayed) to every peer

    def membership_changed(self) -> None:
        """Called when a membership record was stored: close links of removed devices
        at once and dial new members' addresses soon."""
        self.sweep()
        self._membership_changed.set()
        own = self.membership.members().get(self.device.device_id) if self.membership else None
        address = self.config.advertise_url
        if own is not None and address is not None and own.address != address \
                and not self.stopping:
            self._spawn(self._announce(own.name, address), "announce-address")

    async def _announce(self, name: str, address: str) -> None:
        """A member that added this device named no address (or an old one): say ours
        again, so that the others can dial us (the last add of a device gives its
        address)."""
        assert self.membership is not None
        try:
            await self.membership.add(self.device.device_id, name, address)
        except Exception:
            log.warning("could not announce this device's address", exc_info=True)

    # -- devices -----------------------------------------------------------------------

    def is_member(self, device_id: str) -> bool:
        if device_id == self.device.device_id:
            return True
        return self.membership is not None and self.membership.is_member(device_id)

    def admit(self, device_id: str, *, shared: bool, wrong_secret: bool = False,
              remote: str | None = None) -> tuple[str, dict[str, Any], str] | None:
        """Why the device ``device_id`` may not link with us (code, signed detail, text
        for people), or None if it may: a member, or a holder of the cluster secret or a
        CA certificate (migration) that was not removed. ``wrong_secret``: it gave a
        cluster secret, not ours; if that is why it is refused, the refusal says so (its
        operator should hear of the secret, not of a device to add) and so does our log,
        once per device (it redials every few seconds), with its address ``remote``."""
        removal = self.membership.removed().get(device_id) if self.membership else None
        if removal is not None:
            return refusal_for(removal)
        if shared or self.is_member(device_id):
            return None
        waiting = waiting_text(self.device.device_id, device_id)
        if not (wrong_secret and self.config.cluster_secret is not None):
            return (NOT_MEMBER, {}, waiting)
        if device_id not in self._wrong_secret:
            log.warning("a peer gave a wrong cluster secret", device_id=device_id,
                        peer=remote)
            if len(self._wrong_secret) >= WRONG_SECRETS_KEPT_MAX:
                self._wrong_secret.clear()
            self._wrong_secret.add(device_id)
        return (NOT_MEMBER, {"secret": "wrong"},
                f"{waiting}; or the cluster secret it gave does not match this node's")

    def _dialed_refusal(self, runner: Runner, proven: Proven) -> str | None:
        """Why a device we dialed may not stay linked: removed; or not a member, at an
        address we learned (one given with ``--peer`` pairs: see the module)."""
        if self.membership is not None and proven.device_id in self.membership.removed():
            return DEVICE_REMOVED
        if runner.learned and not self._shared_mode() and not self.is_member(proven.device_id):
            return NOT_MEMBER
        return None

    def _shared_mode(self) -> bool:
        """Nodes hold the cluster secret or CA certificates: they may learn addresses
        from each other's member lists, and link there member or not."""
        return self.config.cluster_secret is not None or self.tls is not None

    def sweep(self) -> None:
        """End every link to a device that may no longer link with us."""
        for runner in self.runners.values():
            if runner.device is None or runner.state not in ("up", "connecting") \
                    or runner.drop is not None:
                continue
            refused = self.admit(runner.device.device_id, shared=runner.shared)
            if refused is not None and (refused[0] == DEVICE_REMOVED
                                        or runner.direction == "in"):
                log.info("peer link closed: device no longer a member",
                         device_id=runner.device.device_id, code=refused[0])
                runner.drop = refused[0]
                runner.wake.set()

    async def _call(self, work: Callable[[EventStore], T]) -> T:
        return await self.astore.write(work)

    async def _machine(self, method: Callable[..., T], *args: Any) -> T:
        """Call a ``PeerSync`` method on the writer thread: it reads and writes the log."""
        return await self.astore.write(lambda _store: method(*args))

    # -- dialed links ------------------------------------------------------------------

    async def add_peer(self, url: str, *, learned: bool, secret: bool = True) -> bool:
        """Dial ``url`` (and keep dialing it) unless it is known or the cap is reached;
        ``secret``: with the cluster secret, if this node has one."""
        async with self._adding:
            return await self._add_peer(url.rstrip("/"), learned=learned, secret=secret)

    async def _add_peer(self, url: str, *, learned: bool, secret: bool) -> bool:
        key = f"url:{url}"
        if key in self.runners or url == self.config.advertise_url or url in self.own_urls \
                or self.stopping:
            return False
        if learned and self.members.get(url) in self._linked_nodes():
            return False  # an address of a node we are linked to already
        if len(self.runners) >= self.config.sync.peers_max:
            log.warning("peer not added: peers_max reached", url=url)
            return False
        runner = await self._new_runner(key, url, "out", checkpoint_key=key)
        runner.learned, runner.secret = learned, secret
        self.members.setdefault(url, None)
        if secret:
            self.secret_urls.add(url)
        runner.task = asyncio.create_task(self._dial_loop(runner), name=key)
        return True

    async def _new_runner(self, key: str, url: str | None, direction: str,
                          checkpoint_key: str | None,
                          origins_in: OriginQuota | None = None) -> Runner:
        now = self._loop.time()
        machine = await self._call(lambda store: PeerSync(
            store, url or key, now=now, rng=self._rng, config=self.config.sync,
            checkpoint=store.checkpoint(checkpoint_key) if checkpoint_key else None,
            about=self.about, require_signatures=self.config.signatures_required,
            origins_in=origins_in))
        runner = Runner(key, url, machine, direction, checkpoint_key,
                        saved=machine.checkpoint,
                        budget=WriterBudget(share=self.config.sync.peer_writer_share,
                                            burst_s=self.config.sync.peer_writer_burst_s,
                                            now=now))
        self.runners[key] = runner
        return runner

    async def _dial_loop(self, runner: Runner) -> None:
        assert runner.url is not None and self._http is not None
        while not self.stopping:
            await self._standby(runner)
            runner.state = "connecting"
            try:
                link = await dial(self._http, runner.url, node_id=self.astore.node_id,
                                  secret=self.config.cluster_secret if runner.secret else None,
                                  advertise=self.config.advertise_url, tls=self.tls,
                                  config=self.config.sync, device=self.device)
            except LinkRefused as exc:
                runner.failure = None  # it connected: the refusal says why, not a failure
                self._refused_by_peer(runner, exc)
            except SelfLink:
                log.info("peer address is this node; not dialed again", peer=runner.url)
                self._forget(runner)
                self.own_urls.add(runner.url)
                self._drop_member(runner.url)
                return
            except LinkClosed as exc:
                log.info("peer link down", peer=runner.url, reason=str(exc))
                runner.failure = str(exc)
            else:
                runner.refused = runner.failure = None
                self._refusals.pop(runner.url, None)  # a later refusal is news again
                if await self._keep_dialed(runner, link):
                    await self._run_until_down(runner, link, runner.url)
            await self._save_checkpoint(runner, force=True)
            if runner.drop == DEVICE_REMOVED or (runner.drop is not None and runner.learned):
                # A second address of a node linked already, or a removed device's.
                log.info("peer address not dialed again", peer=runner.url, why=runner.drop)
                self._forget(runner)
                return
            retry_at = await self._machine(runner.machine.connection_failed, self._now())
            # Counted since a message from the peer was last handled, not since the last
            # dial that connected: an address that reaches this node itself connects
            # every time.
            if runner.learned and runner.machine.failures >= self.config.sync.learned_failures_max \
                    and not self._advertised(runner.url):
                # Held off, or a peer that still lists it brings it back at each round;
                # not while this node reaches no peer at all: its own network is down, and
                # the address may be fine.
                held_s = self._forgotten.forgot(
                    runner.url, self.members.get(runner.url) or runner.node,
                    _awake_s()) if self._linked_nodes() else None
                log.info("forgetting learned peer", peer=runner.url,
                         failures=runner.machine.failures, held_off_s=held_s)
                self._forget(runner)
                self._drop_member(runner.url)
                return
            runner.state = "backoff"
            if runner.refused is not None and not self.removed.known:
                # Waiting to be added: ask again soon, not after the back-off's minute.
                retry_at = min(retry_at, self._loop.time() + self.config.sync.pull_interval_s)
            runner.redial.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(runner.redial.wait(),
                                       max(0.0, retry_at - self._loop.time()))

    async def _keep_dialed(self, runner: Runner, link: Link) -> bool:
        """Whether the device at the other end of a link we dialed may stay; closes it
        if not."""
        runner.device, runner.drop = link.peer_device, None
        why = self._dialed_refusal(runner, link.peer_device) if link.peer_device else None
        if why is None:
            return True
        log.info("dialed device refused", peer=runner.url,
                 device_id=link.peer_device.device_id if link.peer_device else None, code=why)
        runner.drop = why
        await link.close(why)
        return False

    def _trusted(self, runner: Runner, device_id: str) -> bool:
        """Whether a removal signed by ``device_id`` is believed: a member's (or a former
        member's), or that of the device at an address given with ``--peer`` (trusted
        as far as linking with it, since a new device may not know the members yet)."""
        return not runner.learned or self.membership is None \
            or self.is_member(device_id) or device_id in self.membership.removed()

    def _refused_by_peer(self, runner: Runner, exc: LinkRefused) -> None:
        """The peer turned this device away: say why (in the log once, until it changes),
        and remember a signed removal."""
        refusal = exc.refusal
        said = runner.refused or self._refusals.get(runner.url or "")
        runner.removal = None
        if refusal is None:
            runner.refused = str(exc)
        elif refusal.code == DEVICE_REMOVED:
            runner.removal = refusal
            if self._trusted(runner, refusal.by) and not self.removed.known:
                self.removed.record(refusal)
                for other in self.runners.values():  # told by others, not believed: now
                    if other.removal is not None and other is not runner:
                        other.refused = self._removal_refused(other, other.removal)
            runner.refused = self._removal_refused(runner, refusal)
        elif refusal.code == NOT_MEMBER and refusal.detail.get("secret") == "wrong":
            runner.refused = (f"refused by {refusal.by}: the cluster secret this node gave "
                              "does not match that node's (check --cluster-secret on both)")
        elif refusal.code == NOT_MEMBER:
            name = self.membership.name if self.membership else self.config.name
            runner.refused = waiting_text(refusal.by, self.device.device_id, name)
        else:
            runner.refused = f"refused by {refusal.by} ({refusal.code})"
        if runner.refused != said:
            log.warning("peer refused this device", peer=runner.url, reason=runner.refused)
            if runner.url is not None:
                if len(self._refusals) >= REFUSALS_KEPT_MAX:
                    self._refusals.clear()
                self._refusals[runner.url] = runner.refused

    def _removal_refused(self, runner: Runner, refusal: Refusal) -> str:
        """What a peer's refusal of this device as removed says, for people (and the
        log): the removal this device believes, if the peer is trusted (``_trusted``) or
        repeats it; else what the peer claims, said to be not taken. An untrusted
        device's claim is never recorded: anyone with the cluster secret could make it."""
        believed = self.own_removal()  # as told by a trusted peer, or as its record says
        detail = refusal.detail
        if believed is not None and (self._trusted(runner, refusal.by) or (
                detail.get("by"), detail.get("at_ms")) == (believed["by"], believed["at_ms"])):
            return removal_text(self._named(believed))
        claimed = {"by": str(detail.get("by")), "at_ms": detail.get("at_ms"),
                   "reason": str(detail.get("reason", ""))}
        return (f"refused by {refusal.by}: it says this device was "
                f"{removal_text(self._named(claimed))}; it is no member this device knows, "
                "so that is not taken as this device's removal")

    def _forget(self, runner: Runner) -> None:
        self.runners.pop(runner.key, None)

    async def _standby(self, runner: Runner) -> None:
        """Wait while the node this address stands for is linked by another link."""
        runner.drop = None
        while runner.node is not None and self._linked_elsewhere(runner):
            runner.state = "standby"
            await asyncio.sleep(self.config.sync.pull_interval_s)

    def _linked_elsewhere(self, runner: Runner) -> bool:
        return any(other is not runner and other.state == "up" and other.node == runner.node
                   for other in self.runners.values())

    # -- accepted links ----------------------------------------------------------------

    @contextlib.contextmanager
    def inbound(self) -> Iterator[None]:
        """Run a peer's link handler in here, from before its handshake: stopping ends
        it too. A dialer that went silent mid-handshake would otherwise hold the handler
        for ``connect_timeout_s``, and the web server's shutdown waits for every
        handler."""
        task = asyncio.current_task()
        assert task is not None
        self._inbound.add(task)
        try:
            yield
        finally:
            self._inbound.discard(task)

    async def serve_accepted(self, link: Link, *, shared: bool = False,
                             remote: str | None = None, gave_secret: bool = False) -> None:
        """Run a link a peer opened to us, until it ends (the peer re-dials).
        ``remote``: the peer's address, which names a peer that proved no device key;
        ``gave_secret``: the peer gave the cluster secret (its address may be given it)."""
        if link.peer_device is not None \
                and self.admit(link.peer_device.device_id, shared=shared) is not None:
            await link.close("device not a member")  # removed during the handshake
            return
        self._accepted += 1
        key = f"in:{link.peer_node or '?'}:{self._accepted}"
        if link.peer_url and len(self.members) < self.config.sync.peers_max:
            url = link.peer_url.rstrip("/")
            self.members[url] = link.peer_node
            if gave_secret:
                self.secret_urls.add(url)
        # A peer that names itself resumes from its checkpoint; its hello must agree.
        checkpoint_key = f"node:{link.peer_node}" if link.peer_node else None
        peer = f"device:{link.peer_device.device_id}" if link.peer_device is not None \
            else f"address:{remote}"
        runner = await self._new_runner(key, link.peer_url, "in", checkpoint_key,
                                        origins_in=self._origins_quota(peer))
        runner.device, runner.shared = link.peer_device, shared
        runner.gave_secret = gave_secret
        runner.task = asyncio.current_task()  # so that stop() can end this link too
        try:
            await self._run_until_down(runner, link, key)
        finally:
            self.runners.pop(key, None)
            try:
                await self._save_checkpoint(runner, force=True)
            finally:
                self._went(runner)

    def _origins_quota(self, peer: str) -> OriginQuota:
        """The quota of new origins kept for ``peer`` (``_origin_quotas``)."""
        quota = self._origin_quotas.pop(peer, None)
        if quota is None:
            sync = self.config.sync
            quota = OriginQuota(sync.origins_new_max, sync.origins_new_interval_s,
                                self._loop.time())
            while len(self._origin_quotas) >= ORIGIN_QUOTAS_MAX:
                del self._origin_quotas[next(iter(self._origin_quotas))]
        self._origin_quotas[peer] = quota  # the newest last
        return quota

    # -- the link loop -----------------------------------------------------------------

    async def _run_until_down(self, runner: Runner, link: Link, peer: str) -> None:
        """``run`` the link and log why it ended; the caller decides what comes next."""
        try:
            await self.run(runner, link)
        except LinkClosed as exc:
            log.info("peer link down", peer=peer, reason=str(exc))
        except asyncio.CancelledError:
            log.info("peer link closed: stopping", peer=peer)
            raise
        except PeerFault as exc:
            self.links_faulted += 1
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
        ahead = Ahead(link, machine, parse_pool=self._parse_pool,
                      verify_pool=self._verify_pool, verifier=self.verifier,
                      stopping=lambda: self.stopping)
        machine.peer_key = link.peer_device.public_key if link.peer_device else None
        receiving = asyncio.ensure_future(ahead.next())
        try:
            await self._send(link, await self._machine(
                lambda: machine.start(self._now(), peer_reads_about=link.peer_reads_about)))
            runner.state = "up"
            while True:
                if runner.drop == DEVICE_REMOVED:
                    # What is new goes out before the link ends: the record of the
                    # peer's removal among it, which the sweep that ended the link can
                    # otherwise beat to the link. A hub, which dials no one, has no other
                    # way to learn it.
                    await self._send(link, await self._machine(machine.local_appended,
                                                               self._now()))
                if runner.drop is not None:
                    raise DuplicateLink(runner.drop)
                timeout_s = max(0.0, machine.wakeup_at - self._loop.time())
                waking = asyncio.ensure_future(runner.wake.wait())
                try:
                    done, _ = await asyncio.wait({receiving, waking}, timeout=timeout_s,
                                                 return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waking.cancel()  # also when cancelled: no task left pending
                if receiving in done:
                    received = receiving.result()  # raises LinkClosed when the link ends
                    # The next messages are read and prepared while this one is stored.
                    ahead.taken()
                    receiving = asyncio.ensure_future(ahead.next())
                    out = await self._received(runner, received)
                elif runner.wake.is_set():
                    runner.wake.clear()
                    out = await self._machine(machine.local_appended, self._now())
                else:
                    out = await self._machine(machine.tick, self._now())
                await self._send(link, out)
                await self._save_checkpoint(runner)
        except PeerFault as fault:
            await link.close(f"protocol fault: {fault}")  # so its operator sees why
            raise
        finally:
            receiving.cancel()
            runner.state = "down"  # before any await: a second cancel may end this
            runner.identified_as = None
            try:
                await ahead.close()
            finally:
                await link.close(runner.drop or "")

    async def _received(self, runner: Runner, received: tuple[Prepared, float]
                        ) -> list[bytes]:
        """Handle one message on the writer; charge the link for the time it took there
        and to prepare and, if it used up its share, wait (handling nothing more) until
        it is paid back."""
        machine = runner.machine
        prepared, prepare_s = received  # its CPU seconds off the writer (``Ahead``)

        def call(_store: EventStore) -> tuple[list[bytes], float]:
            started = time.perf_counter()
            out = machine.receive(prepared, self._now())
            return out, time.perf_counter() - started

        await self.astore.after_queued_appends()
        out, used_s = await self.astore.write(call)
        if isinstance(prepared.message, Hello) and machine.lacking >= WORKER_SIGNATURES_MIN:
            self.verifier.warm()  # before the batches it announced come
        if machine.peer_node is not None and machine.peer_node != runner.identified_as:
            self._identified(runner)
        assert runner.budget is not None
        now = self._loop.time()
        wait_s = runner.budget.charge(
            used_s + prepare_s, now, contended=now - self._appended_at < CLIENTS_QUIET_S)
        if wait_s > 0:
            await asyncio.sleep(wait_s)
        return out

    def _identified(self, runner: Runner) -> None:
        """A hello named the peer, first on this link or anew: remember the address's
        node id (so member lists name it), and keep one link per node; a peer dialed
        with a secret or CA is asked which nodes it knows now, not at the next round."""
        first = runner.identified_as is None
        runner.identified_as = node = runner.node
        if node is not None:
            self._gone.pop(node, None)
        # It is back: the addresses it was forgotten under may be learned again at once.
        self._forgotten.reached(node, runner.url.rstrip("/") if runner.url else None)
        if runner.url is not None and runner.direction == "out":
            self.members[runner.url] = node
        self._reached()
        for other in list(self.runners.values()):
            if other is runner or other.identified_as is None or other.node != node:
                continue
            loser = self._duplicate(runner, other)
            if loser is not None and loser.drop is None:
                log.info("duplicate peer link dropped", peer=node, link=loser.key)
                loser.drop = "duplicate link"
                loser.wake.set()
        if first and runner.direction == "out" and runner.drop is None \
                and self._shared_mode() and not self.stopping:
            self._spawn(self._learn_from(runner), "learn-members")

    def _reached(self) -> None:
        """A peer was just reached: this node's network may be back (a laptop woke up,
        a partition healed), so the addresses waiting out a long back-off are dialed now
        rather than up to ``backoff_max_s`` later. Those due within a pull interval keep
        their turn; one that fails again backs off further, as before. A peer that
        refused this device waits for its operator, not for the network: left alone."""
        for other in self.runners.values():
            self._redial(other)

    def _redial(self, runner: Runner) -> None:
        """End ``runner``'s back-off now, if it waits beyond a pull interval and was not
        refused (``_reached``)."""
        soon = self._loop.time() + self.config.sync.pull_interval_s
        if runner.state == "backoff" and runner.refused is None \
                and runner.machine.wakeup_at > soon:
            runner.redial.set()

    def _duplicate(self, new: Runner, old: Runner) -> Runner | None:
        """Which of two links to one node ends: both nodes must pick the same one."""
        own, peer = self.astore.node_id, new.node or ""

        def dialer(runner: Runner) -> str:
            return own if runner.direction == "out" else peer

        if dialer(new) != dialer(old):
            return new if dialer(new) > dialer(old) else old
        if dialer(new) == peer:
            return None  # both dialed by the peer: it drops one, and so ends ours
        return new

    async def _send(self, link: Link, messages: list[bytes]) -> None:
        for data in messages:
            await link.send(data)

    def _now(self) -> float:
        return self._loop.time()

    async def _save_checkpoint(self, runner: Runner, force: bool = False) -> None:
        checkpoint, key = runner.machine.checkpoint, runner.checkpoint_key
        node = runner.machine.peer_node if runner.direction == "in" else None
        if node is not None:
            key = f"node:{node}"  # the node id its hello gave
        if checkpoint is None or checkpoint == runner.saved or key is None:
            return
        now = self._loop.time()
        if not force and now - runner.saved_at < self.config.sync.checkpoint_interval_s:
            return

        def save(store: EventStore) -> bool:
            # A checkpoint is kept for good, under the name a hello gave: only for a
            # node this one holds events of (its origins are bounded), not for any
            # name a peer makes up, link after link.
            if node is not None and node not in store.version \
                    and node not in store.retired:
                return False
            store.save_checkpoint(key, checkpoint)
            return True

        if await self._call(save):
            runner.saved = checkpoint
        runner.saved_at = now

    # -- membership --------------------------------------------------------------------

    async def _learn_members(self) -> None:
        """Ask dialed peers which nodes they know; dial the ones we do not. Also (and at
        once when the membership changes) dial member devices at their addresses, and
        close links of devices removed (``sweep``, in case a change was not told)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._membership_changed.wait(),
                                       self.config.sync.members_interval_s)
            self._membership_changed.clear()
            try:
                self.sweep()
                await self.dial_members()
                if self._shared_mode():
                    await self.learn_once()
            except Exception:
                log.exception("learning members failed")

    async def dial_members(self) -> None:
        """Dial each member device's advertised address that no link reaches yet (the
        introducer: a new device learns the others from the records it replicated).
        Not once this device's removal is known, told or stored: each would refuse it."""
        if self.membership is None or self.own_removal() is not None:
            return
        linked = self.linked_devices()
        for device_id, member in list(self.membership.members().items()):
            if device_id == self.device.device_id or device_id in linked \
                    or member.address is None:
                continue
            # A member proves its key: the secret is not sent to an address any member
            # may have written in a record (it would hand the secret to whoever is there).
            if await self.add_peer(member.address, learned=True, secret=False):
                log.info("dialing member", device_id=device_id, url=member.address)

    async def learn_once(self) -> None:
        for runner in [r for r in self.runners.values() if r.direction == "out"]:
            await self._learn_from(runner)

    async def _learn_from(self, runner: Runner) -> None:
        """Ask the peer ``runner`` dialed which nodes it knows; dial those not linked."""
        if runner.state != "up" or runner.url is None or self._http is None \
                or self.stopping:
            return
        try:
            listed = await fetch_members(
                self._http, runner.url, tls=self.tls, config=self.config.sync,
                secret=self.config.cluster_secret if runner.secret else None)
        except LinkClosed as exc:
            log.info("members not listed", peer=runner.url, reason=str(exc))
            return
        except Exception:  # run as a task of its own too: nothing else would log it
            log.exception("learning members failed", peer=runner.url)
            return
        for url, node, secret, linked in _member_urls(listed):
            if node == self.astore.node_id or node in self._linked_nodes():
                continue
            if linked:
                self._listed_linked(url, node)
            if not self._forgotten.may_learn(url, _awake_s(), linked=linked):
                continue  # forgotten after its failures, and no news that it is back
            # The secret goes where a holder of it says one gave the address, and only
            # if that holder was itself given it: a peer we do not send the secret to
            # has no say in who gets it.
            if await self.add_peer(url, learned=True, secret=runner.secret and secret):
                log.info("learned peer", url=url, via=runner.url)

    def _listed_linked(self, url: str, node: str | None) -> None:
        """A peer's list says its link to ``node`` at ``url`` is up now: a partition may
        have healed, so our dials of it that back off (configured or learned, by that
        address or another of that node) are made now, not up to ``backoff_max_s``
        later. A forgotten address that was relearned made that dial, with a fresh
        back-off, before addresses were held off (``sync.peer.forgotten``)."""
        for runner in list(self.runners.values()):
            if runner.direction == "out" and (runner.url == url
                                              or (node is not None and runner.node == node)):
                self._redial(runner)

    def _advertised(self, url: str) -> bool:
        """Whether a member device advertises ``url`` in its membership record: such an
        address is dialed on, backing off, however often it fails (a laptop that is shut
        for the night), not forgotten like one a peer listed and taken up again at the
        next members round with a fresh back-off."""
        return self.membership is not None and any(
            member.address is not None and member.address.rstrip("/") == url.rstrip("/")
            for member in self.membership.members().values())

    def _drop_member(self, url: str) -> None:
        self.members.pop(url, None)
        self.secret_urls.discard(url)

    def linked_devices(self) -> set[str]:
        """Devices with a link up that proved their key."""
        return {r.device.device_id for r in self.runners.values()
                if r.device is not None and r.state == "up"}

    def linked_not_members(self) -> dict[str, dict[str, Any]]:
        """Devices with a link up that proved their key but are no members here, by id:
        linked by the cluster secret or a CA certificate (or, pairing, at a ``--peer``
        address), which the membership records do not list. Each: its node id, its
        address (dialed, or advertised on a link it opened) and ``via``, what links it."""
        found: dict[str, dict[str, Any]] = {}
        for runner in self.runners.values():
            if runner.device is None or runner.state != "up":
                continue
            device = runner.device.device_id
            if device == self.device.device_id or self.is_member(device):
                continue
            if runner.direction == "in":
                via = "cluster_secret" if runner.gave_secret \
                    else "certificate" if runner.shared else "device_key"
            else:
                via = "cluster_secret" if runner.secret and self.config.cluster_secret \
                    else "certificate" if self.tls is not None else "peer_address"
            row = {"node_id": runner.node, "address": runner.url, "via": via}
            if device not in found or (found[device]["address"] is None and runner.url):
                found[device] = row
        return found

    def _linked_nodes(self) -> set[str | None]:
        """Nodes with a link up (and named by its hello)."""
        return {r.node for r in self.runners.values() if r.state == "up" and r.node}

    def member_list(self) -> dict[str, Any]:
        """What ``/peer/v1/members`` answers: this node and the peers it can name, each
        with whether this node has a link up to it now (``linked``; older nodes ignore
        the field, and lists without it say nothing of links).

        A node whose link ended stays listed: when a partition heals, a peer that learned
        it dials it, sooner than its own configured dial in a long back-off. A learner
        that forgot the address after its failures takes it up again only after a
        hold-off, or once a list says it is linked (``sync.peer.forgotten``): a node gone
        for good is not dialed round after round by every node that asks."""
        linked = self._linked_nodes()
        peers = [{"url": url, "node_id": node, "cluster_secret": url in self.secret_urls,
                  "linked": node is not None and node in linked}
                 for url, node in sorted(self.members.items()) if url not in self.own_urls]
        return {"node_id": self.astore.node_id, "advertise_url": self.config.advertise_url,
                "peers": peers}

    def status(self) -> list[dict[str, Any]]:
        """Per link: state, last contact, events behind, bytes in and out. Cheap (no
        I/O): every metrics scrape reads it (``node.peers.metrics``: current links only)."""
        now = self._loop.time()
        members = self.membership.members() if self.membership is not None else {}
        by_address = {member.address: device_id for device_id, member in members.items()
                      if member.address}
        return [self._row(runner, now, members, by_address) for runner in self.runners.values()]

    def peers(self) -> list[dict[str, Any]]:
        """What ``GET /v1/peers`` lists: ``status``, then, as ``down``, each peer whose
        accepted link ended and that has no link now (``_went``), unless it was removed.
        A link up now with the address a gone peer gave supersedes it too: a node
        upgraded in place may come back with another node id (and a device, where it had
        none)."""
        rows = self.status()
        linked = {row["node_id"] for row in rows} | {row["device_id"] for row in rows} \
            | {row["url"] for row in rows if row["state"] == "up"}  # not a dial that fails
        linked.discard(None)
        removed = self.membership.removed() if self.membership is not None else {}
        now = self._loop.time()
        for node, (row, contact) in self._gone.items():
            if node in linked or row["device_id"] in linked or row["url"] in linked \
                    or row["device_id"] in removed:
                continue  # linked again (by another link, node id or address), or removed
            rows.append({**row, "last_contact_s_ago":
                         None if contact is None else round(now - contact, 3)})
        return rows

    def _row(self, runner: Runner, now: float, members: dict[str, Member],
             by_address: dict[str, str]) -> dict[str, Any]:
        """One link's ``status`` row. A dialed address whose link never came up since
        this node started names the member device that advertises it, if one does."""
        machine = runner.machine.status()
        contact = machine["last_contact"]
        device = runner.device.device_id if runner.device \
            else by_address.get(runner.url) if runner.url and runner.direction == "out" \
            else None  # an accepted link's address is only what the peer claims
        member = members.get(device) if device else None
        return {
            "link": runner.key, "url": runner.url, "direction": runner.direction,
            "node_id": machine["peer_node"],
            "device_id": device, "device_name": member.name if member else None,
            "refused": runner.refused,
            # A link is "up" once the peer's hello named it; until then it connects.
            "state": "refused" if runner.refused and runner.state != "up"
            else "connecting" if runner.state == "up" and machine["peer_node"] is None
            else runner.state,
            "last_contact_s_ago": None if contact is None else round(now - contact, 3),
            "events_we_lack": machine["events_we_lack"],
            "events_peer_lacks": machine["events_peer_lacks"],
            "bytes_in": machine["bytes_in"], "bytes_out": machine["bytes_out"],
            "events_sent": machine["events_sent"],
            "events_received": machine["events_received"],
            "faults": machine["faults"],
            "batches_resent": machine["batches_resent"],
            "events_ahead": machine["events_ahead"],
            "events_skipped": machine["events_skipped"],
            "origins_refused": machine["origins_refused"],
            "events_late": machine["events_late"],
            "events_refused": machine["events_refused"],
            "events_forged": machine["events_forged"],
            "events_unsigned": machine["events_unsigned"],
            "software": machine["peer_software"], "schema": machine["peer_schema"],
            "retry_in_s": max(0.0, round(machine["retry_at"] - now, 3))
            if runner.state == "backoff" else None,
            "failure": runner.failure if runner.state == "backoff" else None,
            "throttled_s": round(runner.budget.throttled_s, 3) if runner.budget else 0.0,
        }

    def _went(self, runner: Runner) -> None:
        """An accepted link ended: its peer stays in ``peers`` as ``down``, with the
        link's last row, until a link to its node comes up again (``_identified``). A
        dialed address needs none of this: its runner stays, backing off. At most
        ``peers_max`` such peers, the longest gone dropped first."""
        node = runner.node
        if node is None or self.stopping:
            return  # its hello never came: nothing to show for it
        members = self.membership.members() if self.membership is not None else {}
        now = self._loop.time()
        row = self._row(runner, now, members, {})
        ago = row["last_contact_s_ago"]
        row.update(state="down", retry_in_s=None, events_we_lack=None,
                   events_peer_lacks=None)
        self._gone.pop(node, None)  # the newest last
        self._gone[node] = (row, None if ago is None else now - ago)
        while len(self._gone) > self.config.sync.peers_max:
            del self._gone[next(iter(self._gone))]

    def own_removal(self) -> dict[str, Any] | None:
        """This device's removal (``GET /v1/node``'s ``removed``): as a member told it
        when refusing a link, or else as the record of it stored here. A node no one
        refuses a dial to (a hub, which dials no one) learns it only by the record,
        which reaches it before its links close; ``told_by`` is then null."""
        told = self.removed.view()
        if told is not None or self.membership is None:
            return told
        return self.membership.own_removal()

    def device_status(self) -> dict[str, Any]:
        """This device for ``/v1/peers`` and ``/v1/node``: its id, whether a member told
        it it was removed (by whom, when), which members it waits to be added on, and
        which of its ``--peer`` addresses turned out to be its own (not dialed: a typo of
        a port shows as a node with no peer otherwise)."""
        removal = self.own_removal()
        waiting = sorted({r.refused for r in self.runners.values()
                          if r.refused and r.refused.startswith("waiting")})
        own = self.own_urls | {self.config.advertise_url}
        return {"device_id": self.device.device_id, "removed": removal,
                "removed_text": removal_text(self._named(removal)) if removal else None,
                "waiting": waiting,
                "own_peers": [url for url in self.config.peers if url.rstrip("/") in own]}

    def _named(self, removal: dict[str, Any]) -> dict[str, Any]:
        """``removal`` with its remover named for people, if a record names it here."""
        members = self.membership.members() if self.membership is not None else {}
        member = members.get(str(removal.get("by")))
        if member is None:
            return removal
        return {**removal, "by": f"{member.name} ({removal['by']})"}


class Listed(NamedTuple):
    """One address of a members answer."""

    url: str
    node: str | None  # the node id there, when the lister knows it
    secret: bool  # a holder of the cluster secret gave the address
    linked: bool  # the lister has a link up to that node now


#: A clock that goes on while the machine sleeps (Linux's boot time; the monotonic clock
#: elsewhere): a hold-off of learned addresses is of the world's time, not of this
#: process's, or a laptop asleep most of the day would hold one for days.
_AWAKE_CLOCK = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)


def _awake_s() -> float:
    return time.clock_gettime(_AWAKE_CLOCK)


def _member_urls(listed: object) -> list[Listed]:
    """Peer URLs, node ids (when known), whether a holder of the cluster secret gave
    the address and whether the lister is linked to that node now (the lister's own
    address: both) from a members answer, without a trailing slash (as ``add_peer``
    keys them); anything malformed is skipped. A list without
    ``cluster_secret`` or ``linked`` (an older node's) does not say so: its addresses
    are dialed without the secret, and a forgotten one waits out its hold-off."""
    if not isinstance(listed, dict):
        return []
    found = []
    advertise, lister = listed.get("advertise_url"), listed.get("node_id")
    if isinstance(advertise, str) and advertise.startswith(("http://", "https://")):
        found.append(Listed(advertise.rstrip("/"), lister if isinstance(lister, str) else None,
                            secret=True, linked=True))
    for peer in listed.get("peers", []) if isinstance(listed.get("peers"), list) else []:
        if isinstance(peer, dict) and isinstance(peer.get("url"), str) \
                and peer["url"].startswith(("http://", "https://")):
            node = peer.get("node_id")
            found.append(Listed(peer["url"].rstrip("/"), node if isinstance(node, str) else None,
                                secret=peer.get("cluster_secret") is True,
                                linked=peer.get("linked") is True))
    return found
