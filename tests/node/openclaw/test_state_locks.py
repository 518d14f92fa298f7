"""Whose per-machine lock folders ``held_state_lock`` looks in, and which of them it
trusts: the users OpenClaw may run as on the state folder, and only a folder OpenClaw
itself would use (a real folder of the user it is named for). Each under a lock root of
the test's own, never the shared ``/tmp``.

Other users are made with ``chown`` and, to look as one, a real process run as that user
(``setpriv``): both need root."""

from __future__ import annotations

import fcntl
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from node.openclaw.state_locks import (
    LOCK_FAMILIES,
    STATE_DATABASE,
    StateLockHeld,
    held_state_lock,
    holding_state_locks,
    lock_paths,
)
from tests.node.openclaw.support import HOLD_PY, HOLDING_PY, WAIT_PY, stand_in, take
from tests.support.other_user import OTHER, OtherUser

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")


def lock_folder(state: Path, uid: int, root: Path, owner: int | None = None) -> Path:
    """The lock folder of ``uid`` under ``root`` as OpenClaw makes it (mode 0700), owned
    by ``owner`` (default: ``uid``); its state-lifecycle lock file, empty."""
    lock = lock_paths(state.resolve(), uid, root)[LOCK_FAMILIES.index("state-lifecycle")]
    lock.parent.mkdir(mode=0o700, parents=True)
    lock.write_bytes(b"")
    os.chown(lock, uid, uid)
    os.chown(lock.parent, uid if owner is None else owner, uid if owner is None else owner)
    return lock


def state_folder(root: Path, database_owner: int | None) -> Path:
    """A state folder of this user; its database owned by ``database_owner`` (None: not
    made yet)."""
    state = root / "claw"
    (state / "agents").mkdir(parents=True)
    state.chmod(0o755)
    if database_owner is not None:
        (state / STATE_DATABASE).parent.mkdir()
        (state / STATE_DATABASE).write_bytes(b"")
        os.chown(state / STATE_DATABASE, database_owner, database_owner)
    return state


@needs_root
def test_a_lock_folder_of_another_user_than_its_name_holds_no_lock(shared: Path) -> None:
    """OpenClaw uses the folder of its uid only if that uid owns it: one another user
    made first holds none of its locks, even one some process holds."""
    state = state_folder(shared, None)
    lock = lock_folder(state, os.getuid(), shared / "locks", owner=OTHER)
    with stand_in(sys.executable, "-c", HOLD_PY, str(lock), "state-lifecycle") as pid:
        assert held_state_lock(state, shared / "locks") is None
        os.chown(lock.parent, os.getuid(), os.getgid())
        held = held_state_lock(state, shared / "locks")
        assert held is not None and held.pid == pid and held.path == lock


@needs_root
def test_the_locks_of_the_database_owner_are_looked_at(shared: Path) -> None:
    """OpenClaw run as the owner of the database, in a folder another user (root) owns:
    its locks are in that user's lock folder."""
    state = state_folder(shared, OTHER)
    lock = lock_folder(state, OTHER, shared / "locks")
    with stand_in(sys.executable, "-c", HOLD_PY, str(lock), "state-lifecycle") as pid:
        held = held_state_lock(state, shared / "locks")
        assert held is not None and held.pid == pid and held.path == lock


LOOK_PY = """import sys
from pathlib import Path
from node.openclaw.state_locks import StateLockUnreadable, held_state_lock
try:
    print(held_state_lock(Path(sys.argv[1]), Path(sys.argv[2])))
except StateLockUnreadable as error:
    print("unreadable", error.path, error.denied)
"""


def look_as(user: OtherUser, state: Path, root: Path) -> str:
    """What ``held_state_lock`` says, asked by a process of ``user``."""
    looked = user.run("-c", LOOK_PY, str(state), str(root))
    assert looked.returncode == 0, looked.stderr
    return looked.stdout.strip()


@needs_root
def test_a_closed_lock_folder_of_the_folder_owner_refuses_only_if_openclaw_may_be_theirs(
        shared: Path, other_user: OtherUser) -> None:
    """The state folder made by root, OpenClaw run as another user (who owns the
    database): root's lock folder, closed to that user, is not where that OpenClaw takes
    its locks, and must not refuse every export. Without a database, or with root's,
    OpenClaw may run as root: then a folder that cannot be looked at refuses."""
    root = shared / "locks"
    root.mkdir(mode=0o755)
    state = state_folder(shared, OTHER)
    closed = lock_folder(state, os.getuid(), root)  # in root's folder, mode 0700
    first = lock_paths(state.resolve(), os.getuid(), root)[0].name  # the first looked at
    assert look_as(other_user, state, root) == "None"
    os.chown(state / STATE_DATABASE, os.getuid(), os.getgid())
    assert look_as(other_user, state, root) == f"unreadable {closed.parent}/{first} True"
    (state / STATE_DATABASE).unlink()
    assert look_as(other_user, state, root) == f"unreadable {closed.parent}/{first} True"


