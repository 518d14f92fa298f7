"""Every example command line of every ``--help`` (the lines people copy) parses as the
command it shows, and runs against a real node where it can: an example that rots with
a renamed option or a changed argument fails here.

An example is an indented line of a help's text, before its options, whose command is
``clawsync`` (after any ``VAR=value``), with its continuation lines (``\\``). Each is run
by bash as written, ``clawsync`` being this checkout's command pointed at the test's node
(an example's own ``--node`` address is that node too). The examples that need what a
test node cannot be (a peer, an OpenClaw state folder, another data folder, an id shown
as ``...`` or one the node does not hold) or that run until stopped are only parsed."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from node.main import main
from tests.support.commands import commands
from tests.support.processes import CLI_TIMEOUT_S, NodeProcess, child_env

pytestmark = pytest.mark.integration

#: The start of an example: ``clawsync ...``, ``VAR=value clawsync ...``, ``VAR=$(clawsync``.
_EXAMPLE = re.compile(r"(?:\w+=\S*\s+)*(?:\w+=\$\()?clawsync\b")
#: A command substitution inside an example: its own command line.
_SUBSTITUTION = re.compile(r"\$\((clawsync[^)]*)\)")
#: Commands that run until stopped or start nodes of their own, and the OpenClaw commands,
#: which read a state folder.
_NOT_RUN = {"serve", "demo", "tail", "openclaw"}
#: A value an example shows cut short (``--event 3f9c...e1``), refused while parsing.
SHORTENED = re.compile(r"[0-9a-f]+\.\.\.[0-9a-f]+")
#: Ids the examples show that the test's node does not hold.
_MADE_UP = ("...", "3f9c0a1b2c3d4e5f", "45533c84642daaab", "--data-dir")


def examples() -> Iterator[str]:
    """Each example line of every command's --help (once), continuation lines joined."""
    seen: set[str] = set()
    for path in [(), *commands(main)]:
        text = CliRunner().invoke(main, [*path, "--help"], prog_name="clawsync",
                                  env={"COLUMNS": "80"}).output
        lines = iter(text.split("\nOptions:")[0].splitlines())
        for line in lines:
            if not line.startswith("    ") or not _EXAMPLE.match(line.strip()):
                continue
            example = line.strip()
            while example.endswith("\\"):
                example = example[:-1] + next(lines).strip()
            if example not in seen:
                seen.add(example)
                yield example


def command_lines(example: str) -> list[list[str]]:
    """The ``clawsync`` command lines of ``example`` (of a pipeline, a substitution),
    each without the word ``clawsync``."""
    inner = [match.group(1) for match in _SUBSTITUTION.finditer(example)]
    words = shlex.split(_SUBSTITUTION.sub("SUBSTITUTED", example), comments=True)
    found, current = [], []
    for word in [*words, "|"]:
        if word in ("|", ">", "&&", ";"):
            while current and re.fullmatch(r"\w+=.*", current[0]):  # VAR=value first
                current.pop(0)
            if current[:1] == ["clawsync"]:
                found.append(current[1:])
            current = []
        else:
            current.append(word)
    return found + [line for text in inner for line in command_lines(text)]


def parse(args: list[str]) -> tuple[str, ...]:
    """The command ``clawsync ARGS`` names (``("tokens", "create")``), its arguments and
    options parsed as click would (a usage error raises); nothing is run. A path option
    naming a file or folder this machine lacks (``--data-dir /var/lib/clawsync``) is
    taken as written: the example shows another machine's; so is a value cut short
    (``--event 3f9c...e1``), which stands for a real one."""
    ctx, rest = group_context(main, "clawsync", list(args), None)
    command: click.Command = main
    path: tuple[str, ...] = ()
    while isinstance(command, click.Group) and rest:
        name, found, rest = command.resolve_command(ctx, rest)
        assert found is not None and name is not None, args
        command, path = found, (*path, name)
        try:
            if isinstance(command, click.Group):
                ctx, rest = group_context(command, name, rest, ctx)
            else:
                ctx, rest = command.make_context(name, rest, parent=ctx), []
        except click.BadParameter as error:
            if isinstance(error, click.MissingParameter) or error.param is None \
                    or not (isinstance(error.param.type, click.Path | click.File)
                            or any(SHORTENED.fullmatch(arg) for arg in args)):
                raise
            return path
    return path


