"""Driving a link: one ``PeerSync`` machine per link, fed and answered over its websocket.

Every link runs the same loop (``Driver.run``): feed the machine what the peer sends,
what this node appends (pushed at once) and the passing of time (pulls, resends), and
send whatever it answers. The machine reads and writes the event log, so every call into
it runs on the store's writer thread (``AsyncStore.write``), one at a time; the event
loop only moves bytes and so keeps serving clients while a backlog streams in. What needs
no store, parsing a message and verifying its signatures, runs ahead of the writer in
each link's pipeline (``node.peers.ahead``), on pools this node shares among its links.
Each link may use only its share of the writer (``node.peers.budget``).

Which links run, and what becomes of one once it ends, is ``node.peers.gossip``'s
(which link to a node is kept: ``node.peers.pairing``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import structlog

from crdt.errors import StorageUnavailable
from crdt.log.store import EventStore
from node.config import Config
from node.devices import Devices
from node.peers import removals
from node.peers.ahead import PARSE_THREADS, VERIFY_THREADS, Ahead
from node.peers.budget import CLIENTS_QUIET_S
from node.peers.link_errors import LinkClosed, SendFailed
from node.peers.removals import Removals
from node.peers.runner import Runner, second_link
from node.peers.transport import DEVICE_REMOVED, Link
from node.peers.verifying import WORKER_SIGNATURES_MIN, Verifier
from node.store import AsyncStore
from sync.errors import PeerFault
from sync.peer.machine import Prepared
from sync.peer.messages import Hello

T = TypeVar("T")
log = structlog.get_logger(__name__)


class LinkDropped(LinkClosed):
    """This node ends the link (``Runner.drop``): another link to the same node is
    kept, or the peer may no longer link."""


class Driver:
    """What every link's loop shares: the store's writer, the pools and the verifier
    that prepare messages ahead of it, and the clock of client appends. ``identified``
    is told when a hello names the peer (``Pairing.identified``), ``ended`` when a link
    ends (with the node it named, None if none: ``Pairing.ended``)."""

    def __init__(self, config: Config, astore: AsyncStore, *,
                 identified: Callable[[Runner], None],
                 ended: Callable[[Runner, str | None], None],
                 named: Callable[[Runner], dict[str, str]],
                 stopping: Callable[[], bool]) -> None:
        self.config = config
        self.astore = astore
        self._identified = identified
        self._ended = ended
        self._named = named  # the peer's device, for the lines of a link's end
        self._stopping = stopping
        self._loop = asyncio.get_running_loop()
        self._parse_pool = ThreadPoolExecutor(max_workers=PARSE_THREADS,
                                              thread_name_prefix="clawsync-peer-parse")
        self._verify_pool = ThreadPoolExecutor(max_workers=VERIFY_THREADS,
                                               thread_name_prefix="clawsync-peer-verify")
        #: Checks peers' batches of signatures in a worker process, started on the first.
        self.verifier = Verifier()
        #: When client appends last committed (``node.peers.budget``: links pay then).
        self._appended_at = -CLIENTS_QUIET_S
        #: Links dropped because the peer broke the protocol, either way, since start:
        #: an accepted link's own counters leave the metrics when it ends.
        self.links_faulted = 0
        #: The removed devices as the writer sees them: links to them stop pushing.
        self.removals = Removals()

    def clients_appended(self) -> None:
        """Clients are writing: links pay for the writer a while."""
        self._appended_at = self._loop.time()

    async def close(self) -> None:
        """Once every link has ended: shut the pools and the verifier's worker."""
        # Every link has ended, and with it its pipeline (``Ahead.close``), but for
        # checks it left running: the verifier's stop below ends the worker they wait
        # on, and their threads then finish them here, for nobody. A late link finds
        # the pools shut and ends as closed.
        self._parse_pool.shutdown(wait=False)
        self._verify_pool.shutdown(wait=False)
        await asyncio.to_thread(self.verifier.stop)  # a batch it was checking: checked here

    async def call(self, work: Callable[[EventStore], T]) -> T:
        return await self.astore.write(work)

    async def on_writer(self, method: Callable[..., T], *args: Any) -> T:
        """Call a ``PeerSync`` method on the writer thread: it reads and writes the log."""
        return await self.astore.write(lambda _store: method(*args))

    async def follow_removals(self, devices: Devices | None) -> None:
        """Before links run: ``removals`` starts from what ``devices`` read (without
        it, reads the records off the writer), so that no link's call reads the whole
        devices session on the writer, and follows the commits from there."""
        if devices is not None:
            removed, position = set(devices.removed()), devices.position
        else:
            removed, position = await self.astore.read(lambda store: removals.read(store, 0))
        await self.astore.write(
            lambda store: self.removals.follow(store, removed, position))

    async def on_link(self, runner: Runner, method: Callable[..., T], *args: Any) -> T:
        """``on_writer`` for a call into a link's machine (``_decide_pushing`` first)."""
        def call(store: EventStore) -> T:
            self._decide_pushing(store, runner)
            return method(*args)

        return await self.astore.write(call)

    def _decide_pushing(self, store: EventStore, runner: Runner) -> None:
        """On the writer thread, before each call into the link's machine: it pushes
        the peer nothing but the last push if a record stored removes the device at the
        other end of the link (``node.peers.removals``), whether or not ``node.devices``
        has read the record yet. Decided at every call, for the device linked then: a
        dialed address keeps its machine from link to link, and another device may
        answer there next."""
        device = runner.device
        runner.machine.pushing = device is None \
            or not self.removals.removed(store, device.device_id)

    def _now(self) -> float:
        return self._loop.time()

    async def run_until_down(self, runner: Runner, link: Link, peer: str) -> None:
        """``run`` the link and log why it ended; the caller decides what comes next."""
        try:
            await self.run(runner, link)
        except LinkClosed as exc:
            log.info("peer link down", peer=peer, reason=str(exc), **self._named(runner))
        except asyncio.CancelledError:
            log.info("peer link closed: stopping", peer=peer, **self._named(runner))
            raise
        except PeerFault as exc:
            self.links_faulted += 1
            log.warning("peer misbehaved; link dropped", peer=peer, fault=str(exc),
                        **self._named(runner))
        except StorageUnavailable as exc:  # a full disk, say: redial once it may work
            log.warning("peer link stopped: storage unavailable", peer=peer, error=str(exc),
                        **self._named(runner))
        except Exception:
            # Our own failure (the store, a bug): log it and carry on like a lost link,
            # rather than let this peer go silent until the node restarts.
            log.exception("peer link failed", peer=peer, **self._named(runner))

    async def run(self, runner: Runner, link: Link) -> None:
        """Drive ``runner.machine`` over ``link`` until the link ends or the peer errs."""
        machine = runner.machine
        ahead = Ahead(link, machine, parse_pool=self._parse_pool,
                      verify_pool=self._verify_pool, verifier=self.verifier,
                      stopping=self._stopping)
        machine.peer_key = link.peer_device.public_key if link.peer_device else None
        receiving = asyncio.ensure_future(ahead.next())
        try:
            start = await self.on_link(
                runner, lambda: machine.start(self._now(), peer_reads_about=link.peer_reads_about))
            if runner.drop is not None and runner.drop != DEVICE_REMOVED:
                # Refused while starting (``Admission.recheck``): not even a hello. A
                # removed device gets the last push below, which goes after one.
                raise LinkDropped(runner.drop)
            await self._send_taking_in(runner, link, start, ahead, receiving)
            runner.state = "up"
            while True:
                if runner.drop == DEVICE_REMOVED:
                    # The record of the peer's removal goes out before the link ends: the
                    # sweep that ended the link can beat its push to the link, or find the
                    # window full. A hub, which dials no one, has no other way to learn it.
                    # Only that record (with what its origin holds before it, and the
                    # retirement of the device's origins this node wrote): nothing else a
                    # removed device lacks is its to have.
                    await self._send(link, await self.on_link(
                        runner, machine.push_through, runner.removal_push, self._now()))
                if runner.drop is not None:
                    raise LinkDropped(runner.drop)
                timeout_s = max(0.0, machine.wakeup_at - self._loop.time())
                waking = asyncio.ensure_future(runner.wake.wait())
                try:
                    done, _ = await asyncio.wait({receiving, waking}, timeout=timeout_s,
                                                 return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waking.cancel()  # also when cancelled: no task left pending
                if runner.drop is not None:
                    continue  # the link ends: its last push alone goes out, above
                if receiving in done:
                    received = receiving.result()  # raises LinkClosed when the link ends
                    # The next messages are read and prepared while this one is stored.
                    ahead.taken()
                    receiving = asyncio.ensure_future(ahead.next())
                    out = await self._received(runner, received)
                elif runner.wake.is_set():
                    runner.wake.clear()
                    out = await self.on_link(runner, machine.local_appended, self._now())
                else:
                    out = await self.on_link(runner, machine.tick, self._now())
                await self._send_taking_in(runner, link, out, ahead, receiving)
                await self.save_checkpoint(runner)
        except PeerFault as fault:
            await link.close(f"protocol fault: {fault}")  # so its operator sees why
            raise
        finally:
            receiving.cancel()
            node, runner.identified_as = runner.identified_as, None
            runner.state = "down"  # before any await: a second cancel may end this
            runner.second_link = second_link(runner, link.peer_reason)
            self._ended(runner, node)
            try:
                await ahead.close()
            finally:
                # A stopping node waits on no peer's answer (``STOP_CLOSE_WAIT_S``).
                await link.close(runner.drop or "", short_wait=self._stopping())

    async def _send_taking_in(self, runner: Runner, link: Link, messages: list[bytes],
                              ahead: Ahead,
                              receiving: asyncio.Future[tuple[Prepared, float]]) -> None:
        """Send ``messages`` (the hello a link starts with, or an answer); if the link
        closed under the send, not a stall (``SendFailed``), take in what the peer sent
        before, then raise: the peer closed it (its close frame read ahead of the loop
        and answered, or, behind messages read ahead, left unread until the peer gave up
        waiting and dropped the connection), or the connection was lost. A removed
        device's last push may be among it, the only word of its removal a device that
        dials no one gets; it may come as the link comes up, ahead of this node's hello.
        The connection reads nothing new any more."""
        try:
            await self._send(link, messages)
        except SendFailed:
            await self._take_in(runner, ahead, receiving)
            raise

    async def _take_in(self, runner: Runner, ahead: Ahead,
                       receiving: asyncio.Future[tuple[Prepared, float]]) -> None:
        """Handle the messages ``ahead`` read before the link ended (``receiving``, the
        next of them), answering none: the link is closed. They end where the link's
        input does (its close frame, or the end of the connection)."""
        try:
            while True:
                try:
                    received = await receiving
                except LinkClosed:
                    return
                ahead.taken()
                await self._received(runner, received)
                receiving = asyncio.ensure_future(ahead.next())
        finally:
            receiving.cancel()  # the one made here, if handling a message failed

    async def _received(self, runner: Runner, received: tuple[Prepared, float]
                        ) -> list[bytes]:
        """Handle one message on the writer; charge the link for the time it took there
        and to prepare and, if it used up its share, wait (handling nothing more) until
        it is paid back."""
        machine = runner.machine
        prepared, prepare_s = received  # its CPU seconds off the writer (``Ahead``)

        def call(store: EventStore) -> tuple[list[bytes], float]:
            started = time.perf_counter()
            self._decide_pushing(store, runner)
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

    async def _send(self, link: Link, messages: list[bytes]) -> None:
        for data in messages:
            await link.send(data)

    async def save_checkpoint(self, runner: Runner, force: bool = False) -> None:
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

        if await self.call(save):
            runner.saved = checkpoint
        runner.saved_at = now
