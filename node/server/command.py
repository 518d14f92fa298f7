"""``clawsync serve``: run a node. Every option can also come from the environment
(``CLAWSYNC_<NAME>``) or from a TOML file given with ``--config``; the command line wins
over the environment, which wins over the file."""

from __future__ import annotations

import json
import math
import signal
from dataclasses import fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import click

from crdt.addresses import listening_only
from crdt.device import hiding_characters, name_key, stored_device_name
from crdt.errors import InvalidInput
from node import checks
from node import config as node_config
from node import limits as node_limits
from node.empty_variables import (
    empty_overrides,
    param_named,
    refuse_empty_variables,
    set_empty,
)
from node.interrupt import die_of, end_now
from node.server.config_file import (
    CONFIG_FILE,
    FILE_KEYS,
    FILE_TABLE_NAMES,
    FILE_TABLES,
    SYNC_FIELDS,
    load_config,
)
from node.whole_numbers import WholeRange
from sync.peer.config import SyncConfig
from sync.repo.config import RepoConfig
from sync.retention import parse_rules

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


class _Seconds(click.FloatRange):
    """``FloatRange`` that refuses nan, which compares false with both bounds."""

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        seconds = super().convert(value, param, ctx)
        if math.isnan(seconds):
            self.fail("nan is not a number of seconds", param, ctx)
        return seconds


_PATH = click.Path(dir_okay=False, exists=True, path_type=Path)
#: ``ctx.meta`` key of the ``--automerge-tokens`` file's path (``--print-config``).
_TOKENS_FILE = "clawsync.automerge_tokens"


def _load_tokens(ctx: click.Context, _param: click.Parameter,
                 path: Path | None) -> RepoConfig:
    """The Automerge clients' settings, with the tokens of ``path`` if given."""
    if path is None:
        return RepoConfig()
    ctx.meta[_TOKENS_FILE] = path
    from node.automerge.hub import load_tokens  # the server's module: only when serving

    try:
        return RepoConfig(tokens=MappingProxyType(load_tokens(path)))
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def _source_hint(ctx: click.Context, option: click.Option) -> str:
    """How an error names ``option``: by where its value came from. click names its
    environment variable beside it whatever the source (``'--config' (env var:
    'CLAWSYNC_CONFIG')`` for a --config typed on the command line), which sends a person
    to look for a variable that may not be set."""
    source = ctx.get_parameter_source(option.name) if option.name else None
    flag = option.opts[0]
    sources = click.core.ParameterSource
    if source is sources.ENVIRONMENT and isinstance(option.envvar, str):
        return f"{option.envvar} (the environment's {flag})"
    file = ctx.meta.get(CONFIG_FILE)
    if source is sources.DEFAULT_MAP and file is not None and option.name:
        key = ctx.meta.get(FILE_KEYS, {}).get(option.name, option.name)
        return f"{key} in {file} (the file's {flag})"
    return f"'{flag}'"


def _option(ctx: click.Context, name: str) -> click.Option:
    """The option of ``ctx``'s command that sets ``name``."""
    found = param_named(ctx, name)
    assert isinstance(found, click.Option)
    return found


