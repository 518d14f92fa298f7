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
    ("bench.js_client", ["--clients", "249"]),
    ("bench.console_cost", ["--clients", "1000"]),
])
def test_more_local_clients_than_a_node_takes_from_one_address(module: str,
                                                               args: list[str]) -> None:
    """They all connect from 127.0.0.1: past the node's cap the benchmark failed part way,
    with a traceback."""
    done = subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert "must be at most 248 (a node's connections from one address, less the " \
        "benchmark's own)" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_scale_folder_without_the_benchmarks_log_is_named(tmp_path: Path) -> None:
    def scale(folder: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bench.scale", "--quick", "--no-build",
                               "--scale", f"20000:100:{folder}"],
                              capture_output=True, text=True, timeout=120, check=False)

    missing = scale(tmp_path / "missing")
    assert missing.returncode == 2 and "is no folder" in missing.stderr, missing.stderr
    assert not (tmp_path / "missing").exists()
    (tmp_path / "empty").mkdir()
    done = scale(tmp_path / "empty")
    assert done.returncode == 1, done.stderr
    assert f"{tmp_path / 'empty'}: holds no 'scale:big' session: give a folder this " \
           "benchmark built" in done.stderr
    assert "Traceback" not in done.stderr
