"""Every test here looks for OpenClaw's per-machine lock folders, and an export makes
its own, under a private folder instead of the shared ``/tmp`` (a test's ``locks``
fixture gives one of its own); and what the tests need that run a command as another
user (``other_user``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.processes import CLI_TIMEOUT_S, ROOT, child_env

#: A user other than this one (``nobody``).
OTHER = 65534
#: What a process of another user imports of this checkout, copied when the checkout is
#: closed to it (beside the installed packages).
PROJECT_PATHS = ("node", "crdt", "sync", "tests/__init__.py", "tests/support")


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


@dataclass(frozen=True)
class OtherUser:
    """How a process of the user ``uid`` runs this checkout's code: ``python``, with
    ``env`` (its ``PYTHONPATH``), in ``cwd``, all of which that user may open."""

    uid: int
    python: str
    cwd: Path
    env: dict[str, str]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``python`` with ``args``, run by that user (``setpriv``)."""
        return subprocess.run(
            ["setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups",
             self.python, *args], cwd=self.cwd, env=self.env, capture_output=True,
            text=True, timeout=CLI_TIMEOUT_S, check=False)

    def runs(self) -> bool:
        """Whether that user's process can import the project so."""
        return self.run("-c", "import node.main, tests.support.private_locks").returncode == 0


def _unavailable(reason: str) -> None:
    """Skip, or fail in CI (``CI=true``), where a test that cannot run here (as another
    user, in a namespace of its own) must run."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}: this test must run in CI")
    pytest.skip(reason)


def _link_or_copy(source: str, target: str) -> None:
    """A hard link (as good as a copy here, and made at once) to a file other users may
    read; otherwise a copy they may read (a link would share the file's mode)."""
    if os.stat(source).st_mode & 0o004:
        try:
            os.link(source, target)
            return
        except OSError:
            pass  # another file system: copied
    shutil.copy2(source, target)
    os.chmod(target, os.stat(target).st_mode | 0o444)


def _copy_runnable(folder: Path) -> None:
    """The project's code and its installed packages, under ``folder``."""
    skip = shutil.ignore_patterns("__pycache__")
    for name in PROJECT_PATHS:
        source, target = ROOT / name, folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=skip, copy_function=_link_or_copy)
        else:
            _link_or_copy(str(source), str(target))
    shutil.copytree(sysconfig.get_paths()["purelib"], folder / "site-packages", ignore=skip,
                    copy_function=_link_or_copy, symlinks=True)
    for path in [folder, *folder.rglob("*")]:  # folders copied with a closed mode
        if path.is_dir() and not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o555)


@pytest.fixture(scope="session")
def other_user(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OtherUser]:
    """``nobody``, able to run this checkout's code. Where the checkout (its virtual
    environment with it) lies in a folder closed to that user (``mktemp -d`` makes one,
    as a CI runner may), a copy of what it runs (hard links where they can be made) in
    a folder it may enter, run by this Python's own interpreter, or the system's of the
    same version. Skipped where it cannot be (no ``setpriv``, no interpreter that user
    may run); failed so in CI."""
    if shutil.which("setpriv") is None:
        _unavailable("needs setpriv")
    here = OtherUser(OTHER, sys.executable, ROOT, child_env())
    if here.runs():
        yield here
        return
    folder = Path(tempfile.mkdtemp(prefix="clawsync-as-other-"))
    try:
        _copy_runnable(folder)
        env = child_env({"PYTHONPATH": f"{folder}{os.pathsep}{folder / 'site-packages'}"})
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        pythons = [os.path.realpath(sys.executable), f"/usr/bin/python{version}",
                   f"/usr/local/bin/python{version}"]
        runnable = [user for user in (OtherUser(OTHER, python, folder, env)
                                      for python in dict.fromkeys(pythons)) if user.runs()]
        if not runnable:
            _unavailable("no Python that another user may run can import a copy of the "
                         f"checkout ({', '.join(dict.fromkeys(pythons))})")
        yield runnable[0]
    finally:
        shutil.rmtree(folder)
