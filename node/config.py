"""The configuration root: every setting of a node and of its clients, its default and
the trade-off behind the default.

``Config`` is everything ``clawsync serve`` needs, and ``Config.check`` refuses what
could not run or would expose the API; its parts are ``node.limits.Limits`` (the client
API and the store), ``sync.peer.config.SyncConfig`` (peer links) and
``sync.repo.config.RepoConfig`` (Automerge clients). ``Settings`` is the client
commands' (with ``node.limits.ClientLimits``). The command line (``clawsync serve
--help``), environment variables (``CLAWSYNC_<NAME>``) and the ``--config`` TOML file
fill the same ``Config``: its top-level keys are the options, its ``[limits]``,
``[sync]`` and ``[automerge_limits]`` tables the dataclasses (``node.limits``). Nothing
else reads the environment. The checks of single values (tokens, addresses) that the
client commands share are in ``node.checks`` and ``crdt.addresses``.

Bounds of the formats and protocols (event size, nesting, batch sizes between nodes)
are not settings: every node must agree on them, so they are constants of the modules
that enforce them, listed in the README beside these.
"""

from __future__ import annotations

import json
import re
import socket
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

from crdt.addresses import normal_address, unshown_refusal
from crdt.device import DEVICE_NAME_BYTES_MAX, check_device_name, stored_device_name
from crdt.errors import InvalidInput, Picklable
from crdt.storage.backends import backend_of
from node.checks import (
    HIDDEN,
    api_path_base,
    check_token,
    dial_problem,
    is_loopback,
    not_a_folder,
)
from node.limits import ClientLimits, Limits, check_order
from sync.peer.config import SyncConfig
from sync.repo.config import RepoConfig
from sync.retention import Rule

#: An address with a scheme, maybe mistyped ("ftp://x", "http:/h", "http//h"): the
#: refusal of one that is not http(s):// suggests no "http://" before it.
_SCHEME_LIKE = re.compile(r".*://|[a-z][a-z0-9+.-]*:[/\\]|https?[/\\]", re.IGNORECASE)
#: Where the event log lives unless ``--data-dir`` says otherwise: a folder beside you.
DATA_DIR_DEFAULT = Path("clawsync-data")
#: Loopback only by default: the API is open without a token only to this machine.
HOST_DEFAULT = "127.0.0.1"
PORT_DEFAULT = 7878
#: Where client commands look for a node unless ``--node``/``CLAWSYNC_NODE`` says otherwise:
#: the address ``clawsync serve`` listens on by default.
NODE_DEFAULT = f"http://{HOST_DEFAULT}:{PORT_DEFAULT}"


class TokenNeeded(ValueError):
    """``Config.check``'s refusal of settings that need ``--token`` when none was given:
    ``serve`` then says if one was given empty, which means none."""


class AddressRefused(Picklable, ValueError):
    """``Config.check``'s refusal of an address it may not show (a user name or
    password, a query, a fragment): ``setting`` (``peers``, ``advertise_url``) lets
    ``serve`` say where it came from (a flag, the environment, the config file)."""

    def __init__(self, message: str, setting: str) -> None:
        super().__init__(message)
        self.setting = setting


