"""node.worker_loop: the worker reads and writes its pipes in the frames of
``multiprocessing.connection.Connection``, which the node's end of them uses."""

from __future__ import annotations

import contextlib
import os
import struct
import threading
from collections.abc import Iterator
from multiprocessing.connection import Connection

import pytest

from node import worker_loop

#: Sizes around the edges of the frame and of a pipe's buffer (64 KiB on Linux).
SIZES = (0, 1, 16384, 16385, 65536, 3 * 65536 + 7)


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read_end, write_end = os.pipe()
    yield read_end, write_end
    for fd in (read_end, write_end):
        with contextlib.suppress(OSError):  # closed by the test
            os.close(fd)


def test_what_it_sends_a_connection_reads(pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    reader = Connection(os.dup(read_end), writable=False)
    for size in SIZES:
        data = bytes(range(256)) * (size // 256) + bytes(size % 256)
        # A frame longer than the pipe's buffer is written while the other end reads.
        writer = threading.Thread(target=worker_loop.send, args=(write_end, data))
        writer.start()
        assert reader.recv_bytes() == data
        writer.join()
    reader.close()


def test_what_a_connection_sends_it_reads(pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    writer = Connection(os.dup(write_end), readable=False)
    for size in SIZES:
        data = bytes(size % 251 for _ in range(size))
        sending = threading.Thread(target=writer.send_bytes, args=(data,))
        sending.start()
        assert worker_loop.receive(read_end) == data
        sending.join()
    writer.close()


def test_a_long_frame_is_read_by_its_eight_byte_length(pipe: tuple[int, int]) -> None:
    """Longer than 2 GiB, a frame's length is -1 and then 8 bytes (``Connection``'s
    form), here written by hand for a short message."""
    read_end, write_end = pipe
    os.write(write_end, struct.pack("!i", -1) + struct.pack("!Q", 3) + b"abc")
    assert worker_loop.receive(read_end) == b"abc"


def test_a_closed_pipe_ends_the_loop_and_a_cut_frame_is_an_error(
        pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    os.write(write_end, struct.pack("!i", 10) + b"abc")
    os.close(write_end)
    with pytest.raises(OSError, match="inside a message"):
        worker_loop.receive(read_end)
    with pytest.raises(EOFError):
        worker_loop.receive(read_end)  # nothing more: the node closed its end
