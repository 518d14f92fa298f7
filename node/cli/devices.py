"""``clawsync devices``: the cluster's devices (``crdt.membership``); ``devices add`` and
``devices remove``. ``clawsync device`` (singular) shows this device's own id."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from node.cli.common import listing, node_answers, note, with_client
from node.cli.options import client_options
from node.cli.output import minute, print_rows, printable

if TYPE_CHECKING:  # the commands get a client from with_client
    from node.client.api import Client


def _who(device_id: str, names: dict[str, str], own: str) -> str:
    """A device id for people: its name, if known, and ``this device``."""
    if device_id == own:
        return "this device"
    return names.get(device_id) or device_id[:7]


def device_rows(view: dict[str, Any], *, short: bool = False) -> list[list[str]]:
    """One row per device, members first: id, name, state, address, by whom and when.
    ``short``, for the table: the times to the minute, as the tokens table gives them;
    else, for the plain lines scripts read, as the node wrote them."""
    own = view["device_id"]
    names = {row["device_id"]: row["name"] for row in view["members"] + view["removed"]
             if row["name"]}

    def time(timestamp: str) -> str:
        return minute(timestamp) if short else timestamp

    rows = [[row["device_id"], row["name"] + (" (this device)" if row["device_id"] == own
                                              else ""),
             "member", row["address"] or "-",
             f"added by {_who(row['added_by'], names, own)}, {time(row['added_at'])}"
             if row["added_at"] else "-"]
            for row in view["members"]]
    rows += [[row["device_id"], row["name"] or "-", "removed", "-",
              f"removed by {_who(row['removed_by'], names, own)}, {time(row['removed_at'])}"
              + (f": {row['reason']}" if row["reason"] else "")]
             for row in view["removed"]]
    rows += [[row["device_id"], row["name"] or "-", "linked", row["address"] or "-",
              f"by {_VIA.get(row['via'], row['via'])}, not a member"]
             for row in view.get("linked", [])]  # absent from older nodes
    return rows


#: What links a device that is no member (``GET /v1/devices``'s ``linked``).
_VIA = {"cluster_secret": "the cluster secret", "certificate": "a CA certificate",
        "peer_address": "a --peer address", "device_key": "its key"}


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print the node's answer as JSON.")
@client_options
@click.pass_context
@node_answers
def devices(ctx: click.Context, as_json: bool) -> None:
    """List the cluster's devices: the members, the devices removed for good, and the
    devices linked now that are no members (by the cluster secret, a certificate, or, while
    pairing, a --peer address; the state column says which).

    A device is a member if some device added it and none removed it. A removal is
    final: a removed device comes back only with a new key (a new device id). A device
    linked by the cluster secret is no member: `devices add` makes it one (and only
    then can it be removed); to shut it out meanwhile, change the secret.

    \b
    Examples:
      clawsync devices
      clawsync devices add KZDVVJ2-UMNDUYL-... --name phone
      clawsync devices remove KZDVVJ2-UMNDUYL-... --reason "lost on the train"
    """
    view = listing(ctx, as_json, lambda client: client.devices())
    if view is None:
        return
    # The name and who added it when may wrap (free text); the id and address stay whole,
    # the id (63 columns) on a line of its own over its row where the table is narrower.
    print_rows(device_rows(view, short=True), ["device", "name", "state", "address", "since"],
               headed=True, whole=True, wrap=(1, 4), apart=0, plain=device_rows(view))
    members, linked = len(view["members"]), len(view.get("linked", []))
    note(f"{members} member{'' if members == 1 else 's'}, {len(view['removed'])} removed"
         + (f", {linked} linked but no member{'' if linked == 1 else 's'} "
            "(`clawsync devices add` makes one a member)" if linked else ""))


@devices.command()
@click.argument("device_id", metavar="ID")
@click.option("--name", required=True, metavar="NAME", help="The device's name for people.")
@click.option("--address", metavar="URL", help="Where the device's node can be reached "
              "(http:// or https://), if it can be.")
@click.option("--no-address", is_flag=True,
              help="Clear the address a member has: peers stop dialing it there.")
@client_options
@click.pass_context
@node_answers
def add(ctx: click.Context, device_id: str, name: str, address: str | None,
        no_address: bool) -> None:
    """Add the device ID (as `clawsync device` shows it on that device) to the
    cluster, under NAME. The record replicates to every node. Adding a member again
    renames it, and keeps its address unless --address or --no-address is given.

    \b
    Examples:
      clawsync devices add KZDVVJ2-UMNDUYL-... --name phone
      clawsync devices add KZDVVJ2-UMNDUYL-... --name home \\
        --address http://home.lan:7878
      clawsync devices add KZDVVJ2-UMNDUYL-... --name phone --no-address
    """
    if address is not None and no_address:
        raise click.UsageError("give --address or --no-address, not both")

    async def run(client: Client) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        # The members before, so that a rename or a new address is called so, not "added".
        members = (await client.devices())["members"]
        return members, await client.add_device(device_id, name, address,
                                                clear_address=no_address)

    members, answer = with_client(ctx, run)
    device = answer["device"]
    was = next((row for row in members if row["device_id"] == device["device_id"]), None)
    shown = f"{device['device_id']} ({device['name']})"
    # Names are anyone's text (the old one comes from the node): escaped, as in the tables.
    if not answer["created"]:
        said = f"is a member already: {shown}"
    elif was is None:
        said = f"added {shown}"
    elif was.get("name") != device["name"]:
        said = f"renamed {device['device_id']} ({was.get('name')} -> {device['name']})"
    else:
        said = f"updated {shown}: address {device.get('address') or 'none'}"
    click.echo(printable(said))


@devices.command()
@click.argument("device_id", metavar="ID")
@click.option("--reason", default="", metavar="TEXT", help="Why, kept in the record.")
@client_options
@click.pass_context
@node_answers
def remove(ctx: click.Context, device_id: str, reason: str) -> None:
    """Remove the device ID for good. The removal replicates to every node; its
    events stay, what it writes after the removal is refused, and the Automerge tokens
    it issued are revoked. It comes back only with a new key (a new device id).
    ID is the whole id, as `clawsync devices` lists it.

    \b
    Examples:
      clawsync devices remove KZDVVJ2-UMNDUYL-... --reason "lost on the train"
      clawsync --node http://laptop.local:7878 devices remove KZDVVJ2-UMNDUYL-...
    """
    async def run(client: Client) -> dict[str, Any]:
        return await client.remove_device(device_id, reason)

    answer = with_client(ctx, run)
    device = answer["device"]
    said = "removed" if answer["created"] else "was removed already:"
    click.echo(printable(f"{said} {device['device_id']}"
                         + (f" ({device['name']})" if device["name"] else "")))
    if answer["created"]:  # (a removal said again writes nothing new)
        note("every node that receives the removal refuses what this device writes from "
             "now on, and the tokens it issued (clawsync tokens)")
