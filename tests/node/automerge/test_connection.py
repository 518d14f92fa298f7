"""A client connection's outbox bounds (``node.automerge.connection``), without a socket:
what a client that reads too slowly gets."""

from __future__ import annotations

from typing import Any

from node.automerge.connection import ClientConnection
from node.limits import limits_from, out_of_order
from sync.repo.config import RepoLimits
from sync.repo.host import CLOSE_POLICY
from sync.repo.messages import NAME_CHARS_MAX, SYNC_ENVELOPE_BYTES_MAX, encode_sync


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


def _full_sync_frame(served_bytes_max: int) -> bytes:
    """The largest sync frame the node may send: a message of ``served_bytes_max`` bytes
    between two peer ids of the longest (4 bytes a character)."""
    longest = "\U0001d11e" * NAME_CHARS_MAX
    return encode_sync(longest, longest, "4NMNnkMhL8jXrdJ9jamS58PAVdXu", b"s" * served_bytes_max)


def _closed(conn: Any) -> bool:
    return any(not isinstance(frame, bytes) for frame in conn._outbox)


async def test_a_first_sync_fits_behind_as_much_ephemeral_data_as_may_wait() -> None:
    """The limits a file may set keep a document's largest first sync deliverable to a
    client whose outbox holds all the ephemeral data it may: at the boundary it goes out,
    and one byte less of outbox is warned of at start."""
    served, ephemeral = 100_000, 100_000
    outbox = served + ephemeral + SYNC_ENVELOPE_BYTES_MAX
    table = {"served-bytes-max": served, "ephemeral-outbox-bytes-max": ephemeral}
    limits = limits_from({**table, "outbox-bytes-max": outbox}, RepoLimits, "automerge_limits")
    conn = ClientConnection(None, None, None, None, limits)  # type: ignore[arg-type]
    assert all(conn.post_ephemeral(b"x" * 25_000) for _ in range(4))
    frame = _full_sync_frame(served)
    assert len(frame) - served <= SYNC_ENVELOPE_BYTES_MAX
    conn.post(frame)
    assert not _closed(conn)
    assert out_of_order(limits, "automerge_limits") == []
    smaller = limits_from({**table, "outbox-bytes-max": outbox - 1}, RepoLimits,
                          "automerge_limits")
    [said] = out_of_order(smaller, "automerge_limits")
    assert f"set [automerge_limits] outbox_bytes_max to at least {outbox}" in said


async def test_a_first_sync_frame_fits_behind_as_many_ephemeral_frames_as_may_wait() -> None:
    table = {"outbox-frames-max": 8, "ephemeral-outbox-frames-max": 7}
    limits = limits_from(table, RepoLimits, "automerge_limits")
    conn = ClientConnection(None, None, None, None, limits)  # type: ignore[arg-type]
    assert [conn.post_ephemeral(b"p") for _ in range(8)] == [True] * 7 + [False]
    conn.post(b"sync")
    assert not _closed(conn)
    assert out_of_order(limits, "automerge_limits") == []
    full = limits_from({**table, "ephemeral-outbox-frames-max": 8}, RepoLimits,
                       "automerge_limits")
    [said] = out_of_order(full, "automerge_limits")
    assert "set [automerge_limits] ephemeral_outbox_frames_max below 8" in said


async def test_served_bytes_max_at_the_outbox_is_warned_of_since_its_frame_never_fits(
        ) -> None:
    """A sync message of served_bytes_max is sent in a frame a little larger: at
    outbox_bytes_max it would drop its client even from an empty outbox. Such a file
    started before the frame was counted: it still starts, and is warned of."""
    table = {"outbox-bytes-max": 1_000_000, "served-bytes-max": 1_000_000,
             "ephemeral-outbox-bytes-max": 1000}
    conn = ClientConnection(None, None, None, None,  # type: ignore[arg-type]
                            RepoLimits(**{k.replace("-", "_"): v for k, v in table.items()}))
    conn.post(_full_sync_frame(1_000_000))
    assert _closed(conn)
    keys = {key.replace("-", "_"): key for key in table}
    said = " ".join(out_of_order(limits_from(table, RepoLimits, "automerge_limits"),
                                 "automerge_limits", keys))
    assert ("served-bytes-max (1000000, from the file) + [automerge_limits] "
            "ephemeral-outbox-bytes-max (1000, from the file) + "
            f"{SYNC_ENVELOPE_BYTES_MAX} bytes around a sync frame is above") in said
