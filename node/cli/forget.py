"""``clawsync forget SESSION [--event ID ...]``: forget a session, or some of its events,
on every node (``crdt.log.forget``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from node.cli.common import (
    field,
    forgotten,
    maybe,
    note,
    removal,
    warn_removed,
    with_client,
    written,
)
from node.cli.options import client_options, session_key
from node.cli.output import print_json
from node.text import printable

if TYPE_CHECKING:  # the commands get a client from with_client
    from node.client.api import Client


def event_ids(_ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]
              ) -> tuple[str, ...]:
    """The callback of ``--event``: the ids checked as the node checks them
    (``crdt.log.forget.parse_ids``, its words and its ``EVENTS_MAX``), before any request,
    so a bad one is named as the option it came with, not as the API's field."""
    if not value:
        return value
    from crdt.errors import InvalidInput
    from crdt.log.forget import parse_ids

    try:
        parse_ids(list(value))
    except InvalidInput as error:
        which = error.field.removeprefix("events[").removesuffix("]") if error.field else ""
        if not which.isdigit():  # the list as a whole (too many ids)
            raise click.BadParameter(error.reason) from None
        given = value[int(which)]
        # `clawsync events` shows positions, not ids: the number people copy from it.
        number = given.strip()
        position = (f" ({number} is a position, the first column of `clawsync events`)"
                    if number.isascii() and number.isdigit() else "")
        raise click.BadParameter(
            f"{printable(given)!r}: {error.reason}: give an event's id, as `clawsync events "
            f"SESSION --json` lists it{position}") from None
    return value


@click.command()
@click.argument("session", callback=session_key)
@click.option("--event", "events", multiple=True, metavar="ID", callback=event_ids,
              help="Forget only this event (its 64-hex-digit id, as `clawsync events "
                   "SESSION --json` lists it); repeat for more.")
@click.option("--reason", metavar="TEXT",
              help="Why, kept in the record; with --event only (a whole session is "
                   "forgotten for the reason 'user'). Default: user.")
@click.option("--json", "as_json", is_flag=True, help="Print the node's answer as JSON.")
@client_options
@click.pass_context
def forget(ctx: click.Context, session: str, events: tuple[str, ...], reason: str | None,
           as_json: bool) -> None:
    """Forget SESSION, or only the events given with --event, on every node.

    The node writes a forget record that replicates like an event. Every node that
    holds it erases the content of the events it covers (messages, tool calls and
    results, state values, attachments) from its data folder, and an event that
    arrives later, from a device that was away, is stored already forgotten. What
    replication needs stays: ids, origin, sequence numbers, positions, timestamps.
    Forgetting the whole session covers its events up to now; later ones live on.

    \b
    Examples:
      clawsync forget tg:alice
      clawsync forget tg:alice --event 3f9c...e1 --event 77ab...02
    """
    if reason is not None and events == ():
        raise click.UsageError("--reason goes with --event (a whole session is "
                               "forgotten for the reason 'user')")

    async def run(client: Client) -> tuple[dict[str, Any], str | None, bool]:
        again = not events and not as_json and await forgotten(client, session)
        answer = await client.forget(session, list(events), reason=reason)
        return answer, await removal(client), again

    answer, removed, again = with_client(ctx, run, named={"reason": "--reason"},
                                         session_key=session)
    if as_json:
        print_json(answer)
        return
    with written(f"the node accepted the forget of {session}"):
        record_id = field(field(answer, "forget", dict), "id", str)
        created = maybe(answer, "created", bool)
    if created is False:  # (an older node answers without "created")
        click.echo(printable(f"already forgotten: the event(s) of {session} "
                             f"(record {record_id})"))
        return
    what = f"{len(events)} event(s) of" if events else "the session"
    click.echo(printable(f"forgot {what} {session} (record {record_id})"))
    if again:  # so that it does not read as a first forget
        note("it was forgotten whole already: this record also covers what other devices "
             "may still send of it")
    if removed:
        warn_removed(removed, "the record and what it erased stay")
    else:
        note("every node that receives the record erases the content it covers")

