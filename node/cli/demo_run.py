"""What ``clawsync demo`` does once it runs (``node.cli.demo`` declares it, without
loading any of this: rich, the HTTP client): three nodes on this machine, a network
partition, and the merge.

The demo starts three ``clawsync serve`` processes on free loopback ports, with their data
in a temporary folder: A (a home server, the hub), B (a laptop) and C (a phone). B and C
dial A through links this process can cut (``node.cli.demo_cluster`` starts and stops
them all). It starts a session on A, cuts both links, writes to that session on B and on
C while they cannot reach each other, heals the links, and shows every node arriving at
the same merged session.

Every node is stopped, and its data deleted, when the demo ends, fails (the logs are
kept then) or is interrupted; with ``--keep`` the nodes stay up until Ctrl-C. Ctrl-C, or
SIGTERM or SIGHUP before the nodes are kept, ends the demo by that signal once the nodes
are stopped (as for every command: a script running it stops too); SIGTERM or SIGHUP
stops kept nodes with exit 0, as a service manager's stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table

from node.cli.demo_cluster import Cluster, DemoFailed, DemoNode, port_refusal
from node.cli.output import console as terminal_console
from node.cli.status import link_state
from node.client.api import Client, ClientError
from node.interrupt import die_of

SESSION = "demo:alice"
#: Seconds a node may take to answer /healthz after starting (imports, opening the log).
START_TIMEOUT_S = 30.0
#: Seconds to wait for links to go up or down, or for the nodes to agree. A node that
#: lost its link redials with back-off (about 1 s, doubling), so a heal takes seconds.
WAIT_TIMEOUT_S = 60.0
#: Pause between looks at the nodes while waiting.
POLL_INTERVAL_S = 0.1

#: Written on A before the partition: it reaches every node.
OPENING: list[dict[str, Any]] = [
    {"type": "session_started", "channel": "telegram", "peer_id": "alice"},
    {"type": "message_received", "content": "Hi! Plan my weekend in Lyon, please."},
]
#: Written while B and C are cut off, alternating, so the merge interleaves them.
DURING_SPLIT: list[tuple[str, dict[str, Any]]] = [
    ("B", {"type": "message_received", "content": "Book the train for Friday."}),
    ("C", {"type": "message_received", "content": "And a hotel near the station."}),
    ("B", {"type": "agent_response", "content": "Train booked: Fri 08:04, coach 12.",
           "model": "demo"}),
    ("C", {"type": "agent_response", "content": "Hotel booked: 2 nights, 4th floor.",
           "model": "demo"}),
]


def invoked_as() -> str:
    """This command as the user can type it again, for the commands the demo suggests:
    ``clawsync`` when the shell finds this one by that name; else the path it was run
    by (``.venv/bin/clawsync`` with the venv not activated, as in the README); else, run
    as ``python -m node.main``, that."""
    started = Path(sys.argv[0])
    if started.name == "clawsync":
        found = shutil.which("clawsync")
        if found is not None and Path(found).resolve() == started.resolve():
            return "clawsync"
        return shlex.quote(sys.argv[0])
    return f"{shlex.quote(sys.executable)} -m node.main"


class Demo:
    """The story, told on ``console`` against a started ``Cluster``."""

    def __init__(self, console: Console, cluster: Cluster, keep: bool) -> None:
        self.out = console
        self.cluster = cluster
        self.keep = keep
        self.clients: dict[str, Client] = {}

    async def run(self) -> None:
        async with AsyncExitStack() as stack:
            for name, each in self.cluster.nodes.items():
                self.clients[name] = await stack.enter_async_context(Client(each.url))
            await self.story()

    async def story(self) -> None:
        a, b, c = self.cluster.a, self.cluster.b, self.cluster.c
        self.step("1. Three nodes")
        await self.wait_started()
        for each in (a, b, c):
            via = f"dials A via a link at :{each.link.port}" if each.link else "the hub"
            self.out.print(f"  [bold]{each.label:<12}[/] {each.url}  {via}", soft_wrap=True)
        await self.wait_links(up=True)
        self.out.print("  B and C are linked to A; they know nothing of each other.")

        self.step(f"2. Alice starts session {SESSION!r} on A")
        await self.clients["A"].append(SESSION, [_event(kind) for kind in OPENING])
        await self.converge(len(OPENING), "replicating")
        self.out.print("  Every node has the opening events.")

        self.step("3. Partition: the links B-A and C-A are cut")
        for link in self.cluster.links:
            link.cut()
        await self.wait_links(up=False)
        self.out.print("  B and C can reach neither A nor each other. Both keep accepting writes:")
        for name, kind in DURING_SPLIT:
            await self.clients[name].append(SESSION, [_event(kind)])
            self.out.print(f"  wrote on {name}: [cyan]{escape(kind['content'])}[/]",
                           soft_wrap=True)
        self.out.print("\n  What each node sees now:")
        for each in (a, b, c):
            await self.show_messages(each)

        self.step("4. The links heal")
        for link in self.cluster.links:
            link.heal()
        started = time.monotonic()
        await self.converge(len(OPENING) + len(DURING_SPLIT), "converging")
        self.out.print(f"  All three nodes agree, {time.monotonic() - started:.1f} s after "
                       "the heal.")

        self.step("5. The merged session")
        await self.show_merged()
        await self.show_summary()
        if self.keep:
            await self.wait_for_ctrl_c()

    # -- waiting ------------------------------------------------------------------------

    def step(self, title: str) -> None:
        self.out.print()
        self.out.rule(f"[bold]{title}", align="left")

    def check_alive(self) -> None:
        for each in self.cluster.nodes.values():
            each.check_alive()

    async def wait_started(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        with self.out.status("Starting three nodes..."):
            for name, each in self.cluster.nodes.items():
                while True:
                    self.check_alive()
                    try:
                        each.node_id = (await self.clients[name].health())["node_id"]
                        break
                    except ClientError as error:
                        _check_deadline(deadline, f"{each.label} did not start ({error})")
                    await asyncio.sleep(POLL_INTERVAL_S)

    async def wait_links(self, up: bool) -> None:
        """Until B and C each have their link to A up (or none up), and A sees both."""
        what = "links to come up" if up else "links to drop"
        deadline = time.monotonic() + WAIT_TIMEOUT_S
        with self.out.status(f"Waiting for the {what}..."):
            while True:
                self.check_alive()
                states = {name: await self.links_up(name) for name in self.cluster.nodes}
                wanted = {"A": 2, "B": 1, "C": 1} if up else {"A": 0, "B": 0, "C": 0}
                if states == wanted:
                    return
                _check_deadline(deadline, f"timed out waiting for the {what}: {states}")
                await asyncio.sleep(POLL_INTERVAL_S)

    async def links_up(self, name: str) -> int:
        return sum(peer["state"] == "up" for peer in (await self.clients[name].peers())["peers"])

    async def converge(self, events_total: int, title: str) -> None:
        """Show each node's progress until all hold ``events_total`` events of the session
        and the same projection."""
        deadline = time.monotonic() + WAIT_TIMEOUT_S
        columns = (SpinnerColumn(), TextColumn("{task.description:<12}"), BarColumn(),
                   TextColumn("{task.completed:.0f}/{task.total:.0f} events"),
                   TextColumn("[dim]{task.fields[link]}"))
        with Progress(*columns, console=self.out) as progress:
            tasks = {name: progress.add_task(f"{each.label}", total=events_total, link="")
                     for name, each in self.cluster.nodes.items()}
            while True:
                self.check_alive()
                views = {name: await self.projection(name) for name in self.cluster.nodes}
                for name, view in views.items():
                    progress.update(tasks[name], completed=view.get("event_count", 0),
                                    link=await self.link_text(name))
                first = views["A"]
                if first.get("event_count") == events_total and \
                        all(view == first for view in views.values()):
                    return
                counts = {name: view.get("event_count", 0) for name, view in views.items()}
                _check_deadline(deadline, f"the nodes did not converge ({title}): {counts}")
                await asyncio.sleep(POLL_INTERVAL_S)

    async def projection(self, name: str) -> dict[str, Any]:
        try:
            return await self.clients[name].projection(SESSION)
        except ClientError as error:
            if error.status == 404:
                return {}  # the session has not reached this node yet
            raise

    async def link_text(self, name: str) -> str:
        peers = (await self.clients[name].peers())["peers"]
        if name == "A":
            return f"{sum(p['state'] == 'up' for p in peers)} of 2 links up"
        texts = [link_state(p["state"], p.get("retry_in_s")) for p in peers]
        return "link to A: " + (", ".join(texts) or "none")

    async def wait_for_ctrl_c(self) -> None:
        self.out.print("\n[bold]The nodes keep running[/] (with their links) until Ctrl-C:")
        for each in self.cluster.nodes.values():
            self.out.print(f"  {each.label:<12} {each.url}", soft_wrap=True)
        # The command's path and the folder (under TMPDIR) are the user's: escaped, as
        # rich reads what it prints as markup ("[/x]" in a path stopped the demo).
        b, me = self.cluster.b.url, escape(invoked_as())
        self.out.print(f"\n  {me} --node {b} projection {SESSION}\n"
                       f"  {me} --node {b} append {SESSION} message_received "
                       "content=hello\n"
                       f"  {me} --node {self.cluster.a.url} status\n"
                       f"\n  Logs and data: {escape(str(self.cluster.folder))} (deleted when "
                       "they stop)",
                       soft_wrap=True)
        self.out.print("Press Ctrl-C to stop the nodes.")
        self.cluster.keeping = True
        await asyncio.Event().wait()

    # -- showing ------------------------------------------------------------------------

    async def show_messages(self, each: DemoNode) -> None:
        messages = (await self.projection(each.name)).get("messages", [])
        self.out.print(f"  [bold]{each.label}[/] sees {len(messages)} message(s):")
        for message in messages:
            self.out.print(f"      {message['role']:<9} {escape(message['content'])}",
                           soft_wrap=True)

    async def show_merged(self) -> None:
        view = await self.projection("A")
        page = await self.clients["A"].events(SESSION, limit=1000)
        origin = {event["id"]: event["origin"] for event in page["events"]}
        names = {each.node_id: each.name for each in self.cluster.nodes.values()}
        written = [kind["content"] for kind in OPENING if "content" in kind]
        written += [kind["content"] for _name, kind in DURING_SPLIT]
        contents = [message["content"] for message in view["messages"]]
        if sorted(contents) != sorted(written):
            raise DemoFailed(f"the merged messages are not the ones written: {contents}")
        self.out.print(f"  {len(contents)} messages in event order (timestamp, id), each "
                       "once, on every node:")
        for number, message in enumerate(view["messages"], 1):
            # The clock to the millisecond, not the commands' one style (to the
            # second): the messages of one demo are ordered within a second or two.
            at = message["timestamp"][11:23]
            by = names.get(origin.get(message["id"], ""), "?")
            self.out.print(f"  {number}. {at}  from {by}  {message['role']:<9} "
                           f"{escape(message['content'])}", soft_wrap=True)

    async def show_summary(self) -> None:
        reference = await self.projection("A")
        table = Table("node", "head", "session events", "same projection", "node id",
                      title="Per node", title_justify="left")
        for name, each in self.cluster.nodes.items():
            view = await self.projection(name)
            head = (await self.clients[name].health())["head"]
            same = "yes" if view == reference else "[red]no[/]"
            table.add_row(each.label, str(head), str(view.get("event_count", 0)), same,
                          each.node_id)
        self.out.print()
        self.out.print(table)


def _event(kind: dict[str, Any]) -> dict[str, Any]:
    return {"agent_id": "main", "kind": kind}


def _check_deadline(deadline: float, message: str) -> None:
    if time.monotonic() > deadline:
        raise DemoFailed(message)


#: Signals that stop the demo as Ctrl-C does: a kill, and its terminal closing. The
#: nodes are in process groups of their own (``DemoNode.start``), so they hear neither:
#: without this, a closed terminal would leave them running.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


@contextmanager
def _stops_as_ctrl_c() -> Iterator[list[int]]:
    """``STOP_SIGNALS`` stop the demo as Ctrl-C does, so the nodes are stopped either
    way. A demo started in the background of a script has SIGINT ignored (inherited),
    which would make that a no-op: Ctrl-C's handler is put back for the demo's time (so
    Ctrl-C in that script's terminal stops it too). Yields the list of the
    ``STOP_SIGNALS`` received (empty after a plain Ctrl-C)."""
    stopped_by: list[int] = []
    interrupt = signal.getsignal(signal.SIGINT)
    if interrupt is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def stop(number: int, _frame: Any) -> None:
        stopped_by.append(number)
        signal.raise_signal(signal.SIGINT)

    previous = {number: signal.signal(number, stop) for number in STOP_SIGNALS}
    try:
        yield stopped_by
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        signal.signal(signal.SIGINT, interrupt)


def run_demo(keep: bool, port: int | None = None) -> None:
    """``clawsync demo``: start the cluster (on ``port`` and the two after it, if given),
    tell the story, stop every node; ``keep``: wait for Ctrl-C (or SIGTERM, SIGHUP)
    before stopping them."""
    # As wide as the terminal, TERM=dumb too, as the other commands' tables (``console``).
    console = terminal_console(highlight=False)
    if port is not None and (refusal := port_refusal(port)) is not None:
        raise click.ClickException(refusal)  # before anything starts or a folder is made
    folder = Path(tempfile.mkdtemp(prefix="clawsync-demo-"))
    cluster = Cluster(folder)
    failed = False
    ended_by: int | None = None
    with _stops_as_ctrl_c() as stopped_by:
        try:
            cluster.start(port)
            asyncio.run(Demo(console, cluster, keep).run())
        except KeyboardInterrupt:
            # A closed terminal cannot be written to (EIO): the nodes stop all the same.
            with contextlib.suppress(OSError):
                console.print("\nStopping the nodes." if cluster.keeping else "\nInterrupted.")
            # SIGTERM or a closed terminal is how a kept demo is stopped from outside, as
            # a service is: 0 once it is kept. Otherwise the demo dies of what stopped it
            # (Ctrl-C: SIGINT, as every command), so a script running it stops too.
            if not (cluster.keeping and stopped_by):
                ended_by = stopped_by[0] if stopped_by else signal.SIGINT
        except (DemoFailed, ClientError) as error:
            failed = True
            raise click.ClickException(f"{error}\n(node logs are in {folder})") from None
        finally:
            cluster.stop()
            if not failed:
                shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        console.print("\nAll nodes stopped.")
    if ended_by is not None:
        die_of(ended_by)
