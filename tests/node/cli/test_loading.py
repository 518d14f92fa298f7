"""``clawsync --help`` loads none of the commands, and a command loads its own module
only: the group lists each command by name and the first sentence of its help, and the
listing is the one the loaded commands give."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

import click
import pytest
from click.testing import CliRunner

from node import config, limits
from node.cli import append, group
from node.main import main
from node.openclaw import pace
from tests.support.processes import CLI_TIMEOUT_S, ROOT, child_env

#: Libraries no listing needs, each a tenth of a second or more to import.
HEAVY = ("aiohttp", "automerge", "cryptography", "nacl", "cbor2", "diskcache", "rich")

#: Runs ``clawsync ARGS`` in a fresh process, as the ``clawsync`` script does; then
#: writes to stderr, on a line of its own, its exit code and which modules it loaded.
PROBE = """
import json, sys
from node.main import main

try:
    main({args!r}, prog_name="clawsync")
except SystemExit as end:
    code = end.code
loaded = sorted(name for name in sys.modules
                if name.split(".")[0] in {heavy!r} or name.startswith(("node.", "crdt.")))
sys.stderr.write("\\n" + json.dumps({{"code": code, "loaded": loaded}}))
"""

#: The modules that define the commands.
COMMANDS = {lazy.where.partition(":")[0] for lazy in main.lazy.values()}


@dataclass(frozen=True)
class Run:
    """What ``clawsync ARGS`` did in a fresh process."""

    code: int
    out: str
    err: str
    loaded: set[str]


def probe(*args: str, env: dict[str, str] | None = None) -> Run:
    """Runs ``clawsync ARGS`` in a fresh process, with ``env`` added to its environment."""
    done = subprocess.run([sys.executable, "-c", PROBE.format(args=list(args), heavy=HEAVY)],
                          cwd=ROOT, capture_output=True, text=True, env=child_env(env),
                          timeout=CLI_TIMEOUT_S, check=False)
    err, _newline, end = done.stderr.rpartition("\n")
    ended = json.loads(end)
    return Run(ended["code"], done.stdout, err, set(ended["loaded"]))


def run(*args: str, env: dict[str, str] | None = None) -> tuple[str, set[str]]:
    """What ``clawsync ARGS`` prints (it must succeed), and the modules it loaded."""
    done = probe(*args, env=env)
    assert done.code == 0, done
    return done.out, done.loaded


#: Environments a ``--help`` is asked for in: a shell's (none of the group's variables),
#: a service's (both set, as a unit file sets them), and one whose values no command could
#: use (a help still shows: what is wrong is said when a command runs).
ENVIRONMENTS = [
    pytest.param(None, id="plain"),
    pytest.param({"CLAWSYNC_TOKEN": "s3cret", "CLAWSYNC_NODE": "http://127.0.0.1:7878"},
                 id="service"),
    pytest.param({"CLAWSYNC_TOKEN": "s3cret\r", "CLAWSYNC_NODE": "ftp://sync.example"},
                 id="unusable")]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_help_loads_no_command_and_none_of_the_heavy_libraries(
        env: dict[str, str] | None) -> None:
    output, loaded = run("--help", env=env)
    assert "Commands:" in output
    heavy = sorted(name for name in loaded if name.split(".")[0] in HEAVY)
    assert heavy == []
    assert {name for name in loaded if name.startswith(("node.", "crdt."))} == {
        "node.cli", "node.cli.group", "node.interrupt", "node.main"}


@pytest.mark.parametrize(("command", "module"), [
    pytest.param("status", "node.cli.status", id="status"),
    pytest.param("serve", "node.server.command", id="serve")])
def test_a_command_loads_its_own_module_not_the_others(command: str, module: str) -> None:
    output, loaded = run(command, "--help")
    assert output.startswith(f"Usage: clawsync {command} ")
    assert module in loaded
    others = {"node.cli.status", "node.cli.demo", "node.cli.openclaw", "node.cli.append",
              "node.server.command", "node.cli.demo_run", "node.cli.demo_cluster",
              "node.cli.openclaw_run", "node.cli.openclaw_sink"} - {module}
    assert not others & loaded


#: What a command loads only once it runs: the settings (``node.config``, which loads the
#: crypto libraries, and its ``node.limits`` and ``node.checks``), the HTTP client, and what
#: the demo and the OpenClaw commands do.
RUNNING_ONLY = {"node.config", "node.limits", "node.checks", "node.client.api",
                "node.client.transport", "node.client.failures", "node.device",
                "node.cli.demo_run", "node.cli.demo_cluster", "node.cli.openclaw_run",
                "node.cli.openclaw_sink", "node.openclaw.bridge", "node.openclaw.refusals"}


@pytest.mark.parametrize("command", [
    "status", "devices", "devices add", "devices remove", "origins", "origins retire",
    "tokens", "tokens create", "tokens revoke", "forget", "device", "events", "sessions",
    "projection", "tail", "append", "demo", "openclaw", "openclaw import", "openclaw watch",
    "openclaw export"])
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_a_commands_help_loads_neither_the_settings_nor_the_client(
        command: str, env: dict[str, str] | None) -> None:
    """Nor, with them, the crypto libraries or aiohttp: the help is all it shows, whatever
    the group's options (read, not checked, before the command's help is shown)."""
    output, loaded = run(*command.split(), "--help", env=env)
    assert output.startswith(f"Usage: clawsync {command} ")
    assert not RUNNING_ONLY & loaded, sorted(RUNNING_ONLY & loaded)
    assert not {name.split(".")[0] for name in loaded} & {*HEAVY, "yarl"}, sorted(loaded)


def test_the_figures_a_help_shows_are_the_ones_the_command_uses() -> None:
    """Copies, kept where a ``--help`` reads them without loading what holds them."""
    assert limits.ClientLimits().import_batch_events_max == append.IMPORT_BATCH_EVENTS_MAX
    output, _loaded = run("append", "--help")
    assert f"batches of at most {limits.ClientLimits().import_batch_events_max}." in \
        " ".join(output.split())


def test_the_watch_help_shows_the_figures_watch_uses() -> None:
    """``node.openclaw.pace`` defines them once; the help reads them from there without
    loading the bridge."""
    output, loaded = run("openclaw", "watch", "--help")
    said = " ".join(output.split())
    assert "node.openclaw.pace" in loaded
    assert f"every {pace.POLL_S:g} s (--poll)" in said
    assert f"[default: {pace.POLL_S:g};" in said
    assert (f"at most every {pace.AHEAD_RETRY_MIN_S:g} s, at least every "
            f"{pace.AHEAD_RETRY_MAX_S:g} s") in said


def test_the_listing_is_the_one_the_loaded_commands_give() -> None:
    """Each command's summary is the first sentence of its help: shortened to any
    width, it reads as the command's own short help (``clawsync --help`` lists that)."""
    for name, lazy in main.lazy.items():
        command = lazy.load()
        listed = click.Command(name, help=lazy.summary)
        assert command.name == name
        # The listing shows them as click shows a command neither hidden nor deprecated.
        assert not command.hidden and not command.deprecated, name
        assert [listed.get_short_help_str(limit) for limit in range(10, 160)] == \
               [command.get_short_help_str(limit) for limit in range(10, 160)], name


