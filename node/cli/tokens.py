"""``clawsync tokens``: the Automerge app tokens the cluster's devices issued, ``clawsync
tokens create`` to issue one on this device, ``clawsync tokens revoke ID`` (for good)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from node.cli.common import listing, node_answers, note, with_client
from node.cli.options import client_options
from node.cli.output import minute, print_rows, printable, prints_table, when
from node.client.errors import ClientError

if TYPE_CHECKING:  # the commands get a client from with_client
    from node.client.api import Client


#: The columns of ``clawsync tokens``, and those whose cells may wrap on a terminal: the
#: free text (name, patterns, issuer, state, a time in it whole). The id, which `tokens
#: revoke` takes, the access and the time issued stay on one line.
HEADERS = ["id", "name", "sessions", "access", "issuer", "issued", "state"]
WRAPPED = (1, 2, 4, 6)
#: The columns the table leaves out on a terminal too narrow for all, first the time
#: issued, then the issuer: an 80-column terminal has the rest, whole.
OPTIONAL = (5, 4)


def token_rows(rows: list[dict[str, Any]], devices: dict[str, Any] | None = None, *,
               short: bool = True) -> list[list[str]]:
    """One row per token. ``short``, for the table: the issuing device by the first group
    of its id, as `clawsync status` names a peer's (the whole id took 63 of a terminal's
    columns), the times to the minute; else, for the plain lines scripts read, its whole
    id (which `devices remove` takes), and its name where ``devices`` (``GET
    /v1/devices``) knows it, the times whole."""
    time = minute if short else when
    return [[
        row["id"], row["name"], " ".join(row["sessions"]),
        "read-only" if row["read_only"] else "read-write",
        (row["device_id"][:7] if short else _issuer(row["device_id"], devices or {}))
        if row["device_id"] else f"origin {row['origin']}",
        time(row["issued_at"]),
        f"revoked {time(row['revoked_at'])}" if row["revoked_at"]
        else row.get("state", "valid"),
    ] for row in rows]


def _issuer(device_id: str, devices: dict[str, Any]) -> str:
    """``ID (name)``, ``ID (this device)``, or the id alone, as `devices` says who."""
    names = {row["device_id"]: row["name"] for key in ("members", "removed")
             for row in devices.get(key, []) if row.get("name")}
    who = "this device" if device_id == devices.get("device_id") else names.get(device_id)
    return f"{device_id} ({who})" if who else device_id


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print the node's answer as JSON.")
@client_options
@click.pass_context
@node_answers
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
    async def fetch(client: Client) -> dict[str, Any]:
        view = await client.tokens()
        # --json prints the node's answer as it came; the names of the devices that
        # issued the tokens are for the plain lines alone (the table has no room).
        if as_json or not any(row["device_id"] for row in view["tokens"]) \
                or prints_table(token_rows(view["tokens"]), HEADERS, whole=True,
                                wrap=WRAPPED, optional=OPTIONAL):
            return view
        try:
            return {**view, "devices": await client.devices()}
        except ClientError as error:  # a timeout, a 5xx: the tokens are what was asked
            note(f"the issuing devices by id alone, without their names: {error}")
            return view

    view = listing(ctx, as_json, fetch)
    if view is None:
        return
    print_rows(token_rows(view["tokens"]), HEADERS, headed=True, whole=True, wrap=WRAPPED,
               optional=OPTIONAL,
               plain=token_rows(view["tokens"], view.get("devices"), short=False))
    if not view["tokens"]:
        note("no tokens issued (clawsync tokens create --sessions PATTERN)")


@tokens.command()
@click.option("--sessions", "sessions", multiple=True, required=True, metavar="PATTERN",
              help="Sessions the token opens (fnmatch: 'tg:*', '*' for all); repeat for more.")
@click.option("--read-only", is_flag=True, help="The app may read, not change, them.")
@click.option("--name", metavar="NAME", help="What the token is for (default: app).")
@click.option("--json", "as_json", is_flag=True, help="Print the node's answer as JSON.")
@client_options
@click.pass_context
@node_answers
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
    async def run(client: Client) -> dict[str, Any]:
        return await client.create_token(list(sessions), read_only=read_only, name=name)

    answer = with_client(ctx, run)
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    click.echo(printable(answer["token"]))
    note(f"token {answer['id']} ({answer['name']}): shown once; keep it secret. "
         "Apps connect to ws://NODE/automerge?token=TOKEN")


@tokens.command()
@click.argument("token_id", metavar="ID")
@client_options
@click.pass_context
@node_answers
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
        before = next((row for row in (await client.tokens())["tokens"]
                       if row["id"] == token_id), None)
        return before, await client.revoke_token(token_id)

    before, row = with_client(ctx, run)
    before = before or {}
    if before.get("revoked_at"):
        click.echo(printable(f"token {row['id']} ({row['name']}) was already revoked "
                             f"{before['revoked_at']}"))
    elif before.get("state", "valid") != "valid":
        click.echo(printable(f"token {row['id']} ({row['name']}) was already refused "
                             f"({before['state']}); now revoked too"))
    else:
        click.echo(printable(f"token {row['id']} ({row['name']}) revoked"))