class _Serve(click.Command):
    """``serve``, whose errors about an option's value name where the value came from
    (``_source_hint``): the command line, the environment or the ``--config`` file."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.BadParameter as error:
            # An error that names its option itself (a token's, or one of the file's
            # checks) is left as it is.
            if error.param_hint is None and isinstance(error.param, click.Option):
                error.param_hint = _source_hint(ctx, error.param)
            raise


@click.command(cls=_Serve)
@click.option("--config", type=_PATH, is_eager=True, expose_value=False,
              callback=load_config, envvar="CLAWSYNC_CONFIG", show_envvar=True,
              metavar="FILE",
              help="TOML file with any of these settings, e.g. `peers = [\"http://hub:7878\"]` "
                   "and `cluster_secret = \"...\"`, and the limits of the README in tables "
                   "[limits], [sync] and [automerge_limits], e.g. `body_bytes_max = 8388608`.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              default=node_config.DATA_DIR_DEFAULT, envvar="CLAWSYNC_DATA_DIR",
              show_envvar=True, metavar="DIR",
              help="Folder of the event log, created if missing. Default: ./clawsync-data "
                   "(beside you). Give a fixed path for a node that should keep its history "
                   "whichever folder it is started from. One node at a time: a second one "
                   "on the same folder is refused.")
@click.option("--name", envvar="CLAWSYNC_NAME", show_envvar=True, metavar="NAME",
              default=lambda: node_config.host_name(),
              help="This device's name for people, shown beside its device id (clawsync "
                   "device, the console). Default: the host name.")
@click.option("--storage", envvar="CLAWSYNC_STORAGE", show_envvar=True, metavar="DIR|URL",
              help="Keep the event log elsewhere than in --data-dir: in another folder (a "
                   "faster disk, say), or memory: in memory only (gone when the node "
                   "stops; for trials and tests). Default: diskcache in --data-dir.")
@click.option("--host", default=node_config.HOST_DEFAULT, envvar="CLAWSYNC_HOST",
              show_envvar=True, metavar="ADDRESS",
              help="Address to listen on. Default: 127.0.0.1, reachable only from this "
                   "machine, where a token is optional. 0.0.0.0 (or a LAN address) lets "
                   "other devices sync but then requires --token.")
@click.option("--port", type=WholeRange(0, 65535), default=node_config.PORT_DEFAULT,
              envvar="CLAWSYNC_PORT", show_envvar=True,
              help=f"TCP port of the API. Default: {node_config.PORT_DEFAULT}, where the "
                   "client commands look unless --node says otherwise.")
@click.option("--token", envvar="CLAWSYNC_TOKEN", show_envvar=True, metavar="TOKEN",
              help="Bearer token every client must send. Default: none, which is allowed "
                   "only on a loopback address (as is --token \"\", none whatever the "
                   "environment or the file hold, and CLAWSYNC_TOKEN=\"\", none whatever "
                   "the file holds). Anyone holding it can read and append every "
                   "session: use a long random string. Set it in the environment or the "
                   "config file: other users of the machine see arguments (ps).")
@click.option("--peer", "peers", multiple=True, envvar="CLAWSYNC_PEERS", show_envvar=True,
              metavar="URL",
              help="A node to replicate with (repeatable; the env var takes URLs separated "
                   "by spaces). One is enough: the others are learned from it. A new device "
                   "waits there until a member runs `clawsync devices add` with its id.")
@click.option("--cluster-secret", envvar="CLAWSYNC_CLUSTER_SECRET", show_envvar=True,
              metavar="SECRET",
              help="Secret shared by every node of the cluster (optional: devices that are "
                   "members link by their keys). A peer presenting it links, member or not: "
                   "for nodes without keys, and clusters moving to device keys. Empty means "
                   "none, as for --token. Set it in the environment or the config file: "
                   "other users of the machine see arguments (ps).")
@click.option("--advertise-url", envvar="CLAWSYNC_ADVERTISE_URL", show_envvar=True,
              metavar="URL",
              help="How other nodes reach this one (told to peers, so they can pass it on). "
                   "Default: none, for a device that only dials out (a phone).")
@click.option("--tls-cert", type=_PATH, envvar="CLAWSYNC_TLS_CERT", show_envvar=True,
              metavar="PEM", help="Serve HTTPS with this certificate (with --tls-key).")
@click.option("--tls-key", type=_PATH, envvar="CLAWSYNC_TLS_KEY", show_envvar=True,
              metavar="PEM", help="Private key of --tls-cert.")
@click.option("--tls-ca", type=_PATH, envvar="CLAWSYNC_TLS_CA", show_envvar=True,
              metavar="PEM",
              help="CA of the cluster: peers may authenticate with a client certificate it "
                   "signed (mutual TLS), and peers dialed are verified against it.")
@click.option("--require-signatures/--no-require-signatures", default=None,
              envvar="CLAWSYNC_REQUIRE_SIGNATURES", show_envvar=True,
              help="Refuse peers' events of origins not bound to a device key (unsigned: "
                   "written before events were signed, or by nodes not yet upgraded) unless "
                   "this node holds that origin already. Default: on without "
                   "--cluster-secret, off with it.")
@click.option("--keyless-peers/--no-keyless-peers", default=False,
              envvar="CLAWSYNC_KEYLESS_PEERS", show_envvar=True,
              help="Let peers that prove no device key (nodes of 0.2, with the cluster "
                   "secret or a CA certificate) link after devices were added or removed "
                   "here. Default: off: from the first `devices add` or `devices remove` "
                   "on, such a peer is refused (a removed device could link again by "
                   "leaving out its key); upgrade those nodes instead.")
@click.option("--pull-interval", type=_Seconds(0.05, 3600), default=5.0,
              envvar="CLAWSYNC_PULL_INTERVAL", show_envvar=True, metavar="SECONDS",
              help="Seconds between repair rounds with each peer (new events are pushed at "
                   "once regardless). Default: 5. Shorter heals lost messages sooner; each "
                   "round costs a few bytes per origin.")
@click.option("--automerge-tokens", type=_PATH, callback=_load_tokens,
              envvar="CLAWSYNC_AUTOMERGE_TOKENS", show_envvar=True, metavar="JSON",
              help="JSON file of tokens for Automerge apps (ws://NODE/automerge?token=...), "
                   "each limited to some sessions and optionally read-only: "
                   '{"<token>": {"sessions": ["tg:*"], "read_only": true}}. Needs --token '
                   "(which opens every session): without it, any local client could. "
                   "Default: none.")
@click.option("--members-interval", type=_Seconds(0.1, 86400),
              default=30.0, envvar="CLAWSYNC_MEMBERS_INTERVAL", show_envvar=True,
              metavar="SECONDS",
              help="Seconds between rounds that dial member devices not linked yet, "
                   "close links of removed ones, and (with a cluster secret or CA) ask "
                   "peers which other nodes they know. A membership change starts a "
                   "round at once. Default: 30. Shorter finds new nodes sooner at one "
                   "small request per peer and round.")
@click.option("--retain-days", "retain_days", multiple=True, envvar="CLAWSYNC_RETAIN_DAYS",
              show_envvar=True, metavar="PATTERN=DAYS",
              help="Forget sessions whose key matches PATTERN (* for any text) once their "
                   "last activity is more than DAYS days old, on every node (repeatable; the "
                   "first matching pattern applies; checked hourly). Default: none, keep "
                   "everything. See README, Retention.")
@click.option("--log-level", type=click.Choice(node_config.LOG_LEVELS),
              default="info", envvar="CLAWSYNC_LOG_LEVEL", show_envvar=True,
              help="Least severe log level written. Default: info: start, stop and "
                   "problems. debug adds detail for diagnosis at the cost of volume.")
@click.option("--log-format", type=click.Choice(["console", "json"]), default="console",
              envvar="CLAWSYNC_LOG_FORMAT", show_envvar=True,
              help="Default: console, coloured lines for people. json: one object per "
                   "line for log collectors.")
@click.option("--print-config", is_flag=True,
              help="Print the settings this command would run with (from the options, the "
                   "environment and --config, defaults filled in; secrets hidden) as JSON "
                   "under the --config file's names, with where each came from (sources: "
                   "flag, env, file or default; for a table, per key of it), and exit.")
@click.pass_context
def serve(ctx: click.Context, /, **options: Any) -> None:
    """Run a node: keep the event log in --data-dir DIR and serve the HTTP API until stopped
    (SIGTERM, or SIGHUP when its terminal closes: exit 0; Ctrl-C: dies by SIGINT, a shell
    shows 130; started with SIGHUP ignored, as by nohup, it keeps running).

    \b
    Examples:
      clawsync serve
      clawsync serve --data-dir /var/lib/clawsync --port 8000
      CLAWSYNC_TOKEN=$(openssl rand -hex 32) clawsync serve --host 0.0.0.0
      clawsync serve --peer http://home:7878  # clawsync status: what to run there
    """
    refuse_empty_variables(ctx)
    show = options.pop("print_config")
    token, token_from = _token(ctx, options.pop("token"))
    options["cluster_secret"], secret_from = _cluster_secret(ctx, options["cluster_secret"])
    _check_named(ctx, "name", options["name"])
    _check_named(ctx, "cluster_secret", options["cluster_secret"])
    automerge = options.pop("automerge_tokens")
    options["automerge"] = replace(automerge, limits=ctx.meta.get("automerge_limits",
                                                                  automerge.limits))
    options["limits"] = ctx.meta.get("limits", node_limits.Limits())
    options["peers"] = tuple(url for value in options["peers"] for url in value.split())
    try:
        options["retain_days"] = parse_rules(options["retain_days"])
    except ValueError as error:  # a rule's syntax: say whose rule it is
        hint = _source_hint(ctx, _option(ctx, "retain_days"))
        raise click.UsageError(f"{error}; it came from {hint}") from None
    try:
        options["sync"] = _sync_config(ctx, options.pop("pull_interval"),
                                       options.pop("members_interval"))
        config = node_config.Config(token=token, **options).check()
    except ValueError as error:
        # A setting's own check: it may have come from the file (its checks against the
        # others, and its values' syntax, run only here).
        file = ctx.meta.get(CONFIG_FILE)
        said = str(error)
        if isinstance(error, node_config.TokenNeeded):
            said += _empty_token_note(token, token_from, file)
        if isinstance(error, node_config.AddressRefused):  # the address is not shown
            hint = _source_hint(ctx, _option(ctx, error.setting))
            raise click.UsageError(f"{said}; it came from {hint}") from None
        raise click.UsageError(said if file is None else
                               f"{said} (settings from the command line, the environment "
                               f"and {file})") from None
    decided = {"token": token_from, "cluster_secret": secret_from}
    if show:
        sources = _sources(ctx, decided)
        tokens = ctx.meta.get(_TOKENS_FILE)
        shown = {**config.shown(), "automerge_tokens": None if tokens is None else str(tokens)}
        click.echo(json.dumps({**shown, "sources": sources}, indent=2))
        return
    warnings = [("empty variable overrides the config file", fields)
                for fields in empty_overrides(ctx, config, decided, ctx.meta.get(CONFIG_FILE))]
    warnings += [("limits out of order", {"limits": said}) for said in _pointless(ctx, config)]
    warnings += _name_warnings(config.name)
    warnings += _listening_warnings(config)
    # Imported here so the client commands start fast and never load the server.
    from node.server.run import run
    from node.server.start_errors import StartError

    try:
        stopped_by = run(config, warnings=warnings)
    except StartError as error:
        raise click.ClickException(str(error)) from None
    # Stopped gracefully either way. SIGTERM is a service manager's stop, SIGHUP a
    # terminal that closed or a HUP sent to it (no reload: nothing failed): 0. Ctrl-C
    # (SIGINT) ends serve as it ends every command: by SIGINT, so that a script running
    # it stops too (README, Exit codes). Either way without Python's teardown: the node
    # has written all it must.
    if stopped_by == signal.SIGINT:
        die_of(signal.SIGINT)
    end_now(0)


#: ``--print-config``'s word for where a setting came from.
_SOURCES = {click.core.ParameterSource.COMMANDLINE: "flag",
            click.core.ParameterSource.ENVIRONMENT: "env",
            click.core.ParameterSource.DEFAULT_MAP: "file",
            click.core.ParameterSource.DEFAULT: "default"}


def _cluster_secret(ctx: click.Context, given: str | None) -> tuple[str | None, str]:
    """The cluster secret and where it came from (as ``_SOURCES`` says it). Empty means
    none, as for the token: typed (``--cluster-secret ""``), in the file, or
    CLAWSYNC_CLUSTER_SECRET set empty, which wins over the file's as any variable does."""
    if set_empty(ctx, "cluster_secret"):
        return None, "env"
    source = ctx.get_parameter_source("cluster_secret") or click.core.ParameterSource.DEFAULT
    return given or None, _SOURCES.get(source, "default")


