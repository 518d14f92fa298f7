"""Replication with peers: one ``PeerSync`` machine per link, driven over websockets
(``node.peers.driver``), and the life of the links: which are dialed, which accepted,
which end.

Links come from ``--peer`` URLs (dialed, with back-off when unreachable), from peers
that dial us, and from members learned from peers (``node.peers.learning``).

One link per pair of nodes, whatever addresses they are known by
(``node.peers.pairing``): a dialed address that stands for a node already linked waits
on standby. An address that reaches this very node is answered 409 by it and never
dialed again.

``Gossip`` runs the links and wires the parts that share them: each link's loop
(``node.peers.driver``), the links peers open to us (``node.peers.accepted``), who may
link (``node.peers.admission``), the member addresses learned and listed
(``node.peers.learning``), the status rows (``node.peers.rows``) and which link to a
node is kept (``node.peers.pairing``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from typing import Any

import aiohttp
import structlog

from crdt.events import SCHEMA_VERSION
from node.config import Config, software_version
from node.device import DeviceKey
from node.devices import Devices
from node.log_window import level_on_change
from node.lookups import LookupResolver
from node.peers.accepted import Accepted
from node.peers.admission import Admission
from node.peers.budget import WriterBudget
from node.peers.driver import Driver
from node.peers.learning import Learning
from node.peers.link_errors import LinkClosed, LinkRefused, PeerBusy, SelfLink
from node.peers.list_failures import members_link_up
from node.peers.pairing import Pairing
from node.peers.redials import ends_back_off, next_dial_at
from node.peers.refusals import refusals_read
from node.peers.rows import HELD_OFF_KINDS, Rows
from node.peers.runner import Runner, linked_devices, linked_nodes
from node.peers.transport import DEVICE_REMOVED, NOT_MEMBER, Link, dial
from node.peers.waits import set_or_timeout
from node.store import AsyncStore, Commit
from node.tls_trust import DialsEnded, ends_links
from sync.peer.machine import PeerSync
from sync.peer.messages import About
from sync.peer.quota import OriginQuota

log = structlog.get_logger(__name__)


class Gossip:
    """All of this node's peer links."""

    def __init__(self, config: Config, astore: AsyncStore,
                 tls: ssl.SSLContext | None, device: DeviceKey,
                 membership: Devices | None = None, *,
                 ca: frozenset[bytes] = frozenset()) -> None:
        self.config = config
        self.astore = astore
        self.tls = tls
        #: The digests of the CA blocks ``tls`` trusts: the links dialed were verified
        #: by them (``use_tls``).
        self.ca = ca
        self.device = device
        #: The cluster's devices (``node.devices``); None: no device but this one.
        self.membership = membership
        self.runners: dict[str, Runner] = {}
        #: Held from add_peer's check to its runner's registration, which awaits the
        #: store: two learnings of one address at once would each start a dial loop, and
        #: a caller that returned before the other's runner was there would not see it.
        self._adding = asyncio.Lock()
        self._http: aiohttp.ClientSession | None = None
        #: Looks up peers' host names for ``_http`` on threads of its own (``lookups``).
        self._resolver: LookupResolver | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: Set once stopping began: no new links, no redials.
        self.stopping = False
        #: Addresses found to reach this very node: never dialed again.
        self.own_urls: set[str] = set()
        self._rng = random.Random()
        self._loop = asyncio.get_running_loop()
        #: What this node runs, told to peers in the hello.
        self.about = About(software_version(), SCHEMA_VERSION, retires=True,
                           forgets=True, signs=True)
        self.admission = Admission(config, device, membership, self.runners, now=self._now)
        #: This device's removal, as a member told it when refusing a link (persisted).
        self.removed = self.admission.removed
        #: Accepted handshakes that ended without the dialer's proof, by reason (the
        #: metrics read them).
        self.proofs_failed = self.admission.proofs_failed
        self.learning = Learning(
            config, astore, membership, device.device_id, self.runners,
            self.own_urls, self.admission, tls=lambda: self.tls, add_peer=self.add_peer,
            redial=self._redial, http=lambda: self._http, stopping=lambda: self.stopping)
        self.rows = Rows(config, device, membership, self.runners, self.own_urls,
                         self.admission, now=self._now, stopping=lambda: self.stopping,
                         held_off=self.learning.held_off)
        self.pairing = Pairing(
            astore, self.runners, self.learning, self.rows, self.admission,
            reached=self._reached, stopping=lambda: self.stopping, learn=self._learn_from)
        # The link's loop tells the pairing.
        self.driver = Driver(config, astore, identified=self.pairing.identified,
                             ended=self.pairing.ended, named=self.pairing.named,
                             stopping=lambda: self.stopping)
        #: Checks peers' batches of signatures in a worker process, started on the first.
        self.verifier = self.driver.verifier
        #: The links peers open to us (``node.peers.api`` runs them in it).
        self.accepted = Accepted(config, self.admission, self.learning, self.driver,
                                 self.rows, self.runners, new_runner=self._new_runner,
                                 now=self._now)

    # -- life cycle --------------------------------------------------------------------

    async def start(self) -> None:
        await self.driver.follow_removals(self.membership)
        self._resolver = LookupResolver()
        self._http = self._session()
        self.astore.add_commit_listener(self._on_commit)
        for url in self.config.peers:
            await self.add_peer(url, learned=False)
        self._spawn(self.learning.run(), "members")

    def _session(self) -> aiohttp.ClientSession:
        """The HTTP session peers are dialed and asked with (its pool of connections)."""
        assert self._resolver is not None
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=self._resolver),
            trace_configs=[refusals_read()])

    def use_tls(self, context: ssl.SSLContext | None,
                ca: frozenset[bytes]) -> DialsEnded | None:
        """Dial with ``context``, which trusts the CA blocks ``ca`` (their digests), from
        now on (renewed TLS files). Links up keep theirs, unless it trusts a CA no more
        (``ends_links``): then every connection the node made ends, plain http:// too
        (the links dialed, the asks in flight, the pool's idle connections; why all:
        ``node.peers.tls_renewal``), so that each peer is dialed again and verified by
        the CA trusted now. The links up that ended, those over TLS and the plain ones
        apart (no CA verifies those again); None if none were to end (given the same
        ``ca`` again).
        If it raises (the abort could not start), ``self.tls`` is the new context
        already: new dials use it, on the old session, until ``ca`` is given again."""
        self.tls = context
        if not ends_links(self.ca, ca) or self._http is None:
            self.ca = ca
            return None
        up = [runner for runner in self.runners.values()
              if runner.direction == "out" and runner.state == "up"]
        # A link whose peer showed a certificate: dialed with TLS (the context verifies
        # against our CA alone), which a plain http:// link never is.
        verified = sum(1 for runner in up if runner.certified)
        ended = DialsEnded(verified, len(up) - verified)
        # The abort first: if it cannot start, no new session was made to be closed.
        # Making the session cannot fail once the abort began: in the running loop,
        # with these arguments, aiohttp's ClientSession and TCPConnector raise nothing.
        self._spawn(_aborted(self._http), "tls-old-dials")
        # Only once the old session is being aborted: given ``ca`` again after a cut
        # that failed, it is redone.
        self._http, self.ca = self._session(), ca
        return ended

    async def stop(self) -> None:
        """Take no more links, end every link (each close waits for its peer's answer,
        which a paused or unreachable peer never gives, ``STOP_CLOSE_WAIT_S`` at most,
        not ``close_timeout_s``), save checkpoints."""
        self.stopping = True
        self.astore.remove_commit_listener(self._on_commit)
        current = asyncio.current_task()
        # Once each: an accepted link's handler is both inbound and its runner's task,
        # and a second cancel() would count as a second request to cancel it.
        tasks = list(dict.fromkeys([*self._tasks, *self.accepted.handlers,
                                    *(r.task for r in self.runners.values() if r.task)]))
        tasks = [task for task in tasks if task is not current and not task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            # Closes are bounded (by ``STOP_CLOSE_WAIT_S`` here, at most
            # ``close_timeout_s``); the margin covers a checkpoint write per link.
            _, late = await asyncio.wait(tasks, timeout=2 * self.config.sync.close_timeout_s)
            for task in late:
                log.warning("peer link did not end in time", link=task.get_name())
        for runner in list(self.runners.values()):
            with contextlib.suppress(Exception):
                await self.driver.save_checkpoint(runner, force=True)
        if self._http is not None:
            await self._http.close()
        if self._resolver is not None:  # a lookup still hanging ends on its own
            await self._resolver.close()
        await self.driver.close()

    @property
    def links_faulted(self) -> int:
        """Links dropped because the peer broke the protocol, either way, since start."""
        return self.driver.links_faulted

    def _spawn(self, work: Any, name: str) -> None:
        try:
            task: asyncio.Task[None] = asyncio.create_task(work, name=name)
        except BaseException:
            work.close()  # never to run: closed, not warned of as never awaited
            raise
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _learn_from(self, runner: Runner) -> None:
        """Ask the peer of a link just up for its member list, in a task of its own,
        within the bound of a round's asks (``MEMBER_ASKS_AT_ONCE``), on this link only
        (it may wait for a slot while the link ends and another comes up). The task is
        kept (``_tasks``), so stopping cancels it; its faults are logged in the ask
        (``Learning.learn_from`` raises nothing but a cancel)."""
        self._spawn(self.learning.learn_from(runner, link=runner.links), "learn-members")

    def _on_commit(self, commit: Commit) -> None:
        if commit.appends:  # clients are writing: links pay for the writer a while
            self.driver.clients_appended()
        for runner in self.runners.values():
            runner.wake.set()  # push what was appended (or relayed) to every peer

    def membership_changed(self) -> None:
        """Called when a membership record was stored: close links of removed devices
        at once and dial new members' addresses soon."""
        self.sweep()
        self.learning.changed.set()
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
        if learned and self.learning.members.get(url) in linked_nodes(self.runners.values()):
            return False  # an address of a node we are linked to already
        if len(self.runners) >= self.config.sync.peers_max:
            log.warning("peer not added: peers_max reached", url=url)
            return False
        runner = await self._new_runner(key, url, "out", checkpoint_key=key)
        runner.learned, runner.secret = learned, secret
        self.learning.members.setdefault(url, None)
        if secret:
            self.learning.secret_urls.add(url)
        runner.task = asyncio.create_task(self._dial_loop(runner), name=key)
        return True

    async def _new_runner(self, key: str, url: str | None, direction: str,
                          checkpoint_key: str | None,
                          origins_in: OriginQuota | None = None) -> Runner:
        now = self._loop.time()
        machine = await self.driver.call(lambda store: PeerSync(
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
            runner.state, runner.second_link, runner.keyless = "connecting", None, False
            runner.dialing, asked_s = True, None
            try:
                link = await dial(self._http, runner.url, node_id=self.astore.node_id,
                                  secret=self.config.cluster_secret if runner.secret else None,
                                  advertise=self.config.advertise_url, tls=self.tls,
                                  config=self.config.sync, device=self.device)
            except LinkRefused as exc:
                runner.failure = None  # it connected: the refusal says why, not a failure
                self.admission.refused_by_peer(runner, exc)
            except SelfLink:
                log.info("peer address is this node; not dialed again", peer=runner.url)
                self._forget(runner)
                self.own_urls.add(runner.url)
                self.learning.drop(runner.url)
                return
            except PeerBusy as exc:  # said with the wait it is given (``redials.next_dial_at``)
                runner.dial_busy(str(exc))
                asked_s = exc.asked_s
            except LinkClosed as exc:
                # No link came up: nothing went down. An address that cannot be reached
                # is dialed again and again, for as long as it stays so: its failure is
                # said once, and again when it changes (or after a link or a refusal);
                # each dial at debug level.
                reason = str(exc)
                log.log(level_on_change(runner.failure, reason, logging.INFO),
                        "peer dial failed", peer=runner.url, reason=reason)
                runner.dial_failed(reason)
                self.admission.forget_refusal(runner.url)  # a refusal when reached is news
            else:
                runner.dialing = False  # judged on what it proves, from here on
                runner.dial_connected()
                self.admission.forget_refusal(runner.url)  # a later refusal is news again
                if await self._keep_dialed(runner, link):
                    await self.driver.run_until_down(runner, link, runner.url)
                    self.pairing.dial_ended(runner)
            finally:
                # Down before any await: a dial that failed, or whose device was refused,
                # is under way no more, and ``device`` is still its last link's; a removal
                # swept while its checkpoint is saved must not mark it dropped
                # (``Admission.recheck`` judges links up or starting only).
                runner.dialing, runner.state = False, "down"
            # When the dial ended, before the waits for the writer below: a member's
            # refusal is asked again within a pull interval of it (``redials.next_dial_at``).
            ended_at = self._loop.time()
            await self.driver.save_checkpoint(runner, force=True)
            if runner.drop == DEVICE_REMOVED or (runner.drop is not None and runner.learned):
                # A second address of a node linked already, or a removed device's.
                log.info("peer address not dialed again", peer=runner.url, why=runner.drop)
                if runner.device is not None and runner.drop in (NOT_MEMBER, DEVICE_REMOVED):
                    # A member's record may name it: not dialed each members round.
                    self.learning.answered_by(runner.url, runner.device.device_id)
                self._forget(runner)
                self.learning.undialed(runner.url)
                return
            retry_at = await self.driver.on_writer(self._dial_failed, runner, asked_s)
            # Counted since a message from the peer was last handled, not since the last
            # dial that connected: an address that reaches this node itself connects
            # every time.
            if runner.learned and runner.machine.failures >= self.config.sync.learned_failures_max \
                    and not self.learning.advertised(runner.url):
                # Held off, or a peer that still lists it brings it back at each round;
                # not while this node reaches no peer at all: its own network is down, and
                # the address may be fine.
                held_s = self.learning.hold_off(runner.url, runner.node)
                log.info("forgetting learned peer", peer=runner.url,
                         failures=runner.machine.failures, held_off_s=held_s)
                self._forget(runner)
                self.learning.drop(runner.url)
                return
            await set_or_timeout(runner.redial, self._back_off(runner, retry_at, ended_at, asked_s))

    def _back_off(self, runner: Runner, retry_at: float, ended_at: float,
                  asked_s: float | None) -> float:
        """Back off (logging a wait the peer asked for); the seconds until the next dial."""
        runner.state = "backoff"
        runner.redial.clear()
        if asked_s is not None:
            log.info("peer asked to wait before the next dial", peer=runner.url,
                     asked_s=asked_s, wait_s=min(asked_s, self.config.sync.backoff_max_s),
                     reason=runner.failure)
        redial_at = next_dial_at(runner, retry_at, ended_at, removed=self.removed.known,
                                 pull_interval_s=self.config.sync.pull_interval_s)
        runner.redial_at = redial_at
        return max(0.0, redial_at - self._loop.time())

    def _dial_failed(self, runner: Runner, asked_s: float | None) -> float:
        """``PeerSync.connection_failed`` on the writer thread, as of when it runs there:
        as of before the wait for the writer (a group commit, other links' calls), its
        back-off and the wait its peer asked for would be cut short by that wait.
        (``loop.time`` reads the monotonic clock, from any thread.)"""
        return runner.machine.connection_failed(self._now(), asked_s)

    async def _keep_dialed(self, runner: Runner, link: Link) -> bool:
        """Whether the device at the other end of a link we dialed may stay; closes it
        if not."""
        runner.device, runner.drop = link.peer_device, None
        runner.certified, runner.links = link.peer_certified, runner.links + 1
        members_link_up(runner)  # a failure was of a link before; faults of ours stay
        why = self.admission.dialed_why(runner, link.peer_device)
        if why is None:
            return True
        runner.drop = why
        await link.close(why)
        return False

    def _forget(self, runner: Runner) -> None:
        self.runners.pop(runner.key, None)

    async def _standby(self, runner: Runner) -> None:
        """Wait while the node this address stands for is linked by another link."""
        runner.drop = None
        while runner.node is not None and self.pairing.linked_elsewhere(runner):
            runner.state = "standby"
            await asyncio.sleep(self.config.sync.pull_interval_s)

    def _reached(self) -> None:
        """A peer was just reached: this node's network may be back (a laptop woke up,
        a partition healed), so the addresses waiting out a long back-off are dialed now
        rather than up to ``backoff_max_s`` later. Those due within a pull interval keep
        their turn; one that fails again backs off further, as before. One that refused
        this device, or asked for a wait (``Retry-After``), waits not for the network."""
        for other in self.runners.values():
            self._redial(other)

    def _redial(self, runner: Runner) -> None:
        """End ``runner``'s back-off now if it waits for nothing but the network
        (``redials.ends_back_off``)."""
        if ends_back_off(runner, self._loop.time(),
                         pull_interval_s=self.config.sync.pull_interval_s):
            runner.redial.set()

    def _now(self) -> float:
        return self._loop.time()

    # -- the parts, for callers ---------------------------------------------------------

    def admit(self, device_id: str, *, shared: bool, wrong_secret: bool = False,
              remote: str | None = None) -> tuple[str, dict[str, Any], str] | None:
        """Why ``device_id`` may not link with us, or None (``Admission.admit``)."""
        return self.admission.admit(device_id, shared=shared, wrong_secret=wrong_secret,
                                    remote=remote)

    def sweep(self) -> None:
        """End every link to a device that may no longer link with us."""
        self.admission.sweep()

    def own_removal(self) -> dict[str, Any] | None:
        """This device's removal, as told or as stored (``Admission.own_removal``)."""
        return self.admission.own_removal()

    def linked_devices(self) -> set[str]:
        """Devices with a link up that proved their key."""
        return linked_devices(self.runners.values())

    def member_list(self) -> dict[str, Any]:
        """What ``/peer/v1/members`` answers (``Learning.member_list``)."""
        return self.learning.member_list()

    async def dial_members(self) -> None:
        await self.learning.dial_members()

    async def learn_once(self) -> None:
        await self.learning.learn_once()

    def status(self) -> list[dict[str, Any]]:
        """Per link: state, last contact, events behind, bytes in and out (``Rows``)."""
        return self.rows.status()

    def peers(self) -> list[dict[str, Any]]:
        """What ``GET /v1/peers`` lists (``Rows.peers``)."""
        return self.rows.peers()

    def held_off(self) -> tuple[list[dict[str, Any]], int]:
        """The learned addresses held off, as ``GET /v1/peers`` lists them (``Rows.held_off``)."""
        return self.rows.held_off()

    def held_off_kinds(self, failing: int | None = None) -> dict[str, int]:
        """How many addresses are not dialed now, by why (``HELD_OFF_KINDS``): learned ones
        forgotten after their failures (``failing``, if ``held_off`` counted them), ones
        where another device answered (``Learning.answered_held``), dials waiting what
        their peer asked (``PeerSync.asked_until``)."""
        now = self._loop.time()
        counts = (self.rows.held_off_total() if failing is None else failing,
                  self.learning.answered_held(),
                  sum(1 for runner in self.runners.values() if runner.machine.asked_until > now))
        return dict(zip(HELD_OFF_KINDS, counts, strict=True))

    def linked_not_members(self) -> dict[str, dict[str, Any]]:
        """Devices linked that are no members here (``Rows.linked_not_members``)."""
        return self.rows.linked_not_members()

    def device_status(self) -> dict[str, Any]:
        """This device for ``/v1/peers`` and ``/v1/node`` (``Rows.device_status``)."""
        return self.rows.device_status()


async def _aborted(session: aiohttp.ClientSession) -> None:
    """End every connection of ``session`` (its links, asks and idle pool), then the
    session. Aborted, not closed politely: a peer that reads nothing would keep a TLS
    shutdown waiting. The links' loops see them down, and dial with a new session."""
    if session.connector is not None:
        await session.connector.close(abort_ssl=True)
    await session.close()
