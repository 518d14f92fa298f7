"""``clawsync status``: a node's health and, per peer, how replication stands."""

from __future__ import annotations

import math
import shlex
from typing import TYPE_CHECKING, Any

import click

from node.cli.common import field, maybe, rows, with_client
from node.cli.options import client_options, named_node
from node.cli.output import print_json, print_rows, printable, terminal_width
from node.command_lines import add_command

if TYPE_CHECKING:  # the commands get a client from with_client
    from node.client.api import Client


def _cell(value: Any, unit: str = "") -> str:
    return "-" if value is None else f"{value}{unit}"


def _device(peer: dict[str, Any]) -> str:
    """The peer's device: its name as ``clawsync devices`` shows it, else the first
    group of its id."""
    device_id = maybe(peer, "device_id", str)
    if device_id is None:
        return "-"
    from crdt.device import shown_name

    name = maybe(peer, "device_name", str)
    return shown_name(name) if name else device_id[:7]


#: The columns of the peer links' table; those whose cells may wrap on a terminal (free
#: text: the device's name, the state, the last contact, the version), the ids and
#: addresses staying whole; the peer's address, which goes on a line of its own over its
#: row's other cells where the table would not fit with it; and the columns left out, in
#: this order, on a terminal too narrow for all: the bytes out and in. Never the node's
#: id and the version, which say which node a peer is and what it runs (they were left
#: out first, and an 80-column terminal never showed them): a terminal with no room for
#: them gets the plain lines, which the terminal wraps.
PEER_HEADERS = ["peer", "dir", "device", "node", "state", "contact", "we lack", "peer lacks",
                "bytes in", "bytes out", "version"]
PEER_WRAPPED = (2, 4, 5, 10)
PEER_APART = 0
PEER_OPTIONAL = (9, 8)
#: The version ("0.3.0 (schema 1)") on one line where leaving out the bytes makes the
#: room (on 80 columns: the bytes in go), over two only where no table fits otherwise.
PEER_WRAPPED_LAST = (10,)


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
    return [_peer_row(peer) for peer in peers]


def link_state(state: str, retry_in_s: float | None) -> str:
    """A link's state as ``status`` (and the demo, and the console) words it.

    >>> link_state("backoff", 0.2), link_state("up", None)
    ('backoff (retry in 1s)', 'up')
    """
    # Rounded up: "retry in 0s" for a retry still to come reads as a stuck one.
    return state + (f" (retry in {math.ceil(retry_in_s)}s)" if retry_in_s else "")


def _peer_row(peer: dict[str, Any]) -> list[str]:
    state = field(peer, "state", str)
    retry_in_s = maybe(peer, "retry_in_s", float)
    return [
        maybe(peer, "url", str) or field(peer, "link", str), field(peer, "direction", str),
        _device(peer), _cell(maybe(peer, "node_id", str)),
        link_state(state, retry_in_s),
        seconds_ago(maybe(peer, "last_contact_s_ago", float)),
        *((_cell(maybe(peer, "events_we_lack", int)),
           _cell(maybe(peer, "events_peer_lacks", int)))
          if state == "up" else ("-", "-")),
        str(field(peer, "bytes_in", int)), str(field(peer, "bytes_out", int)), version(peer),
    ]


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
    return (f"node {field(view, 'node_id', str)} ({maybe(view, 'software', str) or '?'})  "
            f"head {field(view, 'head', int)}  peers {len(rows(view, 'peers'))}")


def held_off_lines(view: dict[str, Any]) -> list[str]:
    """The learned addresses held off after their failures, each with how much longer
    and how often it was forgotten (absent from older nodes' answers)."""
    held = rows(view, "held_off", absent_ok=True)
    lines = [f"{field(one, 'url', str)}: held off {math.ceil(field(one, 'held_off_s', float))}s "
             f"more (a peer lists it; forgotten {field(one, 'times_forgotten', int)}x after "
             "failing)" for one in held]
    total = maybe(view, "held_off_total", int)
    more = (len(held) if total is None else total) - len(held)
    if more > 0:
        lines.append(f"... and {more} more addresses held off (--json lists the first "
                     f"{len(held)})")
    return lines


