"""A token the node refuses stops ``clawsync openclaw import``, ``watch`` and ``export``
with an exit code of its own, which the ``watch`` unit in deploy/systemd is not restarted
after (as after the other exits that running again does not mend); a node that is down is
no exit, as ``watch`` waits for it itself."""

from __future__ import annotations

import configparser
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.cli.common import CURSOR_CHANGED_EXIT, TOKEN_REFUSED_EXIT
from tests.support.openclaw import turn_records, write_jsonl
from tests.support.processes import NodeProcess, run_cli

UNIT = Path(__file__).resolve().parents[3] / "deploy" / "systemd" / "clawsync-openclaw.service"
SID, KEY = "70707070-0000-4000-8000-000000000001", "agent:main:explicit:token"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    with NodeProcess(tmp_path_factory.mktemp("node"), token="the-right-token") as started:
        yield started


@pytest.mark.parametrize("command", ["import", "watch", "export"])
def test_a_refused_token_exits_with_its_own_code(tmp_path: Path, node: NodeProcess,
                                                 command: str) -> None:
    write_jsonl(tmp_path, KEY, SID, turn_records(SID, [int(time.time() * 1000)]))
    session = (KEY,) if command == "export" else ()
    done = run_cli(node, "openclaw", command, *session, "--state-dir", str(tmp_path),
                   token="a-wrong-token")
    assert done.returncode == TOKEN_REFUSED_EXIT, done.stderr
    assert "Error: the node refused the token" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    # With the node's token, the same import goes through.
    if command == "import":
        again = run_cli(node, "openclaw", command, "--state-dir", str(tmp_path),
                        token="the-right-token")
        assert again.returncode == 0, again.stderr


def test_the_watch_unit_is_not_restarted_after_what_running_again_does_not_mend() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read_string(UNIT.read_text())
    assert unit["Service"]["Restart"] == "always"
    prevented = {int(code) for code in unit["Service"]["RestartPreventExitStatus"].split()}
    # 2: a usage error; exit 1 (a cursor full while an OpenClaw import runs) is restarted.
    assert prevented == {2, CURSOR_CHANGED_EXIT, TOKEN_REFUSED_EXIT}
