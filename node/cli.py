"""The ``clawsync`` command: run a node (``serve``) or talk to one.

Exit codes: 0 success, 1 the node could not be reached or refused the request, 2 a usage
error found before any request was sent.

>>> from click.testing import CliRunner
>>> result = CliRunner().invoke(main, ["append", "s1", "no_such_kind"])
>>> result.exit_code, "message_received" in result.output
(2, True)
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import click

from node import config as node_config
from node.cli_append import append
from node.cli_common import NODE_DEFAULT, Settings, node_url
from node.cli_read import events, projection, sessions, tail


def _version() -> str:
    try:
        return metadata.version("clawsync")
    except metadata.PackageNotFoundError:  # run from a source tree
        return "(source tree)"


_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=_CONTEXT)
@click.option("--node", "node", envvar="CLAWSYNC_NODE", default=NODE_DEFAULT,
              show_default=True, metavar="URL", show_envvar=True,
              help="The node the client commands talk to.")
@click.option("--token", envvar="CLAWSYNC_TOKEN", metavar="TOKEN", show_envvar=True,
              help="Bearer token of that node, if it has one.")
@click.version_option(_version(), message="%(prog)s %(version)s")
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


@main.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              default=node_config.DATA_DIR_DEFAULT, envvar="CLAWSYNC_DATA_DIR",
              show_envvar=True, metavar="DIR",
              help="Folder of the event log, created if missing. Default: ./clawsync-data "
                   "(beside you). Give a fixed path for a node that should keep its history "
                   "whichever folder it is started from.")
@click.option("--host", default=node_config.HOST_DEFAULT, envvar="CLAWSYNC_HOST",
              show_envvar=True, metavar="ADDRESS",
              help="Address to listen on. Default: 127.0.0.1, reachable only from this "
                   "machine, where a token is optional. 0.0.0.0 (or a LAN address) lets "
                   "other devices sync but then requires --token.")
@click.option("--port", type=click.IntRange(0, 65535), default=node_config.PORT_DEFAULT,
              envvar="CLAWSYNC_PORT", show_envvar=True,
              help=f"TCP port of the API. Default: {node_config.PORT_DEFAULT}, where the client "
                   "commands look unless --node says otherwise.")
@click.option("--token", envvar="CLAWSYNC_TOKEN", show_envvar=True, metavar="TOKEN",
              help="Bearer token every client must send. Default: none, which is allowed "
                   "only on a loopback address. Anyone holding it can read and append every "
                   "session: use a long random string.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="info", envvar="CLAWSYNC_LOG_LEVEL", show_envvar=True,
              help="Least severe log level written. Default: info: start, stop and "
                   "problems. debug adds detail for diagnosis at the cost of volume.")
@click.option("--log-format", type=click.Choice(["console", "json"]), default="console",
              envvar="CLAWSYNC_LOG_FORMAT", show_envvar=True,
              help="Default: console, coloured lines for people. json: one object per "
                   "line for log collectors.")
@click.pass_context
def serve(ctx: click.Context, data_dir: Path, host: str, port: int, token: str | None,
          log_level: str, log_format: str) -> None:
    """Run a node: keep the event log in DIR and serve the HTTP API until stopped
    (Ctrl-C or SIGTERM).

    \b
    Examples:
      clawsync serve
      clawsync serve --data-dir /var/lib/clawsync --port 8000
      CLAWSYNC_TOKEN=$(openssl rand -hex 32) clawsync serve --host 0.0.0.0
    """
    group = ctx.find_object(Settings)
    token = token or (group.token if group is not None else None) or None
    try:
        config = node_config.Config(data_dir=data_dir, host=host, port=port, token=token,
                                    log_level=log_level, log_format=log_format).check()
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    # Imported here so the client commands start fast and never load the server.
    from node.server import run

    run(config)


for _command in (append, events, sessions, projection, tail):
    main.add_command(_command)


if __name__ == "__main__":
    main(prog_name="clawsync")
