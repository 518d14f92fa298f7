"""A client connection's outbox bounds (``node.automerge.connection``), without a socket:
what a client that reads too slowly gets."""

from __future__ import annotations

from typing import Any

from node.automerge.connection import ClientConnection
from sync.repo.config import RepoLimits
from sync.repo.host import CLOSE_POLICY


async def test_a_client_that_reads_too_slowly_is_dropped() -> None:
    def connection(**limits: int) -> Any:
        return ClientConnection(None, None, None, None,  # type: ignore[arg-type]
                                RepoLimits(**limits))

    conn = connection(outbox_frames_max=3)
    for _ in range(3):
        conn.post(b"frame")
    conn.post(b"one too many")
    assert list(conn._outbox) == [(CLOSE_POLICY, "the client reads too slowly")]
    conn = connection(outbox_bytes_max=10)
    conn.post(b"12345")
    conn.post(b"123456")
    assert list(conn._outbox) == [(CLOSE_POLICY, "the client reads too slowly")]


async def test_ephemeral_frames_are_dropped_for_a_slow_client_not_closing_it() -> None:
    limits = RepoLimits(ephemeral_outbox_frames_max=3)
    conn = ClientConnection(None, None, None, None, limits)  # type: ignore[arg-type]
    queued = [conn.post_ephemeral(b"presence") for _ in range(limits.outbox_frames_max + 1)]
    assert queued[:3] == [True] * 3 and not any(queued[3:])
    assert list(conn._outbox) == [b"presence"] * 3  # no close
    conn.post(b"sync")  # the client's own frames still go out
    assert conn._outbox[-1] == b"sync"
    conn = ClientConnection(None, None, None, None,  # type: ignore[arg-type]
                            RepoLimits(ephemeral_outbox_bytes_max=20))
    assert conn.post_ephemeral(b"x" * 15) and not conn.post_ephemeral(b"x" * 6)
