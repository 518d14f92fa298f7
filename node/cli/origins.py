"""``clawsync origins``: the origins a node knows (every data folder that wrote is one),
and ``clawsync origins retire ORIGIN`` for one that will never write again."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from node.cli.common import listing, node_answers, note, with_client
from node.cli.options import client_options
from node.cli.output import print_rows, printable

if TYPE_CHECKING:  # the commands get a client from with_client
    from node.client.api import Client


def origin_rows(origins: list[dict[str, Any]]) -> list[list[str]]:
    return [[
        row["origin"] + (" (this node)" if row["own"] else ""), str(row["seq"]),
        str(row["events"]), row["last_activity"] or "-",
        row["state"] + (f" at {row['final_seq']}" if row["final_seq"] is not None else ""),
    ] for row in origins]


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print the node's answer as JSON.")
@client_options
@click.pass_context
@node_answers
def origins(ctx: click.Context, as_json: bool) -> None:
    """List the origins the node knows: highest seq held, events, last activity, and
    whether each is active (in the version vector every hello carries) or retired.

    \b
    Examples:
      clawsync origins
      clawsync origins retire 3f9c0a1b2c3d4e5f
    """
    view = listing(ctx, as_json, lambda client: client.origins())
    if view is None:
        return
    print_rows(origin_rows(view["origins"]),
               ["origin", "seq", "events", "last activity", "state"], headed=True,
               whole=True)
    note(f"{view['active']} active origins")


@origins.command()
@click.argument("origin")
@click.option("--force", is_flag=True,
              help="Retire it even though it still writes (a member device's current "
                   "origin, or a linked peer's): that node then writes under a new one.")
@client_options
@click.pass_context
@node_answers
def retire(ctx: click.Context, origin: str, force: bool) -> None:
    """Retire ORIGIN, which must never write again (a wiped device's old data folder),
    at the highest seq this node holds of it. The retirement replicates; every node
    that holds the origin up to there drops it from its version vector. Its events stay.
    An origin that still writes is refused, saying who writes under it, unless --force.
    ORIGIN is the first column of `clawsync origins`.

    \b
    Examples:
      clawsync origins retire 45533c84642daaab
      clawsync origins retire --force 45533c84642daaab
    """
    async def run(client: Client) -> dict[str, Any]:
        return await client.retire_origin(origin, force=force)

    answer = with_client(ctx, run)
    row = answer["origin"]
    done = "retired" if answer["event"] is not None else "already retired"
    click.echo(printable(f"{row['origin']} {done} at seq {row['final_seq']} "
                         f"({row['state']} here)"))
