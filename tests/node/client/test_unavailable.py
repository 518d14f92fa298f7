"""A node's 503 through ``Client``: the node cannot take the request now (its disk full,
its writer busy, shutting down), said as that with the wait it asked for, not as a
failure of the request; any other 5xx is still the node failing it."""

from __future__ import annotations

from typing import Any

import pytest

from crdt.errors import StorageBusy, StorageFull
from node.client.api import Client, ClientError
from node.group_commit import StoreBusy, StoreClosing
from node.server.run import RunningNode

EVENT = {"agent_id": "main", "kind": {"type": "session_ended", "reason": "done"}}


@pytest.mark.parametrize(("raised", "said"), [
    (StorageFull("the disk is full", location="/data"),
     "the node could not handle the event now (HTTP 503, try again in 30 s): the disk is "
     "full (/data)"),
    (StorageBusy("the database stayed locked for more than 60 s", location="/data"),
     "the node could not handle the event now (HTTP 503, try again in 1 s): the database "
     "stayed locked for more than 60 s (/data)"),
    (StoreBusy("9 events already wait for the disk; try again shortly"),
     "the node could not handle the event now (HTTP 503, try again in 1 s): 9 events "
     "already wait for the disk; try again shortly"),
    (StoreClosing("the node is shutting down"),
     "the node could not handle the event now (HTTP 503): the node is shutting down"),
    (RuntimeError("a bug"),
     "the node failed to handle the event (HTTP 500): internal error")],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else "")
async def test_a_503_says_the_node_cannot_take_it_now(node: RunningNode, raised: Exception,
                                                     said: str) -> None:
    """The node's store raises ``raised`` at the append: the node answers it as it would
    (503 with its Retry-After, or 500), and the client words it."""
    async def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise raised

    node.astore.append = refuse  # type: ignore[method-assign]
    async with Client(node.url) as client:
        with pytest.raises(ClientError) as refused:
            await client.append("s", [EVENT])
    assert str(refused.value) == said
    assert refused.value.status == (500 if isinstance(raised, RuntimeError) else 503)
