"""The node's TLS files, looked at again while it runs, so that a renewed certificate
(Let's Encrypt renews every 60-90 days; an organisation's CA rotates) is taken without a
restart, by an operator who may not remember to restart.

Every ``Limits.tls_files_check_interval_s`` the node compares each of its files
(``--tls-cert``, ``--tls-key``, ``--tls-ca``) with what it loaded: the inode, size,
modification and change times of the file, or of the file a symbolic link points to
(certbot's ``live/`` links to a new file in ``archive/`` on each renewal). On a change it
builds new contexts from the files (``node.peers.api.server_tls``, ``client_tls``), which
new connections and new dials handshake with; connections already open keep the one they
began with, and are not dropped: a renewed certificate or key ends no link. A ``--tls-ca``
that no longer holds a CA it held (one of its certificate blocks gone: ``Contexts.ca``,
read from the very bytes the contexts trust) ends every peer link made under it, both ways
(``BoundedSite.use_tls``, ``Gossip.use_tls``), so that each peer handshakes again and one
the CAs left do not verify is shut out (a leaked key, a CA rotated away). Which links the
CA taken out let in cannot be told: a handshake gives only the peer's own certificate
(Python 3.11 gives no verified chain), and without its intermediates no check could tell
them from the others; so all end, every link the node dialed too (plain http:// ones
as well); a CA is taken out seldom. A CA added, the blocks reordered, the file rewritten
alike, end none. Apps, which show no client certificate, keep their connections. Each
part remembers the CA it was given: a look that failed partway gives the contexts again,
and the part done already ends no link twice. Files that cannot
be used (half written during a renewal, a key of another certificate, unreadable) leave
the contexts in use as they were, and every later look tries again, so that the rest of
the renewal is taken once it is written. A renewal writes its certificate and its key one
after the other, and a look between the two finds them mismatched: so files that cannot
be used are looked at again sooner (every ``Limits.tls_files_settle_s``, or the interval
if shorter), and a warning says which and why only if they are still the same files at
a look at least ``tls_files_settle_s`` after they were found so, once per change.

The certificates' dates are watched (``node.peers.tls_expiry``): at start and at each
look, warnings of those that expire soon, expired or are not valid yet. A renewal to a
certificate out of its dates (expired, or not valid yet: a clock or a CA gone wrong), or
served with an intermediate out of its dates on the chain peers build, is files that
cannot be used: peers would refuse it, and the one in use is kept. A renewed
``--tls-ca`` is not judged by its dates (a bundle may hold old CAs): its expired CA is
said of, as at start.

Any other error of a look (a bug, a thread that could not start) is logged once per
kind and the looks go on: renewals are never left untaken without a line saying why.

A signal reloads nothing: SIGHUP stops the node, as it always has (``run.stop_signals``).

>>> stamp_of(Path("/nonexistent/tls.pem"))
'No such file or directory'
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog

from node.config import Config
from node.peers.api import TlsFileError, client_tls, server_tls
from node.peers.tls_expiry import ExpiryWarnings, Watched
from node.peers.tls_pem import (
    CA_FILE,
    CHAIN_FILE,
    TLS_FILE_BYTES_MAX,
    Served,
    read_capped,
    read_content,
    read_file,
)

log = structlog.get_logger(__name__)

#: A file as last seen: (device, inode, size, modification and change times in ns), or
#: why it could not be looked at. The change time too: a copy in place that keeps the
#: modification time (``cp -p``, ``rsync -t --inplace``) of a file of the same size
#: changes nothing else.
Stamp = tuple[int, int, int, int, int] | str

#: Why a ``--tls-ca`` written while the contexts were built from it is not used.
CHANGED_WHILE_LOADED = "changed while loaded"
#: Loads tried at start while ``--tls-ca`` changes as it is loaded (a rotation under
#: way), ``Limits.tls_files_settle_s`` apart, before the node refuses to start: one is
#: written in a moment, and loads back to back could all fall within a slow copy.
START_LOADS = 3


@dataclass(frozen=True, slots=True)
class Contexts:
    """The node's TLS contexts: as a server (HTTPS) and as a dialer of peers; and the
    digests of the certificate blocks of ``--tls-ca`` they trust (``Read.block_digests``,
    empty without it). Contexts that no longer trust one of the blocks the ones before
    them trusted end the peer links made under those
    (``node.tls_trust.ends_links``)."""

    server: ssl.SSLContext | None
    client: ssl.SSLContext | None
    ca: frozenset[bytes] = frozenset()


@dataclass(frozen=True, slots=True)
class Loaded:
    """Contexts loaded from the files, the certificates read for them (their dates), and
    the files' stamps when loaded."""

    contexts: Contexts
    dates: Watched
    stamps: tuple[Stamp, ...]


