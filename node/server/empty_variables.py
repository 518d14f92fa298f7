"""``serve``'s variables set but empty (``CLAWSYNC_PORT=``). click takes such a variable
for unset: the config file's value, or the default, would be used while the environment
seemed to say otherwise. The token's and the cluster secret's mean none, as the options
typed empty do; any other is refused (``refuse_empty_variables``).
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from node import config as node_config

#: The settings whose variable may be set empty, meaning none, as the option typed empty
#: does: a credential an environment file leaves empty must not let the config file's in.
EMPTY_MEANS_NONE = ("token", "cluster_secret")
#: What an empty variable that overrode the file's value leaves the node without.
_EMPTY_EFFECTS = {
    "token": "no token: the API is open to local clients",
    "cluster_secret": "no cluster secret: peers linking by the secret are refused"}


def _param(ctx: click.Context, name: str) -> click.Parameter:
    return next(param for param in ctx.command.params if param.name == name)


def _is_set_empty(ctx: click.Context, param: click.Parameter) -> bool:
    return isinstance(param.envvar, str) and os.environ.get(param.envvar) == "" \
        and param.name is not None \
        and ctx.get_parameter_source(param.name) != click.core.ParameterSource.COMMANDLINE


def set_empty(ctx: click.Context, name: str) -> bool:
    """Whether setting ``name``'s variable is set but empty and would be read (the option
    was not typed)."""
    return _is_set_empty(ctx, _param(ctx, name))


def refuse_empty_variables(ctx: click.Context) -> None:
    """A usage error for a ``CLAWSYNC_*`` variable set empty, other than the token's and
    the cluster secret's, where empty means none: whether ``CLAWSYNC_PORT=`` or
    ``CLAWSYNC_PEERS=`` meant the default, nothing, or a value a template failed to fill
    in, only the person who wrote it knows."""
    for param in ctx.command.params:
        if param.name not in EMPTY_MEANS_NONE and _is_set_empty(ctx, param):
            raise click.UsageError(
                f"{param.envvar} is set but empty: give it a value, or unset it (only "
                "CLAWSYNC_TOKEN and CLAWSYNC_CLUSTER_SECRET may be empty, for none)", ctx)


def empty_overrides(ctx: click.Context, config: node_config.Config, sources: dict[str, str],
                    file: Path | None) -> list[dict[str, str]]:
    """A warning for each credential the config ``file`` gives that a variable set empty
    took away (``CLAWSYNC_TOKEN=""`` means none whatever the file holds): naming the
    variable and the file, never the value. An environment file that leaves it empty by
    mistake would otherwise open the API, or stop links with peers, with nothing said.
    ``sources``: where the token and the secret came from (``env``, ...)."""
    given = ctx.default_map or {}
    return [{"variable": str(_param(ctx, name).envvar), "file": str(file),
             "effect": _EMPTY_EFFECTS[name]}
            for name in EMPTY_MEANS_NONE
            if sources[name] == "env" and getattr(config, name) is None and given.get(name)]