def _name_warnings(name: str) -> list[tuple[str, dict[str, str]]]:
    """A warning if this device's name holds characters a new name may not, or shows as
    nothing (only braille blanks, or only joiners: a name given before either was
    refused): it starts all the same, as its own records hold the name, and the warning
    says what is wrong with it, not the name itself."""
    rename = "clawsync devices add <this device id> --name <a new name>, and --name the same"
    hidden = hiding_characters(name)
    if hidden:
        return [("device name holds characters a new name may not",
                 {"characters": hidden, "rename": rename})]
    if not name_key(name):
        return [("device name shows as nothing", {"rename": rename})]
    return []


def _listening_warnings(config: node_config.Config) -> list[tuple[str, dict[str, str]]]:
    """A warning for each ``--peer`` or ``--advertise-url`` of ``0.0.0.0`` or ``::``: an
    address a node listens on, which names no machine to dial (another machine dialing it
    dials itself; a member told it shows a waiting device ``--node http://0.0.0.0:...``).
    Warned of, not refused: dialed on this machine it reaches a node listening here, and
    a node that started so before must start still."""
    dialed = [("--peer", url, checks.give_instead("the peer machine's"))
              for url in config.peers]
    if config.advertise_url is not None:
        dialed.append(("--advertise-url", config.advertise_url,
                       checks.give_instead("this machine's")))
    return [(checks.LISTENING_ONLY, {"setting": setting, "url": url, "give": give})
            for setting, url, give in dialed if listening_only(url)]


