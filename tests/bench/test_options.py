"""Benchmark command lines: a value that could only fail is a usage error before
anything starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize(("module", "args"), [
    ("bench.http_append", ["--clients", "300"]),
    ("bench.signing", ["--http-clients", "300"]),
    ("bench.js_client", ["--clients", "257"]),
    ("bench.console_cost", ["--clients", "1000"]),
])
def test_more_local_clients_than_a_node_takes_from_one_address(module: str,
                                                               args: list[str]) -> None:
    """They all connect from 127.0.0.1: past the node's cap the benchmark failed part way,
    with a traceback."""
    done = subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert "must be at most 256 (a node's connections from one address)" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_scale_folder_without_the_benchmarks_log_is_named(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "bench.scale", "--quick", "--no-build",
                           "--scale", f"20000:100:{tmp_path / 'empty'}"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1, done.stderr
    assert f"{tmp_path / 'empty'}: no session 'scale:big'" in done.stderr
    assert "Traceback" not in done.stderr
