"""A plain 401 or 403 from a reverse proxy in front of the node (its own login page, a
firewall: no node's JSON error, no Bearer challenge) is not the node's refusal of the
token: ``openclaw import``, ``watch`` and ``export`` exit 1 for it, which the ``watch``
unit in deploy/systemd restarts after, not ``TOKEN_REFUSED_EXIT``. A proxy that swaps the
node's 401 page for its own keeps the node's Bearer challenge: that is the node's
refusal still."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from node.cli.common import TOKEN_REFUSED_EXIT
from tests.support.openclaw import turn_records, write_jsonl
from tests.support.processes import run_cli
from tests.support.stand_in import Quiet, serving

KEY = "agent:main:explicit:p"


class _Gate(Quiet):
    """Answers every request with the status its path starts with, as plain text; with
    the node's Bearer challenge under /bearer/."""

    def do_GET(self) -> None:
        parts = self.path.split("/")
        self.send_response(int(parts[1]))
        if parts[2] == "bearer":
            self.send_header("WWW-Authenticate", 'Bearer realm="clawsync"')
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"login required\n")

    do_PUT = do_POST = do_GET


def _run(base: str, command: str, state: Path) -> tuple[int, str]:
    write_jsonl(state, KEY, "p1", turn_records("p1", [int(time.time() * 1000)]))
    session = (KEY,) if command == "export" else ()
    done = run_cli(base, "openclaw", command, *session, "--state-dir", str(state),
                   token="t" * 32)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stderr


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize("command", ["import", "watch", "export"])
def test_a_proxys_refusal_is_exit_1(tmp_path: Path, status: int, command: str) -> None:
    with serving(_Gate) as base:
        code, said = _run(f"{base}/{status}/plain", command, tmp_path)
    assert "without a clawsync answer" in said, said
    assert code == 1, (code, said)


@pytest.mark.parametrize("command", ["import", "export"])
def test_a_swapped_page_of_the_nodes_401_is_its_refusal(tmp_path: Path,
                                                        command: str) -> None:
    with serving(_Gate) as base:
        code, said = _run(f"{base}/401/bearer", command, tmp_path)
    assert "the node refused the token" in said, said
    assert code == TOKEN_REFUSED_EXIT, (code, said)