def to_add_lines(device: dict[str, Any], node: str | None = None) -> list[str]:
    """The devices that dialed this node and wait to be added here (absent from older
    nodes), each with the command that adds it, on ``node`` (``--node``: None for the
    default). Their ids are as the dialers claim them (anyone reaching the node can
    claim one): the one to add is the id ``clawsync device`` shows on the new device.
    The dialer sends no name: NAME is yours to give.

    >>> to_add_lines({"to_add": [{"device_id": "KZDVVJ2-UMNDUYL", "address": "192.0.2.7",
    ...                           "last_seen_s_ago": 3.2}]})  # doctest: +NORMALIZE_WHITESPACE
    ['waiting to be added here (ids as the dialers claim them: check it on the device):',
     '  KZDVVJ2-UMNDUYL from 192.0.2.7, 3 s ago: clawsync devices add KZDVVJ2-UMNDUYL
     --name NAME']
    """
    waiting = rows(device, "to_add", absent_ok=True)
    if not waiting:
        return []
    lines = ["waiting to be added here (ids as the dialers claim them: check it on the "
             "device):"]
    for row in waiting:
        device_id = field(row, "device_id", str)
        lines.append(f"  {device_id} from {maybe(row, 'address', str) or '?'}, "
                     f"{seconds_ago(maybe(row, 'last_seen_s_ago', float))}: "
                     f"{add_command(device_id, node=node)}")
    return lines


def shared_names_line(device: dict[str, Any], node: str | None = None) -> str | None:
    """One line if members share names (``shared_names``, absent from older nodes): which
    names, and where the commands that rename them are; None if none do.

    >>> line = shared_names_line({"shared_names": [
    ...     {"name": "phone", "members": ["A", "B"]}, {"name": "pi", "members": ["C", "D", "E"]}]})
    >>> line.partition(": people")[0]
    "members share names: 'phone' (2 members), 'pi' (3)"
    >>> line.partition("; ")[2]
    '`clawsync devices` lists them, with the commands that rename them'
    >>> shared_names_line({"shared_names": []}) is None
    True
    """
    groups = rows(device, "shared_names", absent_ok=True)
    if not groups:
        return None
    from crdt.device import quoted_name

    said = [f"{quoted_name(field(group, 'name', str))} ({len(field(group, 'members', list))}"
            + (" members)" if number == 0 else ")") for number, group in enumerate(groups)]
    listing = "clawsync devices" + (f" --node {shlex.quote(node)}" if node else "")
    return (f"members share names: {', '.join(said)}: people cannot tell them apart; "
            f"`{listing}` lists them, with the commands that rename them")


def version(peer: dict[str, Any]) -> str:
    """What the peer runs, as its hello said; a node of 0.1 does not say."""
    software = maybe(peer, "software", str)
    if software is None:
        return "-" if field(peer, "state", str) != "up" else "0.1 or older"
    return f"{software} (schema {maybe(peer, 'schema', int)})"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the node's answer as JSON.")
@client_options
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show the node's id, version and head, this device (removed? waiting to be added?),
    the devices that dialed it waiting to be added here (the last 16, ids as claimed),
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
        print_json(view)
        return
    from crdt.device import shown_words

    click.echo(printable(headline(view)))
    device = maybe(view, "device", dict) or {}
    device_id = maybe(device, "device_id", str)
    if device_id:
        for line in device_lines(device_id, terminal_width()):
            click.echo(printable(line))
    # The node's sentences, which name members (``shown_name``) and quote a reason a
    # member wrote: shown as the console shows them, hidden characters too, never obeyed.
    removed_text = maybe(device, "removed_text", str)
    if removed_text:
        click.echo(printable(shown_words(f"REMOVED: this device was {removed_text}; no "
                                         "member links with it any more")))
    waiting = maybe(device, "waiting", list) or []
    for line in waiting:
        click.echo(printable(shown_words(str(line))))
    for line in to_add_lines(device, named_node(ctx)):
        click.echo(printable(line))
    for url in maybe(device, "own_peers", list) or []:  # absent from older nodes
        click.echo(printable(f"--peer {url} is this node's own address: it is not dialed"))
    shared = shared_names_line(device, named_node(ctx))
    if shared:
        click.echo(printable(shared))
    peers = rows(view, "peers")
    print_rows(peer_rows(peers), PEER_HEADERS, headed=True, whole=True,
               wrap=PEER_WRAPPED, optional=PEER_OPTIONAL, apart=PEER_APART,
               wrap_last=PEER_WRAPPED_LAST)
    # Other refusals than those said above: a removed device's peers refuse it with
    # the sentence of its REMOVED line.
    said = {*waiting, removed_text}
    for peer in peers:
        refused, url = maybe(peer, "refused", str), maybe(peer, "url", str)
        if refused and field(peer, "state", str) != "up" and refused not in said:
            click.echo(printable(shown_words(f"{url or field(peer, 'link', str)}: {refused}")))
        # Why a dial backs off (absent from older nodes).
        elif failure := maybe(peer, "failure", str):
            click.echo(printable(f"{url}: {failure}"))
    for line in held_off_lines(view):
        click.echo(printable(line))
