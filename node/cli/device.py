"""``clawsync device``: this device's id and name, to read out to another device or
compare with what it shows. From the running node, or from a data folder directly.

A stopped node's folder is opened as the node opens it (no read-only open exists: the
storage takes the folder's lock and diskcache rewrites its settings, the same values),
but without the device key, so nothing is appended under it; the membership records
give the name, as ``/v1/node`` does. A folder a running node holds is refused by its
lock: the node is asked then."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from crdt.errors import CrdtError, FolderInUse
from crdt.log.store import EventStore
from node.cli.common import NodeError, client_options, settings, with_client
from node.config import host_name
from node.device import DeviceKeyError, read_key
from node.devices import held_membership


@click.command()
@click.option("--data-dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              metavar="DIR",
              help="Read this data folder instead of asking the node (works while the "
                   "node is stopped; while it runs, the node is asked).")
@click.option("--name", envvar="CLAWSYNC_NAME", show_envvar=True, metavar="NAME",
              help="With --data-dir: the name to show if no membership record names this "
                   "device (as `serve --name`). Default: the host name.")
@click.option("--json", "as_json", is_flag=True, help="Print {\"device_id\", \"name\"} as JSON.")
@client_options
@click.pass_context
def device(ctx: click.Context, data_dir: Path | None, name: str | None,
           as_json: bool) -> None:
    """Show this device's id and name. The id is derived from the device's key (made
    when its node first starts): read it out to add this device on another.

    \b
    Examples:
      clawsync device
      clawsync device --data-dir /var/lib/clawsync
    """
    view = _from_folder(data_dir, name) if data_dir is not None else None
    if view is None:
        answer = with_client(ctx, lambda client: client.node())
        view = {"device_id": answer["device_id"], "name": answer["name"]}
        if data_dir is not None and view["device_id"] != read_key(data_dir).device_id:
            raise NodeError(f"{data_dir} is in use by a node, but the node at "
                            f"{settings(ctx).node} is another device "
                            f"({view['device_id']}): name that folder's node with --node")
    if as_json:
        click.echo(json.dumps(view, indent=2))
        return
    click.echo(f"device {view['device_id']}")
    click.echo(f"name   {view['name']}")


def _from_folder(data_dir: Path, name: str | None) -> dict[str, Any] | None:
    """The id and name a stopped node's folder holds; None if a node runs on it."""
    try:
        key = read_key(data_dir)
    except DeviceKeyError as error:
        raise click.ClickException(str(error)) from None
    try:
        with EventStore.open(data_dir) as store:  # no signer: nothing written under it
            recorded = held_membership(store).name_of(key.device_id)
    except FolderInUse:
        return None
    except CrdtError as error:  # a damaged or unreadable store
        raise NodeError(f"{data_dir}: {error}") from None
    return {"device_id": key.device_id, "name": recorded or name or host_name()}
