"""A process of another user (``nobody``) that runs this checkout's code, for the tests
of what a folder's mode or owner does (``other_user`` in ``tests/node/conftest.py``).

Where the checkout (its virtual environment with it) lies in a folder closed to that user
(``mktemp -d`` makes one, as a CI runner may), what it runs is copied (hard links where
they can be made) to a folder it may enter, and run by this Python's own interpreter, or
the system's of the same version.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import CLI_TIMEOUT_S, ROOT, child_env
from tests.support.unavailable import unavailable

#: A user other than this one (``nobody``).
OTHER = 65534
#: What a process of another user imports of this checkout, copied when the checkout is
#: closed to it (beside the installed packages).
PROJECT_PATHS = ("node", "crdt", "sync", "tests/__init__.py", "tests/support")


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


@contextmanager
def as_other_user() -> Iterator[OtherUser]:
    """``nobody``, able to run this checkout's code (from a copy, removed on exit, where
    it must be). Skipped where it cannot be (no ``setpriv``, no interpreter that user may
    run); failed so in CI."""
    if shutil.which("setpriv") is None:
        unavailable("needs setpriv")
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
            unavailable("no Python that another user may run can import a copy of the "
                        f"checkout ({', '.join(dict.fromkeys(pythons))})")
        yield runnable[0]
    finally:
        shutil.rmtree(folder)