def _check_named(ctx: click.Context, name: str, value: str | None) -> None:
    """The check ``Config.check`` makes of the device name or the cluster secret, made
    first so that its error names where the value came from (``_source_hint``:
    ``CLAWSYNC_NAME (the environment's --name)``, the file's key), as a bad token's does.
    Neither error shows the value: a secret must never be, and a name's shows only what
    is wrong with it."""
    if value is None:
        return
    try:
        if name == "name":
            stored_device_name(value)  # as ``Config.check``: leniently
        else:
            checks.check_token(value, "the cluster secret")
    except InvalidInput as error:
        said = error.reason
    except ValueError as error:
        said = str(error)
    else:
        return
    raise click.BadParameter(said, ctx=ctx, param_hint=_source_hint(ctx, _option(ctx, name)))


def _empty_token_note(token: str | None, source: str, file: Path | None) -> str:
    """What to add to a check's refusal for want of a token (``TokenNeeded``) when the
    token was given empty, which means none (``token = ""`` in the file, say): "set
    --token" alone would send a person to set what they believe they set.

    >>> _empty_token_note(None, "file", Path("c.toml"))
    '; the token given in c.toml is empty, which means none'
    """
    if token is not None or source == "default":
        return ""
    where = {"flag": "on the command line", "env": "in CLAWSYNC_TOKEN"}.get(source, f"in {file}")
    return f"; the token given {where} is empty, which means none"


