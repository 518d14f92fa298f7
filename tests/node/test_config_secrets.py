"""``serve``'s tokens, cluster secret and device name, wherever they come from (the
command line before or after ``serve``, the environment, the TOML file): which one wins,
what empty means, and that a bad one is refused naming where it came from, never shown;
variables set but empty."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from node.checks import TOKEN_CHARS_MAX
from node.main import main
from tests.support.config import print_config


@pytest.mark.parametrize(("args", "env", "named"), [
    pytest.param(["serve", "--token", "s3cret\r"], {}, "'--token'", id="option"),
    pytest.param(["--token", "s3cret\r", "serve"], {},
                 "'clawsync --token' (given before the command)", id="before-serve"),
    pytest.param(["serve"], {"CLAWSYNC_TOKEN": "s3cret\r"},
                 "CLAWSYNC_TOKEN (the environment's --token)", id="environment")])
def test_a_token_no_header_could_carry_is_named_where_it_came_from(
        args: list[str], env: dict[str, str], named: str) -> None:
    result = CliRunner().invoke(main, [*args, "--print-config"], env=env)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for {named}: the token holds a control character" \
        in " ".join(result.output.split())
    assert "s3cret" not in result.output


def test_serves_own_token_wins_over_a_bad_one_before_it_or_in_the_environment() -> None:
    """As a client command's own --token wins over the group's: the other is not checked."""
    for args, env in ((["--token", "s3cret\r", "serve"], {}),
                      (["serve"], {"CLAWSYNC_TOKEN": "s3cret\r"})):
        result = CliRunner().invoke(main, [*args, "--token", "good", "--print-config"],
                                    env=env)
        assert result.exit_code == 0, result.output
        printed = json.loads(result.output)
        assert (printed["token"], printed["sources"]["token"]) == ("(set)", "flag")


def test_an_empty_token_typed_after_serve_means_none_whatever_is_before_it() -> None:
    """The command line wins, and serve's own --token over the one before it: typed
    empty, it is no token, not the one before serve nor the environment's (which an
    empty one kept) nor the file's; and where it came from is the command line."""
    for args, env in ((["--token", "before"], {}), (["--token", "s3cret\r"], {}),
                      ([], {"CLAWSYNC_TOKEN": "from-env"}), ([], {"CLAWSYNC_TOKEN": "s3\r"})):
        result = CliRunner().invoke(main, [*args, "serve", "--token", "", "--print-config"],
                                    env=env)
        assert result.exit_code == 0, (args, env, result.output)
        printed = json.loads(result.output)
        assert (printed["token"], printed["sources"]["token"]) == (None, "flag"), (args, env)
    # Typed empty before serve: none too, over the environment's.
    result = CliRunner().invoke(main, ["--token", "", "serve", "--print-config"],
                                env={"CLAWSYNC_TOKEN": "from-env"})
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert (printed["token"], printed["sources"]["token"]) == (None, "flag")


def test_an_empty_token_in_the_environment_means_none_over_the_files(tmp_path: Path) -> None:
    """CLAWSYNC_TOKEN set empty says none, as --token "" does: click alone takes an empty
    variable for unset, and the file's token would be required. The command line still
    wins over it, before or after serve."""
    file = tmp_path / "clawsync.toml"
    file.write_text('token = "from-file"\n')
    empty = {"CLAWSYNC_TOKEN": ""}
    printed = print_config(["--config", str(file)], env=empty)
    assert (printed["token"], printed["sources"]["token"]) == (None, "env")
    assert print_config(["--config", str(file)])["sources"]["token"] == "file"  # unset
    for args in (["--token", "typed"], []):
        result = CliRunner().invoke(main, [*args, "serve", "--config", str(file),
                                           *(["--token", "typed"] if not args else []),
                                           "--print-config"], env=empty)
        assert result.exit_code == 0, result.output
        printed = json.loads(result.output)
        assert (printed["token"], printed["sources"]["token"]) == ("(set)", "flag"), args


@pytest.mark.parametrize(("args", "env", "named"), [
    pytest.param(["serve", "--token", " s3cret"], {}, "'--token'", id="option"),
    pytest.param(["--token", "s3cret ", "serve"], {},
                 "'clawsync --token' (given before the command)", id="before-serve"),
    pytest.param(["serve"], {"CLAWSYNC_TOKEN": " s3cret "},
                 "CLAWSYNC_TOKEN (the environment's --token)", id="environment"),
    pytest.param(["sessions"], {"CLAWSYNC_TOKEN": "s3cret\u00a0"},
                 "CLAWSYNC_TOKEN (the environment's clawsync --token)", id="client")])
def test_a_token_no_request_could_match_is_named_where_it_came_from(
        args: list[str], env: dict[str, str], named: str) -> None:
    """The node takes white space off the token a request gives, as HTTP does off a
    header: a token that begins or ends with it could never be matched."""
    result = CliRunner().invoke(main, [*args, "--print-config"] if "serve" in args else args,
                                env=env)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for {named}: the token begins or ends with white space" \
        in " ".join(result.output.split())
    assert "s3cret" not in result.output


