"""Running a node: open the store, serve the API, stop cleanly on SIGTERM, SIGINT, SIGHUP.

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
import errno
import gc
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from aiohttp import web

from crdt.errors import FolderInUse, LogFormatError, StoreError
from crdt.storage.lock import FolderLock
from node import logs
from node.config import Config, software_version
from node.data_format import (
    DATA_FORMAT,
    Marking,
    log_refusal,
)
from node.device import DeviceKey, DeviceKeyError, open_key
from node.folder import remove_empty
from node.http.head_limits import head_limits
from node.http.listener import BoundedSite, bind, close_all
from node.http.tls_refusals import TlsRefusedCollector
from node.interrupt import die_of
from node.peers import api as peering
from node.peers.gossip import Gossip
from node.peers.metrics import PeerCollector
from node.peers.tls_expiry import TlsCollector
from node.peers.tls_renewal import Contexts, TlsFiles, watch
from node.server.app import METRICS, make_app
from node.server.devices import DEVICES
from node.server.folders import (
    check_folder_format,
    check_folder_free,
    check_log_first,
    check_storage_log,
    folder_lock,
    left_behind,
    make_data_folder,
    make_storage_folder,
    mark_folder_format,
    unmake_key,
)
from node.server.reach import pairing_hint
from node.server.start_errors import FolderTaken, StartError
from node.store import AsyncStore

#: How long a thread holding the GIL runs before one waiting for it takes a turn (Python's
#: default is 5 ms). The store's writer runs Python for seconds at a time while a peer's
#: backlog streams in; a shorter turn lets the event loop answer clients between its
#: steps (``/healthz`` p99 during a catch-up, ``bench.catchup``).
GIL_SWITCH_INTERVAL_S = 0.001
#: Net new container objects (allocations less deallocations) between two collections
#: of the youngest generation of Python's cycle collector (Python's default is 700). A
#: catch-up keeps a few batches of parsed events alive at a time: at 700 the collector
#: ran about 4 times per batch of 512 events, traversing objects that reference counting
#: frees once they are stored, and once in ``bench.catchup`` it traversed the whole heap
#: (30-40 ms with the event loop held). Some 100 ms of the receiving node's 1.3 s of CPU
#: time, and nothing found to free. At this threshold it did not run at all during that
#: catch-up; cyclic garbage waits for up to this many new objects (a few MiB).
GC_YOUNG_OBJECTS = 20_000

log = structlog.get_logger(__name__)

#: What the line of a CA change says of the plain http:// links it ended with the TLS
#: ones (``Gossip.use_tls``): its ``why`` is not theirs.
PLAIN_ENDED = ("ended with the pool of connections they share with the TLS dials; dialed "
               "again as they were, with no TLS for a CA to verify")


@dataclass(slots=True)
class RunningNode:
    """A node serving in this event loop."""

    config: Config
    runner: web.AppRunner
    site: BoundedSite
    astore: AsyncStore
    gossip: Gossip
    device: DeviceKey
    #: The data folder's lock, when the log lives elsewhere (``folder_lock``).
    lock: FolderLock | None = None
    stopped: bool = False
    #: What this start did to the data folder's format marker (``node.data_format``).
    marking: Marking = field(default_factory=Marking)
    #: Looks at the TLS files while the node serves (``node.peers.tls_renewal``).
    tls_watch: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """Base URL of the API, with the real port."""
        return self.site.name

    def use_tls(self, contexts: Contexts) -> None:
        """New connections and new dials handshake with ``contexts`` (renewed TLS
        files); those open keep theirs, but for peer links made under a CA the node
        trusts no more (``Contexts.ca``), which end: said once, with how many. Given
        again after it failed partway, only the part not done yet ends links, and only
        those are said then (the site's said already, though the dials' part failed)."""
        accepted = self.site.use_tls(contexts.server, contexts.ca) \
            if contexts.server is not None else None
        dialed = None
        dials_done = False
        try:
            dialed = self.gossip.use_tls(contexts.client, contexts.ca)
            dials_done = True
        finally:
            if accepted is not None or dialed is not None:
                # The dials' part failed: no count, which would say it ended none.
                dials: dict[str, object] = \
                    {"dials": "not ended yet: retried at the next look"}
                if dials_done:
                    dials = {"dialed_links": dialed.tls if dialed is not None else 0}
                if dialed is not None and dialed.plain:  # the why is not theirs
                    dials.update(dialed_plain_links=dialed.plain, plain=PLAIN_ENDED)
                # Certified connections accepted: links, and a peer's keep-alive asks.
                log.warning("peer links ended: tls ca changed",
                            accepted_connections=accepted or 0, **dials,
                            ca=str(self.config.tls_ca),
                            why="each peer handshakes again, verified by the CA trusted now")

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish, commit what is queued, close.
        Each step runs though one before it failed (a log line that could not be
        written, say): the store is closed either way, the folder let go of once it is,
        and the error is raised after."""
        if self.stopped:
            return
        self.stopped = True
        # Stopping from now on, not only once the site stops (after the peer links, which
        # may take a slow peer's close timeout twice): a new live stream or long poll is
        # refused as stopping, with the wait of a restart, and open ones end. The
        # Automerge followers go on till the site stops: its clients are still served.
        self.astore.begin_stopping()
        if self.tls_watch is not None:
            self.tls_watch.cancel()
            # Waited for, never raised from: however the looks ended, the steps below
            # run (an error raised here would leave the store open and the folder taken).
            await asyncio.wait([self.tls_watch])
            if not self.tls_watch.cancelled() and self.tls_watch.exception() is not None:
                error = self.tls_watch.exception()
                with contextlib.suppress(Exception):  # nor a line that cannot be written
                    log.error("tls files looks had ended", error_type=type(error).__name__,
                              error=str(error))
        try:
            await self.gossip.stop()
        finally:
            try:
                await self.runner.cleanup()
            finally:
                await self.astore.close()
                # Let go of the folder only once the store is closed: a store that
                # failed to close may still write, and another start must not open it.
                if self.lock is not None:
                    self.lock.release()


