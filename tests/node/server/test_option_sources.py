"""``clawsync serve``'s errors about an option's value name where that value came from:
the command line, the environment or the ``--config`` file."""

from __future__ import annotations

import codecs
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from node.main import main
from tests.support.processes import CLI_TIMEOUT_S, child_env


@pytest.mark.parametrize(("args", "env", "named"), [
    pytest.param(["--config", "{missing}"], {}, "'--config'", id="config-typed"),
    pytest.param([], {"CLAWSYNC_CONFIG": "{missing}"},
                 "CLAWSYNC_CONFIG (the environment's --config)", id="config-from-env"),
    pytest.param(["--port", "x"], {}, "'--port'", id="port-typed"),
    pytest.param([], {"CLAWSYNC_PORT": "x"}, "CLAWSYNC_PORT (the environment's --port)",
                 id="port-from-env"),
    pytest.param(["--automerge-tokens", "{tokens}"], {}, "'--automerge-tokens'",
                 id="tokens-typed"),
    pytest.param(["--config", "{config}"], {},
                 "automerge_tokens in {config} (the file's --automerge-tokens)",
                 id="tokens-from-file"),
    # A key of the file is named as the file wrote it, not with an underscore for "-".
    pytest.param(["--config", "{hyphenated}"], {},
                 "automerge-tokens in {hyphenated} (the file's --automerge-tokens)",
                 id="tokens-from-file-hyphenated"),
    pytest.param(["--token", " s3cret"], {}, "'--token'", id="token-typed"),
    # Was "CLAWSYNC_TOKEN", without saying that it was the environment's --token.
    pytest.param([], {"CLAWSYNC_TOKEN": " s3cret"},
                 "CLAWSYNC_TOKEN (the environment's --token)", id="token-from-env")])
def test_a_bad_value_is_named_where_it_came_from(tmp_path: Path, args: list[str],
                                                 env: dict[str, str], named: str) -> None:
    # A --config typed on the command line was said to be "'--config' (env var:
    # 'CLAWSYNC_CONFIG')", as if it had come from the environment.
    tokens = tmp_path / "tokens.json"
    tokens.write_text('{"short": {"sessions": ["*"]}}')  # a token under 8 characters
    config = tmp_path / "clawsync.toml"
    config.write_text(f'automerge_tokens = "{tokens}"\n')
    hyphenated = tmp_path / "hyphenated.toml"
    hyphenated.write_text(f'automerge-tokens = "{tokens}"\n')
    paths = {"missing": tmp_path / "absent.toml", "tokens": tokens, "config": config,
             "hyphenated": hyphenated}
    env = {"CLAWSYNC_CONFIG": "", "CLAWSYNC_PORT": "", **env}  # none from the shell
    result = CliRunner().invoke(
        main, ["serve", *(arg.format(**paths) for arg in args), "--print-config"],
        env={name: value.format(**paths) or None for name, value in env.items()},
        prog_name="clawsync")
    assert result.exit_code == 2, result.output
    [error] = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert error.startswith(f"Error: Invalid value for {named.format(**paths)}: "), error
    assert "env var" not in error


@pytest.mark.parametrize(("table", "said"), [
    ("[limits]\npage-max = 0\n", "[limits] page-max must be positive"),
    ("[limits]\nbody-bytes-max = 1.5\n", "[limits] body-bytes-max must be a whole number"),
    ("[sync]\npull-interval-s = 0.01\n", "[sync] pull-interval-s = 0.01 is not between"),
    # Two limits out of order, and the checks of [sync]'s own dataclass, named them by
    # their fields' names (page_max), whatever the file wrote; limits out of order say
    # their values and whether the file gave each.
    ("[limits]\npage-default = 500\npage-max = 100\n",
     "[limits] page-default (500, from the file) is above [limits] page-max (100, from the "
     "file): a read without limit="),
    ("[sync]\nbackoff-base-s = 100\nbackoff-max-s = 10\n",
     "[sync] backoff-base-s (100, from the file) is above [sync] backoff-max-s (10, from the "
     "file)"),
    ("[sync]\nforgotten-hold-s = 4000\n",
     "[sync] forgotten-hold-s (4000, from the file) is above [sync] forgotten_hold_max_s "
     "(3600, the default)"),
    ("[sync]\ninflight-batches-max = 100\n",
     "[sync] inflight-batches-max must be from 1 to 64"),
    # A first sync larger than the whole outbox drops its client at every try: refused,
    # as it was before the pairs that only risk it were warned of.
    ("[automerge_limits]\noutbox-bytes-max = 1000000\n",
     "[automerge_limits] served_bytes_max (67108864, the default) is above "
     "[automerge_limits] outbox-bytes-max (1000000, from the file): a document's first "
     "sync would drop its client as too slow, at every try; set [automerge_limits] "
     "served_bytes_max to at most 1000000, or [automerge_limits] outbox-bytes-max to at "
     "least 67108864"),
    # A table's name with - for _, as its keys may be written: it was an unknown setting.
    ("[automerge-limits]\nserved-bytes-max = 1000000000\n",
     "[automerge-limits] served-bytes-max (1000000000, from the file) is above "
     "[automerge-limits] outbox_bytes_max (134217728, the default): a document's first "
     "sync would drop its client as too slow, at every try"),
    ("[automerge-limits]\ndocuments-max = 0\n",
     "[automerge-limits] documents-max must be positive"),
    ("[automerge-limits]\njoin-s = 5\n[automerge_limits]\nping-interval-s = 5\n",
     "[automerge-limits] and [automerge_limits] are two names of one table, "
     "[automerge_limits]: give one")])
