"""``node.folder.fsync_folder`` on file systems that do not sync folders, and on
folders this process may not open."""

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from node.folder import fsync_folder, make_folders
from tests.support.other_user import OTHER, OtherUser

#: Make a folder (argv[1]) with ``make_folders``; the names of those it made.
MAKE_PY = """import sys
from pathlib import Path
from node.folder import make_folders
print(*(one.name for one in make_folders(Path(sys.argv[1]))))
"""
#: Flush a folder (argv[1]) with ``fsync_folder``, strictly, then only if it opens.
FSYNC_PY = """import sys
from pathlib import Path
from node.folder import fsync_folder
try:
    fsync_folder(Path(sys.argv[1]))
except PermissionError:
    print("refused")
fsync_folder(Path(sys.argv[1]), openable_only=True)
print("done")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="procfs is Linux's")
def test_a_file_system_that_does_not_sync_folders_is_no_failure() -> None:
    # procfs answers a folder's fsync with EINVAL, as some network and FUSE file systems
    # do: the node's folders made there (and an export's renames) go on as SQLite does.
    fsync_folder(Path("/proc"))


def test_a_folder_that_cannot_be_opened_is_a_failure(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        fsync_folder(tmp_path / "gone")


@contextmanager
def write_only_folder() -> Iterator[Path]:
    """A folder of mode 0300, in ``/tmp`` (which every user may enter): its user may make
    a folder in it (write and search), not open it (read). Root's mode does not bind
    root: there it is another user's (``OTHER``), whose it is."""
    parent = Path(tempfile.mkdtemp())
    try:
        if os.geteuid() == 0:
            os.chown(parent, OTHER, OTHER)
        parent.chmod(0o300)
        yield parent
    finally:
        parent.chmod(0o700)
        shutil.rmtree(parent)


@pytest.mark.skipif(os.name != "posix", reason="folder modes are POSIX")
def test_folders_are_made_in_a_parent_that_may_be_written_but_not_read(
        request: pytest.FixtureRequest) -> None:
    """Mode 0300, the user's own: a folder may be made in it (write and search), it may
    not be opened to flush (read). The node's data folder, its storage folder, are made
    there all the same, not refused as folders that cannot be made."""
    with write_only_folder() as parent:
        if os.geteuid() != 0:  # this user's mode binds this user
            made = [one.name for one in make_folders(parent / "data" / "log")]
        else:  # root's does not: as the user whose it is
            user: OtherUser = request.getfixturevalue("other_user")
            result = user.run("-c", MAKE_PY, str(parent / "data" / "log"))
            assert result.returncode == 0, result.stderr
            made = result.stdout.split()
        assert made == ["data", "log"]
        parent.chmod(0o700)
        assert (parent / "data" / "log").is_dir()


@pytest.mark.skipif(os.name != "posix", reason="folder modes are POSIX")
def test_a_folder_that_may_not_be_opened_is_a_failure_unless_said(
        request: pytest.FixtureRequest) -> None:
    """Only a folder's maker skips a parent it may not open; a rename's flush is strict."""
    with write_only_folder() as folder:
        if os.geteuid() != 0:
            with pytest.raises(PermissionError):
                fsync_folder(folder)
            fsync_folder(folder, openable_only=True)
        else:  # root opens any folder: as the user whose it is
            user: OtherUser = request.getfixturevalue("other_user")
            result = user.run("-c", FSYNC_PY, str(folder))
            assert result.returncode == 0, result.stderr
            assert result.stdout.split() == ["refused", "done"]
