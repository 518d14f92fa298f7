"""The client commands' variables set but empty (``CLAWSYNC_NODE=``, ``device``'s
``CLAWSYNC_NAME=``), refused as ``serve`` refuses its own, by real ``clawsync``
processes: click alone would take them for unset, and a command would talk to the
default node, or show the host name, while the environment seemed to say otherwise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import CLI_TIMEOUT_S, NodeProcess, child_env

pytestmark = pytest.mark.integration

#: What a refusal says, after the variable's name.
REFUSED = "is set but empty: give it a value, or unset it (only CLAWSYNC_TOKEN may be empty"


def clawsync(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``clawsync ARGS`` with ``env`` over a clean environment."""
    return subprocess.run([sys.executable, "-m", "node.main", *args], env=child_env(env),
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False)


@pytest.mark.parametrize("args", [
    ("status",), ("sessions",), ("events", "s1"), ("append", "s1", "message_received",
                                                   "content=hi"),
    ("devices",), ("tokens",), ("origins",), ("forget", "s1"), ("device",),
    ("openclaw", "import", "--state-dir", "{state}")], ids=lambda args: " ".join(args[:2]))
def test_an_empty_node_variable_is_a_usage_error_naming_it(tmp_path: Path,
                                                           args: tuple[str, ...]) -> None:
    (tmp_path / "openclaw" / "agents").mkdir(parents=True)
    given = [arg.format(state=tmp_path / "openclaw") for arg in args]
    result = clawsync(*given, env={"CLAWSYNC_NODE": ""})
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert f"Error: CLAWSYNC_NODE {REFUSED}" in result.stderr, result.stderr
    assert "127.0.0.1:7878" not in result.stderr  # the default node was not asked
    assert "Traceback" not in result.stderr


def test_an_empty_node_variable_is_not_looked_at_when_a_node_is_typed(tmp_path: Path) -> None:
    """As for any variable: the option typed wins, and the variable is not read; nor by
    --help, nor by a command that contacts no node."""
    empty = {"CLAWSYNC_NODE": ""}
    with NodeProcess(tmp_path) as node:
        for args in (["--node", node.url, "sessions"], ["sessions", "--node", node.url]):
            result = clawsync(*args, env=empty)
            assert result.returncode == 0, (args, result.stderr)
        assert clawsync("status", "--help", env=empty).returncode == 0
    shown = clawsync("device", "--data-dir", str(node.data_dir), "--json", env=empty)
    assert shown.returncode == 0, shown.stderr


def test_devices_empty_name_variable_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    """device --data-dir shows --name's (CLAWSYNC_NAME's) name: set empty, it would have
    shown the host name. Refused, unless --name is typed."""
    with NodeProcess(tmp_path):
        pass  # the node makes its device key when it first starts
    folder = str(tmp_path / "node-data")
    refused = clawsync("device", "--data-dir", folder, env={"CLAWSYNC_NAME": ""})
    assert refused.returncode == 2, (refused.stdout, refused.stderr)
    assert f"Error: CLAWSYNC_NAME {REFUSED}" in refused.stderr, refused.stderr
    typed = clawsync("device", "--data-dir", folder, "--name", "laptop",
                     env={"CLAWSYNC_NAME": ""})
    assert typed.returncode == 0 and "name   laptop" in typed.stdout, typed.stderr
    # Without --data-dir the name is the node's: the variable is not read.
    named = clawsync("device", "--help", env={"CLAWSYNC_NAME": ""})
    assert named.returncode == 0, named.stderr


def test_serve_and_the_client_commands_refuse_in_the_same_words(tmp_path: Path) -> None:
    result = clawsync("serve", "--data-dir", str(tmp_path / "d"), "--print-config",
                      env={"CLAWSYNC_PORT": ""})
    assert result.returncode == 2, result.stderr
    assert ("Error: CLAWSYNC_PORT is set but empty: give it a value, or unset it (only "
            "CLAWSYNC_TOKEN and CLAWSYNC_CLUSTER_SECRET may be empty, for none)"
            ) in " ".join(result.stderr.split()), result.stderr