def group_context(group: click.Group, name: str, args: list[str],
                  parent: click.Context | None) -> tuple[click.Context, list[str]]:
    """``group.make_context(name, args, parent=parent)`` and the words after the
    group's own options: its subcommand and that one's arguments. ``make_context``
    keeps the subcommand's name apart, in ``ctx.protected_args`` up to click 8.1 and in
    a private attribute since (the property is deprecated, and click 9 drops it); the
    base class's public ``parse_args`` parses the group's options as the group does
    and returns every word after them."""
    # The group's parse_args is click's, which the base class's does plus the split:
    # a group of this project's own parsing its words otherwise fails here, not quietly.
    assert type(group).parse_args is click.Group.parse_args, group
    ctx = group.context_class(group, info_name=name, parent=parent, **group.context_settings)
    with ctx.scope(cleanup=False):
        rest = click.Command.parse_args(group, ctx, args)
    return ctx, rest


def runnable(example: str) -> bool:
    commands = {parse(args)[:1] for args in command_lines(example)}
    if "jq" in example and shutil.which("jq") is None:
        return False
    return not {name for (name, *_) in commands} & _NOT_RUN \
        and not any(word in example for word in _MADE_UP)


@pytest.fixture(scope="module")
def example_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """A node holding the sessions the examples name, and the file one appends."""
    folder = tmp_path_factory.mktemp("examples")
    (folder / "export.json").write_text(json.dumps(
        [{"session_key": "s1", "agent_id": "main",
          "kind": {"type": "message_received", "content": "hi"}}]))
    with NodeProcess(folder) as node:
        for session in ("s1", "tg:alice"):
            run(node, f"clawsync append {session} message_received content=hello", folder)
        yield node


def run(node: NodeProcess, example: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """``example`` run by bash in ``folder``, ``clawsync`` being this checkout's command
    and every ``--node`` address the node's."""
    script = (f"clawsync() {{ {shlex.quote(sys.executable)} -m node.main --node {node.url} "
              '"$@"; }\nset -o pipefail\n' + re.sub(r"--node \S+", f"--node {node.url}", example))
    result = subprocess.run(["bash", "-c", script], cwd=folder, text=True,
                            capture_output=True, timeout=CLI_TIMEOUT_S,
                            env=child_env({"TOKEN": ""}), check=False)
    assert result.returncode == 0, f"{example}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.mark.parametrize("example", list(examples()))
def test_every_help_example_parses_and_runs(example: str, example_node: NodeProcess,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(example_node.data_dir.parent)  # where the files it names are
    lines = command_lines(example)
    assert lines, example
    for args in lines:
        parse(args)
    if runnable(example):
        run(example_node, example, example_node.data_dir.parent)


def test_the_examples_are_found() -> None:
    """Each way an example is written: a plain line, a pipeline over two lines, a
    substitution, a variable set before the command, a comment after it."""
    found = list(examples())
    assert len(found) >= 50, found
    assert "clawsync tokens revoke 3f9c0a1b2c3d4e5f" in found
    assert command_lines("TOKEN=$(clawsync tokens create --sessions '*' --name x)") == [
        ["tokens", "create", "--sessions", "*", "--name", "x"]]
    assert command_lines('clawsync --node http://a:7878 devices add "$(clawsync device '
                         '--id)" --name laptop  # add this one') == [
        ["--node", "http://a:7878", "devices", "add", "SUBSTITUTED", "--name", "laptop"],
        ["device", "--id"]]
    assert any(example.startswith("clawsync --node http://a:7878 events s1") and
               "| clawsync --node http://b:7878 append --file -" in example
               for example in found), found
