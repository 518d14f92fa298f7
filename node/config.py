"""The configuration root: every setting of a node and of its clients, its default and
the trade-off behind the default.

``Config`` is everything ``clawsync serve`` needs; its parts are ``Limits`` (the client
API and the store), ``sync.peer.config.SyncConfig`` (peer links) and
``sync.repo.config.RepoConfig`` (Automerge clients). ``ClientLimits`` is the client side.
The command line (``clawsync serve --help``), environment variables (``CLAWSYNC_<NAME>``)
and the ``--config`` TOML file fill the same ``Config``: its top-level keys are the
options, its ``[limits]``, ``[sync]`` and ``[automerge_limits]`` tables the dataclasses
(``limits_from``). Nothing else reads the environment. The README's limits table is
checked against these dataclasses by ``tests/node/test_config.py``.

Bounds of the formats and protocols (event size, nesting, batch sizes between nodes)
are not settings: every node must agree on them, so they are constants of the modules
that enforce them, listed in the README beside these.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from crdt.device import check_device_name
from crdt.errors import InvalidInput
from crdt.storage.backends import backend_of
from sync.errors import SyncError
from sync.peer.config import SyncConfig
from sync.repo.config import RepoConfig, RepoLimits
from sync.retention import Rule

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

#: Where the event log lives unless ``--data-dir`` says otherwise: a folder beside you.
DATA_DIR_DEFAULT = Path("clawsync-data")
#: Loopback only by default: the API is open without a token only to this machine.
HOST_DEFAULT = "127.0.0.1"
PORT_DEFAULT = 7878
#: Where client commands look for a node unless ``--node``/``CLAWSYNC_NODE`` says otherwise:
#: the address ``clawsync serve`` listens on by default.
NODE_DEFAULT = f"http://{HOST_DEFAULT}:{PORT_DEFAULT}"
#: The first segment of each of the node's own routes: an address holding one is a page or
#: an API path copied whole, not a node's address (``api_path_base``).
API_ROOTS = ("v1", "automerge", "peer", "console", "healthz", "metrics")
#: What ``--print-config`` shows in place of a secret it hides. Refused as a token or a
#: secret (``check_token``): copied from a printout into a file, it would be a token
#: anyone can guess, one that even passes the check for a token beyond loopback.
HIDDEN = "(set)"


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
    #: Most simultaneous client connections; more wait in the kernel's accept queue (or
    #: take the place of the oldest connection that has not sent its first headers).
    connections_max: int = 1024
    #: Most simultaneous connections from one client address (an IPv6 client's /64).
    #: Beyond, a new one replaces the address's oldest connection that has not sent its
    #: first request's headers yet, or else is closed. A quarter of ``connections_max``, so
    #: that one address (every local client shares 127.0.0.1) cannot take every slot,
    #: while a machine's own apps and peers still have plenty.
    connections_per_address_max: int = 256
    #: Seconds a new connection may stay silent before its first byte; then it is closed.
    #: Honest clients send their request at once; an idle socket only holds a slot.
    first_byte_timeout_s: float = 5.0
    #: Seconds a new connection gets to complete its first request's headers (later
    #: requests on it are timed by ``read_timeout_s``).
    headers_timeout_s: float = 10.0
    #: Seconds to receive a request's headers and body before the connection is dropped,
    #: so slow-loris clients cannot hold connections forever.
    read_timeout_s: float = 30.0
    #: Longest a long-poll or live stream waits for news before answering empty (seconds).
    poll_wait_max_s: float = 60.0
    #: Most events grouped into one commit by the writer (group commit). Larger amortises
    #: the fsync better; smaller keeps each acknowledgement's latency low.
    commit_events_max: int = 4096
    #: Most events waiting for a commit; more are refused with 503 and Retry-After
    #: rather than held in memory while the disk falls behind.
    queue_events_max: int = 65_536
    #: Automerge documents kept in memory; the least recently used beyond this are dropped
    #: (they reload from their snapshot on demand).
    documents_in_memory_max: int = 64
    #: Threads serving reads. Reads are short SQLite queries: a few threads keep one slow
    #: read (a big projection) from holding up the others; more mostly contend for the GIL.
    read_threads: int = 4
    #: How far ahead of this node's wall clock a timestamp may be (milliseconds). Beyond
    #: it a client's event is refused (400 ``timestamp_ahead``) and a peer's waits until
    #: this clock has caught up; this node's own clock follows timestamps at most this far
    #: and, once it leads the wall clock by more (a fast clock put right), starts again
    #: from the wall clock. Larger tolerates worse-synchronised devices; smaller limits how
    #: long one fast clock's events win last-writer-wins fields over everyone's.
    clock_drift_max_ms: int = 60_000
    #: Seconds between keepalive comments on an idle live stream. Proxies and load
    #: balancers commonly drop connections idle for 30-60 s; 15 s stays well under that.
    sse_keepalive_s: float = 15.0
    #: Most live streams (server-sent events) open at once, and from one client address;
    #: beyond, 503 or 429 with ``Retry-After``. Streams last for hours, so without a cap
    #: they would take every connection slot.
    streams_max: int = 256
    streams_per_address_max: int = 32
    #: Seconds a live stream may wait for a reader who does not read (its send buffer
    #: full) before it is dropped; the reader resumes with ``Last-Event-ID``.
    stream_send_timeout_s: float = 30.0
    #: Encoded bytes after which a page of events ends (the next cursor continues), so a
    #: page of large events costs bounded memory: a page holds ``page_max`` events or
    #: this many bytes plus one event, whichever comes first.
    page_bytes_max: int = 1024 * 1024
    #: The same for one write of a live stream: what a stalled reader makes the node
    #: hold (this plus one event) until ``stream_send_timeout_s`` drops it. Smaller,
    #: since there may be ``streams_max`` of them.
    stream_write_bytes_max: int = 256 * 1024
    #: Seconds requests in flight get to finish when the node stops (long polls and
    #: streams end at once). Longer lets slow appends finish; shorter stops sooner.
    shutdown_timeout_s: float = 10.0
    #: Seconds a refused body that is still arriving is read and discarded, so that the
    #: client reads the 413/408 instead of a reset. A client can keep the connection busy
    #: that long, so it is short; ``read_timeout_s`` if that is shorter.
    linger_s: float = 1.0
    #: Requests refused by the HTTP parser itself (a malformed request line or header)
    #: that are logged, one short line each, per ``refused_log_interval_s``; the others
    #: are counted, and the count is logged with the next line. Anyone can send garbage
    #: at no cost: this bounds what it writes to the log.
    refused_log_lines_max: int = 10
    refused_log_interval_s: float = 60.0
    #: Bytes of log lines waiting for the writer thread that writes them to stderr
    #: (``node.log_stream.LogStream``); beyond, a line is dropped and counted (``would_block``;
    #: a longer line is queued when none waits). A stderr whose reader stalled keeps
    #: them all: this bounds what it costs. A healthy reader falls behind too, for a
    #: moment: a burst logged in one step of the event loop is queued before the writer
    #: thread gets its turn. 4 MiB holds about 20,000 console lines, 10,000 JSON ones.
    log_queued_bytes_max: int = 4 * 1024 * 1024
    #: Seconds a client gets to complete the TLS handshake before its connection closes.
    tls_handshake_timeout_s: float = 10.0
    #: Connections the kernel queues while every one of ``connections_max`` is taken.
    accept_backlog: int = 128
    #: Seconds to wait before accepting again after the process ran out of file
    #: descriptors (accepting at once would spin).
    accept_retry_s: float = 0.1


@dataclass(frozen=True, slots=True)
class ClientLimits:
    """The side of the HTTP client and the projection follower (``node.client``), used by
    the ``clawsync`` commands and by apps. Each a trade-off between waiting for a slow
    node and telling a person soon that something is wrong."""

    #: Seconds to open a connection. Loopback and LAN nodes answer in milliseconds; a
    #: longer wait only delays the "cannot reach the node" message.
    connect_timeout_s: float = 5.0
    #: Seconds for a whole ordinary request. Appends wait for a disk commit; 30 s leaves
    #: room for a slow disk without leaving a person staring at a hung command.
    request_timeout_s: float = 30.0
    #: Seconds of silence after which a live stream is taken as dead and reopened. The node
    #: sends a keepalive every ``sse_keepalive_s``, so this only fires when a connection
    #: died without closing.
    stream_idle_s: float = 90.0
    #: First and longest pause between reconnections of a live stream (doubling): finds
    #: a restarted node quickly without hammering one that is down.
    reconnect_delay_min_s: float = 0.2
    reconnect_delay_max_s: float = 5.0
    #: Events and bytes per request when ``clawsync append --file`` imports: within the
    #: node's default ``batch_events_max`` and ``body_bytes_max``, with room for JSON.
    import_batch_events_max: int = 1000
    import_batch_bytes_max: int = 3 * 1024 * 1024
    #: Seconds before the projection follower reconnects, doubled per failure up to the
    #: maximum.
    subscribe_retry_base_s: float = 0.5
    subscribe_retry_max_s: float = 30.0
    #: Largest frame the projection follower accepts: the node's default
    #: ``served_bytes_max`` and the frame around it.
    subscribe_frame_bytes_max: int = RepoLimits().served_bytes_max + 64 * 1024


#: Tables of a ``--config`` file that set limits, and what each fills.
LIMIT_TABLES: dict[str, type[DataclassInstance]] = {
    "limits": Limits, "automerge_limits": RepoLimits, "sync": SyncConfig}
_L = TypeVar("_L", bound="DataclassInstance")
#: Largest value a limit may be set to: beyond it, arithmetic with floats is inexact.
NUMBER_MAX = 2**53


#: Settings that count threads, processes or queued connections the node makes at start:
#: a huge value is no bound but a crash (``listen`` takes a C int) or a start that eats
#: the memory (a queue slot per worker). Far above any use on one machine.
COUNTS_MAX = {"accept_backlog": 65535, "read_threads": 256, "workers": 256}
#: Largest number of seconds a setting (a name ending in ``_s``, not a rate ``_per_s``)
#: may give: about 115 days, far above any use. Beyond some 9e9 s a timeout overflows
#: the C clocks that wait for it (``poll``, ``sleep``): a crash, not a bound.
SECONDS_MAX = 10_000_000


def _high(name: str) -> int:
    """The largest value setting ``name`` may take."""
    if name in COUNTS_MAX:
        return COUNTS_MAX[name]
    return SECONDS_MAX if name.endswith("_s") and not name.endswith("_per_s") else NUMBER_MAX


def limits_from(table: Mapping[str, Any], kind: type[_L], where: str) -> _L:
    """``kind``'s defaults with the values of a config file table; ``ValueError`` naming
    the table, the setting and what is wrong with it.

    >>> limits_from({"body-bytes-max": 1_000_000}, Limits, "limits").body_bytes_max
    1000000
    >>> limits_from({"page_max": 0}, Limits, "limits")
    Traceback (most recent call last):
    ValueError: [limits] page_max must be positive and at most 9007199254740992, not 0
    >>> limits_from({"page-max": 10, "page_max": 20}, Limits, "limits")
    Traceback (most recent call last):
    ValueError: [limits] 'page-max' and 'page_max' are two names of one setting, page_max: give one
    """
    defaults = kind()
    known = {f.name for f in fields(kind)}
    values: dict[str, Any] = {}
    keys: dict[str, str] = {}  # setting -> the table's key that gave it
    for raw_name, value in table.items():
        name = raw_name.replace("-", "_")
        if name in keys:  # TOML keeps page-max and page_max: which was meant is not known
            raise ValueError(f"[{where}] {keys[name]!r} and {raw_name!r} are two names of "
                             f"one setting, {name}: give one")
        keys[name] = raw_name
        if name not in known:
            raise ValueError(f"[{where}] has no setting {raw_name!r}; it has: "
                             f"{', '.join(sorted(known))}")
        whole = isinstance(getattr(defaults, name), int)
        if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
            raise ValueError(f"[{where}] {name} must be {'a whole number' if whole else 'a number'}"
                             f", not {value!r}")
        high = _high(name)
        if not 0 < value <= high:  # also refuses nan; inf is above
            raise ValueError(f"[{where}] {name} must be positive and at most {high}, "
                             f"not {value}")
        values[name] = value if whole else float(value)
    try:
        return replace(defaults, **values)
    except SyncError as error:  # a check of the dataclass itself (SyncConfig's)
        raise ValueError(f"[{where}] {error}") from None


@dataclass(frozen=True, slots=True)
class Config:
    """Everything ``clawsync serve`` needs to run a node."""

    data_dir: Path = DATA_DIR_DEFAULT
    #: This device's name for people (``clawsync device``, ``/v1/node``, the console).
    #: Default: the machine's host name, which is what people call it already.
    name: str = field(default_factory=lambda: host_name())
    #: Where the event log lives, when not in ``data_dir`` (diskcache): a storage URL of
    #: ``crdt.storage.backends`` such as ``memory:`` (nothing on disk; a throwaway node).
    storage: str | None = None
    host: str = HOST_DEFAULT
    port: int = PORT_DEFAULT
    #: Bearer token for the client API. Required when ``host`` is not loopback.
    token: str | None = None
    #: Peer URLs to replicate with (``--peer``, repeatable, and the config file).
    peers: tuple[str, ...] = ()
    #: Shared secret every node of a cluster holds. Optional: peers link by their device
    #: keys (members of the cluster, ``clawsync devices``); a peer with the secret links
    #: too, member or not (an older node, or a cluster moving to device keys), unless
    #: its device was removed.
    cluster_secret: str | None = None
    #: The URL other nodes should use to reach this one; told to peers so that a new
    #: device needs only one address. Default: none (this node only dials out).
    advertise_url: str | None = None
    #: Serve HTTPS with this certificate and key (PEM).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: CA (PEM) for peers: with it, a peer may authenticate with a client certificate
    #: signed by this CA instead of the cluster secret, and this node presents
    #: ``tls_cert`` when dialing peers and verifies them against it.
    tls_ca: Path | None = None
    #: Refuse peers' events of origins not bound to a device key (``sync.peer.signatures``)
    #: unless held already. None: on when the node has no cluster secret (every peer is
    #: then a device), off with one (nodes not upgraded yet write unsigned).
    require_signatures: bool | None = None
    #: Let peers that prove no device key (nodes of 0.2, with the cluster secret or a CA
    #: certificate) link once membership records exist here. Off: from the first
    #: ``devices add`` or ``remove`` on, such a peer is refused, since a removed device
    #: could otherwise link again by leaving out its key (``node.peers.admission``).
    keyless_peers: bool = False
    #: Peer links: timing, window, back-off, membership (``[sync]``; ``--pull-interval``
    #: and ``--members-interval`` set two of them).
    sync: SyncConfig = field(default_factory=SyncConfig)
    #: Automerge clients (the ``/automerge`` websocket): tokens beside ``token`` with the
    #: sessions each may open, and limits (``sync.repo.config.RepoConfig``).
    automerge: RepoConfig = field(default_factory=RepoConfig)
    #: Retention (``--retain-days PATTERN=DAYS``, repeatable; ``sync.retention``): forget
    #: sessions whose key matches a pattern once their last activity is older than that
    #: many days; the first matching rule applies. Default: none, keep everything. What
    #: retention forgets is gone on every node, also from devices that were offline.
    retain_days: tuple[Rule, ...] = ()
    log_level: str = "info"
    #: "console" for people, "json" for log collectors.
    log_format: str = "console"
    limits: Limits = Limits()

    def shown(self) -> dict[str, Any]:
        """The settings as JSON values, for people, under the names the ``--config`` file
        gives them, so that what is printed can be copied into a file: the Automerge
        limits as ``automerge_limits``, retention rules as ``PATTERN=DAYS``. Secrets and
        tokens are "(set)"; the Automerge tokens, read from a file, are left to the
        command, which knows its path.

        >>> Config(token="s3cret").shown()["token"]
        '(set)'
        >>> Config().shown()["require_signatures"], Config(cluster_secret="x" * 64).shown()[
        ...     "require_signatures"]
        (True, False)
        >>> Config(retain_days=(Rule("tg:*", 30.0), Rule("*", 0.5))).shown()["retain_days"]
        ['tg:*=30', '*=0.5']
        """
        hidden = {"token": self.token, "cluster_secret": self.cluster_secret}
        bare = replace(self, token=None, cluster_secret=None, retain_days=(),
                       automerge=replace(self.automerge, tokens={}))
        out: dict[str, Any] = {}
        for name, value in json.loads(json.dumps(asdict(bare), default=str)).items():
            if name == "automerge":  # the file's table; its tokens are another file's
                out["automerge_limits"] = value["limits"]
            else:
                out[name] = value
        out.update({name: HIDDEN for name, value in hidden.items() if value is not None})
        out["retain_days"] = [rule_text(rule) for rule in self.retain_days]
        # The value in effect, not "unset": its default depends on the cluster secret.
        # Its source then says "default", and a copy into a file leaves it out (README).
        out["require_signatures"] = self.signatures_required
        return out

    @property
    def log_location(self) -> str | Path:
        """Where the event log is opened: ``storage``, or else the data folder."""
        return self.storage if self.storage is not None else self.data_dir

    def check(self) -> Config:
        """Refuse settings that would expose an unprotected API."""
        if self.token is None and not is_loopback(self.host):
            raise ValueError(
                f"listening on {self.host} exposes the API beyond this machine: "
                "set --token (or CLAWSYNC_TOKEN)")
        if self.token is not None:
            check_token(self.token)
        if self.cluster_secret is not None:
            check_token(self.cluster_secret, "the cluster secret")
        if self.automerge.tokens and self.token is None:
            # Without --token every local process may write every session through /v1
            # (and open every document): the tokens' limits would restrict nothing.
            raise ValueError(
                "--automerge-tokens needs --token (or CLAWSYNC_TOKEN): without it any "
                "local client may read and write every session, so the Automerge tokens' "
                "session and read-only limits would protect nothing")
        try:
            check_device_name(self.name)
        except InvalidInput as error:
            raise ValueError(f"--{error}") from None
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is not between 0 and 65535")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("--tls-cert and --tls-key go together")
        if self.tls_ca is not None and self.tls_cert is None:
            raise ValueError("--tls-ca needs --tls-cert and --tls-key (this node's own)")
        self._check_limits()
        if self.storage is not None:
            backend_of(self.storage)  # a URL of no known backend: say so now
        named = [("peer URL", url) for url in self.peers]
        if self.advertise_url is not None:
            named.append(("--advertise-url", self.advertise_url))
        for what, url in named:
            if not url.startswith(("http://", "https://")):
                # A suggestion for an address without a scheme only: not "http://ftp://x".
                guess = "" if "://" in url else f" ('http://{url}'?)"
                raise ValueError(f"{what} {url!r} must start with http:// or https://{guess}")
            if holds_credentials(url):
                raise ValueError(f"{what} holds a user name or password, which the node "
                                 "would show and log: peers prove themselves with device "
                                 "keys, --cluster-secret or --tls-ca")
            base = api_path_base(url)
            if base is not None:  # dialed, it would be refused "Not Found" for good
                raise ValueError(f"{what} {url!r} names an API path; give the node's own "
                                 f"address, {base!r}")
        return self

    def _check_limits(self) -> None:
        """Limits that only make sense together."""
        limits, repo = self.limits, self.automerge.limits
        for low, high in ((("limits", "page_default", limits.page_default),
                           ("limits", "page_max", limits.page_max)),
                          (("limits", "batch_events_max", limits.batch_events_max),
                           ("limits", "queue_events_max", limits.queue_events_max)),
                          (("limits", "first_byte_timeout_s", limits.first_byte_timeout_s),
                           ("limits", "headers_timeout_s", limits.headers_timeout_s)),
                          (("automerge_limits", "served_bytes_max", repo.served_bytes_max),
                           ("automerge_limits", "outbox_bytes_max", repo.outbox_bytes_max))):
            if low[2] > high[2]:
                raise ValueError(f"[{low[0]}] {low[1]} ({low[2]}) is above [{high[0]}] "
                                 f"{high[1]} ({high[2]})")

    @property
    def signatures_required(self) -> bool:
        """``require_signatures``, its default applied."""
        if self.require_signatures is not None:
            return self.require_signatures
        return self.cluster_secret is None


def rule_text(rule: Rule) -> str:
    """A retention rule as ``--retain-days`` and the file give it, every digit of its days
    kept (``repr``), so that it reads back the same.

    >>> rule_text(Rule("tg:*", 30.0)), rule_text(Rule("x", 1 / 3))
    ('tg:*=30', 'x=0.3333333333333333')
    """
    days = float(rule.days)
    return f"{rule.pattern}={int(days) if days.is_integer() else repr(days)}"


def software_version() -> str:
    """This software's version, as installed (``0.3.0``); a source tree without an
    install says so."""
    try:
        return metadata.version("clawsync")
    except metadata.PackageNotFoundError:
        return "(source tree)"


def api_path_base(url: str) -> str | None:
    """The node's own address in ``url`` when its path names one of the node's routes
    (an API path or a page, copied whole), else None. Any other path is kept: a reverse
    proxy's prefix.

    >>> api_path_base("http://h:7878/v1/sessions"), api_path_base("https://sync.example/cs/")
    ('http://h:7878', None)
    """
    scheme, netloc, path, _query, _fragment = urlsplit(url)
    parts = path.split("/")
    at = next((at for at, part in enumerate(parts) if part in API_ROOTS), None)
    return None if at is None else f"{scheme}://{netloc}{'/'.join(parts[:at])}"


def check_token(token: str, what: str = "the token") -> None:
    """``ValueError`` for a token (or ``what`` else a header carries: the cluster secret)
    that cannot protect anything: an empty one, which a request without the header
    matches, or one no header could carry: one with a control character (a line ending
    kept from a file: ``$(cat token.txt)`` of a file with CRLF line ends); or one that
    no request could match: one that begins or ends with white space, which a node
    takes off the token a request gives (``node.http.auth.bearer``), as HTTP takes it off
    a header's value. ``HIDDEN``, --print-config's placeholder, is refused too: it is
    no secret.

    >>> check_token("")
    Traceback (most recent call last):
    ...
    ValueError: the token is empty: a request without one would match it
    >>> check_token(" s3cret")
    Traceback (most recent call last):
    ...
    ValueError: the token begins or ends with white space, which HTTP takes off a header: ...
    """
    if not token:
        raise ValueError(f"{what} is empty: a request without one would match it")
    if token == HIDDEN:
        raise ValueError(f"{what} is {HIDDEN!r}, the placeholder --print-config shows for "
                         "a secret it hides, not a secret: give the real one")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in token):
        raise ValueError(f"{what} holds a control character (a line ending, from a file "
                         "with CRLF line ends?), which no header can carry")
    if token != token.strip():
        raise ValueError(f"{what} begins or ends with white space, which HTTP takes off "
                         "a header: no request could match it")


def holds_credentials(url: str) -> bool:
    """Whether ``url`` holds a user name or password (``http://user:pw@host``).

    >>> holds_credentials("http://u:pw@h:7878"), holds_credentials("http://h:7878")
    (True, False)
    """
    parts = urlsplit(url)
    return parts.username is not None or parts.password is not None


def host_name() -> str:
    """This machine's host name, the default name of its device (cut to the first dot
    when the whole is too long to be a name)."""
    name = socket.gethostname() or "clawsync"
    try:
        return check_device_name(name)
    except InvalidInput:
        return name.split(".", 1)[0][:32] or "clawsync"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Settings:
    """The ``clawsync`` group's options (``--node``, ``--token``), handed to every command
    through click's context, and the client's limits."""

    node: str = NODE_DEFAULT
    token: str | None = None
    limits: ClientLimits = ClientLimits()