@pytest.mark.parametrize(("args", "env", "named"), [
    pytest.param(["--cluster-secret", "s3cret\r"], {}, "'--cluster-secret'", id="option"),
    pytest.param([], {"CLAWSYNC_CLUSTER_SECRET": "s3cret\r"},
                 "CLAWSYNC_CLUSTER_SECRET (the environment's --cluster-secret)",
                 id="environment")])
def test_a_secret_no_header_could_carry_is_named_where_it_came_from(
        args: list[str], env: dict[str, str], named: str) -> None:
    result = CliRunner().invoke(main, ["serve", *args, "--print-config"], env=env)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for {named}: the cluster secret holds a control character" \
        in " ".join(result.output.split())
    assert "s3cret" not in result.output


@pytest.mark.parametrize(("args", "env", "named"), [
    pytest.param(["--name", "lap\x01top"], {}, "'--name'", id="option"),
    pytest.param([], {"CLAWSYNC_NAME": "lap\x01top"},
                 "CLAWSYNC_NAME (the environment's --name)", id="environment")])
def test_a_name_with_a_control_character_is_named_where_it_came_from(
        args: list[str], env: dict[str, str], named: str) -> None:
    result = CliRunner().invoke(main, ["serve", *args, "--print-config"], env=env)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for {named}: must not contain control characters" \
        in " ".join(result.output.split())


@pytest.mark.parametrize(("args", "env", "file"), [
    pytest.param(["--name", "laptop\u200b"], {}, "", id="option"),
    pytest.param([], {"CLAWSYNC_NAME": "laptop\u200b"}, "", id="environment"),
    pytest.param([], {}, 'name = "laptop\\u200b"\n', id="file")])
def test_a_name_a_new_device_may_not_take_still_serves(
        tmp_path: Path, args: list[str], env: dict[str, str], file: str) -> None:
    """A node named before the zero-width space was refused in new names keeps its name:
    it is in the node's own records (the warning at start: ``test_startup_warnings``)."""
    config = tmp_path / "clawsync.toml"
    config.write_text(file)
    result = CliRunner().invoke(main, ["serve", "--config", str(config), *args,
                                       "--print-config"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["name"] == "laptop\u200b"


def test_a_padded_token_or_secret_in_the_file_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "clawsync.toml"
    for text, what in (('token = "s3cret "\n', "the token"),
                       ('cluster_secret = " s3cret"\n', "the cluster secret")):
        file.write_text(text)
        result = CliRunner().invoke(main, ["serve", "--config", str(file), "--print-config"])
        assert result.exit_code == 2, result.output
        assert f"{what} begins or ends with white space" in result.output
        assert str(file) in result.output  # the setting came from it
        assert "s3cret" not in result.output


@pytest.mark.parametrize(("args", "env", "file_token", "wins"), [
    (["--token", "typed", "serve"], {"CLAWSYNC_TOKEN": "from-env"}, None, "typed"),
    (["--token", "typed", "serve"], {}, "from-file", "typed"),
    (["serve"], {"CLAWSYNC_TOKEN": "from-env"}, "from-file", "from-env"),
    (["--token", "before", "serve", "--token", "after"], {}, None, "after"),
])
def test_a_token_typed_before_serve_wins_over_the_environment_and_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str],
        env: dict[str, str], file_token: str | None, wins: str) -> None:
    """The command line wins over the environment, which wins over the file, wherever on
    the line the token is typed (it lost to both before `serve`)."""
    started: list[Any] = []
    monkeypatch.setattr("node.server.run.run", lambda config, **_: started.append(config))
    # A stopped node ends its process at once (node.interrupt.end_now): here, this one.
    monkeypatch.setattr("node.server.command.end_now", sys.exit)
    config = tmp_path / "clawsync.toml"
    config.write_text(f'token = "{file_token}"\n' if file_token else "")
    result = CliRunner().invoke(main, [*args, "--config", str(config),
                                       "--data-dir", str(tmp_path / "data")], env=env)
    assert result.exit_code == 0, result.output
    assert started[0].token == wins


def test_a_token_no_header_could_carry_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "clawsync.toml"
    config.write_text('token = "s3cret\\r"\n')  # a CR kept from a file with CRLF ends
    result = CliRunner().invoke(main, ["serve", "--config", str(config), "--print-config"])
    assert result.exit_code == 2, result.output
    assert "the token holds a control character" in result.output


