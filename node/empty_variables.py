"""Variables set but empty (``CLAWSYNC_PORT=``, ``CLAWSYNC_NODE=``). click takes such a
variable for unset: the config file's value, or the default, would be used while the
environment seemed to say otherwise. Whether it meant the default, nothing, or a value a
template failed to fill in, only the person who wrote it knows: it is refused, naming
it. The token's and the cluster secret's are the exceptions: empty, they mean none, as
the options typed empty do.

``serve`` refuses them all at start (``refuse_empty_variables``); the client commands
refuse ``CLAWSYNC_NODE``, and ``device --data-dir`` ``CLAWSYNC_NAME``, when they would
read it (``refuse_set_empty``), as they check a variable's value only then.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # the client commands load this module; node.config loads crypto
    from node.config import Config

#: The settings whose variable may be set empty, meaning none, as the option typed empty
#: does: a credential an environment file leaves empty must not let the config file's in.
EMPTY_MEANS_NONE = ("token", "cluster_secret")
#: What an empty variable that overrode the file's value leaves the node without.
_EMPTY_EFFECTS = {
    "token": "no token: the API is open to local clients",
    "cluster_secret": "no cluster secret: peers linking by the secret are refused"}


def param_named(ctx: click.Context, name: str) -> click.Parameter:
    """The parameter of ``ctx``'s command that sets ``name``."""
    return next(param for param in ctx.command.params if param.name == name)


def _is_set_empty(ctx: click.Context, param: click.Parameter) -> bool:
    return isinstance(param.envvar, str) and os.environ.get(param.envvar) == "" \
        and param.name is not None \
        and ctx.get_parameter_source(param.name) != click.core.ParameterSource.COMMANDLINE


def set_empty(ctx: click.Context, name: str) -> bool:
    """Whether setting ``name``'s variable is set but empty and would be read (the option
    was not typed)."""
    return _is_set_empty(ctx, param_named(ctx, name))


def _refusal(ctx: click.Context, param: click.Parameter) -> click.UsageError:
    """The usage error for ``param``'s variable set empty, naming the variables of
    ``ctx``'s command (and of the commands it runs under) that may be empty."""
    allowed: list[str] = []
    for context in _lineage(ctx):
        allowed += [str(other.envvar) for other in context.command.params
                    if other.name in EMPTY_MEANS_NONE and isinstance(other.envvar, str)
                    and str(other.envvar) not in allowed]
    only = " and ".join(allowed)
    return click.UsageError(
        f"{param.envvar} is set but empty: give it a value, or unset it"
        + (f" (only {only} may be empty, for none)" if only else ""), ctx)


def _lineage(ctx: click.Context) -> Iterable[click.Context]:
    """``ctx`` and the contexts it runs under, the root's first."""
    chain = []
    context: click.Context | None = ctx
    while context is not None:
        chain.append(context)
        context = context.parent
    return reversed(chain)


def refuse_empty_variables(ctx: click.Context) -> None:
    """A usage error for any variable of ``ctx``'s command set empty, other than the
    token's and the cluster secret's, where empty means none (``serve``, at start)."""
    for param in ctx.command.params:
        if param.name not in EMPTY_MEANS_NONE and _is_set_empty(ctx, param):
            raise _refusal(ctx, param)


def refuse_set_empty(ctx: click.Context, name: str) -> None:
    """A usage error if setting ``name``'s variable is set but empty and would be read:
    for a command that reads it only now and then (``CLAWSYNC_NODE``: not when the
    command's own ``--node`` replaces it, nor by a command that contacts no node)."""
    if set_empty(ctx, name):
        raise _refusal(ctx, param_named(ctx, name))


def empty_overrides(ctx: click.Context, config: Config, sources: dict[str, str],
                    file: Path | None) -> list[dict[str, str]]:
    """A warning for each credential the config ``file`` gives that a variable set empty
    took away (``CLAWSYNC_TOKEN=""`` means none whatever the file holds): naming the
    variable and the file, never the value. An environment file that leaves it empty by
    mistake would otherwise open the API, or stop links with peers, with nothing said.
    ``sources``: where the token and the secret came from (``env``, ...)."""
    given = ctx.default_map or {}
    return [{"variable": str(param_named(ctx, name).envvar), "file": str(file),
             "effect": _EMPTY_EFFECTS[name]}
            for name in EMPTY_MEANS_NONE
            if sources[name] == "env" and getattr(config, name) is None and given.get(name)]
