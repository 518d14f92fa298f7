"""The ``clawsync`` command group and its client commands (``node.main`` adds ``serve``).

Exit codes (README, "Exit codes"): 0 success, 1 the node could not be reached or refused
the request, 2 a usage error (or input the node refused as malformed); Ctrl-C: death by
SIGINT (a shell shows 130).

>>> from click.testing import CliRunner
>>> result = CliRunner().invoke(main, ["append", "s1", "no_such_kind"])
>>> result.exit_code, "message_received" in result.output
(2, True)
"""

from __future__ import annotations

from typing import Any

import click

from node.cli import interrupted
from node.cli.append import append
from node.cli.common import node_url, token_value
from node.cli.demo import demo
from node.cli.device import device
from node.cli.devices import devices
from node.cli.forget import forget
from node.cli.openclaw import openclaw
from node.cli.origins import origins
from node.cli.read import events, projection, sessions, tail
from node.cli.status import status
from node.cli.tokens import tokens
from node.config import NODE_DEFAULT, Settings, software_version

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class _Commands(click.Group):
    """The group, with one answer to Ctrl-C for every command it runs, whenever it comes:
    ``interrupted``, then death by SIGINT (a shell shows 130 and stops a script running
    the command). Left to click, Ctrl-C prints "Aborted!" and exits with 1, the code of a
    node that refused: a script could not tell the two apart, nor stop. What Ctrl-C
    interrupts was written whole or not at all (events and cursors are stored in
    transactions), so there is nothing to undo here. Commands that run until stopped
    (tail, openclaw watch) stop this way too. serve and demo stop their nodes first and
    end by SIGINT themselves; they exit 0 when stopped from outside as a service is:
    serve by SIGTERM, demo --keep by SIGTERM or SIGHUP (its terminal closing)."""

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        # Reading the command line (the options' callbacks run here) is before invoke.
        try:
            return super().make_context(info_name, args, parent, **extra)
        except KeyboardInterrupt:
            interrupted()

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            interrupted()


@click.group(cls=_Commands, context_settings=_CONTEXT)
@click.option("--node", "node", envvar="CLAWSYNC_NODE", default=NODE_DEFAULT,
              show_default=True, metavar="URL", show_envvar=True,
              help="The node the client commands talk to.")
@click.option("--token", envvar="CLAWSYNC_TOKEN", metavar="TOKEN", show_envvar=True,
              callback=token_value, help="Bearer token of that node, if it has one.")
@click.version_option(software_version(), message="%(prog)s %(version)s")
@click.pass_context
def main(ctx: click.Context, node: str, token: str | None) -> None:
    """clawsync: keep an AI agent's session histories in sync across devices.

    Each device runs a node (`clawsync serve`); the other commands read from and write
    to a node over its HTTP API.

    \b
    Examples:
      clawsync serve --data-dir ~/.clawsync
      clawsync append s1 message_received content=hello
      clawsync events s1
      clawsync --node http://phone.local:7878 --token "$TOKEN" sessions
    """
    ctx.obj = Settings(node=node_url(node), token=token or None)


for _command in (append, events, sessions, projection, tail, status, origins, demo,
                 forget, device, devices, openclaw, tokens):
    main.add_command(_command)