@needs_root
def test_export_refuses_a_machine_lock_it_may_not_look_at_naming_whom_to_run_as(
        shared: Path, other_user: OtherUser) -> None:
    """Export run by another user than OpenClaw's (here: the state folder made by root,
    no database yet, so OpenClaw may run as root; export run as ``nobody``): root's lock
    folder is closed to it, so whether OpenClaw works there cannot be told. Refused,
    saying to run as OpenClaw's user, not to remove anything."""
    root = shared / "locks"
    root.mkdir(mode=0o755)
    state = state_folder(shared, None)
    lock_folder(state, os.getuid(), root)  # root's, mode 0700
    first = lock_paths(state.resolve(), os.getuid(), root)[0]  # the first looked at
    result = other_user.run(
        "-m", "tests.support.private_locks", str(root), "openclaw", "export", "s1",
        "--state-dir", str(state), "--data-dir", str(shared / "data"))
    assert result.returncode == 2, result.stderr
    assert (f"{first} cannot be looked at (Permission denied), so whether an OpenClaw "
            "process works on the folder cannot be told: run clawsync as the user "
            "OpenClaw runs as") in result.stderr
    assert "remove" not in result.stderr
    assert not (shared / "data").exists()  # refused before the node was read


def test_a_lock_folder_that_is_not_a_folder_holds_no_lock(tmp_path: Path) -> None:
    state = state_folder(tmp_path, None)
    folder = lock_paths(state.resolve(), os.getuid(), tmp_path)[0].parent
    folder.write_text("")
    assert held_state_lock(state, tmp_path) is None


def test_holding_makes_the_lock_folder_as_openclaw_does(tmp_path: Path) -> None:
    """Mode 0700, made or made so; the three lock files and nothing else (the writer's
    own lock is on the state folder itself); nothing held after the block."""
    state = state_folder(tmp_path, None)
    root = tmp_path / "locks"
    folder = lock_paths(state.resolve(), os.getuid(), root)[0].parent
    with holding_state_locks(state, root):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert sorted(p.name.split(".")[0] for p in folder.iterdir()) == sorted(
            LOCK_FAMILIES)
    folder.chmod(0o755)
    with holding_state_locks(state, root):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert held_state_lock(state, root) is None


def test_holding_takes_nothing_in_a_lock_folder_openclaw_would_refuse(tmp_path: Path) -> None:
    """A symbolic link in the folder's place: OpenClaw of this user works nowhere there,
    and nothing is made where it leads."""
    state = state_folder(tmp_path, None)
    root, elsewhere = tmp_path / "locks", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir(mode=0o755)
    folder = lock_paths(state.resolve(), os.getuid(), root)[0].parent
    folder.symlink_to(elsewhere)
    with holding_state_locks(state, root):
        assert list(elsewhere.iterdir()) == []
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o755


def test_holding_takes_nothing_where_the_lock_folder_cannot_be_made(tmp_path: Path) -> None:
    """Not there and cannot be made (here under ``/proc``; a read-only or full ``/tmp``
    alike): no OpenClaw process of this user can hold a lock there, so nothing is taken
    and the block runs, told why."""
    state = state_folder(tmp_path, None)
    with holding_state_locks(state, Path("/proc")) as none_held:
        assert none_held is not None and "cannot be made" in none_held
    assert held_state_lock(state, Path("/proc")) is None