def _token(ctx: click.Context, own: str | None) -> tuple[str | None, str]:
    """The token clients must give, and where it came from (as ``_SOURCES`` says it).
    The command line wins, before or after `serve`: `clawsync --token T serve` over
    CLAWSYNC_TOKEN and the file, which fill serve's own option otherwise; serve's own
    `--token` over the one before it. An empty one typed means no token, wherever it is
    typed and whatever the environment or the file hold; CLAWSYNC_TOKEN set empty means
    the same, whatever the file holds (a file's empty token means none too). One typed
    or from the environment that no header could carry, or that a request could never
    match, is a usage error that names where it came from, never the token (one from the
    file: ``Config.check``, which names it)."""
    line, env = click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT
    parent = ctx.parent
    group: str | None = parent.params.get("token") if parent is not None else None
    source = ctx.get_parameter_source("token")
    token: str | None
    hint: str | None
    if group is not None and source != line and parent is not None \
            and parent.get_parameter_source("token") == line:
        token, source, hint = group, line, "'clawsync --token' (given before the command)"
    elif set_empty(ctx, "token"):
        # Set empty: none, as typed empty. click takes an empty variable for unset,
        # which would let the file's token in when the environment said none.
        token, source, hint = None, env, None
    else:  # named as serve names its other options' values (one from the file: below)
        token = own
        hint = _source_hint(ctx, _option(ctx, "token")) if source in (line, env, None) else None
    token = token or None  # typed empty: none, not the environment's nor the file's
    if token is not None and hint is not None:
        try:
            checks.check_token(token)
        except ValueError as error:
            raise click.BadParameter(str(error), ctx=ctx, param_hint=hint) from None
    return token, _SOURCES.get(source or click.core.ParameterSource.DEFAULT, "default")


