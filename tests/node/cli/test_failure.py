"""Which exit code a refusal of the node's gives: 2 when it blames what the command was
given, 1 when the same command may succeed later or the answer was damaged on the way."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from crdt.log.cursors import CURSOR_ENTRIES_MAX
from node.cli.common import failure
from node.cli.group import main
from node.cli.openclaw_sink import with_sink
from node.client.api import ClientError
from node.config import Settings
from node.openclaw.bridge import Sink
from tests.support.processes import NodeProcess


@pytest.mark.parametrize(("status", "code", "field", "exit_code"), [
    pytest.param(400, "invalid_field", "events[0]", 2, id="malformed"),
    pytest.param(413, "limit_exceeded", "kind.content", 2, id="event-too-large"),
    pytest.param(400, "invalid_parameter", "limit", 2, id="over-a-limit-of-the-node"),
    # As things stand on the node: the same command succeeds later.
    pytest.param(413, "limit_exceeded", "tokens", 1, id="tokens-at-their-limit"),
    pytest.param(400, "timestamp_ahead", "events[0].timestamp", 1, id="clock-skew"),
    pytest.param(400, "invalid_parameter", "after", 1, id="past-the-newest-position"),
    # Damaged on the way: nothing about the input.
    pytest.param(400, "invalid_body", None, 1, id="a-badly-framed-body"),
    pytest.param(400, "incomplete_body", None, 1, id="a-body-cut-short"),
    pytest.param(400, None, None, 1, id="not-the-nodes-400"),
    pytest.param(409, "origin_live", "origin", 1, id="a-conflict")])
def test_a_refusal_exits_2_only_when_it_blames_the_input(
        status: int, code: str | None, field: str | None, exit_code: int) -> None:
    error = ClientError("the node refused it", status=status, code=code, field=field)
    assert failure(error).exit_code == exit_code


def test_an_after_larger_than_any_node_takes_is_a_usage_error() -> None:
    """The node refuses such an ``after`` as it refuses one past its newest position (the
    same code and field), which exits 1: the command refuses it first, as a mistake."""
    result = CliRunner().invoke(main, ["events", "s1", "--after", str(2**63)])
    assert result.exit_code == 2, result.output
    assert "--after" in result.output


def test_a_refusal_of_a_data_folder_exits_as_the_nodes_refusal(tmp_path: Path) -> None:
    """``openclaw import --data-dir`` writes into the folder itself: what its store
    refuses (here a cursor over its limit) exits as the node's answer (413) would."""
    too_many = {f"e{n}": n for n in range(CURSOR_ENTRIES_MAX + 1)}

    async def work(sink: Sink) -> None:
        await sink.save_cursor("openclaw:ab:cd", too_many)

    codes = []
    with NodeProcess(tmp_path) as node:
        ctx = click.Context(main, obj=Settings(node=node.url, token=node.token))
        for data_dir in (None, tmp_path / "data"):
            with pytest.raises(click.ClickException) as caught:
                with_sink(ctx, data_dir, work)
            assert "20000" in str(caught.value.message), caught.value.message
            codes.append(caught.value.exit_code)
    assert codes == [2, 2]
