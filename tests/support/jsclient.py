"""Drives tests/js/repo_client.mjs: a real ``@automerge/automerge-repo`` client in a
Node.js process, one JSON command per line in, one JSON report per line out.

    with JsClient() as js:
        js.call("connect", repo="app", ws=node_ws_url)
        doc = js.call("find", repo="app", url=automerge_url)["doc"]
"""

from __future__ import annotations

import contextlib
import json
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import pytest

from tests.support.processes import ROOT

JS_DIR = ROOT / "tests" / "js"
#: Seconds one command or awaited report may take.
REPORT_TIMEOUT_S = 30.0
#: Seconds ``npm ci`` may take when the packages are missing.
INSTALL_TIMEOUT_S = 300.0

Report = dict[str, Any]


def require_npm_packages() -> None:
    """Skip unless Node.js is installed; install the pinned packages if missing."""
    if shutil.which("node") is None:
        pytest.skip("Node.js is not installed: the automerge-repo interop tests need it")
    if (JS_DIR / "node_modules" / "@automerge" / "automerge-repo").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: cannot install tests/js/package-lock.json")
    subprocess.run([npm, "ci", "--prefix", str(JS_DIR), "--no-audit", "--no-fund"],
                   check=True, timeout=INSTALL_TIMEOUT_S, capture_output=True)


class JsClient:
    """One Node.js process holding any number of automerge-repo ``Repo`` objects."""

    def __init__(self, log_path: Path | None = None) -> None:
        self._stderr: IO[bytes] | int = (open(log_path, "ab") if log_path  # noqa: SIM115
                                         else subprocess.DEVNULL)
        self.process = subprocess.Popen(
            ["node", str(JS_DIR / "repo_client.mjs")], cwd=JS_DIR, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._stderr, text=True, bufsize=1)
        self.reports: queue.Queue[Report | None] = queue.Queue()
        self.seen: list[Report] = []
        self._next_id = 0
        threading.Thread(target=self._pump, daemon=True).start()
        self.wait(lambda report: report.get("hello") is True)

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                report = json.loads(line)
            except ValueError:
                report = None
            # Anything else is a library printing to stdout: kept, never fatal.
            self.reports.put(report if isinstance(report, dict)
                             else {"stdout": line.rstrip("\n")})
        self.reports.put(None)

    def wait(self, matches: Callable[[Report], bool],
             timeout_s: float = REPORT_TIMEOUT_S) -> Report:
        """The first new report that ``matches``; fails at the deadline or on an error."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                report = self.reports.get(timeout=left)
            except queue.Empty:
                break
            if report is None:
                raise EOFError(f"the JS client exited; last reports: {self.seen[-5:]}")
            self.seen.append(report)
            if "error" in report and report.get("id") is None:
                raise AssertionError(f"JS client error: {report['error']}")
            if matches(report):
                return report
        raise TimeoutError(f"no matching report within {timeout_s} s; last: {self.seen[-5:]}")

    def call(self, op: str, timeout_s: float = REPORT_TIMEOUT_S, **args: Any) -> Report:
        """Run one command and return its answer."""
        self._next_id += 1
        number = self._next_id
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"id": number, "op": op, **args}) + "\n")
        self.process.stdin.flush()
        report = self.wait(lambda r: r.get("ok") == number or r.get("id") == number,
                           timeout_s)
        if "error" in report:
            raise AssertionError(f"JS {op} failed: {report['error']}")
        return report

    def changes(self, repo: str, matches: Callable[[Any], bool],
                timeout_s: float = REPORT_TIMEOUT_S) -> Any:
        """The document of the first new change report of ``repo`` that ``matches``."""
        report = self.wait(lambda r: r.get("repo") == repo and "change" in r
                           and matches(r["doc"]), timeout_s)
        return report["doc"]

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(AssertionError, EOFError, TimeoutError, OSError):
                self.call("quit", timeout_s=5.0)
            try:
                self.process.wait(5.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not isinstance(self._stderr, int):
            self._stderr.close()

    def __enter__(self) -> JsClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()
