"""``node.folder.fsync_folder`` on file systems that do not sync folders."""

import sys
from pathlib import Path

import pytest

from node.folder import fsync_folder


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="procfs is Linux's")
def test_a_file_system_that_does_not_sync_folders_is_no_failure() -> None:
    # procfs answers a folder's fsync with EINVAL, as some network and FUSE file systems
    # do: the node's folders made there (and an export's renames) go on as SQLite does.
    fsync_folder(Path("/proc"))


def test_a_folder_that_cannot_be_opened_is_a_failure(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        fsync_folder(tmp_path / "gone")
