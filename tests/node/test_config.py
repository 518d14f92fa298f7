"""The configuration root: the README's limits table agrees with the code (the console's
JavaScript among it), and the command line, the environment and the TOML file fill one
``Config``: what --print-config shows and where it says each setting came from, the
file's names, types and tables. Tokens, the cluster secret and the device name:
``test_config_secrets``; addresses: ``test_config_addresses``; the checks of limits that
go together: ``test_limit_orders``."""

from __future__ import annotations

import dataclasses
import importlib
import json
import re
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from node.config import Config
from node.limits import (
    LIMIT_TABLES,
    ClientLimits,
    Limits,
    limits_from,
)
from node.main import main
from sync.peer.config import SyncConfig
from tests.support.config import print_config

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
#: The dataclass behind each prefix of the table's setting column.
CLASSES: dict[str, type[Any]] = {**{f"[{name}]": kind for name, kind in LIMIT_TABLES.items()},
                                 "ClientLimits.": ClientLimits}


def readable(name: str, value: float) -> str:
    """How the README writes a value, from its name's unit: ``4 MiB``, ``15 s``, ``1,000``.

    >>> readable("body_bytes_max", 4 * 1024 * 1024), readable("pull_interval_s", 5.0)
    ('4 MiB', '5 s')
    """
    lowered = name.lower()
    if lowered.endswith("_ms"):
        return f"{value / 1000:g} s"
    if "bytes" in lowered:
        per_s = "/s" if lowered.endswith("_per_s") else ""
        whole = int(value)
        for unit, size in (("MiB", 2**20), ("KiB", 2**10)):
            if whole >= size and whole % size == 0:
                return f"{whole // size:,} {unit}{per_s}"
        return f"{whole:,}" + (" bytes" if whole >= 1024 else "") + per_s
    if lowered.endswith("_per_s"):
        return f"{value:g}/s"
    if lowered.endswith("_s"):
        return f"{value:g} s"
    return f"{int(value):,}"


