"""``clawsync origins``: the origins a node knows (every data folder that wrote is one),
and ``clawsync origins retire ORIGIN`` for one that will never write again."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from node.cli.common import field, listing, maybe, note, rows, with_client, written
from node.cli.options import client_options
from node.cli.output import print_rows, printable
from node.client.errors import ClientError
from node.text import counted, time_text

if TYPE_CHECKING:  # the commands get a client from with_client
    from node.client.api import Client


def origin_rows(origins: list[dict[str, Any]]) -> list[list[str]]:
    return [_origin_row(row) for row in origins]


def _origin_row(row: dict[str, Any]) -> list[str]:
    final_seq = maybe(row, "final_seq", int)
    return [
        field(row, "origin", str) + (" (this node)" if field(row, "own", bool) else ""),
        str(field(row, "seq", int)), str(field(row, "events", int)),
        time_text(maybe(row, "last_activity", str)) or "-",
        field(row, "state", str) + (f" at {final_seq}" if final_seq is not None else ""),
    ]


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print the node's answer as JSON.")
@client_options
@click.pass_context
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
    print_rows(origin_rows(rows(view, "origins")),
               ["origin", "seq", "events", "last activity", "state"], headed=True,
               whole=True)
    note(f"{counted(field(view, 'active', int), 'active origin')}")


@origins.command()
@click.argument("origin")
@click.option("--force", is_flag=True,
              help="Retire it even though it still writes (a member device's current "
                   "origin, or a linked peer's): that node then writes under a new one.")
@client_options
@click.pass_context
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
        try:
            return await client.retire_origin(origin, force=force)
        except ClientError as error:
            # A mistyped ORIGIN: one the node lacks (404), or a name that is no origin
            # id, which the node does not know either (400 on the field): where to read
            # the right one. (This node's own origin is a 400 on the field too.)
            mistyped = (error.status == 404 and error.code == "not_found") or (
                error.status == 400 and error.field == "origin"
                and "is not an origin id" in (error.said or ""))
            if not mistyped:
                raise
            raise error.with_hint("`clawsync origins` lists those it holds") from None

    answer = with_client(ctx, run)
    with written(f"the node accepted the retirement of {origin}"):
        row = field(answer, "origin", dict)
        done = "retired" if maybe(answer, "event", dict) is not None else "already retired"
        said = (f"{field(row, 'origin', str)} {done} at seq {maybe(row, 'final_seq', int)} "
                f"({field(row, 'state', str)} here)")
    click.echo(printable(said))
