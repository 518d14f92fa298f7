"""Every test here looks for OpenClaw's per-machine lock folders, and an export makes
its own, under a private folder instead of the shared ``/tmp`` (a test's ``locks``
fixture gives one of its own). The tests that run a command as another user have
``other_user`` (``tests/node/conftest.py``); those of where an export writes, ``state``."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


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


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """An OpenClaw state folder with an agents/ folder, and beside it (in ``tmp_path``)
    a folder ``outside`` an escape would write into."""
    (tmp_path / "state" / "agents").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    return tmp_path / "state"
