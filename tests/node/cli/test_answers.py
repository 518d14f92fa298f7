"""Reading a node's answer (``node.cli.common.field``, ``rows``, ``written``): what the
node got wrong is an ``AnswerError`` line; what the command got wrong stays its own error."""

from __future__ import annotations

import pytest

from node.cli.common import AnswerError, NodeError, field, maybe, written


def test_a_commands_own_key_error_is_not_taken_for_the_nodes() -> None:
    """The decorator this replaced said any KeyError was a field the node left out,
    and dropped the traceback of the command's own bug."""
    with pytest.raises(KeyError), written("the node accepted the write"):
        {}["ours"]  # a lookup of the command's own, not of the answer


def test_a_malformed_answer_to_a_write_says_the_write_was_made() -> None:
    with pytest.raises(NodeError) as raised, written("the node accepted the write"):
        field({}, "device", dict)
    assert not isinstance(raised.value, AnswerError)
    assert raised.value.message == ("the node accepted the write, but its answer is "
                                    "malformed: the node's answer has no field 'device'")


def test_numbers_are_numbers_and_not_booleans() -> None:
    assert field({"s": 2}, "s", float) == 2
    assert maybe({"s": 2.5}, "s", float) == 2.5
    for kind in (int, float):
        with pytest.raises(AnswerError, match="has True as 's', not a"):
            field({"s": True}, "s", kind)