def stamp_of(path: Path) -> Stamp:
    """What ``path`` is now, following links: a change of any part is a new file."""
    try:
        found = os.stat(path)
    except OSError as error:
        return error.strerror or str(error)
    return (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns)


def load(config: Config) -> tuple[Contexts, Watched]:
    """The contexts from ``config``'s files, and the certificates read for them (their
    dates); ``TlsFileError`` naming a file that cannot be used."""
    # Read before the contexts: a certificate renewed meanwhile is stamped anew and read
    # again next look, so the serial logged is never older than the one in use.
    cert = read_file(config.tls_cert, CHAIN_FILE)
    if config.tls_ca is None:
        return Contexts(server_tls(config), client_tls(config)), Watched(config.tls_cert, cert)
    # The contexts read the file themselves: read before and after, and refused if it
    # changed meanwhile (else a CA taken out then would be trusted, and its links kept,
    # with digests of blocks that are not the ones trusted). Settled, it is read again
    # next look. Nothing is written: the node may have no temporary folder to write in.
    content = read_ca(config.tls_ca)
    ca = read_content(content, CA_FILE)
    contexts = Contexts(server_tls(config), client_tls(config), ca.block_digests)
    if read_ca(config.tls_ca) != content:
        raise TlsFileError(f"--tls-ca {config.tls_ca}", CHANGED_WHILE_LOADED)
    return contexts, Watched(config.tls_cert, cert, config.tls_ca, ca)


def read_ca(path: Path) -> bytes:
    """What the CA file ``path`` holds; ``TlsFileError`` if it cannot be read or is over
    ``TLS_FILE_BYTES_MAX`` (so a huge file is never held whole)."""
    try:
        content = read_capped(path)
    except OSError as error:
        raise TlsFileError(f"--tls-ca {path}", error.strerror or str(error)) from None
    if len(content) > TLS_FILE_BYTES_MAX:
        raise TlsFileError(f"--tls-ca {path}", f"over {TLS_FILE_BYTES_MAX} bytes "
                           "(node.peers.tls_pem.TLS_FILE_BYTES_MAX)")
    return content


def chain_invalid(dates: Watched, now: datetime) -> str | None:
    """Why peers would refuse the chain of ``dates`` at ``now`` (its served certificate
    or an intermediate on the chain peers build expired, or not valid yet), else None.
    Neither the CAs of ``--tls-ca`` (a bundle may well hold old ones) nor the blocks of
    ``--tls-cert`` off that chain (an expired cross-sign at the end of a fullchain) are
    judged: peers do not refuse the node for them (of a chain that reaches no CA of
    ``--tls-ca``, only its first intermediate is on it: ``Watched.chain``)."""
    for kind, _, block in dates.chain(now).each():
        if kind in ("served", "intermediate") and block.cert is not None:
            invalid = block.cert.invalid(now)
            if invalid is not None:
                return invalid if kind == "served" else \
                    f"intermediate {block.index} of the file: {invalid}"
    return None


