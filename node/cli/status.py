"""``clawsync status``: a node's health and, per peer, how replication stands."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import click

from node.cli.common import node_answers, with_client
from node.cli.options import client_options
from node.cli.output import print_rows, printable, terminal_width

if TYPE_CHECKING:  # the commands get a client from with_client
    from node.client.api import Client


def _cell(value: Any, unit: str = "") -> str:
    return "-" if value is None else f"{value}{unit}"


def _device(peer: dict[str, Any]) -> str:
    """The peer's device: its name, else the first group of its id."""
    if peer.get("device_id") is None:
        return "-"
    return str(peer.get("device_name") or peer["device_id"][:7])


#: The columns of the peer links' table; those whose cells may wrap on a terminal (free
#: text: the device's name, the state, the version), the ids and addresses staying whole;
#: and those it leaves out, in this order, on a terminal too narrow for all: the node's
#: id (the device names the peer), the version, the bytes out and in.
PEER_HEADERS = ["peer", "dir", "device", "node", "state", "contact", "we lack", "peer lacks",
                "bytes in", "bytes out", "version"]
PEER_WRAPPED = (2, 4, 10)
PEER_OPTIONAL = (3, 10, 9, 8)


def device_lines(device_id: str, width: int | None) -> list[str]:
    """``device ID`` on one line, or, on a terminal narrower than that, the id on a line
    of its own: the terminal would break it at its edge, and a line holding the id
    alone copies as the id, which ``devices add`` takes.

    >>> device_lines("KZDVVJ2-UMNDUYL", None)
    ['device KZDVVJ2-UMNDUYL']
    >>> device_lines("KZDVVJ2-UMNDUYL", 20)
    ['device', 'KZDVVJ2-UMNDUYL']
    """
    line = f"device {device_id}"
    return [line] if width is None or len(line) <= width else ["device", device_id]


def peer_rows(peers: list[dict[str, Any]]) -> list[list[str]]:
    """One row per link. What each side lacks is known only on a link that is up: on
    another, the counts are as of its last contact, so "-" instead of stale figures."""
    return [[
        peer["url"] or peer["link"], peer["direction"], _device(peer), _cell(peer["node_id"]),
        # Rounded up: "retry in 0s" for a retry still to come reads as a stuck one.
        peer["state"] + (f" (retry in {math.ceil(peer['retry_in_s'])}s)"
                         if peer.get("retry_in_s") else ""),
        seconds_ago(peer["last_contact_s_ago"]),
        *((_cell(peer["events_we_lack"]), _cell(peer["events_peer_lacks"]))
          if peer["state"] == "up" else ("-", "-")),
        str(peer["bytes_in"]), str(peer["bytes_out"]), version(peer),
    ] for peer in peers]


def seconds_ago(seconds: float | None) -> str:
    """How long ago, as the console says it: whole seconds, then minutes, hours, days.

    >>> [seconds_ago(s) for s in (None, 0.4, 582.248, 1.927, 7200, 200000)]
    ['-', 'just now', '10 min ago', '2 s ago', '2 h ago', '2 days ago']
    """
    if seconds is None:
        return "-"
    for below, unit, size in ((1, "", 1), (90, "s", 1), (5400, "min", 60),
                              (129600, "h", 3600)):
        if seconds < below:
            return f"{_round(seconds / size)} {unit} ago" if unit else "just now"
    return f"{_round(seconds / 86400)} days ago"


def _round(value: float) -> int:
    """Halves up, as the console's ``Math.round`` (Python's ``round`` takes 2.5 to 2)."""
    return math.floor(value + 0.5)


def headline(view: dict[str, Any]) -> str:
    """The node, its head and how many peer links it has."""
    return (f"node {view['node_id']} ({view.get('software', '?')})  head {view['head']}  "
            f"peers {len(view['peers'])}")


def held_off_lines(view: dict[str, Any]) -> list[str]:
    """The learned addresses held off after their failures, each with how much longer
    and how often it was forgotten (absent from older nodes' answers)."""
    held = view.get("held_off") or []
    lines = [f"{one['url']}: held off {math.ceil(one['held_off_s'])}s more (a peer lists it; "
             f"forgotten {one['times_forgotten']}x after failing)" for one in held]
    more = view.get("held_off_total", len(held)) - len(held)
    if more > 0:
        lines.append(f"... and {more} more addresses held off (--json lists the first "
                     f"{len(held)})")
    return lines


def version(peer: dict[str, Any]) -> str:
    """What the peer runs, as its hello said; a node of 0.1 does not say."""
    if peer.get("software") is None:
        return "-" if peer["state"] != "up" else "0.1 or older"
    return f"{peer['software']} (schema {peer['schema']})"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the node's answer as JSON.")
@client_options
@click.pass_context
@node_answers
def status(ctx: click.Context, as_json: bool) -> None:
    """Show the node's id, version and head, this device (removed? waiting to be added?),
    and per peer: its device, state, last contact, how many events each side still lacks,
    bytes in and out, what it runs; and the learned addresses held off after their
    failures, for how long still.

    \b
    Examples:
      clawsync status
      clawsync --node http://home-server:7878 --token "$TOKEN" status --json
    """
    async def fetch(client: Client) -> dict[str, Any]:
        return {**await client.health(), **await client.peers()}

    view = with_client(ctx, fetch)
    if as_json:
        click.echo(json.dumps(view, indent=2))
        return
    click.echo(printable(headline(view)))
    device = view.get("device") or {}
    if device.get("device_id"):
        for line in device_lines(device["device_id"], terminal_width()):
            click.echo(printable(line))
    if device.get("removed_text"):  # a reason a member wrote: shown, never obeyed
        click.echo(printable(f"REMOVED: this device was {device['removed_text']}; no "
                             "member links with it any more"))
    for waiting in device.get("waiting", []):
        click.echo(printable(waiting))
    for url in device.get("own_peers", []):  # absent from older nodes
        click.echo(printable(f"--peer {url} is this node's own address: it is not dialed"))
    print_rows(peer_rows(view["peers"]), PEER_HEADERS, headed=True, whole=True,
               wrap=PEER_WRAPPED, optional=PEER_OPTIONAL)
    for peer in view["peers"]:  # other refusals than the waiting said above
        if peer.get("refused") and peer["state"] != "up" \
                and peer["refused"] not in device.get("waiting", []):
            click.echo(printable(f"{peer['url'] or peer['link']}: {peer['refused']}"))
        elif peer.get("failure"):  # why a dial backs off (absent from older nodes)
            click.echo(printable(f"{peer['url']}: {peer['failure']}"))
    for line in held_off_lines(view):
        click.echo(printable(line))
