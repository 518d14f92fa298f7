"""A node whose log nobody reads any more (the reader of its stderr pipe exited: journald
restarted, a ``| tee`` ended) goes on serving, and counts the lines it drops."""

from __future__ import annotations

import signal
import socket
import subprocess
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import STOP_TIMEOUT_S, NodeProcess, child_env

#: A request line aiohttp's parser refuses: the node logs one line for it.
MALFORMED = b"GET / HTTP/1.1\r\nHo st: x\r\n\r\n"
#: Malformed requests sent once the log's reader is gone (fewer than the node logs
#: per interval, ``Limits.refused_log_lines_max``).
REFUSED = 3


def dropped(url: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    [family] = [f for f in text_string_to_metric_families(text)
                if f.name == "clawsync_log_lines_dropped"]
    counts = {sample.labels["reason"]: sample.value for sample in family.samples
              if sample.name.endswith("_total")}
    assert counts["write_error"] == 0
    return float(counts["reader_gone"])


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
