"""``clawsync devices``: the cluster's devices (``crdt.membership``); ``devices add`` and
``devices remove``. ``clawsync device`` (singular) shows this device's own id."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from node.cli.common import field, listing, maybe, note, rows, with_client, written
from node.cli.options import client_options, named_node
from node.cli.output import print_rows, printable
from node.client.errors import ClientError, shown_address
from node.command_lines import add_command
from node.text import counted, time_text

if TYPE_CHECKING:  # the commands get a client from with_client
    from node.client.api import Client


def _who(device_id: str, names: dict[str, str], own: str) -> str:
    """A device id for people: its name, if known, and ``this device``."""
    if device_id == own:
        return "this device"
    return names.get(device_id) or device_id[:7]


def device_rows(view: dict[str, Any]) -> list[list[str]]:
    """One row per device, members first: id, name, state, address, by whom and when
    (``node.text.time_text``; ``--json`` keeps the node's times). Names are shown with
    their invisible characters escaped (``shown_name``).

    >>> view = {"device_id": "A", "members": [
    ...     {"device_id": "A", "name": "phone\\u3164", "name_shared_with": ["B"]},
    ...     {"device_id": "B", "name": "phone", "name_shared_with": ["A"]}], "removed": []}
    >>> print("\\n".join(row[1] for row in device_rows(view)))
    phone\\u3164 (this device) (name shared)
    phone (name shared)
    """
    from crdt.device import shown_name

    own = field(view, "device_id", str)
    members, removed = rows(view, "members"), rows(view, "removed")
    names = {field(row, "device_id", str): shown_name(name) for row in members + removed
             if (name := maybe(row, "name", str))}

    def member(row: dict[str, Any]) -> list[str]:
        device_id, added_at = field(row, "device_id", str), maybe(row, "added_at", str)
        shared = " (name shared)" if maybe(row, "name_shared_with", list) else ""
        this = " (this device)" if device_id == own else ""
        return [device_id, shown_name(field(row, "name", str)) + this + shared,
                "member", maybe(row, "address", str) or "-",
                f"added by {_who(field(row, 'added_by', str), names, own)}, {time_text(added_at)}"
                if added_at else "-"]

    def gone(row: dict[str, Any]) -> list[str]:
        reason = maybe(row, "reason", str)
        return [field(row, "device_id", str), shown_name(maybe(row, "name", str) or "-"),
                "removed", "-",
                f"removed by {_who(field(row, 'removed_by', str), names, own)}, "
                f"{time_text(field(row, 'removed_at', str))}" + (f": {reason}" if reason else "")]

    def linked(row: dict[str, Any]) -> list[str]:
        via = maybe(row, "via", str)
        return [field(row, "device_id", str), shown_name(maybe(row, "name", str) or "-"),
                "linked", maybe(row, "address", str) or "-",
                f"by {_VIA.get(via or '', via)}, not a member"]

    return ([member(row) for row in members] + [gone(row) for row in removed]
            + [linked(row) for row in rows(view, "linked", absent_ok=True)])  # older: none


#: What links a device that is no member (``GET /v1/devices``'s ``linked``).
_VIA = {"cluster_secret": "the cluster secret", "certificate": "a CA certificate",
        "peer_address": "a --peer address", "device_key": "its key"}


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print the node's answer as JSON.")
@client_options
@click.pass_context
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
    print_rows(device_rows(view), ["device", "name", "state", "address", "since"],
               headed=True, whole=True, wrap=(1, 4), apart=0)
    members = len(rows(view, "members"))
    linked = len(rows(view, "linked", absent_ok=True))
    note(f"{counted(members, 'member')}, {len(rows(view, 'removed'))} removed"
         + (f", {linked} linked but no member{'' if linked == 1 else 's'} "
            "(`clawsync devices add` makes one a member)" if linked else ""))
    for line in shared_name_lines(view, named_node(ctx)):
        note(line)


def shared_name_lines(view: dict[str, Any], node: str | None = None) -> list[str]:
    """Per name members share (``name_shared_with``, absent from older nodes), what to do
    about it: the commands that rename each of them, on ``node`` (``--node``). Only ids
    (``parse_device_id``) go into a command to be pasted into a shell.

    >>> a, b = ("KZDVVJ2-UMNDUYL-AUF35O3-6K6KW4U-62MUJVR-A46TN3R-UQGZOVM-IHOCGAL",
    ...         "NI4AHVP-QLGICU5-HDNV66J-XJDSSIA-JPPSVMB-BRUZQ5A-OO2ZHKK-PQHATQR")
    >>> view = {"members": [{"device_id": a, "name": "phone", "name_shared_with": [b]},
    ...                     {"device_id": b, "name": "Phone", "name_shared_with": [a]}]}
    >>> for line in shared_name_lines(view):
    ...     print(line.replace(a, "A").replace(b, "B"))  # doctest: +NORMALIZE_WHITESPACE
    2 members share the name 'phone' (people cannot tell them apart): rename all but one
      clawsync devices add A --name NEW
      clawsync devices add B --name NEW
    """
    from crdt.device import parse_device_id, quoted_name
    from crdt.errors import InvalidInput

    members = rows(view, "members")
    names = {field(row, "device_id", str): quoted_name(field(row, "name", str))
             for row in members}
    lines: list[str] = []
    seen: set[str] = set()
    for row in members:
        device_id = field(row, "device_id", str)
        others = [other for other in maybe(row, "name_shared_with", list) or []
                  if isinstance(other, str) and other in names]
        if not others or device_id in seen:
            continue
        group = [device_id, *others]
        seen.update(group)
        lines.append(f"{len(group)} members share the name {names[device_id]} (people "
                     "cannot tell them apart): rename all but one")
        for member in group:
            try:
                command = add_command(parse_device_id(member, "member"), "NEW", node)
            except InvalidInput:
                command = f"{member[:7]}: not a device id"  # the node's word, not pasted
            lines.append(f"  {command}")
    return lines


@devices.command()
@click.argument("device_id", metavar="ID")
@click.option("--name", required=True, metavar="NAME", help="The device's name for people.")
@click.option("--address", metavar="URL", callback=lambda _ctx, _param, value:
              _checked_address(value), help="Where the device's node can be reached "
              "(http:// or https://), if it can be.")
@click.option("--no-address", is_flag=True,
              help="Clear the address a member has: peers stop dialing it there.")
@client_options
@click.pass_context
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

    async def run(client: Client) -> tuple[list[dict[str, Any]], dict[str, Any],
                                           list[dict[str, Any]], dict[str, Any]]:
        # The members before, so that a rename or a new address is called so, not "added".
        members = rows(await client.devices(), "members")
        try:
            answer = await client.add_device(device_id, name, address,
                                             clear_address=no_address)
        except ClientError as error:
            raise _with_rename(error, named_node(ctx)) from None
        status = await _status(client)
        # Those it shares its name with, listed again: one added since the list above
        # (by another node) is among them.
        device = answer.get("device")
        if not isinstance(device, dict) or not device.get("name_shared_with"):
            return members, answer, members, status
        try:
            return members, answer, rows(await client.devices(), "members"), status
        except ClientError:  # added all the same: the commands from the answer and the list above
            return members, answer, members, status

    members, answer, now, status = with_client(ctx, run)
    with written(f"the node accepted the device {device_id}"):
        said = _added(members, answer)
        shared = shared_name_lines(_sharing(now, answer), named_node(ctx))
        added = field(field(answer, "device", dict), "device_id", str)
    click.echo(printable(said))
    if address is not None:  # once taken: a refused add's error stands alone
        _warn_listening(address)
    for line in shared:
        note(line)
    _warn_waiting(status, added)


async def _status(client: Client) -> dict[str, Any]:
    """This device's status (``GET /v1/peers``'s ``device``); empty where it cannot be
    read."""
    try:
        device = (await client.peers()).get("device")
    except ClientError:
        return {}  # added all the same: a token that may write but not read the status
    return device if isinstance(device, dict) else {}


def _warn_waiting(status: dict[str, Any], added: str) -> None:
    """The warning after an add, run on a new device, of the member that refuses it as
    waiting to be added (its id in the status's ``waiting_on``; a node without that
    field says nothing): the steps done the wrong way round. The record is written (two
    devices may add each other before they link), but it does not let this device in.
    The line said is the status's own about that member, which names it by its id."""
    from crdt.device import shown_words

    if added not in (maybe(status, "waiting_on", list) or []):
        return
    lines = [line for line in maybe(status, "waiting", list) or []
             if isinstance(line, str) and added in line]
    told = lines[0] if lines else f"waiting to be added on {added}"
    note(shown_words(f"warning: this device is itself {told}: adding that member here "
                     "does not let this device in"))