class TlsFiles:
    """The contexts in use, and the stamps of the files they were loaded from."""

    __slots__ = ("_loaded", "_paths", "_refused", "_unsettled", "config", "contexts",
                 "dates", "expiries")

    def __init__(self, config: Config) -> None:
        """Load ``config``'s files (``TlsFileError`` if one cannot be used). Blocking: it
        reads the files, and waits while ``--tls-ca`` changes as it is loaded."""
        self.config = config
        self._paths = tuple(path for path in (config.tls_cert, config.tls_key, config.tls_ca)
                            if path is not None)
        for tried in range(1, START_LOADS + 1):
            # Stamped before they are read: a file written meanwhile is read again next
            # look.
            self._loaded: tuple[Stamp, ...] | None = self.stamps()
            try:
                self.contexts, self.dates = load(config)
                break
            except TlsFileError as error:
                if error.reason != CHANGED_WHILE_LOADED or tried == START_LOADS:
                    raise
            time.sleep(config.limits.tls_files_settle_s)  # the rotation written meanwhile
        #: The stamps of files that could not be used, warned of already.
        self._refused: tuple[Stamp, ...] | None = None
        #: The stamps of files that could not be used, not warned of yet, and when they
        #: were first found so (``time.monotonic``): they may be a renewal half done.
        self._unsettled: tuple[tuple[Stamp, ...], float] | None = None
        #: What was said of the certificates' dates (``warn_of_expiry``).
        self.expiries = ExpiryWarnings()

    @property
    def served(self) -> Served | None:
        """The certificate served, in use: None without one, or if it cannot be read."""
        return self.dates.served

    @property
    def watched(self) -> bool:
        """Whether there are files to look at (the node serves HTTPS or dials with a CA)."""
        return bool(self._paths)

    def unload(self) -> None:
        """Take the files as not loaded: after a look that failed, whatever it did, they
        are loaded (and given) again at the next look."""
        self._loaded = None

    def stamps(self) -> tuple[Stamp, ...]:
        return tuple(stamp_of(path) for path in self._paths)

    def next_look_s(self) -> float:
        """Seconds until the next look: sooner while files that cannot be used have not
        been warned of, so that a renewal half written is seen again once settled."""
        interval_s = self.config.limits.tls_files_check_interval_s
        if self._unsettled is not None and self._unsettled[0] != self._refused:
            return min(interval_s, self.config.limits.tls_files_settle_s)
        return interval_s

    def changed(self) -> Loaded | None:
        """The files loaded again if they changed since they were loaded and can be used
        now, else None; not in use until given to ``take``. Blocking: it reads the files."""
        stamps = self.stamps()
        if stamps == self._loaded:
            self._unsettled = None  # put back as they were: nothing to warn of
            return None
        try:
            contexts, dates = load(self.config)
        except TlsFileError as error:
            self._refuse(stamps, error)
            return None
        # OpenSSL loads a certificate out of its dates, and peers would refuse the node
        # from then on: the one in use (still valid, or no worse) is kept instead.
        invalid = chain_invalid(dates, datetime.now(UTC))
        if invalid is not None:
            self._refuse(stamps, TlsFileError(f"--tls-cert {self.config.tls_cert}", invalid))
            return None
        self._refused = self._unsettled = None
        return Loaded(contexts, dates, stamps)

    def take(self, loaded: Loaded) -> None:
        """``loaded`` is in use: its certificate is the one served (the gauge, the
        warnings), and its files are the ones compared with from now on."""
        self.contexts, self.dates, self._loaded = loaded.contexts, loaded.dates, \
            loaded.stamps
        served = loaded.dates.served
        log.info("tls files reloaded", files=[str(path) for path in self._paths],
                 **(served.fields() if served is not None else {}))

    def _refuse(self, stamps: tuple[Stamp, ...], error: TlsFileError) -> None:
        """Warn that files cannot be used once they stayed so ``tls_files_settle_s``,
        unchanged (the rest of a renewal comes meanwhile), and once per change."""
        if stamps == self._refused:
            # Back to files warned of already (a file missing again): nothing is settling.
            self._unsettled = None
            return
        settle_s = self.config.limits.tls_files_settle_s
        now = time.monotonic()
        if self._unsettled is None or self._unsettled[0] != stamps:
            self._unsettled = (stamps, now)
            # Said once per change, at debug level: likely harmless.
            log.debug("tls files settling", error=str(error), warn_after_s=settle_s)
        if now - self._unsettled[1] < settle_s:
            return
        self._refused = stamps
        # The option, path and OpenSSL's reason: never what a file holds.
        log.warning("tls files not reloaded", error=str(error),
                    kept="the certificate and CA loaded before",
                    retry_s=self.config.limits.tls_files_check_interval_s)

    def warn_of_expiry(self, now: datetime) -> None:
        """Say what the dates of the certificates in use call for at ``now``, once each
        (``node.peers.tls_expiry.ExpiryWarnings``)."""
        self.expiries.warn(self.dates, now)


async def look(files: TlsFiles, use: Callable[[Contexts], None]) -> Contexts | None:
    """One look at ``files``: if they changed and can be used (``TlsFiles.changed``, on a
    thread: a file on a slow mount holds up no request), their contexts given to ``use``,
    then in use (``take``); then what the dates of the certificates in use call for is
    said. The new contexts, else None."""
    loaded = await asyncio.to_thread(files.changed)
    if loaded is not None:
        use(loaded.contexts)
        # Served from now on: not before, or the gauge would show a certificate not in
        # use when ``use`` fails.
        files.take(loaded)
    files.warn_of_expiry(datetime.now(UTC))
    return loaded.contexts if loaded is not None else None


async def watch(files: TlsFiles, use: Callable[[Contexts], None]) -> None:
    """Look at ``files`` (``look``) until cancelled, every ``tls_files_check_interval_s``
    (sooner while files that cannot be used settle: ``TlsFiles.next_look_s``), giving
    ``use`` the new contexts each time they changed."""
    interval_s = files.config.limits.tls_files_check_interval_s
    failed: set[str] = set()  # the kinds of error logged already
    files.warn_of_expiry(datetime.now(UTC))  # at start: the certificate loaded then
    while True:
        await asyncio.sleep(files.next_look_s())
        try:
            await look(files, use)
            failed.clear()  # a kind that comes back after a good look is said again
        except Exception as error:  # logged, and the next look may succeed
            files.unload()  # loaded but not in use: loaded and given again next time
            kind = type(error).__name__
            if kind not in failed:
                failed.add(kind)
                # The kind and message only: no traceback, whose locals could hold a file.
                log.error("tls files look failed", error_type=kind, error=str(error),
                          kept="the contexts in use", retry_s=interval_s)
