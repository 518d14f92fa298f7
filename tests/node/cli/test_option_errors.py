"""A command's input the node would refuse is named as the command's own option, not as
the API's field: an event id is checked here, as the node checks it, before any request;
a page size past what the node takes is the node's to say (its ``page_max`` is
configured), and its refusal names ``--limit``."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from crdt.log.forget import EVENTS_MAX
from node.limits import Limits
from tests.support.processes import CLI_TIMEOUT_S, NodeProcess, child_env, run_cli


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    with NodeProcess(tmp_path_factory.mktemp("node")) as started:
        appended = run_cli(started, "append", "s1", "message_received", "content=hi")
        assert appended.returncode == 0, appended.stderr
        yield started


def usage_error(done: subprocess.CompletedProcess[str], option: str) -> str:
    """The error line of a usage error about ``option``, after checking it came as click
    says its own: exit 2, the usage lines, the option named."""
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.startswith("Usage: "), done.stderr
    [line] = [text for text in done.stderr.splitlines() if text.startswith("Error: ")]
    assert line.startswith(f"Error: Invalid value for '{option}': "), line
    return line


def test_a_malformed_event_id_is_named_as_the_option_before_any_request(
        node: NodeProcess) -> None:
    good = "ab" * 32
    for session in ("s1", "missing"):  # a missing session is not what is wrong
        done = run_cli(node, "forget", session, "--event", good, "--event", "abc")
        line = usage_error(done, "--event")
        assert line.endswith("'abc': must be 64 hex digits: give an event's id, as "
                             "`clawsync events SESSION --json` lists it"), line
        assert "events[" not in done.stderr and "no session" not in done.stderr


def test_a_position_given_as_an_event_id_is_said_to_be_one(node: NodeProcess) -> None:
    """The first column of ``clawsync events`` is the number people copy: it is no id."""
    listed = run_cli(node, "events", "s1")
    position = listed.stdout.split()[0]
    assert listed.returncode == 0 and position.isdigit(), listed
    head = node.get("/v1/node")["head"]
    done = run_cli(node, "forget", "s1", "--event", position)
    assert usage_error(done, "--event").endswith(
        f"'{position}': must be 64 hex digits: give an event's id, as `clawsync events "
        f"SESSION --json` lists it ({position} is a position, the first column of "
        "`clawsync events`)")
    assert node.get("/v1/node")["head"] == head  # nothing written


def test_more_event_ids_than_a_forget_takes_are_refused_here(node: NodeProcess) -> None:
    ids = [f"{n:064x}" for n in range(EVENTS_MAX + 1)]
    done = run_cli(node, "forget", "s1", *[arg for id_ in ids for arg in ("--event", id_)])
    assert f"one forget lists at most {EVENTS_MAX}" in usage_error(done, "--event")


@pytest.mark.parametrize("command", [("events", "s1"), ("sessions",)])
def test_a_page_past_the_nodes_page_max_is_named_as_limit(node: NodeProcess,
                                                          command: tuple[str, ...]) -> None:
    """The node found it: its words, without the usage lines (README, "Exit codes"),
    but naming the option."""
    page_max = Limits().page_max
    done = run_cli(node, *command, "--limit", str(page_max + 1))
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("Error: the node refused "), done.stderr
    assert done.stderr.rstrip().endswith(
        f": --limit: must be an integer from 1 to {page_max}"), done.stderr
    assert " limit: " not in done.stderr
    assert run_cli(node, *command, "--limit", str(page_max)).returncode == 0


#: Options given without their value, at each level: the group's, a command's, a
#: subcommand's of a group. click raises that error with no context of its own.
VALUE_MISSING = [("tail", "--session"), ("events", "s1", "--limit"),
                 ("tokens", "create", "--name"), ("serve", "--port"), ("--token",)]


@pytest.mark.parametrize("args", VALUE_MISSING)
def test_an_option_without_its_value_comes_with_the_usage_lines(args: tuple[str, ...]
                                                                ) -> None:
    done = run_cli("http://127.0.0.1:1", *args)  # no node is asked
    command = " ".join(arg for arg in args if not arg.startswith("-") and arg != "s1")
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"Usage: clawsync {command}".rstrip() + " "), done.stderr
    assert done.stderr.rstrip().endswith(f"Error: Option '{args[-1]}' requires an argument.")


#: How a number option's value that is no number is given, and how the refusal names it.
NOT_NUMBERS = [({"CLAWSYNC_PORT": "abc"}, ("serve", "--print-config"),
                "CLAWSYNC_PORT (the environment's --port)", "from 0 to 65535"),
               ({}, ("serve", "--port", "abc", "--print-config"), "'--port'",
                "from 0 to 65535"),
               ({}, ("events", "s1", "--limit", "abc"), "'--limit'", "of at least 1"),
               ({}, ("demo", "--port", "abc"), "'--port'", "from 1 to 65533")]


@pytest.mark.parametrize(("env", "args", "named", "wanted"), NOT_NUMBERS)
def test_a_number_option_given_no_number_says_what_it_takes(
        env: dict[str, str], args: tuple[str, ...], named: str, wanted: str) -> None:
    done = subprocess.run([sys.executable, "-m", "node.main", *args], env=child_env(env),
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.rstrip().endswith(
        f"Error: Invalid value for {named}: 'abc' is not a whole number {wanted}."), \
        done.stderr


@pytest.mark.parametrize(("args", "said"), [
    (("serve", "--port", "70000", "--print-config"),
     "Invalid value for '--port': '70000' is not a whole number from 0 to 65535."),
    (("events", "s1", "--limit", "0"),
     "Invalid value for '--limit': '0' is not a whole number of at least 1.")])
def test_a_number_out_of_its_range_says_what_the_option_takes(args: tuple[str, ...],
                                                             said: str) -> None:
    """In the same words as a value that is no number (click said "70000 is not in the
    range 0<=x<=65535")."""
    done = subprocess.run([sys.executable, "-m", "node.main", *args], env=child_env({}),
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.rstrip().endswith(f"Error: {said}"), done.stderr