def test_every_command_listed_loads_and_shows_its_help() -> None:
    listing = CliRunner().invoke(main, ["--help"], prog_name="clawsync").output
    listed = [line.split()[0] for line in listing.split("Commands:\n", 1)[1].splitlines()
              if line.startswith("  ") and not line.startswith("   ")]
    assert listed == main.list_commands(click.Context(main)) == sorted(main.lazy)
    for name in listed:
        result = CliRunner().invoke(main, [name, "--help"], prog_name="clawsync")
        assert result.exit_code == 0, result.output
        assert result.output.startswith(f"Usage: clawsync {name} "), result.output


def test_the_node_help_shows_is_the_clients_default() -> None:
    assert group.NODE_DEFAULT == config.NODE_DEFAULT == config.Settings().node


def test_version_is_the_installed_one() -> None:
    result = CliRunner().invoke(main, ["--version"], prog_name="clawsync")
    assert result.exit_code == 0
    assert result.output == f"clawsync {config.software_version()}\n"


def test_a_command_name_typed_wrong_is_told_the_names_close_to_it() -> None:
    if not hasattr(click.exceptions, "NoSuchCommand"):
        pytest.skip("click before 8.4 suggests no names")
    done = probe("stat")
    assert done.code == 2
    assert done.err.strip().splitlines()[-1] == \
        "Error: No such command 'stat'. Did you mean 'status'?"
    assert not COMMANDS & done.loaded