def _checked_address(address: str | None) -> str | None:
    """``--address``, or a usage error if its host name is one no lookup takes
    (``host_name_problem``, as ``--node``'s), before any node is asked: the node refuses
    it too (400, in the same words), as it does the rest; an address it would refuse
    without showing it (a password in it) is left to the node whole."""
    from crdt.addresses import unshown_refusal
    from node.checks import host_name_problem

    if address is None or unshown_refusal(address) is not None:
        return address
    problem = host_name_problem(address)
    if problem is not None:
        raise click.BadParameter(f"{shown_address(address)} {problem}")
    return address


def _warn_listening(address: str) -> None:
    """A warning for an ``--address`` of ``0.0.0.0`` or ``::`` (as ``serve`` warns of
    such a ``--peer``): every node dials a member's address, and dialing that one reaches
    the dialer's own machine. Warned of, not refused: an address that worked so (both
    nodes on one machine) must go on being taken. Said once the node took the add: a
    refused one, or one that reached no node, has its error alone."""
    from crdt.addresses import listening_only
    from node.checks import LISTENING_ONLY, give_instead

    if listening_only(address):
        give = give_instead("the device's")
        note(f"Warning: --address {address} is {LISTENING_ONLY} (a node dialing it reaches "
             f"its own machine): give {give}")