async def start(config: Config) -> RunningNode:
    """Open the store (``config.log_location``, created if missing) and start serving;
    ``StartError`` if either cannot be done.

    What an option of the command may have wrong (the address, the port, the TLS files)
    is checked before anything is made: a first start that fails there leaves no data
    folder and no device key behind, for a node identity nobody used. A failure of the
    storage itself comes after the key (the log signs with it), and says that the new
    folder may be used again; a log refused as another version's or damaged takes the
    key this start made with it (``unmake_key``); a ``--storage`` log is read before
    the data folder is made (``check_storage_log``). The ``--storage`` folders it made
    (``make_storage_folder``) are removed again while empty.

    Two starts at once on one port both pass the address check (a socket takes a port
    for good only once it listens): the one that then cannot listen has made its folder
    and key, and says so."""
    config.check()
    check_folder_format(config)
    await asyncio.to_thread(check_storage_log, config)
    tls = await asyncio.to_thread(_tls, config)
    socks = _bind(config)
    try:
        made = make_data_folder(config.data_dir)
        lock = folder_lock(config)
        storage_made: list[Path] = []
        try:
            storage_made = make_storage_folder(config)
            node = await _start(config, tls, socks)
        except BaseException as error:
            if lock is not None:
                lock.release()
            remove_empty(storage_made)
            # Taken with no lock of ours on the folder (the log is in it): a node that
            # started there meanwhile, whose folder it is. With one (--storage), the
            # storage was taken, and the folder this start made is ours to tell of.
            ours = not isinstance(error, FolderTaken) or lock is not None
            if isinstance(error, StartError) and made is not None and ours:
                raise StartError(f"{error} ({left_behind(made, config.data_dir)})") from None
            raise
    except BaseException:
        close_all(socks)  # once served, the site has closed them already
        raise
    node.lock = lock
    return node


def _tls(config: Config) -> TlsFiles:
    """The TLS files and their contexts, or ``StartError`` naming the file that cannot be
    used (each is loaded in a step of its own: a bad CA file does not blame the
    certificate)."""
    try:
        return TlsFiles(config)
    except peering.TlsFileError as error:
        raise StartError(str(error)) from None


def _reason(error: OSError) -> str:
    """An OS error in words (``os.strerror`` knows no name-lookup error)."""
    return error.strerror or str(error)