def test_holding_goes_on_without_the_folders_lock_where_it_cannot_be_taken(
        shared: Path, other_user: OtherUser) -> None:
    """The lock on the state folder itself cannot be taken (here: a folder its user may
    write but not read, so not open, which export's own checks refuse before; a file
    system without ``flock`` on folders, as some network ones): OpenClaw's three are
    taken and held all the same, and the block runs, told so. Run as ``nobody``: root
    opens any folder."""
    state = shared / "claw"
    (state / "agents").mkdir(parents=True)
    root = shared / "locks"
    root.mkdir(mode=0o777)
    root.chmod(0o777)
    for folder in (state, state / "agents"):
        os.chown(folder, OTHER, OTHER)
    state.chmod(0o300)
    writer = subprocess.Popen(
        ["setpriv", f"--reuid={OTHER}", f"--regid={OTHER}", "--clear-groups",
         other_user.python, "-c", HOLDING_TOLD_PY, str(state), str(root)],
        cwd=other_user.cwd, env=other_user.env, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None
        told = writer.stdout.readline()
        assert told.startswith(f"the lock on the state folder {state} itself cannot be "
                               "taken (Permission denied): OpenClaw's locks are held all "
                               "the same"), told
        paths = lock_paths(state, OTHER, root)
        assert [take(path) for path in paths] == ["database is locked"] * len(paths)
    finally:
        writer.communicate()
    assert writer.returncode == 0


def test_holding_goes_on_with_no_lock_where_none_can_be_had(
        shared: Path, other_user: OtherUser) -> None:
    """Neither this user's lock folder (not there and not to be made: here under
    ``/proc``) nor the lock on the state folder itself (a folder its user may write but
    not read, so not open) can be had: the block runs all the same, holding nothing,
    told that nothing keeps out another export at once. Run as ``nobody``: root opens
    any folder."""
    state = shared / "claw"
    (state / "agents").mkdir(parents=True)
    for folder in (state, state / "agents"):
        os.chown(folder, OTHER, OTHER)
    state.chmod(0o300)
    writer = subprocess.Popen(
        ["setpriv", f"--reuid={OTHER}", f"--regid={OTHER}", "--clear-groups",
         other_user.python, "-c", HOLDING_TOLD_PY, str(state), "/proc"],
        cwd=other_user.cwd, env=other_user.env, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None
        told = writer.stdout.readline()
        assert told.startswith(f"/proc/openclaw-state-locks-{OTHER} cannot be made ("), told
        assert told.rstrip("\n").endswith(
            f"; and the lock on the state folder {state} itself cannot be taken "
            "(Permission denied): nothing keeps out another export at once"), told
        state.chmod(0o700)  # readable again, to root only: its lock is not held
        with holding_state_locks(state, Path("/proc")) as none_held:
            assert none_held is not None and "keeps out another export" in none_held
    finally:
        writer.communicate()
    assert writer.returncode == 0


#: A writer (``holding_state_locks``) of a state folder (argv[1]) under a lock root
#: (argv[2]), saying what it is told, until its stdin closes.
HOLDING_TOLD_PY = """import sys
from pathlib import Path
from node.openclaw.state_locks import holding_state_locks
with holding_state_locks(Path(sys.argv[1]), Path(sys.argv[2])) as told:
    print(told, flush=True)
    sys.stdin.read()
"""


def test_a_second_writer_is_told_apart(tmp_path: Path) -> None:
    """Another writer holds the locks: taking them, or looking at them, names it as a
    writer, with its pid; an OpenClaw process holding them is not one."""
    state = state_folder(tmp_path, None)
    root = tmp_path / "locks"
    with stand_in(sys.executable, "-c", HOLDING_PY, str(state), str(root)) as pid:
        with pytest.raises(StateLockHeld) as refused, holding_state_locks(state, root):
            pass
        assert refused.value.writer and refused.value.held is not None
        assert refused.value.path == state  # refused at the folder's own lock, first
        assert (refused.value.held.pid, refused.value.held.writer) == (pid, True)
        held = held_state_lock(state, root)
        assert held is not None and (held.pid, held.writer) == (pid, True)
    lock = lock_paths(state.resolve(), os.getuid(), root)[0]
    with stand_in(sys.executable, "-c", HOLD_PY, str(lock), "gateway-lifecycle") as pid:
        held = held_state_lock(state, root)
        assert held is not None and (held.pid, held.writer) == (pid, False)


def test_a_writer_without_the_folders_lock_is_told_apart(tmp_path: Path) -> None:
    """A writer that holds OpenClaw's locks, each marked as a writer's, but not the lock
    on the state folder itself (an older clawsync, or one on a file system without it):
    taking them, or looking at them, still names it as a writer, not as an OpenClaw
    process; the mark is in no one's way."""
    state = state_folder(tmp_path, None)
    root = tmp_path / "locks"
    paths = lock_paths(state.resolve(), os.getuid(), root)
    paths[0].parent.mkdir(parents=True, mode=0o700)
    with stand_in(sys.executable, "-c", MARKED_PY, *map(str, paths)) as pid:
        with pytest.raises(StateLockHeld) as refused, holding_state_locks(state, root):
            pass
        assert refused.value.writer and refused.value.held is not None
        assert refused.value.path == paths[0]
        assert (refused.value.held.pid, refused.value.held.writer) == (pid, True)
        held = held_state_lock(state, root)
        assert held is not None and (held.pid, held.writer) == (pid, True)
    with holding_state_locks(state, root) as told:  # let go with the transactions
        assert told is None


def test_another_process_locking_the_folder_is_not_told_a_writer(tmp_path: Path) -> None:
    """A process that is no writer holds a lock on the state folder itself (a real
    ``flock``, shared or not): taking the locks is refused at the folder's, naming that
    process, but not as a writer; nothing of OpenClaw's is taken meanwhile."""
    state = state_folder(tmp_path, None)
    root = tmp_path / "locks"
    for mode in ("-x", "-s"):
        with stand_in("flock", mode, str(state), sys.executable, "-c", WAIT_PY) as pid:
            with pytest.raises(StateLockHeld) as refused, holding_state_locks(state, root):
                pass
            assert refused.value.held is not None and refused.value.path == state
            assert refused.value.held.holder() == f"pid {pid}, flock"
        assert refused.value.folder and not refused.value.writer
        assert (refused.value.held.pid, refused.value.held.writer) == (pid, False)
        assert str(refused.value) == f"a process holds a lock on {state}"
    assert not root.exists()


def test_an_export_without_its_mark_is_told_by_its_command_line(tmp_path: Path) -> None:
    """A process holding the folder's lock without a writer's mark (one it lost: closing
    any descriptor of the folder drops it) is still told a writer when its command line
    is an export's (here a script named ``clawsync``, run ``python .../clawsync openclaw
    export STATE``)."""
    state = state_folder(tmp_path, None)
    script = tmp_path / "clawsync"
    script.write_text(FOLDER_LOCK_PY)
    assert_refused_by_a_writer(state, tmp_path / "locks",
                               sys.executable, str(script), "openclaw", "export", str(state))


def assert_refused_by_a_writer(state: Path, root: Path, *command: str) -> None:
    """Taking the locks on ``state`` (lock root ``root``) is refused at the folder's,
    held by the process ``command`` runs (``stand_in``), told a writer."""
    with stand_in(*command) as pid, pytest.raises(StateLockHeld) as refused, \
            holding_state_locks(state, root):
        pass
    assert refused.value.folder and refused.value.writer
    assert refused.value.held is not None
    assert (refused.value.held.pid, refused.value.held.writer) == (pid, True)


#: The lock on a state folder (argv[3]) alone, unmarked, as ``flock`` takes it.
FOLDER_LOCK_PY = """import fcntl, os, sys
fd = os.open(sys.argv[3], os.O_RDONLY | os.O_DIRECTORY)
fcntl.flock(fd, fcntl.LOCK_EX)
print(flush=True)
sys.stdin.read()
"""


#: OpenClaw's locks (argv[1:]) taken and marked as a writer takes them, without the
#: state folder's own lock.
MARKED_PY = """import sys
from pathlib import Path
from node.openclaw.state_locks import _mark, _take
held = [(_take(Path(path)), _mark(Path(path))) for path in sys.argv[1:]]
print(flush=True)
sys.stdin.read()
"""


def test_a_writer_that_opens_the_state_folder_keeps_its_mark(tmp_path: Path) -> None:
    """A writer that opens the state folder and closes it while it holds the folder's
    lock (a listing of it, here) is still told a writer by its mark alone: no OpenClaw
    lock of its to mark (its lock folder cannot be made), and a command line that is not
    an export's. A record lock of the process would be gone with that close; the mark is
    the lock's own descriptor's."""
    state = state_folder(tmp_path, None)
    assert_refused_by_a_writer(state, tmp_path / "locks",
                               sys.executable, "-c", LISTING_PY, str(state), "/proc")


@pytest.mark.skipif(not hasattr(fcntl, "F_OFD_SETLK"), reason="Linux's F_OFD_SETLK")
def test_a_lock_through_an_open_file_description_on_the_folder_is_no_mark(
        tmp_path: Path) -> None:
    """A process that is no writer holds the folder's lock, and another a shared lock on
    the whole folder through an open file description (which names no pid, as a
    writer's mark does): that lock is in the way of the look at the mark, but is none,
    and the holder of the folder's lock is not told a writer for it."""
    state = state_folder(tmp_path, None)
    with stand_in(sys.executable, "-c", OFD_SHARED_PY, str(state)), \
            stand_in("flock", "-x", str(state), sys.executable, "-c", WAIT_PY) as pid, \
            pytest.raises(StateLockHeld) as refused, \
            holding_state_locks(state, tmp_path / "locks"):
        pass
    assert refused.value.folder and refused.value.held is not None
    assert (refused.value.held.pid, refused.value.held.writer) == (pid, False)


#: A shared lock on a whole folder (argv[1]), through an open file description.
OFD_SHARED_PY = """import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("@hhqqi4x", fcntl.F_RDLCK, 0, 0, 0, 0))
print(flush=True)
sys.stdin.read()
"""


#: A writer of a state folder (argv[1]) under a lock root (argv[2]) that lists the
#: folder once it holds the locks, as any code of the writer's may open it.
LISTING_PY = """import os, sys
from pathlib import Path
from node.openclaw.state_locks import holding_state_locks
with holding_state_locks(Path(sys.argv[1]), Path(sys.argv[2])):
    os.listdir(sys.argv[1])
    print(flush=True)
    sys.stdin.read()
"""
