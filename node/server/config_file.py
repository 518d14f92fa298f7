"""The ``--config`` file of ``clawsync serve``: a TOML file read into click's defaults, so
that the environment and the command line still win over it, its limit tables kept in
``ctx.meta`` (they have no options), and every key checked against its option's type
and name before the command runs, so that an error names the file and the key. Apart
from ``node.server.command``, which declares the options and decides the settings: this
is reading one file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from types import MappingProxyType
from typing import Any

import click

from crdt.keys import type_name
from node import limits as node_limits
from node.text import NotUtf8, as_written, did_you_mean, file_text
from sync.peer.config import SyncConfig

#: ``ctx.meta`` key of the ``--config`` file's path, for errors that may concern it.
CONFIG_FILE = "clawsync.config_file"
#: ``ctx.meta`` key of the tables the file holds, each with the settings it names
#: (``--print-config``).
FILE_TABLES = "clawsync.file_tables"
#: ``ctx.meta`` key: each limit table's name as the file wrote it (``automerge-limits``).
FILE_TABLE_NAMES = "clawsync.file_table_names"
#: ``ctx.meta`` key of the file's keys, by the setting each gives (``automerge_tokens``:
#: ``automerge-tokens``), so that an error names a setting as the file wrote it.
FILE_KEYS = "clawsync.file_keys"
#: The options that override a setting of the ``[sync]`` table, and its name there.
SYNC_FIELDS = {"pull_interval": "pull_interval_s", "members_interval": "members_interval_s"}
#: Other names the file may give a setting, kept so that files written with them still
#: load: the ``[sync]`` names of the options that have one (``SYNC_FIELDS``).
#: ``members_interval_s`` was --members-interval's before it took the option's name, as
#: every other setting does; ``pull_interval_s`` is the name of ``[sync]``'s key.
ALIASES = MappingProxyType({field: option for option, field in SYNC_FIELDS.items()})


def load_config(ctx: click.Context, _param: click.Parameter, path: Path | None) -> None:
    """Read the TOML file into click's defaults, so options and env vars still override;
    its limit tables go to ``ctx.meta`` (they have no options)."""
    if path is None:
        return
    ctx.meta[CONFIG_FILE] = path
    try:
        # A byte order mark, which editors write (Windows Notepad) and TOML forbids, is
        # read past, as the JSON files of ``append --file`` are: tomllib took it for a
        # key and refused the file with "Invalid statement (at line 1, column 1)".
        values = tomllib.loads(file_text(path.read_bytes()))
    except NotUtf8 as error:
        raise click.BadParameter(f"cannot read {path}: it is {error}") from None
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise click.BadParameter(f"cannot read {path}: {error}") from None
    tables: dict[str, dict[str, str]] = {}  # per table: its settings -> the keys that gave them
    ctx.meta[FILE_TABLES] = tables
    names: dict[str, str] = {}  # per table: its name as written
    ctx.meta[FILE_TABLE_NAMES] = names
    for name, kind in node_limits.LIMIT_TABLES.items():
        # A table's name, like its keys, may be written with - for _ ([automerge-limits]);
        # errors name it as written.
        written = [key for key in values if key.replace("-", "_") == name]
        if len(written) > 1:
            raise click.BadParameter(f"{path}: [{written[0]}] and [{written[1]}] are two "
                                     f"names of one table, [{name}]: give one")
        where = names[name] = written[0] if written else name
        if written:
            table = values.pop(where)
            if not isinstance(table, dict):
                raise click.BadParameter(f"{path}: {where} must be a table: [{where}]")
            tables[name] = {key.replace("-", "_"): key for key in table}
        else:
            table = {}
        try:
            ctx.meta[name] = node_limits.limits_from(table, kind, where)
            if name == "sync":
                _check_sync_ranges(ctx, ctx.meta[name], tables.get(name, {}))
        except ValueError as error:
            raise click.BadParameter(f"{path}: {error}") from None
    # Not settings: a file that said print_config = true would print and exit, never
    # serve, and say nothing of it; config = "other.toml" would be ignored.
    params = {param.name: param for param in ctx.command.params
              if param.name not in ("config", "print_config")}
    named: dict[str, str] = {}  # setting -> the key of the file that gave it
    sync_keys = tables.get("sync", {})
    for key in values:
        name = ALIASES.get(key.replace("-", "_"), key.replace("-", "_"))
        if name in named:  # TOML keeps both: which one was meant is not known
            raise click.BadParameter(f"{path}: {named[name]!r} and {key!r} are two names "
                                     f"of one setting, {name}: give one")
        named[name] = key
        # A top-level interval beside its [sync] key: in a file, neither wins.
        field = SYNC_FIELDS.get(name)
        if field in sync_keys:
            raise click.BadParameter(f"{path}: {key!r} and '[sync] {sync_keys[field]}' are "
                                     f"two names of one setting, {name}: give one")
    unknown = sorted(key for name, key in named.items() if name not in params)
    if unknown:
        # A typo is told what it was meant to be, as click tells a mistyped option;
        # the whole list only when nothing is close.
        bracketed = [f"[{table}]" for table in node_limits.LIMIT_TABLES]
        said = did_you_mean(unknown[0].replace("-", "_"), sorted(params) + bracketed) or \
            (f"the settings are: {', '.join(sorted(params))} and the tables "
             f"{', '.join(bracketed)}")
        raise click.BadParameter(f"{path}: unknown setting {unknown[0]!r}; {said}")
    for name, key in named.items():  # checked here, so the error names the file
        try:
            param = params[name]
            _check_toml_type(param, values[key])
            param.type_cast_value(ctx, values[key])
        except click.BadParameter as error:
            raise click.BadParameter(f"{path}: {key}: {error.message}") from None
    ctx.meta[FILE_KEYS] = named
    ctx.default_map = {name: values[key] for name, key in named.items()}


#: Settings whose value may be or hold a credential, which an error must never show: the
#: token and the cluster secret; ``automerge_tokens``, a path, but a table of tokens
#: written inline by mistake; peers' and the advertised URLs, which may hold a user name
#: and password (refused by ``Config.check`` without showing them). Their errors give the
#: wrong value's type alone.
_UNSHOWN = frozenset({"token", "cluster_secret", "automerge_tokens", "peers", "advertise_url"})


def _check_toml_type(param: click.Parameter, value: Any) -> None:
    """A file's value must have its option's TOML type: click converts whatever it is
    given (``port = true`` is port 1, ``token = true`` the token "True"). The error shows
    the value as the file wrote it, near enough, unless it may be a secret (``_UNSHOWN``).

    >>> from node.server.command import serve
    >>> secret = next(param for param in serve.params if param.name == "cluster_secret")
    >>> _check_toml_type(secret, ["hunter2-secret"])
    Traceback (most recent call last):
    click.exceptions.BadParameter: must be a string, not array
    """
    kind = param.type
    types: tuple[type, ...]
    if isinstance(kind, click.types.BoolParamType):
        wanted, types = "true or false", (bool,)
    elif isinstance(kind, click.types.IntParamType):
        wanted, types = "a whole number", (int,)
    elif isinstance(kind, click.types.FloatParamType):
        wanted, types = "a number", (int, float)
    else:
        wanted, types = "a string", (str,)

    def fits(item: Any) -> bool:
        return type(item) in types  # exactly: a bool is an int to isinstance
    if param.name in _UNSHOWN:
        shown = type_name(value)
        if isinstance(value, list) and param.multiple:
            wrong = next((at for at, item in enumerate(value, 1) if not fits(item)), None)
            shown = "" if wrong is None else \
                f"an array whose item {wrong} is of type {type_name(value[wrong - 1])}"
    else:
        shown = as_written(value) if param.multiple else \
            f"{type_name(value)} {as_written(value)}"
    if param.multiple:
        if not (isinstance(value, list) and all(fits(item) for item in value)):
            raise click.BadParameter(f"must be an array, each item {wanted}, not {shown}")
    elif not fits(value):
        raise click.BadParameter(f"must be {wanted}, not {shown}")


def _check_sync_ranges(ctx: click.Context, sync: SyncConfig, keys: dict[str, str]) -> None:
    """The ``[sync]`` table's intervals hold to their options' ranges too (``SyncConfig``
    checks only that they are positive): a pull interval of 0.01 s would be a busy loop
    per peer. ``keys``: the table's keys by the setting each gives, as the file wrote them."""
    for param in ctx.command.params:
        if param.name in SYNC_FIELDS:
            assert isinstance(param.type, click.FloatRange)
            field = SYNC_FIELDS[param.name]
            value, low, high = getattr(sync, field), param.type.min, param.type.max
            if low is not None and high is not None and not low <= value <= high:
                raise ValueError(f"[sync] {keys.get(field, field)} = {value:g} is not "
                                 f"between {low:g} and {high:g} (as {param.opts[0]})")
