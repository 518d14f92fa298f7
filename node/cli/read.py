"""The ``clawsync`` commands that read from a node: events, sessions, projection, tail."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import click

from node.cli.common import (
    field,
    maybe,
    next_position,
    note,
    rows,
    unknown_session,
    with_client,
)
from node.cli.options import client_options, session_key, settings
from node.cli.output import (
    Pages,
    event_row,
    print_json,
    print_json_lines,
    print_lines,
    print_rows,
    printable,
    projection_lines,
)
from node.client.errors import ClientError
from node.text import time_text
from node.whole_numbers import WholeRange

if TYPE_CHECKING:  # the commands get a client from with_client
    from node.client.api import Client, StreamEvent

Fetch = Callable[[int | None], Awaitable[dict[str, Any]]]
#: What a command does with a page's items: prints them, and says whether it printed
#: any (a page of sessions whose every event was forgotten prints none).
Show = Callable[[list[dict[str, Any]]], bool]

def _after(help_text: str) -> Callable[[Any], Any]:
    """``--after N``, with what N counts in that command."""
    # Up to what the node takes: a larger N is the user's mistake (exit 2), told here; a
    # node refusing one it takes means past its newest (exit 1: ``STATE_REFUSALS``).
    return click.option("--after", type=WholeRange(min=0, max=2**63 - 1), metavar="N",
                        help=help_text)
_LIMIT = click.option("--limit", type=WholeRange(min=1), metavar="N",
                      help="How many per page, up to the node's page_max (1000 unless "
                           "configured). Default: the node's page size (100).")
#: The API's fields the paging options give: a node's refusal of one names the option. The
#: largest ``--limit`` is the node's configured ``page_max``, which only the node knows.
PAGE_OPTIONS = {"limit": "--limit", "after": "--after"}
_ALL = click.option("--all", "everything", is_flag=True,
                    help="Follow the pages to the end instead of stopping after one, "
                         "printing each as it comes, under one line of column names on "
                         "a terminal: a later page's columns line up with the first's "
                         "where its cells fit them.")
_JSON = click.option("--json", "as_json", is_flag=True,
                     help="Print JSON (one object per line) instead of text.")


async def follow_pages(fetch: Fetch, items: str, after: int | None, everything: bool,
                       show: Show) -> int | None:
    """Fetch one page, or every page with ``everything``, and ``show`` the items of each
    as it comes: a session of a million events is never held whole, and the first lines
    are out before the last page is asked for. Returns the position the next page
    starts after, None where no more follow. A page that fails after others were shown
    says first that what is above is cut short, and from where the rest follows."""
    shown = False
    while True:
        try:
            page = await fetch(after)
            found = rows(page, items)
            # Each item is checked before a line of the page is printed: one that fails
            # (an event whose kind is no object) leaves the page unprinted, and the rest
            # follow --after where it started.
            printed = show(found)
        except (ClientError, click.ClickException):
            if shown:  # lines above, each whole: the error says they are not all
                note(f"the {items} above are cut short by the error below: the rest "
                     f"follow --after {after}")
            raise
        shown = shown or printed
        if not page.get("more"):
            return None
        # With more to come, "next" must be a position past this page's start: a null
        # one left the list cut short in silence; one that does not move on would be
        # followed forever. Where the rest follow is then unknown: the note names none.
        try:
            following = next_position(page.get("next"), after)
        except click.ClickException:
            if shown:
                note(f"the {items} above are cut short by the error below")
            raise
        if not everything:
            return following
        after = following


def more_hint(following: int | None, noun: str) -> None:
    if following is not None:
        note(f"more {noun} after {following}: use --after {following} or --all")


@click.command()
@click.argument("session", callback=session_key)
@_after("Start after this event position, the first column of the output.")
@_LIMIT
@_ALL
@_JSON
@client_options
@click.pass_context
def events(ctx: click.Context, session: str, after: int | None, limit: int | None,
           everything: bool, as_json: bool) -> None:
    """List the events of SESSION in the node's order: position, time, kind and a short
    summary of each.

    \b
    Examples:
      clawsync events s1
      clawsync events s1 --limit 20     # then --after the last position shown
      clawsync events s1 --all --json > s1.jsonl
    """
    def fetch_with(client: Client) -> Fetch:
        return lambda start: client.events(session, after=start, limit=limit)

    count, pages = 0, Pages()

    def show(found: list[dict[str, Any]]) -> bool:
        nonlocal count
        if as_json:
            print_json_lines(found)
        else:
            # Whole positions and times: on a terminal too narrow for them, the plain
            # lines. A kind breaks before "(unknown kind)", a summary anywhere (a long
            # URL). The lines of a page are printed before the next is asked for: the
            # title and column names over the first, the later ones lined up with it
            # (``Pages``).
            print_rows([event_row(_kind_checked(event)) for event in found],
                       ["position", "time", "kind", "summary"],
                       title=session, whole=True, wrap=(2,), fold=(3,), pages=pages)
        count += len(found)
        return bool(found)

    following = with_client(
        ctx, lambda client: follow_pages(fetch_with(client), "events", after, everything,
                                         show), named=PAGE_OPTIONS, session_key=session)
    if not count and not as_json:
        note(f"no events in {session} after position {after or 0}")
    more_hint(following, "events")


def _kind_checked(event: dict[str, Any]) -> dict[str, Any]:
    """``event``, whose ``kind`` (if there) is checked to be an object before its row is
    made of it: an ``AnswerError`` if it is not, as for any other field of another type."""
    maybe(event, "kind", dict)
    return event


#: The fields of a ``clawsync sessions --json`` line, in this order, whatever the node's
#: version (README, "Reading a node"): a script can rely on them.
SESSION_FIELDS = ("index", "session_key", "state", "message_count", "event_count",
                  "last_activity", "channel", "agent_id", "forgotten")


def session_row(item: dict[str, Any]) -> dict[str, Any]:
    """A row of the node's session list (``detail=1``) as ``--json`` prints it: exactly
    ``SESSION_FIELDS``, null where the node did not say (an older node has no
    ``forgotten``), and none a newer node may add."""
    return {name: item.get(name) for name in SESSION_FIELDS}


#: The columns of plain ``clawsync sessions``: the key and what the console shows of it.
SESSION_HEADERS = ["index", "session", "state", "messages", "last activity"]


def session_cells(item: dict[str, Any]) -> list[str]:
    """A row of plain ``clawsync sessions``: empty where the node said nothing.

    >>> session_cells({"index": 3, "session_key": "tg:a", "state": "active",
    ...                "message_count": 2, "last_activity": "2026-12-01T10:00:59.999Z"})
    ['3', 'tg:a', 'active', '2', '2026-12-01 10:00:59Z']
    """
    count = item.get("message_count")
    return [str(item.get("index")), str(item.get("session_key")),
            str(item.get("state") or ""), "" if count is None else str(count),
            time_text(item.get("last_activity"))]


@click.command()
@_after("Start after this session index, the first column of the output.")
@_LIMIT
@_ALL
@_JSON
@click.option("--include-cluster", is_flag=True,
              help="List the cluster's own sessions too (clawsync:devices, "
                   "clawsync:origins: device, token and retired-origin records).")
@client_options
@click.pass_context
def sessions(ctx: click.Context, after: int | None, limit: int | None, everything: bool,
             as_json: bool, include_cluster: bool) -> None:
    """List the sessions the node knows, in the order it first heard of them; the
    cluster's own (clawsync:devices, clawsync:origins) are left out unless
    --include-cluster, and `clawsync events` or `projection` still reads them by their key.
    A session whose every event was forgotten (clawsync forget) is not shown either, and
    counted in a note; --json lists it, with "forgotten": true. Each --json line has the
    fields index, session_key, state, message_count, event_count, last_activity,
    channel, agent_id and forgotten, null where the node says nothing of one.

    \b
    Examples:
      clawsync sessions
      clawsync sessions --all --json | jq -r .session_key
      clawsync sessions --include-cluster
    """
    def fetch_with(client: Client) -> Fetch:
        return lambda start: client.sessions(after=start, limit=limit,
                                             include_cluster=include_cluster, detail=True)

    listed = hidden = 0
    pages = Pages()  # one header over every page, the later ones lined up with the first

    def show(found: list[dict[str, Any]]) -> bool:
        nonlocal listed, hidden
        listed += len(found)
        if as_json:
            print_json_lines([session_row(item) for item in found])
            return bool(found)
        shown = [item for item in found if not item.get("forgotten")]
        # Whole keys, which people copy into `events KEY`: one too long for the
        # terminal gets the plain lines, which the terminal wraps (a copy takes it whole).
        # What the console shows of each too; a narrow terminal's table leaves out the
        # last activity, then the count, then the state, never the key.
        print_rows([session_cells(item) for item in shown], SESSION_HEADERS,
                   whole=True, optional=(4, 3, 2), pages=pages)
        hidden += len(found) - len(shown)
        return bool(shown)

    following = with_client(
        ctx, lambda client: follow_pages(fetch_with(client), "sessions", after, everything,
                                         show), named=PAGE_OPTIONS)
    if hidden:
        note(f"{hidden} {'session' if hidden == 1 else 'sessions'} whose every event "
             "was forgotten not shown (--json lists them)")
    elif not listed and not as_json:
        note("no sessions")
    more_hint(following, "sessions")


@click.command()
@click.argument("session", callback=session_key)
@click.option("--json", "as_json", is_flag=True, help="Print the whole projection as JSON.")
@click.option("--url", "url_only", is_flag=True,
              help="Print only the session's automerge: URL (for automerge-repo clients).")
@click.option("--messages", "messages_max", type=WholeRange(min=0), default=10,
              show_default=True, metavar="N", help="How many of the last messages to show.")
@client_options
@click.pass_context
def projection(ctx: click.Context, session: str, as_json: bool, url_only: bool,
               messages_max: int) -> None:
    """Show the current state of SESSION: its state, channel, counts, last messages and
    custom state, as every node that has the same events computes it.

    \b
    Examples:
      clawsync projection s1
      clawsync projection s1 --json | jq .custom_state
      clawsync projection s1 --url
    """
    if as_json and url_only:
        raise click.UsageError("give --json or --url, not both")
    async def fetch(client: Client) -> dict[str, Any] | None:
        try:
            return await client.projection(session)
        except ClientError as error:
            if url_only and error.status == 404 and error.code == "not_found":
                return None  # its URL is known before its first event: see below
            raise

    view = with_client(ctx, fetch, session_key=session)
    if view is None:
        # Imported here: automerge loads slowly, and no other command needs it.
        from crdt.automerge.layout import automerge_url

        note(f"no session {session!r} on the node yet: an automerge-repo client may find "
             "this URL now; the document fills once the session's first event is stored")
        click.echo(automerge_url(session))
    elif url_only:
        click.echo(printable(str(view.get("automerge_url") or "")))
    elif as_json:
        print_json(view)
    else:
        print_lines(projection_lines(view, messages_max))


async def say_if_missing(client: Client, key: str) -> None:
    """Say once that the node holds no session ``key`` (a typo follows in silence
    otherwise), with the keys close to it as the other commands name them, and keep
    following: its first event may come later."""
    try:
        await client.events(key, limit=1)
    except ClientError as error:
        if error.status != 404 or error.code is None:  # not the node's "no such session"
            raise
        hint = await unknown_session(client, key)
        note(f"there is no session {key!r} on the node yet: waiting for its first event"
             + (f"; {hint}" if hint else ""))


@click.command()
@_after("Start after this event position (the first column of the output) instead "
        "of at the newest event.")
@click.option("--session", "session_key", metavar="KEY", callback=session_key,
              help="Show only this session.")
@_JSON
@client_options
@click.pass_context
def tail(ctx: click.Context, after: int | None, session_key: str | None,
         as_json: bool) -> None:
    """Follow the node's events live and print each as it arrives (all sessions unless
    --session). Starts at the newest event unless --after is given; a dropped connection
    is reopened where it left off. Stop with Ctrl-C.

    \b
    Examples:
      clawsync tail
      clawsync tail --session s1
      clawsync tail --after 0 --json     # everything so far, then live
    """
    node = settings(ctx).node

    def show(item: StreamEvent) -> None:
        event = item.event if "position" in item.event else {
            **item.event, "position": item.position}
        if session_key is not None and event.get("session_key") != session_key:
            return
        if as_json:
            print_json_lines([event])
            return
        position, moment, key, kind, text = event_row(_kind_checked(event), with_session=True)
        # click.echo drops the colour when stdout is not a terminal.
        click.echo(f"{click.style(position, dim=True)}  {moment}  {key}  "
                   f"{click.style(kind, fg='cyan')}  {text}")

    opened = False  # a first stream refused (a node that is stopping) is no reconnection

    def news(what: str, position: int, reason: str | None) -> None:
        nonlocal opened
        if what == "open":
            opened = True
            note(f"following {node} after position {position} (Ctrl-C to stop)")
        elif what == "lost":
            again = "reconnecting" if opened else f"waiting for {node} to follow"
            note(f"{reason}; {again} after position {position}")
        elif what == "full":
            # Tail's own words: the node's ("try again later") are for a person, and
            # tail asks again by itself.
            taken = ("this address's live streams at the node are all taken ([limits] "
                     "streams_per_address_max)" if reason == "too_many_streams" else
                     "the node's live streams are all taken ([limits] streams_max)")
            note(f"{taken}: asking again by itself until one is free, to follow after "
                 f"position {position}")
        else:
            note(f"reconnected; following after position {position}")

    async def follow(client: Client) -> None:
        start = after if after is not None else field(await client.health(), "head", int)
        if session_key is not None:
            await say_if_missing(client, session_key)
        async for item in client.stream(start, on_news=news):
            show(item)

    with_client(ctx, follow)  # until Ctrl-C: ended by SIGINT, as every command (README)
