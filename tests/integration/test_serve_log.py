"""A node whose log nobody reads any more (the reader of its stderr pipe exited: journald
restarted, a ``| tee`` ended), or whose reader stalled (alive, not reading: a paused
pager, ``| (sleep 1000)``), goes on serving, and counts the lines it drops."""

from __future__ import annotations

import contextlib
import fcntl
import signal
import socket
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import warning_node
from tests.support.cluster import append, message
from tests.support.processes import STOP_TIMEOUT_S, NodeProcess, child_env
from tests.support.waits import wait_until

#: A request line aiohttp's parser refuses: the node logs one line for it.
MALFORMED = b"GET / HTTP/1.1\r\nHo st: x\r\n\r\n"
#: Malformed requests sent once the log's reader is gone (fewer than the node logs
#: per interval, ``Limits.refused_log_lines_max``).
REFUSED = 3


#: Seconds a test waits for the node to do what a signal asked (a bound on a hang, not a
#: figure: it takes milliseconds).
SIGNAL_DONE_S = 30.0
#: Bytes the stalled reader's pipe holds (Linux's smallest, a page): a few log lines.
PIPE_BYTES = 4096
#: Bytes of lines the stalled node queues (``[limits] log_queued_bytes_max``): a
#: hundred refused requests' lines or so.
QUEUED_BYTES = 16 * 1024
#: Refused requests that fill the pipe and the queue: each line is longer than 50 bytes.
REFUSED_PAST_THE_QUEUE = (PIPE_BYTES + QUEUED_BYTES) // 50 + 100


def dropped_by_reason(url: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    [family] = [f for f in text_string_to_metric_families(text)
                if f.name == "clawsync_log_lines_dropped"]
    counts = {sample.labels["reason"]: sample.value for sample in family.samples
              if sample.name.endswith("_total")}
    assert counts["write_error"] == 0
    return counts


def dropped(url: str) -> float:
    return dropped_by_reason(url)["reader_gone"]


def refuse_one(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(MALFORMED)
        assert b" 400 " in sock.recv(64)


def test_lines_dropped_once_the_log_reader_is_gone_are_counted(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path)
    node.data_dir.mkdir()
    process = subprocess.Popen(node.command(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, env=child_env(), text=True)
    try:
        assert process.stderr is not None
        for line in process.stderr:  # until it serves (EOF: it exited)
            if "serving" in line:
                break
        assert process.poll() is None, "the node exited while starting"
        assert dropped(node.url) == 0
        process.stderr.close()  # the reader is gone
        for _ in range(REFUSED):
            refuse_one(node.port)
        assert node.get("/healthz")["status"] == "ok"
        assert dropped(node.url) >= REFUSED
        process.send_signal(signal.SIGTERM)
        assert process.wait(STOP_TIMEOUT_S) == 0  # stopping and stopped dropped too
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_stalled_log_reader_holds_no_request(tmp_path: Path) -> None:
    """The node's stderr is a pipe whose reader never reads: once the pipe is full, every
    log line waits on it. The node answers on: each refused request (a line each, as
    many as the config lets through) gets its 400, ``/healthz`` and an append answer,
    the lines past the log's queue are counted as ``would_block``, and SIGTERM stops
    it, the lines still queued given up after a bounded wait."""
    node = NodeProcess(tmp_path)
    node.data_dir.mkdir()
    config = tmp_path / "clawsync.toml"
    config.write_text(f"[limits]\nrefused_log_lines_max = {10 * REFUSED_PAST_THE_QUEUE}\n"
                      f"log_queued_bytes_max = {QUEUED_BYTES}\n")
    process = subprocess.Popen([*node.command(), "--config", str(config)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env=child_env())
    try:
        assert process.stderr is not None
        fcntl.fcntl(process.stderr.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        node.wait_healthy()
        for _ in range(REFUSED_PAST_THE_QUEUE):  # each waits for its 400
            refuse_one(node.port)
        assert node.get("/healthz")["status"] == "ok"
        [stored] = append(node, "s1", [message("still served")])
        assert stored["kind"]["content"] == "still served"
        counts = dropped_by_reason(node.url)
        assert counts["would_block"] > 0 and counts["reader_gone"] == 0
        process.send_signal(signal.SIGTERM)
        assert process.wait(STOP_TIMEOUT_S) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


@contextlib.contextmanager
def stalled_warning_node(tmp_path: Path, report: str) -> Iterator[
        tuple[NodeProcess, subprocess.Popen[bytes]]]:
    """A node of ``tests.support.warning_node`` whose stderr pipe (``PIPE_BYTES``) nobody
    reads, once it has made ``report`` (``warning_node.REPORT_ENV``) on SIGUSR1: the
    reader stalled, the pipe full. Killed, if still running, when the block ends."""
    done = tmp_path / "done"
    node = NodeProcess(tmp_path, program="tests.support.warning_node")
    node.data_dir.mkdir()
    process = subprocess.Popen(node.command(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE,
                               env=child_env({warning_node.DONE_ENV: str(done),
                                              warning_node.REPORT_ENV: report}))
    assert process.stderr is not None
    try:
        fcntl.fcntl(process.stderr.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        node.wait_healthy()
        process.send_signal(signal.SIGUSR1)

        def signal_done() -> bool:
            if done.exists():
                return True
            assert process.poll() is None, "the node exited"
            return False

        wait_until(signal_done, SIGNAL_DONE_S, "the node's main thread taking the signal")
        yield node, process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()


@pytest.mark.parametrize(("made", "reported"), [
    ("warnings", "RuntimeWarning: warning"), ("finalizer-errors", "Exception ignored"),
    ("thread-errors", "Exception in thread failing-"),
    ("handler-errors", "could not be written")],
    ids=["warnings", "finalizer-errors", "thread-errors", "handler-errors"])
def test_what_python_reports_itself_waits_for_no_stalled_reader(
        tmp_path: Path, made: str, reported: str) -> None:
    """Python writes its warnings, the exceptions it can only report (a finalizer's),
    those that end a thread, and logging's report of a record its handler could not
    write, to stderr itself. On the event loop, with a stderr whose reader stalled and a
    full pipe, such a write would hold the node (a thread's: whoever waits for the
    thread); they go through the log's queue instead, and are written, in order with
    the other lines, once the reader reads again."""
    taken: list[bytes] = []
    with stalled_warning_node(tmp_path, made) as (node, process):
        stderr = process.stderr
        assert stderr is not None
        reading = threading.Thread(target=lambda: taken.append(stderr.read()), daemon=True)
        assert node.get("/healthz")["status"] == "ok"
        assert dropped_by_reason(node.url)["would_block"] == 0
        reading.start()  # the reader reads again
        process.send_signal(signal.SIGTERM)
        assert process.wait(STOP_TIMEOUT_S) == 0
        reading.join(SIGNAL_DONE_S)
    logged = b"".join(taken).decode()
    assert logged.count(reported) == warning_node.REPORTS
    assert logged.index(reported) < logged.index("stopped")


def test_an_uncaught_exception_ends_the_process_despite_a_stalled_reader(
        tmp_path: Path) -> None:
    """An exception nothing catches in the main thread ends the process: Python would
    write its traceback to stderr and, the pipe full and its reader stalled, never
    exit. It is logged instead, and the exit waits for it only as long as for any
    queued line; the process ends, failed (1)."""
    with stalled_warning_node(tmp_path, "uncaught") as (_, process):
        process.send_signal(signal.SIGTERM)  # stops, then ends with the exception
        assert process.wait(STOP_TIMEOUT_S) == 1