def _bind(config: Config) -> list[socket.socket]:
    """The node's sockets, bound to its address and port (not listening yet)."""
    try:
        return bind(config.host, config.port)
    except OSError as error:
        hint = ""
        if error.errno == errno.EADDRINUSE:
            check_folder_free(config)  # the same node started twice: say that
            hint = " (is another node running there? give another --port)"
        raise StartError(f"cannot listen on {config.host}:{config.port}: "
                         f"{_reason(error)}{hint}") from None


async def _start(config: Config, tls: TlsFiles, socks: list[socket.socket]) -> RunningNode:
    limits = config.limits
    device: DeviceKey | None = None
    opening = False  # the log is opened to be written: a refusal then changed its files
    try:
        await asyncio.to_thread(check_log_first, config)
        try:
            # Before the log: a node that cannot be this device must not touch its data.
            device = await asyncio.to_thread(open_key, config.data_dir)
        except DeviceKeyError as error:
            raise StartError(str(error)) from None
        opening = True
        astore = await AsyncStore.open(config.log_location, limits,
                                       signer=device.signer(config.name),
                                       written_by=software_version())
    except FolderInUse as error:
        raise FolderTaken(str(error)) from None
    except LogFormatError as error:
        said = str(log_refusal(error, config.log_location, software_version(),
                               opened=opening))
        raise StartError(said + unmake_key(device)) from None
    except StoreError as error:
        raise StartError(str(error)) from None
    try:
        marked = await mark_folder_format(config)
        app = make_app(config, astore, device)
        gossip = Gossip(config, astore, tls.contexts.client, device, app[DEVICES],
                        ca=tls.contexts.ca)
        app[DEVICES].add_listener(gossip.membership_changed)
        peering.setup(app, config, gossip)
        app[METRICS].registry.register(PeerCollector(gossip))
        app[METRICS].registry.register(TlsCollector(lambda: tls.dates))
        runner = web.AppRunner(
            app,
            # aiohttp's keep-alive timer runs from the moment a connection opens until a
            # request's headers are complete, and again between requests: it is the
            # header read timeout. Bodies are timed by node.http.wire.read_body.
            keepalive_timeout=limits.read_timeout_s,
            lingering_time=min(limits.linger_s, limits.read_timeout_s),
            shutdown_timeout=limits.shutdown_timeout_s,
            access_log=None,  # requests are counted in /metrics instead
            # node.http.wire.read_body decompresses bodies itself, refusing bad ones with
            # 400 (aiohttp's own errors escape as 500s).
            auto_decompress=False,
            **head_limits(),
        )
        await runner.setup()
        site = BoundedSite(runner, config.host, config.port, limits,
                           ssl_context=tls.contexts.server, ca=tls.contexts.ca,
                           bound=socks)
        app[METRICS].registry.register(TlsRefusedCollector(site.tls_refusals))
        try:
            await _listen(site, config)
            await gossip.start()
        except BaseException:
            await gossip.stop()
            await runner.cleanup()
            raise
    except BaseException:
        await astore.close()
        raise
    node = RunningNode(config, runner, site, astore, gossip, device, marking=marked)
    if tls.watched:
        node.tls_watch = asyncio.create_task(watch(tls, node.use_tls), name="tls files")
    return node


async def _listen(site: BoundedSite, config: Config) -> None:
    try:
        await site.start()
    except OSError as error:
        # Bound already: only another node listening there since fails here.
        hint = " (another node began listening there as this one started; give " \
               "another --port)" if error.errno == errno.EADDRINUSE else ""
        raise StartError(f"cannot listen on {config.host}:{config.port}: "
                         f"{_reason(error)}{hint}") from None


def stop_signals() -> tuple[signal.Signals, ...]:
    """The signals that stop a node gracefully: SIGTERM, SIGINT (Ctrl-C), and SIGHUP (its
    terminal closing), unless SIGHUP is ignored already: ``nohup`` ignores it so that the
    node outlives its terminal, and so it stays. systemd does not: it leaves SIGHUP at
    its default, so a SIGHUP sent to the unit (``systemctl kill -s HUP``, an
    ``ExecReload=kill -HUP``) stops the node with exit 0, and ``Restart=on-failure`` does
    not start it again; the node reloads nothing on a signal (its TLS files it looks at by
    itself: ``node.peers.tls_renewal``; deploy/README.md says so)."""
    hang_up = getattr(signal, "SIGHUP", None)  # not on Windows
    if hang_up is None or signal.getsignal(hang_up) is signal.SIG_IGN:
        return (signal.SIGTERM, signal.SIGINT)
    return (signal.SIGTERM, signal.SIGINT, hang_up)


