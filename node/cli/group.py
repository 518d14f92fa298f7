"""The ``clawsync`` command group and its client commands (``node.main`` adds ``serve``).

The group knows each command by name and by the first sentence of its help, and imports
the command's module only when that command (or its help) is asked for: the commands
need the HTTP client, the crypto libraries, Automerge, rich...; ``clawsync --help`` needs
none of them, and a command needs only its own. So this module imports click and
nothing else of weight, and what the group's own options need (``node.config``, which
loads the crypto libraries) is imported when a command runs.

Exit codes (README, "Exit codes"): 0 success, 1 the node could not be reached or refused
the request, 2 a usage error (or input the node refused as malformed); Ctrl-C: death by
SIGINT (a shell shows 130).

>>> from click.testing import CliRunner
>>> result = CliRunner().invoke(main, ["append", "s1", "no_such_kind"])
>>> result.exit_code, "message_received" in result.output
(2, True)
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from node.cli import interrupted

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

#: ``node.config.NODE_DEFAULT``, which ``--help`` shows without loading ``node.config``
#: (tests/node/cli/test_loading.py holds the two together).
NODE_DEFAULT = "http://127.0.0.1:7878"


@dataclass(frozen=True)
class Lazy:
    """A command the group lists before it is loaded: where it is defined
    (``module:name``) and the first sentence of its help, all that ``--help`` shows of
    it (click shortens it to the terminal's width as it would the whole help)."""

    where: str
    summary: str

    def load(self) -> click.Command:
        module, _colon, name = self.where.partition(":")
        command = getattr(importlib.import_module(module), name)
        assert isinstance(command, click.Command), self.where
        return command


def _parsed_in_context(command: click.Command) -> None:
    """``command`` (and a group's subcommands) with its parse errors tied to its context.

    click raises an option given without its value ("Option '--session' requires an
    argument.") with no context, so it shows no usage lines, though every other usage
    error does (README, "Exit codes"): the context it was read in is given to it here."""
    if getattr(command, "_parsed_in_context", False):
        return
    parse = command.parse_args

    def parse_args(ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return parse(ctx, args)
        except click.UsageError as error:
            if error.ctx is None:
                error.ctx = ctx
            raise

    command.parse_args = parse_args  # type: ignore[method-assign]
    command._parsed_in_context = True  # type: ignore[attr-defined]
    for sub in getattr(command, "commands", {}).values():
        _parsed_in_context(sub)


class _Commands(click.Group):
    """The group, with one answer to Ctrl-C for every command it runs, whenever it comes:
    ``interrupted``, then death by SIGINT (a shell shows 130 and stops a script running
    the command). Left to click, Ctrl-C prints "Aborted!" and exits with 1, the code of a
    node that refused: a script could not tell the two apart, nor stop. What Ctrl-C
    interrupts was written whole or not at all (events and cursors are stored in
    transactions), so there is nothing to undo here. Commands that run until stopped
    (tail, openclaw watch) stop this way too. serve and demo stop their nodes first and
    end by SIGINT themselves; they exit 0 when stopped from outside as a service is:
    serve and demo --keep by SIGTERM or SIGHUP (its terminal closing).

    Its commands are ``Lazy`` until asked for (click's "lazy loading subcommands"): a
    Ctrl-C while one loads ends as any other, whether a command line or the shell's
    completion asked for it; a command name typed wrong is answered with the names it
    is close to, as click does, and the shell completes command names from the
    summaries, without loading a command."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, Lazy] = {}

    def add_lazy_command(self, name: str, where: str, summary: str) -> None:
        """List command ``name``, defined at ``where`` (``module:name``), loaded when
        asked for."""
        self.lazy[name] = Lazy(where, summary)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.commands.keys() | self.lazy.keys())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            # Here, not only in invoke: the shell's completion loads a command too.
            try:
                command = self.lazy[cmd_name].load()
            except KeyboardInterrupt:
                interrupted()
            self.add_command(command, cmd_name)
        found = super().get_command(ctx, cmd_name)
        if found is not None:
            _parsed_in_context(found)
        return found

    def resolve_command(self, ctx: click.Context,
                        args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as error:
            # click (8.4 on) suggests the names close to a wrong one from the commands
            # loaded, none yet here: suggest from every name listed.
            no_such = getattr(click.exceptions, "NoSuchCommand", None)
            if no_such is None or not isinstance(error, no_such):
                raise
            raise no_such(error.command_name, possibilities=self.list_commands(ctx),
                          ctx=error.ctx) from None

    def _listed(self) -> dict[str, click.Command]:
        """Every command, as listed: the loaded ones, and stand-ins holding the
        summaries of the others (what click shows of them is the same, and nothing is
        loaded for them)."""
        stand_ins: dict[str, click.Command] = {
            name: click.Command(name, help=lazy.summary) for name, lazy in self.lazy.items()}
        return {**stand_ins, **self.commands}

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        click.Group(self.name, commands=self._listed()).format_commands(ctx, formatter)

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        # The command names, as click completes them, from the listing: click would load
        # every command for its short help (half a second). A command's own options and
        # arguments are completed by that command, loaded, as click does.
        from click.shell_completion import CompletionItem

        listed = self._listed()
        names = [CompletionItem(name, help=listed[name].get_short_help_str())
                 for name in self.list_commands(ctx)
                 if name.startswith(incomplete) and not listed[name].hidden]
        return names + click.Command.shell_complete(self, ctx, incomplete)

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        # Reading the command line (the options' callbacks run here) is before invoke.
        try:
            return super().make_context(info_name, args, parent, **extra)
        except KeyboardInterrupt:
            interrupted()

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            interrupted()


def _version(ctx: click.Context, _param: click.Parameter, shown: bool) -> None:
    """``--version``, as ``click.version_option`` prints it, with the version read only
    when asked for."""
    if not shown or ctx.resilient_parsing:
        return
    from node.config import software_version  # when asked: not for --help

    click.echo(f"{ctx.find_root().info_name} {software_version()}")
    ctx.exit()


@click.group(cls=_Commands, context_settings=_CONTEXT)
@click.option("--node", "node", envvar="CLAWSYNC_NODE", default=NODE_DEFAULT,
              show_default=True, metavar="URL", show_envvar=True,
              help="The node the client commands talk to.")
@click.option("--token", envvar="CLAWSYNC_TOKEN", metavar="TOKEN", show_envvar=True,
              help="Bearer token of that node, if it has one.")
@click.option("--version", is_flag=True, expose_value=False, is_eager=True,
              callback=_version, help="Show the version and exit.")
@click.pass_context
def main(ctx: click.Context, node: str, token: str | None) -> None:
    """clawsync: keep an AI agent's session histories in sync across devices.

    Each device runs a node (`clawsync serve`); the other commands read from and write
    to a node over its HTTP API.

    \b
    Examples:
      clawsync serve --data-dir ~/.clawsync
      clawsync append s1 message_received content=hello
      clawsync events s1
      clawsync --node http://phone.local:7878 --token "$TOKEN" sessions
    """
    from node.cli.options import Typed

    # Checked and made Settings when a command first needs them (``options.settings``),
    # not here nor in a callback: checking loads ``node.config``, and with it the crypto
    # libraries, which a command's --help (shown after this runs) needs none of; and a
    # command's own --node or --token overrides these unchecked.
    ctx.obj = Typed(node=node, token=token or None)


# The group's own options too (``--node`` given no value): its class keeps click's parsing.
_parsed_in_context(main)

# Each command: where it is defined and the first sentence of its help, which
# tests/node/cli/test_loading.py holds to the command's own.
main.add_lazy_command("append", "node.cli.append:append",
                      "Append an event to SESSION, or import events from a file.")
main.add_lazy_command("demo", "node.cli.demo:demo",
                      "See replication heal a partition, on this machine, in seconds.")
main.add_lazy_command("device", "node.cli.device:device",
                      "Show this device's id and name.")
main.add_lazy_command("devices", "node.cli.devices:devices",
                      "List the cluster's devices: the members, the devices removed for good, "
                      "and the devices linked now that are no members (by the cluster secret, a "
                      "certificate, or, while pairing, a --peer address; the state column says "
                      "which).")
main.add_lazy_command("events", "node.cli.read:events",
                      "List the events of SESSION in the node's order: position, time, kind and "
                      "a short summary of each.")
main.add_lazy_command("forget", "node.cli.forget:forget",
                      "Forget SESSION, or only the events given with --event, on every node.")
main.add_lazy_command("openclaw", "node.cli.openclaw:openclaw",
                      "Sync OpenClaw's sessions: import or follow an OpenClaw state folder into "
                      "a node, and export a session back for OpenClaw.")
main.add_lazy_command("origins", "node.cli.origins:origins",
                      "List the origins the node knows: highest seq held, events, last activity, "
                      "and whether each is active (in the version vector every hello carries) or "
                      "retired.")
main.add_lazy_command("projection", "node.cli.read:projection",
                      "Show the current state of SESSION: its state, channel, counts, last "
                      "messages and custom state, as every node that has the same events "
                      "computes it.")
main.add_lazy_command("sessions", "node.cli.read:sessions",
                      "List the sessions the node knows, in the order it first heard of them; "
                      "the cluster's own (clawsync:devices, clawsync:origins) are left out "
                      "unless --include-cluster, and `clawsync events` or `projection` still "
                      "reads them by their key.")
main.add_lazy_command("status", "node.cli.status:status",
                      "Show the node's id, version and head, this device (removed? waiting to be "
                      "added?), the devices that dialed it waiting to be added here (the last "
                      "16, ids as claimed), and per peer: its device, state, last contact, how "
                      "many events each side still lacks, bytes in and out, what it runs; and "
                      "the learned addresses held off after their failures, for how long "
                      "still.")
main.add_lazy_command("tail", "node.cli.read:tail",
                      "Follow the node's events live and print each as it arrives (all sessions "
                      "unless --session).")
main.add_lazy_command("tokens", "node.cli.tokens:tokens",
                      "List the tokens Automerge apps connect with "
                      "(ws://NODE/automerge?token=...) that any device of the cluster issued: "
                      "id, name, session patterns, read-only, which device issued it and when, "
                      'and its state: valid, revoked, or "issuer removed" (the device that '
                      "issued it was removed, which revokes its tokens).")
