"""Every test here looks for OpenClaw's per-machine lock folders, and an export makes
its own, under a private folder instead of the shared ``/tmp`` (a test's ``locks``
fixture gives one of its own); and what the tests need that run a command as another
user."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

#: A user other than this one (``nobody``).
OTHER = 65534


@pytest.fixture(scope="package", autouse=True)
def private_lock_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Package-wide, so that property tests may use it too (each state folder's locks
    are named after its own path, so tests do not share them); not session-wide: the
    tests with the real OpenClaw (``tests/openclaw``), run in the same session, need
    the locks where OpenClaw takes them."""
    root = tmp_path_factory.mktemp("openclaw-locks")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("node.openclaw.state_locks.LOCKS_ROOT", root)
        yield root


@pytest.fixture
def shared() -> Iterator[Path]:
    """A folder every user can walk into (pytest's own are closed to other users)."""
    folder = Path(tempfile.mkdtemp(prefix="clawsync-locks-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


def runs_as(uid: int) -> bool:
    """Whether a process of the user ``uid`` can run this checkout's Python and import
    the project: not when the checkout lies in a folder closed to that user (``mktemp
    -d`` makes one), nor where there is no ``setpriv``."""
    if shutil.which("setpriv") is None:
        return False
    return subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
         sys.executable, "-c", "import node.openclaw.state_locks"],
        cwd="/", capture_output=True, check=False).returncode == 0