async def serve(config: Config) -> signal.Signals:
    """Serve until one of ``stop_signals`` comes, then stop gracefully; the signal that
    stopped it. The handlers are in place before the node starts: opening a large store
    takes a while, and a SIGTERM then (a service manager's stop; in a container, where
    this may be PID 1, the only one that would otherwise be ignored) stops the node once
    it has started, cleanly, rather than killing it half-open."""
    stop = asyncio.Event()
    stopped_by: list[signal.Signals] = []
    started = False

    def on_signal(signum: signal.Signals) -> None:
        if stopped_by and not started:
            # A second stop while the store still opens: the person will not wait. The
            # log is crash-safe; whatever it acknowledged before is kept.
            die_of(signum)
        stopped_by.append(signum)
        stop.set()

    loop = asyncio.get_running_loop()
    signals = stop_signals()
    for signum in signals:
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(signum, on_signal, signum)
    try:
        try:
            node = await start(config)
        except StartError as error:
            if not stopped_by:
                raise
            # Told to stop meanwhile: stopped, as asked, rather than a failure to start.
            log.warning("not started", error=str(error))
            return stopped_by[0]
        started = True
        freeze_startup_objects()
        try:
            if not stop.is_set():
                # One line: a new key is said in it (``created``), so "serving" stays
                # the first line.
                created = {"device_key_created": str(node.device.path)} \
                    if node.device.created else {}
                if node.marking.written:
                    created["data_format_marked"] = str(DATA_FORMAT)
                # The name the membership records give this device, where one does
                # (``--name`` is only its name until then).
                log.info("serving", url=node.url, device_id=node.device.device_id,
                         name=node.runner.app[DEVICES].name, node_id=node.astore.node_id,
                         head=node.astore.head, log=str(config.log_location), **created)
                if node.marking.later is not None:
                    log.warning("data folder not marked", reason=node.marking.later)
                _hint_pairing(node)
                await stop.wait()
            log.info("stopping", head=node.astore.head)
        finally:
            await node.stop()
    finally:
        for signum in signals:
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(signum)
    log.info("stopped", head=node.astore.head)
    return stopped_by[0]


def _hint_pairing(node: RunningNode) -> None:
    """A node with no peer and no other member says how a new device reaches it (or
    that none can: on loopback), since that is what pairing asks for next; from the
    addresses it is bound to, which ``--host`` may only name."""
    config, devices = node.config, node.runner.app[DEVICES]
    if config.peers or set(devices.members()) - {devices.device_id}:
        return
    scheme = "https" if config.tls_cert is not None else "http"
    event, fields = pairing_hint(scheme, node.site.addresses, node.site.port,
                                 config.advertise_url)
    log.info(event, **fields)


def tune_collector() -> None:
    """Run Python's cycle collector less often (``GC_YOUNG_OBJECTS``); the older
    generations keep their default ratios."""
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_OBJECTS, middle, old)


def freeze_startup_objects() -> None:
    """Leave what the node made to start (modules, the app, its routes: most of the
    heap, and alive until it stops) out of every later collection: a full one then
    traverses only what serving made since (``gc.freeze``). No collection first: it
    found a handful of objects to free and cost some 20 ms of CPU on every start."""
    gc.freeze()


def run(config: Config,
        warnings: Sequence[tuple[str, Mapping[str, str]]] = ()) -> signal.Signals:
    """Configure logging and serve ``config`` until told to stop (``clawsync serve``);
    the signal that stopped it. ``warnings``: what the command found wrong with its
    settings but let through (an empty variable over the file's token, limits that
    cannot bite), each an event and its fields, logged first."""
    logs.configure(config.log_level, config.log_format, config.limits)
    for event, fields in warnings:
        log.warning(event, **fields)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    tune_collector()
    try:
        return asyncio.run(serve(config))
    finally:
        # The log's lines are written by a thread of their own: out before what the
        # command writes next (a start's error), within a bound (a stalled reader).
        logs.drain()