def test_a_tables_key_is_named_as_the_file_wrote_it(tmp_path: Path, table: str,
                                                    said: str) -> None:
    config = tmp_path / "clawsync.toml"
    config.write_text(table)
    result = CliRunner().invoke(main, ["serve", "--config", str(config), "--print-config"],
                                env={"CLAWSYNC_PORT": None})
    assert result.exit_code == 2, result.output
    assert f"{config}: {said}" in " ".join(result.output.split()), result.output


@pytest.mark.parametrize(("args", "env", "file", "where"), [
    pytest.param([], {}, 'token = ""\nhost = "0.0.0.0"\n', "in {config}", id="file"),
    pytest.param(["--host", "0.0.0.0"], {"CLAWSYNC_TOKEN": ""}, "", "in CLAWSYNC_TOKEN",
                 id="environment"),
    pytest.param(["--host", "0.0.0.0", "--token", ""], {}, "", "on the command line",
                 id="typed"),
    pytest.param(["--automerge-tokens", "{tokens}"], {}, 'token = ""\n', "in {config}",
                 id="automerge-tokens")])
def test_a_token_given_empty_is_said_to_mean_none_when_one_is_needed(
        tmp_path: Path, args: list[str], env: dict[str, str], file: str, where: str) -> None:
    """An empty token is none wherever it is given (the check's own "is empty" refusal is
    never reached by a command): a node that needs one says "set --token", and that the
    one given, which a person believes set, is empty."""
    tokens = tmp_path / "tokens.json"
    tokens.write_text('{"app-token-1": {"sessions": ["*"]}}')
    config = tmp_path / "clawsync.toml"
    config.write_text(file)
    paths = {"config": config, "tokens": tokens}
    result = CliRunner().invoke(
        main, ["serve", "--config", str(config), *(arg.format(**paths) for arg in args),
               "--print-config"], env={"CLAWSYNC_PORT": None, **env})
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    assert f"the token given {where.format(**paths)} is empty, which means none" in said, said
    assert "a request without one would match it" not in said


@pytest.mark.parametrize("args", [
    pytest.param(["--peer", "x--token"], id="peer"),
    pytest.param(["--retain-days", "a--token"], id="retain-days"),
    pytest.param(["--advertise-url", "--token"], id="advertise-url")])
def test_an_error_that_names_no_missing_token_has_no_note(tmp_path: Path,
                                                          args: list[str]) -> None:
    """The note was added to any error whose text held "--token": here a value typed."""
    config = tmp_path / "clawsync.toml"
    config.write_text('token = ""\n')
    result = CliRunner().invoke(main, ["serve", "--config", str(config), *args,
                                       "--print-config"], env={"CLAWSYNC_PORT": None})
    assert result.exit_code == 2, result.output
    assert "--token" in result.output, result.output
    assert "which means none" not in result.output, result.output


def test_a_table_named_with_hyphens_is_read(tmp_path: Path) -> None:
    config = tmp_path / "clawsync.toml"
    config.write_text("[automerge-limits]\ndocuments-max = 9\n")
    result = CliRunner().invoke(main, ["serve", "--config", str(config), "--print-config"],
                                env={"CLAWSYNC_PORT": None})
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["automerge_limits"]["documents_max"] == 9
    assert printed["sources"]["[automerge_limits]"]["documents_max"] == "file"


#: What each secret below holds, which no error may show.
SECRET = "hunter2"


@pytest.mark.parametrize(("file", "said"), [
    (f'cluster_secret = ["{SECRET}-secret-value"]\n',
     "cluster_secret: must be a string, not array"),
    ("token = 123456789012\n", "token: must be a string, not integer"),
    (f"token = {{ value = \"{SECRET}\" }}\n", "token: must be a string, not object"),
    # The tokens' table written inline, where the path of its file goes.
    (f'automerge_tokens = {{ "{SECRET}-app" = {{ sessions = ["*"] }} }}\n',
     "automerge_tokens: must be a string, not object"),
    (f'peers = ["http://me:{SECRET}@home:7878", 5]\n',
     "peers: must be an array, each item a string, not an array whose item 2 is of type "
     "integer"),
    (f'peers = "http://me:{SECRET}@home:7878"\n',
     "peers: must be an array, each item a string, not string"),
    (f'advertise_url = ["http://me:{SECRET}@home:7878"]\n',
     "advertise_url: must be a string, not array")])
