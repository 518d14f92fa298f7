"""Node configuration: every setting, its default and the trade-off behind the default.

The CLI (``clawsync serve --help``) and environment variables (``CLAWSYNC_<NAME>``) fill
a ``Config``; nothing else reads the environment.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

#: Where the event log lives unless ``--data-dir`` says otherwise: a folder beside you.
DATA_DIR_DEFAULT = Path("clawsync-data")
#: Loopback only by default: the API is open without a token only to this machine.
HOST_DEFAULT = "127.0.0.1"
PORT_DEFAULT = 7878


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on everything a client can make the node hold or do. Each is a trade-off
    between what an honest client may need and what a hostile one can cost us."""

    #: Largest request body, counted as it streams in. Fits a batch of 1,000 typical
    #: events; larger imports are split into several requests.
    body_bytes_max: int = 4 * 1024 * 1024
    #: Most events in one append request. One request is one commit: bounding it bounds
    #: how long other writers wait behind it.
    batch_events_max: int = 1000
    #: Largest page of events or sessions a read returns (``limit=``).
    page_max: int = 1000
    #: Page size when ``limit=`` is not given.
    page_default: int = 100
    #: Most simultaneous client connections; more wait in the kernel's accept queue.
    connections_max: int = 1024
    #: Seconds to receive a request's headers and body before the connection is dropped,
    #: so slow-loris clients cannot hold connections forever.
    read_timeout_s: float = 30.0
    #: Longest a long-poll or live stream waits for news before answering empty (seconds).
    poll_wait_max_s: float = 60.0
    #: Most events grouped into one commit by the writer (group commit). Larger amortises
    #: the fsync better; smaller keeps each acknowledgement's latency low.
    commit_events_max: int = 4096
    #: Automerge documents kept in memory; the least recently used beyond this are dropped
    #: (they reload from their snapshot on demand).
    documents_in_memory_max: int = 64


@dataclass(frozen=True, slots=True)
class Config:
    """Everything ``clawsync serve`` needs to run a node."""

    data_dir: Path = DATA_DIR_DEFAULT
    host: str = HOST_DEFAULT
    port: int = PORT_DEFAULT
    #: Bearer token for the client API. Required when ``host`` is not loopback.
    token: str | None = None
    log_level: str = "info"
    #: "console" for people, "json" for log collectors.
    log_format: str = "console"
    limits: Limits = Limits()

    def check(self) -> Config:
        """Refuse settings that would expose an unprotected API."""
        if self.token is None and not is_loopback(self.host):
            raise ValueError(
                f"listening on {self.host} exposes the API beyond this machine: "
                "set --token (or CLAWSYNC_TOKEN)")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is not between 0 and 65535")
        return self


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
