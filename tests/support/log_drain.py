"""What the tests of ``node.logs`` share: waiting for a stream's writer thread."""

from __future__ import annotations

from node.log_stream import LogStream

#: Seconds a test waits for a stream's writer thread to take what was logged (a bound
#: on a hang, not a figure: it takes milliseconds).
DRAIN_S = 30.0


def drained(stream: LogStream) -> LogStream:
    """``stream`` once its writer thread wrote (or dropped) every line logged so far."""
    assert stream.drain(DRAIN_S), "the writer thread is stuck"
    return stream
