"""Who holds a lock on a state folder: the holder of a ``flock`` as ``/proc/locks``
names it, matched by the device of the folder's mount. Taking the locks, and telling
another writer apart through them, is tested in ``test_state_locks``."""

from __future__ import annotations

import os

from node.openclaw.lock_holders import _flock_pid, _mount_device

#: ``/proc/self/mountinfo`` with a btrfs mount, whose superblock's device (0:33), the one
#: ``/proc/locks`` prints, is not the ``st_dev`` of a file in a subvolume (0:52 here).
BTRFS_MOUNTINFO = """22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
98 22 0:33 /@home /home rw,relatime shared:40 - btrfs /dev/vdb rw,subvolid=257
"""
BTRFS_FDINFO = "pos:\t0\nflags:\t0200000\nmnt_id:\t98\nino:\t256\n"
BTRFS_LOCKS = """1: POSIX  ADVISORY  READ 700 00:34:256 2147483648 2147483648
2: FLOCK  ADVISORY  WRITE 4242 00:21:256 0 EOF
3: -> FLOCK  ADVISORY  WRITE 4343 00:21:256 0 EOF
"""


def test_the_folders_lock_holder_is_found_by_its_mounts_device() -> None:
    """``/proc/locks`` numbers a file by its file system's device, which the mount of
    the descriptor gives (``mnt_id`` in fdinfo, then mountinfo); ``st_dev`` may differ
    (a btrfs subvolume), and would find no holder. A waiter's line is not the holder."""
    device = _mount_device(BTRFS_FDINFO, BTRFS_MOUNTINFO)
    assert device == os.makedev(0, 33)
    assert _flock_pid(BTRFS_LOCKS, device, 256) == 4242
    assert _flock_pid(BTRFS_LOCKS, os.makedev(0, 52), 256) is None
    assert _mount_device("pos:\t0\nflags:\t0200000\n", BTRFS_MOUNTINFO) is None
    assert _mount_device(BTRFS_FDINFO.replace("98", "99"), BTRFS_MOUNTINFO) is None