#: The levels ``--log-level`` takes (``node.logs.configure`` too): no ``critical``, as
#: the node logs problems at ``error``, and a level above them all would hide them.
LOG_LEVELS = ("debug", "info", "warning", "error")


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
    #: Least severe level written, one of ``LOG_LEVELS``.
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

    def __post_init__(self) -> None:
        # Schemes are case-insensitive: "HTTP://h" is kept, shown, told to peers and
        # dialed as "http://h", so that one node is not two addresses in a peer list.
        object.__setattr__(self, "peers", tuple(dict.fromkeys(
            normal_address(url) if isinstance(url, str) else url for url in self.peers)))
        if isinstance(self.advertise_url, str):
            object.__setattr__(self, "advertise_url", normal_address(self.advertise_url))

    def check(self) -> Config:
        """Refuse settings that would expose an unprotected API."""
        if self.token is None and not is_loopback(self.host):
            raise TokenNeeded(
                f"listening on {self.host} exposes the API beyond this machine: "
                "set --token (or CLAWSYNC_TOKEN)")
        if self.token is not None:
            check_token(self.token)
        if self.cluster_secret is not None:
            check_token(self.cluster_secret, "the cluster secret")
        if self.automerge.tokens and self.token is None:
            # Without --token every local process may write every session through /v1
            # (and open every document): the tokens' limits would restrict nothing.
            raise TokenNeeded(
                "--automerge-tokens needs --token (or CLAWSYNC_TOKEN): without it any "
                "local client may read and write every session, so the Automerge tokens' "
                "session and read-only limits would protect nothing")
        try:
            # Leniently: this device's name is in its own membership records already,
            # written when the characters a new name may not hold were taken
            # (``node.server.command`` warns of them at start).
            stored_device_name(self.name)
        except InvalidInput as error:
            raise ValueError(f"--{error}") from None
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is not between 0 and 65535")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("--tls-cert and --tls-key go together")
        if self.tls_ca is not None and self.tls_cert is None:
            raise ValueError("--tls-ca needs --tls-cert and --tls-key (this node's own)")
        self._check_limits()
        # Else the data folder (and its key) would be made first, or in part, and the
        # store's open then fail on "File exists" or "Not a directory" (exit 1).
        if (refusal := not_a_folder(self.data_dir)) is not None:
            raise ValueError(f"--data-dir {refusal}: give a folder for the node's data "
                             "(made if missing)")
        if self.storage is not None and backend_of(self.storage) is None and (
                refusal := not_a_folder(Path(self.storage))) is not None:
            raise ValueError(f"--storage {refusal}: give a folder for the event log (made "
                             "if missing), or memory:")
        # A peer URL refused unshown is named by its place among them, the only way to
        # tell which one (its host is not shown either: in "http://u:1?w@h" it is "u",
        # the user name).
        count = len(self.peers)
        named = [("peer URL" if count == 1 else f"peer URL {place} of {count}", "peers", url)
                 for place, url in enumerate(self.peers, 1)]
        if self.advertise_url is not None:
            named.append(("--advertise-url", "advertise_url", self.advertise_url))
        for what, setting, url in named:
            # First: the errors below show the URL, and a password must not be shown.
            unshown = unshown_refusal(url)
            if unshown is not None:  # not shown: a password, or a token in a query
                raise AddressRefused(
                    f"{what} {unshown.why}, which the node would show and log: peers prove "
                    "themselves with device keys, --cluster-secret or --tls-ca"
                    if unshown.password else
                    f"{what} {unshown.why}: give the node's address alone", setting)
            if not url.startswith(("http://", "https://")):
                # A suggestion for an address without a scheme only: not "http://ftp://x",
                # nor "http://http:/h" for a mistyped one.
                guess = "" if _SCHEME_LIKE.match(url) else f" ('http://{url}'?)"
                raise ValueError(f"{what} {url!r} must start with http:// or https://{guess}")
            # A host name no lookup takes (``host_name_problem``) too: the URL parser
            # takes it, and the lookup fails at every retry.
            problem = dial_problem(url)
            if problem is not None:  # dialed, it would fail at every retry
                # CLAWSYNC_PEERS splits on spaces: a comma-separated list is one URL,
                # whose port then reads "1,http:".
                several = (": separate several peer URLs with spaces, not commas"
                           if setting == "peers" and "," in url else "")
                raise ValueError(f"{what} {url!r} {problem}{several}")
            base = api_path_base(url)
            if base is not None:  # dialed, it would be refused "Not Found" for good
                raise ValueError(f"{what} {url!r} names an API path; give the node's own "
                                 f"address, {base!r}")
        return self

    def _check_limits(self) -> None:
        """Limits that only make sense together (the file's tables were checked as they
        were read, naming their keys as written: ``node.limits.limits_from``). ``[sync]``'s
        are checked by ``SyncConfig`` itself, which cannot be made out of order."""
        check_order(self.limits, "limits")
        check_order(self.automerge.limits, "automerge_limits")

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


def host_name() -> str:
    """This machine's host name as the default name of its device (``default_name``)."""
    return default_name(socket.gethostname())


#: The default device name when the host name makes none (``default_name``).
NAME_FALLBACK = "clawsync"


def default_name(host: str) -> str:
    """The default name of a device on the host ``host``: one a new name may be
    (``check_device_name``), since it is not chosen, yet this device's own record names
    it and a member is told to add it under it. Lenient (``stored_device_name``), a
    host name holding a control character or bytes that are not UTF-8 would stop the
    node starting (``Config.check``), and one holding a character that hides text would
    be warned of at every start. So: the whole host name, else its first label (the
    whole is too long), cut to the longest name, else ``NAME_FALLBACK``.

    >>> default_name("laptop"), default_name("laptop." + "x" * 64)
    ('laptop', 'laptop')
    >>> default_name("lab\\x07.lan"), default_name("")
    ('clawsync', 'clawsync')
    """
    label = host.split(".", 1)[0]
    while len(label.encode("utf-8", "surrogatepass")) > DEVICE_NAME_BYTES_MAX:
        label = label[:-1]  # whole characters
    for name in (host, label):
        try:
            return check_device_name(name)
        except InvalidInput:
            continue
    return NAME_FALLBACK


@dataclass(frozen=True, slots=True)
class Settings:
    """The ``clawsync`` group's options (``--node``, ``--token``), handed to every command
    through click's context, and the client's limits."""

    node: str = NODE_DEFAULT
    token: str | None = None
    limits: ClientLimits = ClientLimits()
