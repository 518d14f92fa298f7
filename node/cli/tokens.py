"""``clawsync tokens``: the Automerge app tokens the cluster's devices issued, ``clawsync
tokens create`` to issue one on this device, ``clawsync tokens revoke ID`` (for good)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from node.cli.common import AnswerError, field, listing, maybe, note, rows, with_client, written
from node.cli.options import client_options
from node.cli.output import print_json, print_rows, printable, prints_table
from node.client.errors import ClientError
from node.text import time_text

if TYPE_CHECKING:  # the commands get a client from with_client
    from node.client.api import Client


#: The columns of ``clawsync tokens``, and those whose cells may wrap on a terminal: the
#: free text (name, patterns, issuer, state, a time in it whole). The id, which `tokens
#: revoke` takes, the access and the time issued stay on one line.
HEADERS = ["id", "name", "sessions", "access", "issuer", "issued", "state"]
WRAPPED = (1, 2, 4, 6)
#: The patterns, never broken: they are separated by spaces, so a piece of one would
#: read as another (a ``*`` as every session). Side by side where they fit, else one a
#: line; the time issued is left out before that (a token's scope matters more than
#: when it was issued), the issuer after.
PATTERNS = (2,)
#: The columns the table leaves out on a terminal too narrow for all, first the time
#: issued, then the issuer (README, "Tokens issued by a device", gives the widths)...
OPTIONAL = (5, 4)
#: ... the issuer only where the patterns one a line leave no room for it either: they
#: hide nothing, its absence does.
ISSUER_KEPT = (4,)


def token_rows(rows: list[dict[str, Any]], names: dict[str, str] | None = None, *,
               short: bool = True) -> list[list[str]]:
    """One row per token. ``short``, for the table: the issuing device by the first group
    of its id, as `clawsync status` names a peer's (the whole id took 63 of a terminal's
    columns); else, for the plain lines scripts read, its whole id (which `devices
    remove` takes), and its name where ``names`` (``issuer_names`` of ``GET
    /v1/devices``'s answer) knows it. The access: in the plain lines ``read-only`` or
    ``read-write``, not a word a reader could take for more or less than it is ("write"
    for write-only); in the table ``ro`` or ``rw``, as a mount's options say it, no
    wider than its header (the words took 4 more columns, and 80 then lost the issuer
    too). The times as every table and line gives them (``node.text.time_text``;
    ``--json`` keeps the node's)."""
    known = {} if short or names is None else names  # the table has no room for names
    return [_token_row(row, known, short) for row in rows]


def issuer_names(devices: Any) -> dict[str, str]:
    """Who each device is, by id, as ``devices`` (``GET /v1/devices``'s answer) says:
    its name, or "this device" for the node's own. Read as every answer is (``maybe``,
    ``rows``): anything but an object with lists of device objects is an
    ``AnswerError``, not a traceback, nor, for an empty one, no names in silence."""
    this = maybe(devices, "device_id", str)
    names = {field(row, "device_id", str): maybe(row, "name", str)
             for key in ("members", "removed") for row in rows(devices, key, absent_ok=True)}
    known = {device_id: name for device_id, name in names.items() if name}
    return {**known, this: "this device"} if this else known


def _token_row(row: dict[str, Any], names: dict[str, str], short: bool) -> list[str]:
    device_id, revoked_at = maybe(row, "device_id", str), maybe(row, "revoked_at", str)
    return [
        field(row, "id", str), field(row, "name", str),
        " ".join(str(pattern) for pattern in field(row, "sessions", list)),
        _access(field(row, "read_only", bool), short),
        (device_id[:7] if short else _issuer(device_id, names))
        if device_id else f"origin {maybe(row, 'origin', str)}",
        time_text(field(row, "issued_at", str)),
        f"revoked {time_text(revoked_at)}" if revoked_at else maybe(row, "state", str) or "valid",
    ]


def _access(read_only: bool, short: bool) -> str:
    if short:
        return "ro" if read_only else "rw"
    return "read-only" if read_only else "read-write"


def _issuer(device_id: str, names: dict[str, str]) -> str:
    """``ID (name)``, ``ID (this device)``, or the id alone, as `devices` says who."""
    who = names.get(device_id)
    return f"{device_id} ({who})" if who else device_id


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print the node's answer as JSON.")
@client_options
@click.pass_context
def tokens(ctx: click.Context, as_json: bool) -> None:
    """List the tokens Automerge apps connect with (ws://NODE/automerge?token=...) that
    any device of the cluster issued: id, name, session patterns, read-only, which
    device issued it and when, and its state: valid, revoked, or "issuer removed" (the
    device that issued it was removed, which revokes its tokens). Every node accepts
    the valid ones.

    \b
    Examples:
      clawsync tokens
      clawsync tokens create --sessions 'tg:*' --read-only --name dashboard
      clawsync tokens revoke 3f9c0a1b2c3d4e5f
    """
    # The names of the devices that issued the tokens, as GET /v1/devices's answer says:
    # kept apart from the node's answer (--json prints that as it came), and asked for
    # the plain lines alone (the table has no room for the names).
    names: dict[str, str] = {}

    async def fetch(client: Client) -> dict[str, Any]:
        nonlocal names
        view = await client.tokens()
        if as_json or not any(maybe(row, "device_id", str) for row in rows(view, "tokens")) \
                or prints_table(token_rows(rows(view, "tokens")), HEADERS, whole=True,
                                wrap=WRAPPED, optional=OPTIONAL, wrap_last=PATTERNS,
                                wrap_before=ISSUER_KEPT):
            return view
        # A timeout, a 5xx, an answer that is not a list of devices: the tokens are
        # what was asked, shown with their issuers' ids alone.
        try:
            # Read once, here, so that a malformed answer is said so before any line.
            names = issuer_names(await client.devices())
        except (ClientError, AnswerError) as error:
            note(f"the issuing devices by id alone, without their names: {error}")
        return view

    view = listing(ctx, as_json, fetch)
    if view is None:
        return
    listed = rows(view, "tokens")
    print_rows(token_rows(listed), HEADERS, headed=True, whole=True, wrap=WRAPPED,
               optional=OPTIONAL, wrap_last=PATTERNS, one_per_line=PATTERNS,
               wrap_before=ISSUER_KEPT,
               plain=token_rows(listed, names, short=False))
    if not listed:
        note("no tokens issued (clawsync tokens create --sessions PATTERN)")


#: What an issued token does not do on a node started without ``--token`` (README,
#: "Automerge clients").
OPEN_API_WARNING = (
    "warning: the node runs without --token: the token limits the app that presents it, "
    "but any local client may connect to /automerge without one, and /v1 (forgets "
    "included) is open to every local client; start the node with --token to make "
    "tokens limit access")


async def api_open(client: Client, answer: Any) -> bool:
    """Whether the node answers its API without a token: it was started without
    ``--token``. A new token's ``answer`` says so (``node_token_required``); a node older
    than that field is asked, without the token this command may carry (a node without
    ``--token`` takes any): on a node with ``--token`` that request is refused, 401."""
    from node.client.api import Client

    required = answer.get("node_token_required") if isinstance(answer, dict) else None
    if isinstance(required, bool):
        return not required
    if client.token is None:
        return True  # it just answered this command without one
    async with Client(client.base_url, limits=client.limits) as bare:
        try:
            await bare.node()
        except ClientError:
            return False  # 401: the API needs the node's token
    return True


@tokens.command()
@click.option("--sessions", "sessions", multiple=True, required=True, metavar="PATTERN",
              help="Sessions the token opens (fnmatch: 'tg:*', '*' for all); repeat for more.")
@click.option("--read-only", is_flag=True, help="The app may read, not change, them.")
@click.option("--name", metavar="NAME", help="What the token is for (default: app).")
@click.option("--json", "as_json", is_flag=True, help="Print the node's answer as JSON.")
@client_options
@click.pass_context
def create(ctx: click.Context, sessions: tuple[str, ...], read_only: bool,
           name: str | None, as_json: bool) -> None:
    """Issue a token on this device; it prints the secret this once (the nodes keep
    only its SHA-256). The record replicates, so every node of the cluster accepts it.

    \b
    Examples:
      clawsync tokens create --sessions 'tg:*' --read-only --name dashboard
      clawsync tokens create --sessions 'tg:alice' --sessions 'web:*' --name notes
      TOKEN=$(clawsync tokens create --sessions '*' --name sync-app)
    """
    async def run(client: Client) -> tuple[dict[str, Any], bool]:
        answer = await client.create_token(list(sessions), read_only=read_only, name=name)
        return answer, await api_open(client, answer)

    answer, open_api = with_client(ctx, run)
    if as_json:
        print_json(answer)
    else:
        with written("the node issued a token"):
            secret, token_id = field(answer, "token", str), field(answer, "id", str)
            name = field(answer, "name", str)
        click.echo(printable(secret))
        note(f"token {token_id} ({name}): shown once; keep it secret. "
             "Apps connect to ws://NODE/automerge?token=TOKEN")
    # After the token: an answer that cannot be read ends with its one error line.
    if open_api:
        note(OPEN_API_WARNING)


@tokens.command()
@click.argument("token_id", metavar="ID")
@client_options
@click.pass_context
def revoke(ctx: click.Context, token_id: str) -> None:
    """Revoke token ID on every node, for good: apps connected with it are disconnected
    as the revocation reaches their node. ID is the first column of `clawsync tokens`.

    \b
    Examples:
      clawsync tokens revoke 3f9c0a1b2c3d4e5f
    """
    token_id = token_id.strip().lower()  # ids are lowercase hex; people copy them as seen

    async def run(client: Client) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        # The API answers a repeated revocation as the first (DELETE is idempotent); the
        # listing before it tells people which of the two this was.
        before = next((row for row in rows(await client.tokens(), "tokens")
                       if field(row, "id", str) == token_id), None)
        return before, await client.revoke_token(token_id)

    before, answer = with_client(ctx, run)
    before = before or {}
    with written(f"the node accepted the revocation of token {token_id}"):
        shown = f"token {field(answer, 'id', str)} ({field(answer, 'name', str)})"
        revoked_at, state = maybe(before, "revoked_at", str), maybe(before, "state", str)
    if revoked_at:
        click.echo(printable(f"{shown} was already revoked {time_text(revoked_at)}"))
    elif (state or "valid") != "valid":
        click.echo(printable(f"{shown} was already refused ({state}); now revoked too"))
    else:
        click.echo(printable(f"{shown} revoked"))
