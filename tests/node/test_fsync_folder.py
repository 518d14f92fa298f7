"""``node.folder.fsync_folder`` on file systems that do not sync folders, and on
folders this process may not open."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from node.folder import fsync_folder, make_folders
from tests.support.processes import CLI_TIMEOUT_S, ROOT, child_env

#: A user other than root (``nobody``), whom a folder's mode binds.
NOBODY = 65534
#: Make a folder (argv[1]) with ``make_folders``; the names of those it made.
MAKE_PY = """import sys
from pathlib import Path
from node.folder import make_folders
print(*(one.name for one in make_folders(Path(sys.argv[1]))))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="procfs is Linux's")
def test_a_file_system_that_does_not_sync_folders_is_no_failure() -> None:
    # procfs answers a folder's fsync with EINVAL, as some network and FUSE file systems
    # do: the node's folders made there (and an export's renames) go on as SQLite does.
    fsync_folder(Path("/proc"))


def test_a_folder_that_cannot_be_opened_is_a_failure(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        fsync_folder(tmp_path / "gone")


def _unavailable(reason: str) -> None:
    """Skip, or fail in CI (``CI=true``), where the test as another user must run."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}: the test run as another user must run in CI")
    pytest.skip(reason)


@pytest.mark.skipif(os.name != "posix", reason="folder modes are POSIX")
def test_folders_are_made_in_a_parent_that_may_be_written_but_not_read() -> None:
    """Mode 0300, the user's own: a folder may be made in it (write and search), it may
    not be opened to flush (read). The node's data folder, its storage folder, are made
    there all the same, not refused as folders that cannot be made."""
    parent = Path(tempfile.mkdtemp())  # in /tmp, which every user may enter
    try:
        if os.geteuid() != 0:  # this user's mode binds this user
            parent.chmod(0o300)
            made = [one.name for one in make_folders(parent / "data" / "log")]
        else:  # root's does not: as another user, whose it is
            if shutil.which("setpriv") is None:
                _unavailable("needs setpriv to run as another user")
            os.chown(parent, NOBODY, NOBODY)
            parent.chmod(0o300)
            result = subprocess.run(
                ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                 sys.executable, "-c", MAKE_PY, str(parent / "data" / "log")],
                cwd=ROOT, env=child_env(), capture_output=True, text=True,
                timeout=CLI_TIMEOUT_S, check=False)
            if "No module named" in result.stderr or "setpriv:" in result.stderr:
                _unavailable(f"another user cannot run this checkout here: {result.stderr}")
            assert result.returncode == 0, result.stderr
            made = result.stdout.split()
        assert made == ["data", "log"]
        parent.chmod(0o700)
        assert (parent / "data" / "log").is_dir()
    finally:
        parent.chmod(0o700)
        shutil.rmtree(parent)


def test_a_folder_that_may_not_be_opened_is_a_failure_unless_said(tmp_path: Path) -> None:
    """Only a folder's maker skips a parent it may not open; a rename's flush is strict."""
    if os.geteuid() == 0:
        pytest.skip("root opens any folder")
    tmp_path.chmod(0o300)
    try:
        with pytest.raises(PermissionError):
            fsync_folder(tmp_path)
        fsync_folder(tmp_path, openable_only=True)
    finally:
        tmp_path.chmod(0o700)
