"""``clawsync device``: this device's id and name, to read out to another device or
compare with what it shows. From the running node, or from a data folder directly."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from node.cli.common import InputError, NodeError, field, with_client
from node.cli.options import client_options
from node.cli.output import print_json, printable
from node.client.errors import ClientError

if TYPE_CHECKING:  # the commands get a client from with_client
    from node.client.api import Client


@click.command()
@click.option("--data-dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              metavar="DIR",
              help="Read the device key from this data folder instead of asking the node "
                   "(works while the node is stopped; its name is then --name's).")
@click.option("--name", envvar="CLAWSYNC_NAME", show_envvar=True, metavar="NAME",
              help="With --data-dir: the name to show (as `serve --name`). Default: the "
                   "host name.")
@click.option("--json", "as_json", is_flag=True, help="Print {\"device_id\", \"name\"} as JSON.")
@click.option("--id", "id_only", is_flag=True,
              help="Print the device id alone, for scripts (as `devices add` takes it).")
@client_options
@click.pass_context
def device(ctx: click.Context, data_dir: Path | None, name: str | None,
           as_json: bool, id_only: bool) -> None:
    """Show this device's id and name. The id is derived from the device's key (made
    when its node first starts): read it out to add this device on another.

    \b
    Examples:
      clawsync device
      clawsync device --data-dir /var/lib/clawsync
      clawsync --node http://home-server:7878 \\
        devices add "$(clawsync device --id)" --name laptop
    """
    if as_json and id_only:
        raise click.UsageError("--json and --id print the id two ways: give one")
    if data_dir is not None:
        # Here, not at the top: they load the crypto libraries, which --help needs none of.
        from node.config import software_version
        from node.data_format import FolderFormatError, check_format
        from node.device import DeviceKeyError, read_key

        try:
            # A newer version's folder may keep its key otherwise: refused as serve
            # refuses it (exit 1), not read as this version would lay it out.
            check_format(data_dir, software_version())
        except FolderFormatError as error:
            raise NodeError(str(error)) from None
        # --id shows no name: --name and CLAWSYNC_NAME are not read, nor checked.
        shown = None if id_only else _name(ctx, name)
        try:
            key = read_key(data_dir)
        except DeviceKeyError as error:
            # A folder without a usable key (none yet, damaged, open to others) is input
            # this command cannot use, as a missing folder is: exit 2, not a node's 1.
            raise InputError(str(error)) from None
        view: dict[str, Any] = {"device_id": key.device_id, "name": shown}
    else:
        answer = with_client(ctx, _asked)
        view = {"device_id": field(answer, "device_id", str),
                "name": field(answer, "name", str)}
    if as_json:
        print_json(view)
        return
    if id_only:
        click.echo(printable(view["device_id"]))
        return
    click.echo(printable(f"device {view['device_id']}"))
    click.echo(printable(f"name   {view['name']}"))


async def _asked(client: Client) -> dict[str, Any]:
    """``GET /v1/node``; where no node listens on this machine, the error says how to
    read the id with it stopped: on a new device, this command often comes before its
    first ``serve``. Not for a node elsewhere (``--node http://phone:7878``): its data
    folder is on that machine."""
    from urllib.parse import urlsplit

    from node.checks import is_loopback
    from node.client.errors import NOT_LISTENING

    try:
        return await client.node()
    except ClientError as error:
        if error.code == NOT_LISTENING and is_loopback(urlsplit(client.base_url).hostname or ""):
            raise error.with_hint("with the node stopped, `clawsync device --data-dir DIR` "
                                  "reads the id from its data folder") from None
        raise


def _name(ctx: click.Context, name: str | None) -> str:
    """The name ``device --data-dir`` shows: ``--name``'s, checked as ``serve`` checks
    it (typed empty, it is refused, not taken for the host name; holding characters a
    new name may not, warned of), else the host name. CLAWSYNC_NAME set empty is refused
    too: click would take it for unset."""
    from crdt.device import hiding_characters, stored_device_name
    from crdt.errors import InvalidInput
    from node.config import host_name
    from node.empty_variables import refuse_set_empty

    refuse_set_empty(ctx, "name")
    if name is None:
        return host_name()
    try:
        name = stored_device_name(name)
    except InvalidInput as error:
        raise click.UsageError(f"--{error}", ctx) from None
    hidden = hiding_characters(name)
    if hidden:
        click.echo(f"Warning: --name holds {hidden}, which a new device name may not; "
                   "this device keeps it, and `devices add` gives it another", err=True)
    return name