#: What the shell runs to complete ``clawsync st<TAB>``.
COMPLETING_ST = {"_CLAWSYNC_COMPLETE": "bash_complete", "COMP_WORDS": "clawsync st",
                 "COMP_CWORD": "1"}


def test_completing_a_command_name_loads_no_command() -> None:
    done = probe(env=COMPLETING_ST)
    assert done.code == 0, done
    assert done.out == "plain,status\n"
    assert not COMMANDS & done.loaded
    assert not {name.split(".")[0] for name in done.loaded} & set(HEAVY)


@pytest.mark.parametrize("words", ["clawsync ", "clawsync --", "clawsync --node x d"])
def test_command_names_complete_as_from_the_loaded_commands(words: str) -> None:
    """Names with their summaries (zsh shows them), and the group's options."""
    env = {"_CLAWSYNC_COMPLETE": "zsh_complete", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split(" ")) - 1)}
    lazily = probe(env=env)
    for name in main.lazy:
        main.get_command(click.Context(main), name)
    loaded = CliRunner().invoke(main, [], prog_name="clawsync", env=env,
                                complete_var="_CLAWSYNC_COMPLETE")
    assert lazily.code == loaded.exit_code == 0
    assert lazily.out == loaded.output
    assert lazily.out.count("\n") > 3


def test_a_loaded_commands_options_complete_as_click_completes_them() -> None:
    done = probe(env={"_CLAWSYNC_COMPLETE": "bash_complete",
                      "COMP_WORDS": "clawsync status --", "COMP_CWORD": "2"})
    assert done.code == 0, done
    assert "plain,--help" in done.out.splitlines()
    assert "node.cli.status" in done.loaded


#: Prints ``clawsync --help`` at each width, before any command is loaded and then with
#: every command loaded, as JSON: {"listed": [...], "loaded": [...]}.
HELP_BEFORE_AND_AFTER = """
import json, sys
import click
from click.testing import CliRunner
from node.main import main

def helps():
    return [CliRunner().invoke(main, ["--help"], prog_name="clawsync",
                               terminal_width=width).output for width in (50, 80, 100, 200)]

listed = helps()
assert not main.commands, sorted(main.commands)
for name in main.list_commands(click.Context(main)):
    main.get_command(click.Context(main), name)
assert sorted(main.commands) == sorted(main.lazy)
print(json.dumps({"listed": listed, "loaded": helps()}))
"""


def test_help_before_any_command_loads_is_the_help_with_all_of_them_loaded() -> None:
    done = subprocess.run([sys.executable, "-c", HELP_BEFORE_AND_AFTER], cwd=ROOT,
                          capture_output=True, text=True, env=child_env(),
                          timeout=CLI_TIMEOUT_S, check=True)
    helps = json.loads(done.stdout)
    assert all("Commands:" in text for text in helps["listed"])
    assert helps["listed"] == helps["loaded"]

