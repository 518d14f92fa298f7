"""``clawsync origins retire`` of an origin the node does not hold (a typo), or of a name
that is no origin id, says where the right one is read, and changes nothing."""

from __future__ import annotations

from pathlib import Path

from node.cli.origins import origin_rows
from tests.support.processes import NodeProcess, run_cli


def test_last_activity_is_written_as_the_other_listings_write_times() -> None:
    """As ``events``, ``sessions`` and ``tokens`` write them (``node.text.time_text``), not as
    the node's JSON has them, with a "T"."""
    row = origin_rows([{"origin": "45533c84642daaab", "own": False, "seq": 3, "events": 3,
                        "last_activity": "2026-12-07T04:35:19.021Z", "state": "active"}])
    assert row == [["45533c84642daaab", "3", "3", "2026-12-07 04:35:19Z", "active"]]


def test_retiring_an_origin_the_node_lacks_says_how_to_list_them(tmp_path: Path) -> None:
    with NodeProcess(tmp_path) as node:
        assert run_cli(node, "origins").stderr.strip() == "0 active origins"
        line = '{"agent_id": "main", "kind": {"type": "session_ended", "reason": "done"}}'
        assert run_cli(node, "append", "s-one", "--file", "-", input=line).returncode == 0
        listed = run_cli(node, "origins")  # its own, which wrote that event
        assert listed.stderr.strip() == "1 active origin", listed.stderr
        before = run_cli(node, "origins", "--json")
        assert before.returncode == 0, before.stderr
        done = run_cli(node, "origins", "retire", "45533c84642daaab")
        assert done.returncode == 1, done.stderr
        assert done.stderr.strip() == (
            "Error: the node holds no events of origin '45533c84642daaab'; "
            "`clawsync origins` lists those it holds"), done.stderr
        assert run_cli(node, "origins", "--json").stdout == before.stdout


def test_retiring_a_name_that_is_no_origin_id_says_so(tmp_path: Path) -> None:
    with NodeProcess(tmp_path) as node:
        before = run_cli(node, "origins", "--json")
        done = run_cli(node, "origins", "retire", "zz")
        assert done.returncode == 2, done.stderr  # the node refused it as malformed
        assert done.stderr.strip() == (
            "Error: the node refused the retirement: origin: 'zz' is not an origin id "
            "(16 hex digits, as GET /v1/origins lists them), nor an origin this node knows; "
            "`clawsync origins` lists those it holds"), done.stderr
        assert run_cli(node, "origins", "--json").stdout == before.stdout