def test_a_secret_of_the_wrong_type_is_not_shown(tmp_path: Path, file: str, said: str) -> None:
    """An error about the type of a value that may be a secret gives its type alone: it
    showed the value ("not array [\\"hunter2...\\"]", "not integer 123456789012")."""
    config = tmp_path / "clawsync.toml"
    config.write_text(file)
    result = CliRunner().invoke(main, ["serve", "--config", str(config), "--print-config"],
                                env={"CLAWSYNC_PORT": None})
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())
    assert f"{config}: {said}" in output, output
    assert SECRET not in output and "123456789012" not in output, output


def test_a_value_of_the_wrong_type_is_shown_where_it_is_no_secret(tmp_path: Path) -> None:
    config = tmp_path / "clawsync.toml"
    config.write_text('port = "x"\nretain_days = "tg:*=30"\n')
    result = CliRunner().invoke(main, ["serve", "--config", str(config), "--print-config"],
                                env={"CLAWSYNC_PORT": None})
    assert result.exit_code == 2, result.output
    assert 'port: must be a whole number, not string "x"' in result.output, result.output


@pytest.mark.parametrize("args", [
    pytest.param(["--peer", f"me:{SECRET}@home:7878"], id="peer-without-scheme"),
    pytest.param(["--peer", f"ftp://me:{SECRET}@home:7878"], id="peer-of-another-scheme"),
    pytest.param(["--advertise-url", f"me:{SECRET}@home:7878"], id="advertised")])
def test_a_password_in_an_address_is_not_shown(args: list[str]) -> None:
    """An address without http(s):// was refused for that first, showing it whole, the
    password with it."""
    result = CliRunner().invoke(main, ["serve", *args, "--print-config"],
                                env={"CLAWSYNC_PORT": None})
    assert result.exit_code == 2, result.output
    assert "holds a user name or password" in result.output, result.output
    assert SECRET not in result.output, result.output


def test_a_file_starting_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """Notepad writes UTF-8 with a byte order mark: tomllib refused the file with
    "Invalid statement (at line 1, column 1)"; it is read past, as ``append --file``
    reads past one in JSON."""
    config = tmp_path / "clawsync.toml"
    config.write_bytes(codecs.BOM_UTF8 + b"[automerge-limits]\ndocuments-max = 9\n")
    result = CliRunner().invoke(main, ["serve", "--config", str(config), "--print-config"],
                                env={"CLAWSYNC_PORT": None})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["automerge_limits"]["documents_max"] == 9


def test_a_byte_not_utf8_after_a_byte_order_mark_is_counted_from_the_files_start(
        tmp_path: Path) -> None:
    """Not a fix (it passed when the file was decoded from its start, mark and all): it
    guards the count now that the mark is read past, from the file's start, not from
    the mark's end."""
    config = tmp_path / "clawsync.toml"
    config.write_bytes(codecs.BOM_UTF8 + b"ok\xff")
    result = CliRunner().invoke(main, ["serve", "--config", str(config), "--print-config"],
                                env={"CLAWSYNC_PORT": None})
    assert result.exit_code == 2, result.output
    assert "its byte 6, 0xff" in " ".join(result.output.split()), result.output


#: A token for ``--automerge-tokens``, which needs the node's own ``--token``.
NODE_TOKEN = "node-token-0123456789"


def _tokens_file(tmp_path: Path, data: bytes) -> list[str]:
    tokens = tmp_path / "tokens.json"
    tokens.write_bytes(data)
    return ["serve", "--token", NODE_TOKEN, "--automerge-tokens", str(tokens),
            "--print-config"]


def test_a_tokens_file_starting_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """json refused it: "Unexpected UTF-8 BOM (decode using utf-8-sig)"; it is read past,
    as serve --config and append --file read past one."""
    args = _tokens_file(tmp_path, codecs.BOM_UTF8 + b'{"app-token-0123": {"sessions": ["*"]}}')
    result = CliRunner().invoke(main, args, env={"CLAWSYNC_PORT": None})
    assert result.exit_code == 0, result.output


def test_a_tokens_file_is_read_as_utf8_whatever_the_locale(tmp_path: Path) -> None:
    """It was read in the locale's encoding: under an ASCII locale, a session pattern
    with a letter outside ASCII ended in "'ascii' codec can't decode byte 0xc3"."""
    args = _tokens_file(tmp_path, '{"app-token-0123": {"sessions": ["tg:zoë*"]}}'.encode())
    env = {**child_env(), "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    env.pop("CLAWSYNC_PORT", None)
    result = subprocess.run([sys.executable, "-m", "node.main", *args], env=env,
                            capture_output=True, check=False, timeout=CLI_TIMEOUT_S)
    assert result.returncode == 0, result.stderr


def test_a_tokens_file_not_utf8_is_said_so(tmp_path: Path) -> None:
    """Its first byte that begins no UTF-8 character, counted from the file's start
    (past a byte order mark), as serve --config says it."""
    args = _tokens_file(tmp_path, codecs.BOM_UTF8 + b'{"ok\xff": {}}')
    result = CliRunner().invoke(main, args, env={"CLAWSYNC_PORT": None})
    assert result.exit_code == 2, result.output
    assert "is not UTF-8 text (its byte 8, 0xff" in " ".join(result.output.split()), \
        result.output