def _sources(ctx: click.Context, decided: dict[str, str]) -> dict[str, str | dict[str, str]]:
    """Where each setting came from, for ``--print-config``: "flag", "env", "file" or
    "default", under the file's names of the settings; under a table's (``[limits]``),
    the same per key of it, every key listed, as the settings print the table whole.
    ``decided``: the sources serve worked out itself (the token's, the secret's)."""
    default = click.core.ParameterSource.DEFAULT
    sources: dict[str, str | dict[str, str]] = {
        param.name: _SOURCES.get(ctx.get_parameter_source(param.name) or default, "default")
        for param in ctx.command.params
        if param.name is not None and param.name not in ("config", "print_config")}
    sources.update(decided)
    tables: dict[str, dict[str, str]] = ctx.meta.get(FILE_TABLES, {})
    keys = {name: {field.name: "file" if field.name in tables.get(name, ()) else "default"
                   for field in fields(kind)}
            for name, kind in node_limits.LIMIT_TABLES.items()}
    # The intervals of [sync] that have options: the option's source when it was given
    # (it wins over the table), and the option's is the table's when it was not.
    for option, field in SYNC_FIELDS.items():
        if sources[option] == "default":
            sources[option] = keys["sync"][field]
        else:
            keys["sync"][field] = str(sources[option])
    sources.update({f"[{name}]": table for name, table in keys.items()})
    return sources


def _pointless(ctx: click.Context, config: node_config.Config) -> list[str]:
    """Limits the node starts with although they are out of an order that keeps a client
    from being dropped or makes them bite (``node.limits.RISKY``, ``POINTLESS``), each
    said with its table's name and keys as the ``--config`` file wrote them."""
    keys: dict[str, dict[str, str]] = ctx.meta.get(FILE_TABLES, {})
    written: dict[str, str] = ctx.meta.get(FILE_TABLE_NAMES, {})
    tables: tuple[tuple[str, DataclassInstance], ...] = (
        ("limits", config.limits), ("automerge_limits", config.automerge.limits),
        ("sync", config.sync))
    return [said for name, table in tables
            for said in node_limits.out_of_order(table, written.get(name, name),
                                                 keys.get(name, {}))]


def _sync_config(ctx: click.Context, pull_interval_s: float,
                 members_interval_s: float) -> SyncConfig:
    """The ``[sync]`` table, with ``--pull-interval`` and ``--members-interval`` over it
    when they were given (on the command line, in the environment, or as top-level keys
    of the file)."""
    sync: SyncConfig = ctx.meta.get("sync", SyncConfig())
    given = {click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT,
             click.core.ParameterSource.DEFAULT_MAP}
    if ctx.get_parameter_source("pull_interval") in given:
        sync = replace(sync, pull_interval_s=pull_interval_s)
    if ctx.get_parameter_source("members_interval") in given:
        sync = replace(sync, members_interval_s=members_interval_s)
    return sync