def test_an_empty_cluster_secret_means_none_as_an_empty_token_does(tmp_path: Path) -> None:
    """Empty is none, not a secret that a request without one would match: typed, in the
    file, or CLAWSYNC_CLUSTER_SECRET set empty, which wins over the file's (click alone
    takes an empty variable for unset, and the file's secret would be used)."""
    file = tmp_path / "clawsync.toml"
    file.write_text('cluster_secret = "from-file"\n')
    empty = tmp_path / "empty.toml"
    empty.write_text('cluster_secret = ""\n')
    for args, env, source in ((["--config", str(empty)], {}, "file"),
                              (["--cluster-secret", ""], {}, "flag"),
                              (["--config", str(file), "--cluster-secret", ""], {}, "flag"),
                              (["--config", str(file)], {"CLAWSYNC_CLUSTER_SECRET": ""}, "env")):
        printed = print_config(args, env=env)
        assert (printed["cluster_secret"], printed["sources"]["cluster_secret"]) == (
            None, source), args
        assert printed["require_signatures"] is True, args  # as with no secret at all
    assert print_config(["--config", str(file)])["cluster_secret"] == "(set)"  # unset
    typed = print_config(["--config", str(file), "--cluster-secret", "typed"],
                         env={"CLAWSYNC_CLUSTER_SECRET": ""})
    assert (typed["cluster_secret"], typed["sources"]["cluster_secret"]) == ("(set)", "flag")
    unset = CliRunner().invoke(main, ["serve", "--token", "", "--print-config"])
    assert unset.exit_code == 0 and '"token": null' in unset.output


def serve_variables() -> list[tuple[str, str]]:
    """(name, variable) of each of serve's options read from the environment."""
    serve = main.get_command(click.Context(main), "serve")
    assert serve is not None
    return [(param.name, param.envvar) for param in serve.params
            if param.name is not None and isinstance(param.envvar, str)]


@pytest.mark.parametrize(("name", "variable"), [
    pytest.param(name, variable, id=variable) for name, variable in serve_variables()
    if name not in ("token", "cluster_secret")])
def test_any_other_variable_set_empty_is_a_usage_error_naming_it(
        tmp_path: Path, name: str, variable: str) -> None:
    """click takes an empty variable for unset: CLAWSYNC_PEERS= would leave the file's
    peers in, CLAWSYNC_PORT= the default port. Which was meant is not known: refused."""
    result = CliRunner().invoke(main, ["serve", "--print-config"], env={variable: ""})
    assert result.exit_code == 2, result.output
    assert f"{variable} is set but empty: give it a value, or unset it" in result.output


def test_a_variable_set_empty_is_not_looked_at_when_its_option_is_typed() -> None:
    printed = print_config(["--port", "7001", "--peer", "http://hub:7878"],
                           env={"CLAWSYNC_PORT": "", "CLAWSYNC_PEERS": ""})
    assert (printed["port"], printed["peers"]) == (7001, ["http://hub:7878"])


def test_print_configs_placeholder_is_refused_as_a_token_or_secret(tmp_path: Path) -> None:
    """--print-config shows secrets as "(set)": a printout copied whole into a file would
    start a node whose token anyone can guess (one that passes the check beyond loopback).
    Refused wherever it comes from, saying what it is."""
    tokens = tmp_path / "tokens.json"
    tokens.write_text('{"(set)": {"sessions": ["tg:*"]}}')
    file = tmp_path / "clawsync.toml"
    placeholder = "the placeholder --print-config shows for a secret it hides"
    for text, args, env in (
            ('token = "(set)"\nhost = "0.0.0.0"\n', [], {}),
            ('cluster_secret = "(set)"\n', [], {}),
            ("", ["--token", "(set)"], {}),
            ("", [], {"CLAWSYNC_TOKEN": "(set)"}),
            ("", [], {"CLAWSYNC_CLUSTER_SECRET": "(set)"}),
            ("", ["--automerge-tokens", str(tokens)], {"CLAWSYNC_TOKEN": "node-token"})):
        file.write_text(text)
        result = CliRunner().invoke(main, ["serve", "--config", str(file), *args,
                                           "--print-config"], env=env)
        assert result.exit_code == 2, (text, args, env, result.output)
        assert placeholder in " ".join(result.output.split()), (text, args, env)


def test_a_secret_longer_than_the_limit_is_refused() -> None:
    """A token or cluster secret longer than ``TOKEN_CHARS_MAX`` is refused, unshown:
    hiding it in a peer's refusal is bounded by its length."""
    for args, what in ((["--token", "s" * (TOKEN_CHARS_MAX + 1)], "the token"),
                       (["--cluster-secret", "s" * (TOKEN_CHARS_MAX + 1)], "the cluster secret")):
        result = CliRunner().invoke(main, ["serve", *args, "--print-config"])
        assert result.exit_code == 2, result.output
        assert f"{what} is longer than {TOKEN_CHARS_MAX} characters" \
            in " ".join(result.output.split())
        assert "ssss" not in result.output
    result = CliRunner().invoke(main, ["serve", "--cluster-secret", "s" * TOKEN_CHARS_MAX,
                                       "--print-config"])
    assert result.exit_code == 0, result.output
