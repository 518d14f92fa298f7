"""sync.retention: the rules, and the record retention writes (pure functions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from crdt.log import forget
from sync.retention import DAY_MS, DAYS_MAX, Rule, due, parse_rules, retention_record
from tests.support.processes import child_env

LAST = (5_000, 3, b"\x01" * 32)


@pytest.mark.parametrize("text", ["tg:*", "=30", "tg:*=0", "tg:*=-1", "tg:*=nan",
                                  "tg:*=inf", "tg:*=thirty", f"tg:*={DAYS_MAX + 1}"])
def test_bad_rules_are_refused_with_the_reason(text: str) -> None:
    with pytest.raises(ValueError, match="retain-days"):
        parse_rules([text])


def test_a_rule_may_keep_a_session_up_to_the_limit() -> None:
    assert parse_rules([f"a=b=c={DAYS_MAX}"]) == (Rule("a=b=c", float(DAYS_MAX)),)


def test_the_first_matching_rule_applies() -> None:
    rules = parse_rules(["tg:vip-*=3650", "tg:*=30"])
    now = LAST[0] + 31 * DAY_MS
    assert due("tg:vip-alice", LAST, now, rules) is None
    assert due("tg:bob", LAST, now, rules) is not None
    assert due("web:bob", LAST, now, rules) is None  # no rule: kept
    assert due("tg:bob", None, now, rules) is None  # nothing left to forget
    assert due("tg:bob", LAST, LAST[0] + 30 * DAY_MS, rules) is None  # not older yet


def test_the_record_is_a_whole_session_forget_just_after_the_last_activity() -> None:
    record = retention_record("tg:bob", LAST)
    read = forget.read(record)
    assert read is not None and read.events is None and read.reason == "retention"
    assert record.timestamp.ms == LAST[0] + 1 and record.timestamp.counter == 0
    assert retention_record("tg:bob", LAST).id == record.id  # the same on every node
    assert retention_record("tg:bob", (LAST[0] + 1, 0, LAST[2])).id != record.id


@pytest.mark.parametrize(("given", "named"), [
    ("flag", "it came from '--retain-days'"),
    ("env", "it came from CLAWSYNC_RETAIN_DAYS (the environment's --retain-days)"),
    ("file", "it came from retain_days in clawsync.toml (the file's --retain-days)"),
])
def test_serve_refuses_a_bad_rule_before_starting_naming_where_it_came_from(
        tmp_path: Path, given: str, named: str) -> None:
    args, env = ["--print-config"], child_env()
    if given == "flag":
        args += ["--retain-days", "tg:*=soon"]
    elif given == "env":
        env["CLAWSYNC_RETAIN_DAYS"] = "web:*=2 tg:*=soon"
    else:
        (tmp_path / "clawsync.toml").write_text('retain_days = ["tg:*=soon"]\n')
        args += ["--config", "clawsync.toml"]
    done = subprocess.run([sys.executable, "-m", "node.main", "serve", *args],
                          capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    assert done.returncode == 2 and "retain-days 'tg:*=soon'" in done.stderr
    assert named in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_rules_come_from_the_command_line_the_environment_or_the_file(tmp_path: Path) -> None:
    def shown(*args: str, **env: str) -> object:
        done = subprocess.run([sys.executable, "-m", "node.main", "serve", *args,
                               "--print-config"], capture_output=True, text=True,
                              env={**child_env(), **env}, timeout=60, check=True)
        return json.loads(done.stdout)["retain_days"]

    assert shown() == []  # off by default
    config = tmp_path / "clawsync.toml"
    config.write_text('retain_days = ["tg:*=30", "*=365"]\n')
    # Printed as the file gives them.
    assert shown("--config", str(config)) == ["tg:*=30", "*=365"]
    assert shown(CLAWSYNC_RETAIN_DAYS="web:*=2 x=1.5") == ["web:*=2", "x=1.5"]
    assert shown("--retain-days", "a*=7") == ["a*=7"]