def limit_rows() -> list[tuple[str, list[tuple[str, str]]]]:
    """(default cell, [(prefix, name)]) per row of the README's limits table."""
    section = README.read_text().split("\n## Limits\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("limit", "---"):
            continue
        names, prefix = [], ""
        for found in re.findall(r"`([^`]+)`", cells[2]):
            if found.startswith("--"):  # the option that sets it too
                continue
            # A setting, a Python constant, or a JavaScript one: ``path/file.js NAME``.
            match = re.fullmatch(r"(\[\w+\] |ClientLimits\.|[\w/]+\.js )?([\w.]+)", found)
            assert match, f"cannot read the setting {found!r}"
            # A setting's table carries to the names after it, not to a module's constant.
            prefix = match.group(1) or ("" if "." in match.group(2) else prefix)
            names.append((prefix.strip() if prefix.startswith("[") else prefix, match.group(2)))
        rows.append((cells[1], names))
    return rows


def default_of(prefix: str, name: str) -> Any:
    if prefix.endswith(".js "):  # a top-level ``const NAME = 10000;`` of that file
        script = (ROOT / prefix.strip()).read_text()
        [value] = re.findall(rf"^const {name} = (\d+);", script, re.MULTILINE)
        return int(value)
    if prefix:
        return getattr(CLASSES[prefix](), name)
    module, _, constant = name.rpartition(".")
    return getattr(importlib.import_module(module), constant)


def test_every_limit_in_the_readme_has_its_default_there() -> None:
    rows = limit_rows()
    assert len(rows) > 50
    for cell, names in rows:
        for prefix, name in names:
            expected = readable(name.rpartition(".")[2], default_of(prefix, name))
            assert expected in cell, f"{prefix}{name}: the README says {cell!r}, the code " \
                                     f"{expected!r}"


def test_every_setting_of_the_dataclasses_is_in_the_readme() -> None:
    listed = {(prefix, name) for _, names in limit_rows() for prefix, name in names}
    for prefix, kind in CLASSES.items():
        for field in dataclasses.fields(kind):
            assert (prefix.strip(), field.name) in listed, f"{prefix}{field.name} is missing"


def test_a_table_fills_its_dataclass_and_names_what_is_wrong() -> None:
    assert limits_from({"peers-max": 3}, SyncConfig, "sync").peers_max == 3
    with pytest.raises(ValueError, match=r"\[sync\] backoff_base_s \(100, from the file\) "
                                         r"is above \[sync\] backoff_max_s \(60, the default\)"):
        limits_from({"backoff_base_s": 100}, SyncConfig, "sync")
    with pytest.raises(ValueError, match=r"\[sync\] batch_events_max must be from 1 to 512"):
        limits_from({"batch_events_max": 513}, SyncConfig, "sync")
    with pytest.raises(ValueError, match=r"\[limits\] has no setting 'peers_max'"):
        limits_from({"peers_max": 3}, Limits, "limits")


def test_options_the_environment_and_the_file_fill_one_config(tmp_path: Path) -> None:
    file = tmp_path / "clawsync.toml"
    file.write_text('port = 7001\ncluster_secret = "file-secret"\nmembers_interval_s = 9\n'
                    "[limits]\npage_max = 150\n"
                    "[sync]\npull_interval_s = 2.5\npeers_max = 7\n"
                    "[automerge_limits]\ndocuments_max = 9\n")
    printed = print_config(["--config", str(file), "--port", "7002"],
                           env={"CLAWSYNC_HOST": "127.0.0.2", "CLAWSYNC_PULL_INTERVAL": "3"})
    assert printed["port"] == 7002  # the command line over the file
    assert printed["host"] == "127.0.0.2"  # the environment
    assert printed["limits"]["page_max"] == 150  # tables of the file
    assert printed["automerge_limits"]["documents_max"] == 9  # by the file's name
    sync = printed["sync"]
    assert sync["peers_max"] == 7
    assert sync["pull_interval_s"] == 3.0  # the environment over the [sync] table
    assert sync["members_interval_s"] == 9.0  # a top-level key sets the [sync] table's
    assert printed["cluster_secret"] == "(set)"  # never printed
    assert print_config([])["sync"] == dataclasses.asdict(SyncConfig())
    assert print_config([])["data_dir"] == str(Config().data_dir)


def toml_of(printed: dict[str, Any]) -> str:
    """What ``--print-config`` printed as a config file, as the README says to copy it:
    the settings and the tables' keys whose source is not "default", less the nulls (TOML
    has none) and the hidden secrets; the top-level keys, then a table per dict. JSON
    writes numbers, strings and lists of them as TOML reads them."""
    sources = printed["sources"]
    top = [f"{name} = {json.dumps(value)}" for name, value in printed.items()
           if name != "sources" and not isinstance(value, dict)
           and value not in (None, "(set)") and sources[name] != "default"]
    tables = [f"[{name}]\n" + "".join(f"{key} = {json.dumps(item)}\n"
                                       for key, item in value.items()
                                       if sources[f"[{name}]"][key] != "default")
              for name, value in printed.items() if isinstance(value, dict)
              and name != "sources"]
    return "\n".join(top) + "\n\n" + "\n".join(tables)


def test_print_config_can_be_copied_into_a_config_file(tmp_path: Path) -> None:
    """What --print-config prints is under the file's names and in the file's forms (the
    Automerge limits as [automerge_limits], the tokens' file by its path, retention rules
    as PATTERN=DAYS): copied into a file as the README says, less "(set)" secrets, nulls
    and what was left to its default, it runs the same settings. A default is left out,
    not fixed: require_signatures prints the value in effect, off with a cluster secret,
    and a copy run without the secret requires signatures, as its default then says."""
    configuration = README.read_text().split("\n## Configuration\n", 1)[1]
    assert 'whose source is `default`' in " ".join(configuration.split("\n## ", 1)[0].split())
    tokens = tmp_path / "tokens.json"
    tokens.write_text('{"app-token-1": {"sessions": ["tg:*"]}}')
    first = tmp_path / "first.toml"
    first.write_text('peers = ["http://hub:7878"]\nmembers_interval = 12\n'
                     'retain_days = ["tg:*=30", "x=0.3333333333333333"]\n'
                     "[limits]\npage_max = 150\n[sync]\npeers_max = 7\n"
                     "[automerge_limits]\ndocuments_max = 9\n")
    # The tokens need a node token; neither it nor the secret is printed.
    env = {"CLAWSYNC_TOKEN": "node-token", "CLAWSYNC_CLUSTER_SECRET": "cluster-secret"}
    printed = print_config(["--config", str(first), "--automerge-tokens", str(tokens),
                            "--port", "7001"], env=env)
    assert "automerge" not in printed and printed["automerge_limits"]["documents_max"] == 9
    assert printed["retain_days"] == ["tg:*=30", "x=0.3333333333333333"]
    assert printed["automerge_tokens"] == str(tokens)
    assert (printed["require_signatures"], printed["sources"]["require_signatures"]) == (
        False, "default")
    copy = tmp_path / "copy.toml"
    copy.write_text(toml_of(printed))
    assert "require_signatures" not in copy.read_text()
    again = print_config(["--config", str(copy)], env=env)
    assert {**again, "sources": None} == {**printed, "sources": None}
    assert again["sources"]["port"] == again["sources"]["automerge_tokens"] == "file"
    no_secret = print_config(["--config", str(copy)], env={"CLAWSYNC_TOKEN": "node-token"})
    assert no_secret["require_signatures"] is True


def test_print_config_says_where_each_setting_came_from(tmp_path: Path) -> None:
    """A default is told from a value that was set, and a value set from where it was."""
    file = tmp_path / "clawsync.toml"
    file.write_text('port = 7001\ncluster_secret = "file-secret"\n[limits]\npage_max = 150\n')
    result = CliRunner().invoke(
        main, ["--token", "typed-before", "serve", "--config", str(file), "--port", "7002",
               "--print-config"], env={"CLAWSYNC_HOST": "127.0.0.2"}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    sources = printed["sources"]
    assert (sources["port"], sources["host"], sources["cluster_secret"]) == ("flag", "env",
                                                                            "file")
    assert sources["token"] == "flag"  # typed before serve
    assert (sources["data_dir"], sources["require_signatures"]) == ("default", "default")
    # A table's keys each: the one the file sets, and the others left as they were.
    assert sources["[limits]"] == {name: "file" if name == "page_max" else "default"
                                   for name in printed["limits"]}
    assert set(sources["[sync]"].values()) == {"default"}
    # Every setting the file may hold, and its tables: no more, no less.
    serve = main.get_command(click.Context(main), "serve")
    assert serve is not None
    assert sources.keys() == {param.name for param in serve.params
                              if param.name not in ("config", "print_config")} | {
        f"[{name}]" for name in LIMIT_TABLES}
    env = print_config([], env={"CLAWSYNC_TOKEN": "from-env"})["sources"]
    assert env["token"] == "env" and print_config([])["sources"]["token"] == "default"


def test_the_sync_tables_intervals_are_said_to_come_from_the_file(tmp_path: Path) -> None:
    file = tmp_path / "clawsync.toml"
    file.write_text("[sync]\npull_interval_s = 2.0\n")
    sources = print_config(["--config", str(file)])["sources"]
    assert (sources["pull_interval"], sources["members_interval"]) == ("file", "default")
    assert (sources["[sync]"]["pull_interval_s"], sources["[sync]"]["peers_max"]) == (
        "file", "default")
    file.write_text("[sync]\nmembers-interval-s = 20\n")
    printed = print_config(["--config", str(file), "--pull-interval", "3"])
    assert printed["sync"]["members_interval_s"] == 20.0
    sources = printed["sources"]
    assert (sources["pull_interval"], sources["members_interval"]) == ("flag", "file")
    # The table's keys say the same: the flag's value is the one [sync] prints.
    assert (sources["[sync]"]["pull_interval_s"], sources["[sync]"]["members_interval_s"]) \
        == ("flag", "file")
    # Set in the environment too: the environment's, which wins.
    sources = print_config(["--config", str(file)],
                           env={"CLAWSYNC_MEMBERS_INTERVAL": "9"})["sources"]
    assert sources["members_interval"] == sources["[sync]"]["members_interval_s"] == "env"


def test_an_unknown_storage_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["serve", "--storage", "nosuch://x"])
    assert result.exit_code == 2
    assert "unknown storage 'nosuch://x': give a folder, or one of memory:" in result.output


def test_a_mistyped_storage_scheme_is_a_usage_error_not_a_folder() -> None:
    # "memroy:" once opened a diskcache folder of that name beside the user
    result = CliRunner().invoke(main, ["serve", "--storage", "memroy:", "--print-config"])
    assert result.exit_code == 2
    assert "unknown storage 'memroy:': give a folder, or one of memory:" in result.output


@pytest.mark.parametrize(("text", "problem"), [
    ('port = "x"\n', 'port: must be a whole number, not string "x"'),
    # A URL may hold a password: its type alone is said.
    ('peers = "http://hub:7878"\n', 'peers: must be an array, each item a string, not '
     'string'),
    ('log_level = "loud"\n', "log_level: 'loud' is not one of"),
    ("pull_interval = 0\n", "pull_interval: 0.0 is not in the range"),
])
def test_a_wrong_value_in_the_config_file_names_the_file_not_an_environment_variable(
        tmp_path: Path, text: str, problem: str) -> None:
    file = tmp_path / "clawsync.toml"
    file.write_text(text)
    result = CliRunner().invoke(main, ["serve", "--config", str(file), "--print-config"],
                                env={})
    assert result.exit_code == 2
    assert f"{file}: {problem}" in result.output
    assert "CLAWSYNC_" not in result.output.replace("'CLAWSYNC_CONFIG'", "")


def test_an_unknown_setting_in_the_config_file_lists_the_known_ones(tmp_path: Path) -> None:
    file = tmp_path / "clawsync.toml"
    file.write_text("colour = 5\n")  # like no setting: all of them are listed
    result = CliRunner().invoke(main, ["serve", "--config", str(file), "--print-config"],
                                env={})
    assert result.exit_code == 2
    assert f"{file}: unknown setting 'colour'; the settings are: " in result.output
    listed = result.output.split("the settings are: ", 1)[1]
    assert "members_interval," in listed and "pull_interval," in listed
    assert "print_config" not in listed and "[limits]" in listed
    assert "did you mean" not in result.output


@pytest.mark.parametrize(("text", "said"), [
    ("prot = 5\n", "unknown setting 'prot'; did you mean 'port'?"),
    # The closest first (others may follow: "or 'pull_interval'").
    ("members-intervall = 5\n", "unknown setting 'members-intervall'; did you mean "
     "'members_interval'"),
    ("[limit]\npage_max = 5\n", "unknown setting 'limit'; did you mean '[limits]'?"),
    ("[limits]\npage-mx = 5\n", "[limits] has no setting 'page-mx'; did you mean "
     "'page_max'"),
])
def test_a_mistyped_setting_in_the_config_file_is_told_the_close_one(
        tmp_path: Path, text: str, said: str) -> None:
    """As click tells a mistyped option: the setting meant, not the list to read through."""
    file = tmp_path / "clawsync.toml"
    file.write_text(text)
    result = CliRunner().invoke(main, ["serve", "--config", str(file), "--print-config"],
                                env={})
    assert result.exit_code == 2
    assert f"{file}: {said}" in " ".join(result.output.split()), result.output
    assert "the settings are" not in result.output and "it has:" not in result.output


@pytest.mark.parametrize(("name", "alias", "field"), [
    ("members_interval", "members_interval_s", "members_interval_s"),
    ("pull_interval", "pull_interval_s", "pull_interval_s")])
def test_the_intervals_take_their_options_names_and_keep_the_other(
        tmp_path: Path, name: str, alias: str, field: str) -> None:
    """In the file, --members-interval is members_interval, as --pull-interval is
    pull_interval; members_interval_s (its name before) and pull_interval_s (the [sync]
    key's) still load. Both names of one setting in a file are refused: which was meant
    is not known; so is the top-level key beside the [sync] table's (the option wins over
    the table, but in one file neither is the later word)."""
    # Older nodes refuse the new names: the README says which to keep writing meanwhile.
    configuration = " ".join(README.read_text().split("\n## Configuration\n", 1)[1]
                             .split("\n## ", 1)[0].split())
    assert "keep writing `members_interval_s` (not `members_interval`)" in configuration
    assert "until every node is upgraded" in configuration
    file = tmp_path / "clawsync.toml"
    for key in (name, alias, alias.replace("_", "-")):
        file.write_text(f"{key} = 7\n[sync]\npeers_max = 7\n")
        printed = print_config(["--config", str(file)])
        assert printed["sync"][field] == 7.0, key
        assert printed["sources"][name] == printed["sources"]["[sync]"][field] == "file"
        for table_key in (field, field.replace("_", "-")):
            file.write_text(f"{key} = 3\n[sync]\n{table_key} = 4\n")
            result = CliRunner().invoke(main, ["serve", "--config", str(file),
                                               "--print-config"], env={})
            assert result.exit_code == 2, (key, table_key, result.output)
            assert f"{file}: '{key}' and '[sync] {table_key}' are two names of one " \
                f"setting, {name}: give one" in " ".join(result.output.split())
    file.write_text(f"{name} = 7\n{alias} = 8\n")
    result = CliRunner().invoke(main, ["serve", "--config", str(file), "--print-config"],
                                env={})
    assert result.exit_code == 2, result.output
    assert f"{file}: '{name}' and '{alias}' are two names of one setting, {name}: give one" \
        in " ".join(result.output.split())


def test_one_setting_given_twice_in_the_file_is_refused(tmp_path: Path) -> None:
    """TOML takes data-dir and data_dir for two keys; the node reads them as one. So in
    a table: page-max beside page_max (the last won)."""
    file = tmp_path / "clawsync.toml"
    for text, said in (('data-dir = "a"\ndata_dir = "b"\n', "'data-dir' and 'data_dir' "
                        "are two names of one setting, data_dir"),
                       ("[limits]\npage-max = 10\npage_max = 20\n", "[limits] 'page-max' "
                        "and 'page_max' are two names of one setting, page_max"),
                       ("[sync]\npeers_max = 7\npeers-max = 8\n", "[sync] 'peers_max' and "
                        "'peers-max' are two names of one setting, peers_max")):
        file.write_text(text)
        result = CliRunner().invoke(main, ["serve", "--config", str(file), "--print-config"],
                                    env={})
        assert result.exit_code == 2, result.output
        assert said in " ".join(result.output.split())


def test_a_config_file_that_is_not_utf8_is_a_usage_error(tmp_path: Path) -> None:
    # It was a UnicodeDecodeError's traceback, where broken TOML is a usage error.
    file = tmp_path / "bad.toml"
    file.write_bytes(b'name = "caf\xe9"\n')
    said = (f"cannot read {file}: it is not UTF-8 text (its byte 12, 0xe9, begins no "
            "UTF-8 character)")
    for args, env, blamed in ((["--config", str(file)], {}, "'--config'"),
                              ([], {"CLAWSYNC_CONFIG": str(file)}, "CLAWSYNC_CONFIG")):
        result = CliRunner().invoke(main, ["serve", *args, "--print-config"], env=env)
        assert result.exit_code == 2, result.output
        shown = " ".join(result.stderr.split())
        assert f"Error: Invalid value for {blamed}" in shown and said in shown, shown


def test_signatures_are_required_by_default_only_without_a_cluster_secret(
        tmp_path: Path) -> None:
    assert Config().signatures_required
    assert not Config(cluster_secret="s").signatures_required
    assert Config(cluster_secret="s", require_signatures=True).signatures_required
    # The value in effect is printed, its default applied.
    assert print_config([])["require_signatures"] is True
    assert print_config(["--cluster-secret", "s" * 64])["require_signatures"] is False
    assert print_config(["--require-signatures"])["require_signatures"] is True
    assert print_config([], env={"CLAWSYNC_REQUIRE_SIGNATURES": "false"}
                        )["require_signatures"] is False
    file = tmp_path / "clawsync.toml"
    file.write_text("require_signatures = true\n")
    assert print_config(["--config", str(file)])["require_signatures"] is True


@pytest.mark.parametrize(("table", "said"), [
    ("pull_interval_s = 0.01", "[sync] pull_interval_s = 0.01 is not between 0.05 and 3600"),
    ("members_interval_s = 0.01", "[sync] members_interval_s = 0.01 is not between 0.1"),
])
def test_the_sync_tables_intervals_hold_to_their_options_ranges(
        tmp_path: Path, table: str, said: str) -> None:
    """As --pull-interval 0.01 is refused, so is the same value in the file's table, and
    the error names the file, as the other tables' errors do."""
    config = tmp_path / "clawsync.toml"
    config.write_text(f"[sync]\n{table}\n")
    result = CliRunner().invoke(main, ["serve", "--config", str(config), "--print-config"])
    assert result.exit_code == 2 and f"{config}: {said}" in result.output, result.output


@pytest.mark.parametrize(("text", "said"), [
    ("[limits]\naccept_backlog = 9007199254740992\n", "accept_backlog must be positive and "
     "at most 65535"),  # listen() crashed on it
    ("[automerge_limits]\nworkers = 9007199254740992\n", "workers must be positive and at "
     "most 256"),  # the start queued a slot per worker, for good
    ("[automerge_limits]\nworker_time_s = 9007199254740992\n", "worker_time_s must be "
     "positive and at most 10000000"),  # the worker's poll() overflowed on it
    ("[limits]\nread_timeout_s = 1e300\n", "read_timeout_s must be positive and at most "
     "10000000"),
    ("pull_interval = nan\n", "pull_interval: nan is not a number of seconds"),
    ("print_config = true\n", "unknown setting 'print_config'"),  # printed, never served
    ('config = "other.toml"\n', "unknown setting 'config'"),  # ignored without a word
])
def test_settings_that_would_crash_or_hang_a_start_are_refused(
        tmp_path: Path, text: str, said: str) -> None:
    config = tmp_path / "clawsync.toml"
    config.write_text(text)
    result = CliRunner().invoke(main, ["serve", "--config", str(config)])
    assert result.exit_code == 2 and said in " ".join(result.output.split()), result.output


@pytest.mark.parametrize(("text", "said"), [
    ("port = true\n", "port: must be a whole number, not boolean true"),  # was port 1
    ("port = 1.5\n", "port: must be a whole number, not number 1.5"),  # was port 1
    ("token = true\n", "token: must be a string, not boolean"),  # was "True"
    ("name = 5\n", "name: must be a string, not integer 5"),
    ("require_signatures = 1\n", "require_signatures: must be true or false, not integer 1"),
    ('require_signatures = "yes"\n', 'require_signatures: must be true or false, not string '
     '"yes"'),
    ("data_dir = 5\n", "data_dir: must be a string, not integer 5"),  # was a traceback
    # A URL may hold a password: its type alone is said.
    ('peers = "http://hub:7878"\n', 'peers: must be an array, each item a string, not '
     'string'),
    ('retain_days = [{pattern = "tg:*", days = 30}]\n', "retain_days: must be an array, each "
     'item a string, not [{pattern = "tg:*", days = 30}]'),
    # TOML's own spellings, not JSON's Infinity and NaN or a date in quotes.
    ("port = inf\n", "port: must be a whole number, not number inf"),
    ("port = -inf\n", "port: must be a whole number, not number -inf"),
    ("name = 1979-05-27\n", "name: must be a string, not date 1979-05-27"),
    # A table's value is shown as the file wrote it too, not as Python's True or '5'.
    ("[limits]\npage_max = true\n", "[limits] page_max must be a whole number, not boolean "
     "true"),
    ('[sync]\npeers_max = "5"\n', '[sync] peers_max must be a whole number, not string "5"'),
    ("[limits]\npage_max = nan\n", "[limits] page_max must be a whole number, not number nan"),
    ("[limits]\npage_max = 1979-05-27T07:32:00Z\n", "[limits] page_max must be a whole "
     "number, not datetime 1979-05-27T07:32:00Z"),
    ('[automerge_limits]\nframes_per_s = "fast"\n', "[automerge_limits] frames_per_s must "
     'be a number, not string "fast"'),
])
def test_a_file_value_of_another_type_is_refused_not_converted(
        tmp_path: Path, text: str, said: str) -> None:
    config = tmp_path / "clawsync.toml"
    config.write_text(text)
    result = CliRunner().invoke(main, ["serve", "--config", str(config), "--print-config"])
    assert result.exit_code == 2, result.output
    assert f"{config}: {said}" in " ".join(result.output.split()), result.output


@pytest.mark.parametrize("option", ["--pull-interval", "--members-interval"])
def test_nan_seconds_are_a_usage_error(option: str) -> None:
    result = CliRunner().invoke(main, ["serve", option, "nan", "--print-config"])
    assert result.exit_code == 2, result.output
    assert "nan is not a number of seconds" in result.output


def test_a_check_of_a_value_the_file_may_have_set_names_the_file(tmp_path: Path) -> None:
    config = tmp_path / "clawsync.toml"
    config.write_text('peers = ["ftp://hub"]\n')
    result = CliRunner().invoke(main, ["serve", "--config", str(config), "--print-config"])
    assert result.exit_code == 2, result.output
    assert f"must start with http:// or https:// (settings from the command line, the " \
           f"environment and {config})" in " ".join(result.output.split())
    alone = CliRunner().invoke(main, ["serve", "--peer", "ftp://hub", "--print-config"])
    assert alone.exit_code == 2 and "settings from" not in alone.output
