"""The node's TLS files, looked at again while it runs, so that a renewed certificate
(Let's Encrypt renews every 60-90 days; an organisation's CA rotates) is taken without a
restart, by an operator who may not remember to restart.

Every ``Limits.tls_files_check_interval_s`` the node compares each of its files
(``--tls-cert``, ``--tls-key``, ``--tls-ca``) with what it loaded: the inode, size,
modification and change times of the file, or of the file a symbolic link points to
(certbot's ``live/`` links to a new file in ``archive/`` on each renewal). On a change it
builds new contexts from the files (``node.peers.api.server_tls``, ``client_tls``), which
new connections and new dials handshake with; connections already open keep the one they
began with, and are not dropped. Nor are links whose peer's certificate the new CA would
not verify: a handshake gives only the peer's own certificate (Python 3.11 gives no
chain), and without its intermediates no check could tell such a link from a good one;
shutting out a leaked key takes a restart (deploy/README.md says so). Files that cannot
be used (half written during a renewal, a key of another certificate, unreadable) leave
the contexts in use as they were: a warning says which and why, once per change of the
files, and every later look tries again, so that the rest of the renewal is taken once
it is written. Any other error of a look (a bug, a thread that could not start) is
logged once per kind and the looks go on: renewals are never left untaken without a
line saying why.

A signal reloads nothing: SIGHUP stops the node, as it always has (``run.stop_signals``).

>>> stamp_of(Path("/nonexistent/tls.pem"))
'No such file or directory'
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog
from cryptography import x509

from node.config import Config
from node.peers.api import TlsFileError, client_tls, server_tls

log = structlog.get_logger(__name__)

#: A file as last seen: (device, inode, size, modification and change times in ns), or
#: why it could not be looked at. The change time too: a copy in place that keeps the
#: modification time (``cp -p``, ``rsync -t --inplace``) of a file of the same size
#: changes nothing else.
Stamp = tuple[int, int, int, int, int] | str


@dataclass(frozen=True, slots=True)
class Contexts:
    """The node's TLS contexts: as a server (HTTPS) and as a dialer of peers."""

    server: ssl.SSLContext | None
    client: ssl.SSLContext | None


def stamp_of(path: Path) -> Stamp:
    """What ``path`` is now, following links: a change of any part is a new file."""
    try:
        found = os.stat(path)
    except OSError as error:
        return error.strerror or str(error)
    return (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns)


def load(config: Config) -> tuple[Contexts, dict[str, str]]:
    """The contexts from ``config``'s files, and the serial and expiry of the certificate
    read for them (``_certificate``); ``TlsFileError`` naming a file that cannot be used."""
    # Read before the contexts: a certificate renewed meanwhile is stamped anew and read
    # again next look, so the serial logged is never older than the one in use.
    about = _certificate(config.tls_cert)
    return Contexts(server_tls(config), client_tls(config)), about


class TlsFiles:
    """The contexts in use, and the stamps of the files they were loaded from."""

    __slots__ = ("_loaded", "_paths", "_refused", "config", "contexts")

    def __init__(self, config: Config) -> None:
        """Load ``config``'s files (``TlsFileError`` if one cannot be used)."""
        self.config = config
        self._paths = tuple(path for path in (config.tls_cert, config.tls_key, config.tls_ca)
                            if path is not None)
        # Stamped before they are read: a file written meanwhile is read again next look.
        self._loaded: tuple[Stamp, ...] | None = self.stamps()
        self.contexts = Contexts(server_tls(config), client_tls(config))
        #: The stamps of files that could not be used, warned of already.
        self._refused: tuple[Stamp, ...] | None = None

    @property
    def watched(self) -> bool:
        """Whether there are files to look at (the node serves HTTPS or dials with a CA)."""
        return bool(self._paths)

    def unload(self) -> None:
        """Take the files as not loaded: contexts that could not be put in use are
        loaded again at the next look."""
        self._loaded = None

    def stamps(self) -> tuple[Stamp, ...]:
        return tuple(stamp_of(path) for path in self._paths)

    def look(self) -> Contexts | None:
        """New contexts if the files changed since they were loaded and can be used now
        (they are in use from now on), else None. Blocking: it reads the files."""
        stamps = self.stamps()
        if stamps == self._loaded:
            return None
        try:
            contexts, about = load(self.config)
        except TlsFileError as error:
            if stamps != self._refused:
                self._refused = stamps
                # The option, path and OpenSSL's reason: never what a file holds.
                log.warning("tls files not reloaded", error=str(error),
                            kept="the certificate and CA loaded before",
                            retry_s=self.config.limits.tls_files_check_interval_s)
            return None
        self.contexts, self._loaded, self._refused = contexts, stamps, None
        log.info("tls files reloaded", files=[str(path) for path in self._paths],
                 **about)
        return contexts


def _certificate(path: Path | None) -> dict[str, str]:
    """The serial number and expiry of the certificate ``path`` begins with, for the log
    line that says it is in use (nothing if it cannot be read as one)."""
    if path is None:
        return {}
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return {"certificate_serial": format(cert.serial_number, "x"),
            "certificate_expires": cert.not_valid_after_utc.isoformat()}


async def watch(files: TlsFiles, use: Callable[[Contexts], None]) -> None:
    """Look at ``files`` every ``tls_files_check_interval_s`` until cancelled, and give
    ``use`` the new contexts each time they changed. The files are read on a thread: a
    file on a slow mount holds up no request."""
    interval_s = files.config.limits.tls_files_check_interval_s
    failed: set[str] = set()  # the kinds of error logged already
    while True:
        await asyncio.sleep(interval_s)
        try:
            contexts = await asyncio.to_thread(files.look)
            if contexts is not None:
                use(contexts)
            failed.clear()  # a kind that comes back after a good look is said again
        except Exception as error:  # logged, and the next look may succeed
            files.unload()  # loaded but not in use: loaded and given again next time
            kind = type(error).__name__
            if kind not in failed:
                failed.add(kind)
                # The kind and message only: no traceback, whose locals could hold a file.
                log.error("tls files look failed", error_type=kind, error=str(error),
                          kept="the contexts in use", retry_s=interval_s)