def _with_rename(error: ClientError, node: str | None) -> ClientError:
    """A refusal of a name another member has (``name_taken``) with the command that
    renames that member, on the node this command was given (``--node``); other errors
    as they are. The member is the node's word: only a device id (``parse_device_id``)
    goes into a command to be pasted into a shell.

    >>> member = "KZDVVJ2-UMNDUYL-AUF35O3-6K6KW4U-62MUJVR-A46TN3R-UQGZOVM-IHOCGAL"
    >>> said = _with_rename(ClientError("the node refused: 'phone' is taken", status=409,
    ...                                 code="name_taken", details={"member": member}),
    ...                     "http://laptop:7878")
    >>> str(said).partition("; ")[2].replace(member, "ID")
    'to rename that member: clawsync devices add ID --name NEW --node http://laptop:7878'
    >>> said.status, said.code
    (409, 'name_taken')
    >>> str(_with_rename(ClientError("taken", status=409, code="name_taken",
    ...                              details={"member": "x; rm -rf ~"}), None))
    'taken'
    """
    from crdt.device import parse_device_id
    from crdt.errors import InvalidInput

    member = error.details.get("member")
    if error.code != "name_taken":
        return error
    try:
        member = parse_device_id(member, "member")
    except InvalidInput:
        return error  # not a device id: no command made of it
    return error.with_hint(f"to rename that member: {add_command(member, 'NEW', node)}")


def _sharing(members: list[dict[str, Any]], answer: dict[str, Any]) -> dict[str, Any]:
    """The device ``devices add`` answered (a name kept on a new address stays shared:
    ``name_shared_with``, absent from older nodes) and the members it shares its name
    with, as listed after the add, for ``shared_name_lines``: in the order of their ids,
    so that the group goes by its first member's name, as ``clawsync devices`` and
    ``clawsync status`` name it.

    >>> after = [{"device_id": "A", "name": "phone"}, {"device_id": "C", "name": "pi"}]
    >>> answer = {"device": {"device_id": "B", "name": "Phone", "name_shared_with": ["A"]}}
    >>> [row["name"] for row in _sharing(after, answer)["members"]]
    ['phone', 'Phone']

    A member the list does not hold (the list before the add, where the second failed,
    and another node's record came in between) is still one of them, by the name it
    shares:

    >>> [(row["device_id"], row["name"]) for row in _sharing([], answer)["members"]]
    [('A', 'Phone'), ('B', 'Phone')]
    """
    device = field(answer, "device", dict)
    others = [other for other in maybe(device, "name_shared_with", list) or []
              if isinstance(other, str)]
    listed = {maybe(row, "device_id", str): row for row in members}
    group = [maybe(device, "device_id", str), *others]

    def unlisted(other: str) -> dict[str, Any]:
        return {"device_id": other, "name": maybe(device, "name", str),
                "name_shared_with": [member for member in group if member != other]}

    return {"members": sorted(
        [device, *(listed.get(other) or unlisted(other) for other in others)],
        key=lambda row: str(maybe(row, "device_id", str)))}


def _added(members: list[dict[str, Any]], answer: dict[str, Any]) -> str:
    """What ``devices add`` did, by the members before and the node's answer."""
    from crdt.device import shown_name

    device = field(answer, "device", dict)
    device_id, name = field(device, "device_id", str), field(device, "name", str)
    was = next((row for row in members if maybe(row, "device_id", str) == device_id), None)
    # Names are anyone's text (the old one comes from the node): escaped, as in the tables
    # (``shown_name``; ``printable`` then, for control characters).
    shown = f"{device_id} ({shown_name(name)})"
    if not field(answer, "created", bool):
        return f"is a member already: {shown}"
    if was is None:
        return f"added {shown}"
    old = maybe(was, "name", str)
    if old != name:
        return f"renamed {device_id} ({shown_name(old or '-')} -> {shown_name(name)})"
    return f"updated {shown}: address {maybe(device, 'address', str) or 'none'}"


@devices.command()
@click.argument("device_id", metavar="ID")
@click.option("--reason", default="", metavar="TEXT", help="Why, kept in the record.")
@client_options
@click.pass_context
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
    from crdt.device import shown_name

    async def run(client: Client) -> dict[str, Any]:
        return await client.remove_device(device_id, reason)

    answer = with_client(ctx, run)
    with written(f"the node accepted the removal of {device_id}"):
        device = field(answer, "device", dict)
        created = field(answer, "created", bool)
        name = maybe(device, "name", str)
        said = ("removed" if created else "was removed already:") + \
            f" {field(device, 'device_id', str)}" + (f" ({shown_name(name)})" if name else "")
    click.echo(printable(said))
    if created:  # (a removal said again writes nothing new)
        note("every node that receives the removal refuses what this device writes from "
             "now on, and the tokens it issued (clawsync tokens)")
