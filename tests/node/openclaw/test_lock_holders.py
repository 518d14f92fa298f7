"""Who holds a lock on a state folder: the holder of a ``flock`` as ``/proc/locks``
names it, matched by the device of the folder's mount. Taking the locks, and telling
another writer apart through them, is tested in ``test_state_locks``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from node.openclaw import lock_holders
from node.openclaw.lock_holders import (
    HeldLock,
    _flock_pid,
    _is_writer,
    _mount_device,
    has_open,
    lock_file_holder,
)
from node.openclaw.state import ZOMBIE, stat_fields
from tests.node.openclaw.support import HOLD_PY, WAIT_PY, stand_in
from tests.support.other_user import OtherUser
from tests.support.processes import CLI_TIMEOUT_S, ROOT, child_env
from tests.support.unavailable import unavailable

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


#: Name the holder of a lock, a pid (argv[1]), as ``HeldLock.holder`` does: for a lock
#: file, and for the lock on the state folder (``taker``).
HOLDER_PY = """import sys
from pathlib import Path
from node.openclaw.lock_holders import HeldLock
pid = int(sys.argv[1])
print(HeldLock(Path("lock"), pid).holder())
print(HeldLock(Path("state"), pid, taker=True).holder())
"""
#: The exit of the shell that mounts ``/proc`` with ``hidepid`` when the mount fails.
MOUNT_FAILED = 97
#: How ``unshare`` and ``setpriv`` (util-linux) begin what they say when refused (no
#: ``CAP_SYS_ADMIN`` for a namespace, in a container; a user that cannot be changed to).
REFUSED_BY = ("unshare: ", "setpriv: ")


@pytest.mark.skipif(os.name != "posix", reason="/proc is Linux's")
def test_a_live_holder_hidden_by_proc_is_not_said_to_have_ended() -> None:
    """``/proc`` mounted with ``hidepid=2`` shows a user none of another user's
    processes: a live holder (this test's process, root's) has no ``/proc/<pid>`` for
    the one looking (another user, here with no right to signal it either: ``EPERM``).
    It is named by its pid, not as a process that has ended; one that has ended is.
    Where that cannot be set up, skipped, and failed in CI."""
    if os.getuid() != 0 or not (shutil.which("unshare") and shutil.which("setpriv")):
        unavailable("needs root, unshare and setpriv to mount /proc with hidepid")
    ended = subprocess.Popen(["true"])
    ended.wait()
    look = [sys.executable, "-c", HOLDER_PY]
    as_another_user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                       "--inh-caps=-all,+dac_read_search",
                       "--ambient-caps=+dac_read_search"]  # to reach this Python
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c",
         f'mount -t proc -o hidepid=2 proc /proc || exit {MOUNT_FAILED}; exec "$@"', "sh",
         *as_another_user, *look, str(os.getpid())],
        capture_output=True, text=True, env=child_env(), cwd=ROOT,
        timeout=CLI_TIMEOUT_S, check=False)
    if result.returncode == MOUNT_FAILED or (result.returncode != 0
                                             and result.stderr.startswith(REFUSED_BY)):
        unavailable("a mount namespace cannot be had, /proc mounted in it, or the user "
                    f"changed, here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"pid {os.getpid()}"] * 2
    result = subprocess.run([*look, str(ended.pid)], capture_output=True, text=True,
                            env=child_env(), timeout=CLI_TIMEOUT_S, check=True)
    assert result.stdout.splitlines() == [
        f"pid {ended.pid}, which has ended since",
        f"pid {ended.pid}, which has ended: a process it handed the lock to, one it "
        "started, may hold it"]


#: The wording of ``HeldLock.holder`` for a ``flock``'s taker that has ended, or that is
#: not the process with its pid now, which is not named.
HANDED_ON = "a process it handed the lock to, one it started, may hold it"
#: A process that has the file (or folder) named last among its arguments open, says
#: so, then waits.
OPEN_PY = """import os, sys
fd = os.open(sys.argv[-1], os.O_RDONLY)
print(flush=True)
sys.stdin.read()
"""


def test_a_pid_without_the_file_open_is_not_named_as_its_holder(tmp_path: Path) -> None:
    """The pid a lock's holder had, now another process's (the taker of a ``flock``
    ended, and its pid was taken; a record lock's holder let go meanwhile): a live
    process that does not have the folder or the lock file open is not named as the
    holder, whatever it runs. A process that has it open, a real ``flock`` holder or a
    lock file's, is named. Nor is such a process told a writer for its command line."""
    state, lock = tmp_path / "claw", tmp_path / "lock.sqlite"
    state.mkdir()
    lock.write_bytes(b"")
    with stand_in(sys.executable, "-c", WAIT_PY) as other:
        assert HeldLock(state, other, taker=True).holder() == (
            f"pid {other}, which no longer has it open (it has ended, or closed it): "
            f"{HANDED_ON}")
        assert HeldLock(lock, other).holder() == f"pid {other}, which has let go of it since"
    with stand_in("flock", str(state), sys.executable, "-c", WAIT_PY) as taker:
        assert HeldLock(state, taker, taker=True).holder() == f"pid {taker}, flock"
    with stand_in(sys.executable, "-c", HOLD_PY, str(lock), "state-lifecycle") as holder:
        held = lock_file_holder(lock)
        assert held is not None and held.pid == holder
        assert held.holder() == f"pid {holder}, {os.path.basename(sys.executable)}"
    script = tmp_path / "clawsync"  # its command line is an export's
    fd = os.open(state, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for code, writer in ((WAIT_PY, False), (OPEN_PY, True)):
            script.write_text(code)
            with stand_in(sys.executable, str(script), "openclaw", "export",
                          str(state)) as pid:
                assert _is_writer(state, fd, pid, []) is writer
    finally:
        os.close(fd)


#: Name the holder of a lock on the file argv[2], a pid (argv[1]), as ``HeldLock.holder``
#: does for the taker of a ``flock``.
TAKER_PY = """import sys
from pathlib import Path
from node.openclaw.lock_holders import HeldLock
print(HeldLock(Path(sys.argv[2]), int(sys.argv[1]), taker=True).holder())
"""


def test_a_holder_whose_files_cannot_be_listed_is_named(other_user: OtherUser) -> None:
    """Another user's process, whose open files this one may not list (``EACCES`` on
    ``/proc/<pid>/fd``): whether it has the file open cannot be told, and it is named
    as before. This user, who may list them, sees it does not and names it not."""
    with stand_in(sys.executable, "-c", WAIT_PY) as other:
        looked = other_user.run("-c", TAKER_PY, str(other), "/")
        assert looked.returncode == 0, looked.stderr
        assert looked.stdout == f"pid {other}, {os.path.basename(sys.executable)}\n"
        assert HeldLock(Path("/"), other, taker=True).holder().startswith(
            f"pid {other}, which no longer has it open")


def test_a_holder_not_yet_reaped_has_ended(tmp_path: Path) -> None:
    """A holder that has exited and is not waited for yet (a zombie: a killed ``flock``
    whose parent has not reaped it) still answers a signal; it has ended all the same,
    and is said to have."""
    lock = tmp_path / "lock.sqlite"
    lock.write_bytes(b"")
    child = subprocess.Popen(["true"])
    try:
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped
        assert stat_fields(child.pid)[0] == ZOMBIE
        assert HeldLock(tmp_path, child.pid, taker=True).holder() == (
            f"pid {child.pid}, which has ended: {HANDED_ON}")
        assert HeldLock(lock, child.pid).holder() == f"pid {child.pid}, which has ended since"
    finally:
        child.wait()


#: Open the file argv[-1] as many times as argv[-2] says, and wait (stdin).
MANY_OPEN_PY = """import os, sys
fds = [os.open(sys.argv[-1], os.O_RDONLY) for _ in range(int(sys.argv[-2]))]
print(flush=True)
sys.stdin.read()
"""


def test_the_descriptors_looked_at_for_a_holder_are_bounded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whether a process has a file open is told from at most ``PROC_FDS_SCANNED_MAX``
    of its descriptors (each a ``stat``, which may wait on a hung mount): past them,
    not found is not said (None), and the holder is named as where ``/proc`` does not
    say, not said to have let go."""
    held, other = tmp_path / "held", tmp_path / "other"
    held.write_bytes(b"")
    other.write_bytes(b"")
    opened = 40
    with stand_in(sys.executable, "-c", MANY_OPEN_PY, str(opened), str(held)) as pid:
        assert has_open(pid, held) is True
        assert has_open(pid, other) is False
        assert HeldLock(other, pid).holder() == f"pid {pid}, which has let go of it since"
        monkeypatch.setattr(lock_holders, "PROC_FDS_SCANNED_MAX", opened // 2)
        assert has_open(pid, other) is None
        assert HeldLock(other, pid).holder() == (
            f"pid {pid}, {os.path.basename(sys.executable)}")
