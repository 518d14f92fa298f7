"""``clawsync openclaw export`` beside OpenClaw's per-machine locks
(``node.openclaw.state_locks``) and another writer: refused while an OpenClaw process
holds one of the state folder's, naming it; not for a lock of another folder, or in a
lock folder OpenClaw would not use; holding them while it writes; and kept apart from a
second export, or any process locking the state folder itself.

Stand-in processes take OpenClaw's place: a process holding a lock file as OpenClaw
does."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import node.cli.openclaw_run
from node.openclaw.state_locks import LOCK_FAMILIES, lock_paths
from tests.node.openclaw.support import (
    HOLD_PY,
    HOLDING_PY,
    KEY,
    SID,
    WAIT_PY,
    export,
    gateway_lock,
    imported,
    stand_in,
    start_ticks,
    take,
)
from tests.support.processes import CLI_TIMEOUT_S, child_env
from tests.support.unavailable import unavailable


@pytest.fixture
def locks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where export looks for OpenClaw's per-machine lock folders: a folder of the test's
    own instead of the shared ``/tmp``."""
    root = tmp_path / "locks"
    root.mkdir()
    monkeypatch.setattr("node.openclaw.state_locks.LOCKS_ROOT", root)
    return root


@contextmanager
def machine_lock(state: Path, family: str, root: Path) -> Iterator[Path]:
    """OpenClaw's per-machine lock file of ``state`` under ``root``, in its folder as
    OpenClaw makes it (mode 0700); removed on exit."""
    path = next(p for p in lock_paths(state.resolve(), os.getuid(), root)
                if p.name.startswith(f"{family}."))
    path.parent.mkdir(mode=0o700, exist_ok=True)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
        Path(f"{path}-journal").unlink(missing_ok=True)


@pytest.mark.parametrize("family", LOCK_FAMILIES)
def test_export_refuses_while_an_openclaw_process_holds_a_machine_lock(
        tmp_path: Path, locks: Path, family: str) -> None:
    """An `agent --local` turn holds no gateway lock, only these: refused while one is
    held, not once its process is gone (the file stays, its lock does not)."""
    data, b = imported(tmp_path)
    with machine_lock(b, family, locks) as lock:
        with stand_in(sys.executable, "-c", HOLD_PY, str(lock), family) as pid:
            code, output = export(b, data)
            assert code == 2 and "Usage:" not in output, output
            assert f"an OpenClaw process is working on {b.resolve()} (pid {pid}, " in output
            assert f"it holds {lock}): let it finish, or stop it" in output
            assert not (b / "agents" / "main" / "sessions").exists()
        assert lock.exists()  # left behind, as OpenClaw leaves them
        code, output = export(b, data)
        assert code == 0, output


def test_a_machine_lock_of_another_state_folder_stops_nothing(
        tmp_path: Path, locks: Path) -> None:
    data, b = imported(tmp_path)
    other = tmp_path / "other"
    (other / "agents").mkdir(parents=True)
    with machine_lock(other, "gateway-lifecycle", locks) as lock, \
            stand_in(sys.executable, "-c", HOLD_PY, str(lock), "gateway-lifecycle"):
        code, output = export(b, data)
        assert code == 0, output


def test_a_machine_lock_that_cannot_be_looked_at_refuses(
        tmp_path: Path, locks: Path) -> None:
    """Not for want of permission (that advice is for another user's lock): the file is
    named, to be removed if no OpenClaw process runs."""
    data, b = imported(tmp_path)
    with machine_lock(b, "state-lifecycle", locks) as lock:
        lock.symlink_to(lock.name)  # a loop: it cannot be opened, even by root
        code, output = export(b, data)
        assert code == 2 and "Usage:" not in output, output
        assert f"{lock} cannot be looked at (" in output
        assert "whether an OpenClaw process works on the folder cannot be told: if no " \
               "OpenClaw process runs on it (openclaw gateway status; no `openclaw " \
               f"agent` running), remove {lock}" in output
        assert "as the user OpenClaw runs as" not in output
        assert not (b / "agents" / "main" / "sessions").exists()


#: A lock held through an open file description (``F_OFD_SETLK``, Linux): it belongs to
#: no one process, and ``F_GETLK`` names its holder -1.
OFD_PY = """import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("@hhqqi4x", fcntl.F_WRLCK, 0, 0, 0, 0))
print(flush=True)
sys.stdin.read()
"""


@pytest.mark.skipif(not hasattr(fcntl, "F_OFD_SETLK"), reason="Linux's F_OFD_SETLK")
def test_a_machine_lock_held_through_an_open_file_description_names_no_pid(
        tmp_path: Path, locks: Path) -> None:
    data, b = imported(tmp_path)
    with machine_lock(b, "gateway-lifecycle", locks) as lock, \
            stand_in(sys.executable, "-c", OFD_PY, str(lock)):
        code, output = export(b, data)
        assert code == 2 and "Usage:" not in output, output
        assert f"is working on {b.resolve()} (a process, through an open file description " \
               f"(no pid); it holds {lock})" in output


def test_a_lock_folder_openclaw_would_refuse_stops_nothing(
        tmp_path: Path, locks: Path) -> None:
    """OpenClaw takes its locks only in a real folder of its own user: a symbolic link
    (or a file) in the folder's place holds none of them, whatever it leads to. Another
    user could make one to stop every export."""
    data, b = imported(tmp_path)
    real = tmp_path / "elsewhere"
    real.mkdir(mode=0o700)
    lock = lock_paths(b.resolve(), os.getuid(), locks)[LOCK_FAMILIES.index("state-lifecycle")]
    folder, hold = lock.parent, real / lock.name
    with stand_in(sys.executable, "-c", HOLD_PY, str(hold), "state-lifecycle"):
        folder.symlink_to(real)
        code, output = export(b, data)
        assert code == 0, output
        folder.unlink()
        folder.write_text("")
        code, output = export(b, data)
        assert code == 0, output
        folder.unlink()
        folder.mkdir(mode=0o700)  # a real folder of this user: the same lock refuses
        os.link(hold, folder / lock.name)
        code, output = export(b, data)
        assert code == 2 and "an OpenClaw process is working on" in output, output


def test_export_holds_the_machine_locks_while_it_writes(
        tmp_path: Path, locks: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A look at the locks holds only when it is made: an OpenClaw process started
    after the last one (an import moving the files away) would work beside the write.
    While export writes, no other process can take any of them; once done, each can."""
    data, b = imported(tmp_path)
    paths = lock_paths(b.resolve(), os.getuid(), locks)
    paths[0].parent.mkdir(mode=0o700)  # as an OpenClaw process that ran once left it
    seen: dict[str, str] = {}
    write = node.cli.openclaw_run.export_transcript

    def write_and_try(*args: Any) -> Any:
        for family, path in zip(LOCK_FAMILIES, paths, strict=True):
            seen[family] = take(path)
        return write(*args)

    monkeypatch.setattr("node.cli.openclaw_run.export_transcript", write_and_try)
    code, output = export(b, data)
    assert code == 0, output
    assert seen == dict.fromkeys(LOCK_FAMILIES, "database is locked")
    assert {family: take(path) for family, path in zip(LOCK_FAMILIES, paths, strict=True)} \
        == dict.fromkeys(LOCK_FAMILIES, "taken")


def test_a_machine_lock_taken_after_the_last_look_refuses(
        tmp_path: Path, locks: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An OpenClaw process that took a lock after export last looked (here: every look
    comes too early to see it): export cannot take the lock, and refuses, naming its
    holder; nothing is written."""
    data, b = imported(tmp_path)
    lock = lock_paths(b.resolve(), os.getuid(), locks)[LOCK_FAMILIES.index("state-handles")]
    lock.parent.mkdir(mode=0o700)
    monkeypatch.setattr("node.cli.openclaw_run.held_state_lock", lambda *_, **__: None)
    with stand_in(sys.executable, "-c", HOLD_PY, str(lock), "state-handles") as pid:
        code, output = export(b, data)
    assert code == 2 and "Usage:" not in output, output
    assert f"an OpenClaw process is working on {b.resolve()} (pid {pid}, " in output
    assert f"it holds {lock}): let it finish" in output
    assert not (b / "agents" / "main" / "sessions").exists()


def test_a_lock_folder_that_cannot_be_made_takes_no_lock(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """This user's lock folder is not there and cannot be made (a read-only or full
    ``/tmp``, a sandbox; here under ``/proc``): no OpenClaw process of this user can hold
    a lock there either, so export writes without taking one, and says so; it never
    tells the person to remove a folder that is not there."""
    data, b = imported(tmp_path)
    monkeypatch.setattr("node.openclaw.state_locks.LOCKS_ROOT", Path("/proc"))
    folder = lock_paths(b.resolve(), os.getuid(), Path("/proc"))[0].parent
    code, output = export(b, data)
    assert code == 0, output
    assert f"note: {folder} cannot be made (" in output
    assert "none is taken" in output and "remove" not in output
    assert (b / "agents" / "main" / "sessions" / f"{SID}.jsonl").exists()


def test_a_machine_lock_that_cannot_be_made_refuses(tmp_path: Path, locks: Path) -> None:
    """This user's lock folder is there, but no file can be made in it (no inodes or
    quota left; here its immutable flag, which stops root too): OpenClaw's locks cannot
    be taken, nor could an OpenClaw process take them. Refused, saying what to free,
    and not to remove a file that is not there; nothing written."""
    data, b = imported(tmp_path)
    lock = lock_paths(b.resolve(), os.getuid(), locks)[0]  # the first taken
    lock.parent.mkdir(mode=0o700)
    if shutil.which("chattr") is None or subprocess.run(
            ["chattr", "+i", str(lock.parent)], capture_output=True).returncode != 0:
        pytest.skip("no chattr +i here (it needs root, on a file system that has it)")
    try:
        code, output = export(b, data)
    finally:
        subprocess.run(["chattr", "-i", str(lock.parent)], check=True)
    assert code == 2 and "Usage:" not in output, output
    assert f"{lock} cannot be looked at (" in output
    assert ("whether an OpenClaw process works on the folder cannot be told: it is not "
            f"there and cannot be made; make room or let this user write in {lock.parent}, "
            "then export") in output
    assert "remove" not in output and "note:" not in output
    assert not (b / "agents" / "main" / "sessions").exists()


def test_a_lock_let_go_before_its_holder_is_named_is_told_so(
        tmp_path: Path, locks: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lock was held when export tried to take it, and its holder let go before it
    could be named (here: every look comes too late): the message says just that, and
    nothing is written."""
    data, b = imported(tmp_path)
    lock = lock_paths(b.resolve(), os.getuid(), locks)[LOCK_FAMILIES.index("state-lifecycle")]
    lock.parent.mkdir(mode=0o700)
    monkeypatch.setattr("node.openclaw.state_locks.lock_file_holder", lambda _: None)
    with stand_in(sys.executable, "-c", HOLD_PY, str(lock), "state-lifecycle"):
        code, output = export(b, data)
    assert code == 2 and "Usage:" not in output, output
    assert (f"an OpenClaw process was working on {b.resolve()} (it held {lock} when this "
            "export tried to take it, and has let go since): nothing was written; export "
            "again") in output
    assert "is working on" not in output
    assert not (b / "agents" / "main" / "sessions").exists()


def test_a_second_export_at_once_is_named_as_such(
        tmp_path: Path, locks: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second ``clawsync openclaw export`` into the same folder while one writes: it is
    refused as another export, not as an OpenClaw process, and writes nothing."""
    data, b = imported(tmp_path)
    second = export_beside_another(monkeypatch, b, data, locks)
    code, output = export(b, data)
    assert code == 0, output
    [refused] = second
    assert refused.returncode == 2, refused.stderr
    assert (f"another `clawsync openclaw export` is writing into {b.resolve()} "
            f"(pid {os.getpid()}") in refused.stderr
    assert "OpenClaw process" not in refused.stderr


def test_two_exports_are_kept_apart_where_the_lock_folder_cannot_be_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """This user's lock folder is not there and cannot be made (here under ``/proc``; a
    read-only or full ``/tmp`` alike): no OpenClaw lock is taken, but a second export into
    the same state folder at once, another process, is still refused, named as an
    export, by the lock on the state folder itself; it writes nothing."""
    data, b = imported(tmp_path)
    monkeypatch.setattr("node.openclaw.state_locks.LOCKS_ROOT", Path("/proc"))
    second = export_beside_another(monkeypatch, b, data, Path("/proc"))
    code, output = export(b, data)
    assert code == 0, output
    assert "cannot be made (No such file or directory)" in output
    assert "a lock on the state folder itself keeps out another export" in output
    [refused] = second
    assert refused.returncode == 2, refused.stderr
    assert (f"another `clawsync openclaw export` is writing into {b.resolve()} "
            f"(pid {os.getpid()}") in refused.stderr
    assert "it holds a lock on the folder itself): let it finish, then export" \
        in refused.stderr
    assert "OpenClaw process" not in refused.stderr
    assert (b / "agents" / "main" / "sessions" / f"{SID}.jsonl").exists()


@pytest.mark.parametrize("mode", ["-x", "-s"])
def test_any_other_lock_on_the_state_folder_is_named_by_its_process(
        tmp_path: Path, locks: Path, mode: str) -> None:
    """Another process than an export holds a lock on the state folder itself (here a
    real ``flock``, as one running exports one at a time would, ``flock STATE clawsync
    ...``): export is refused, nothing written, naming that process by its pid and name,
    not as another export, and saying to lock another file."""
    data, b = imported(tmp_path)
    with stand_in("flock", mode, str(b.resolve()), sys.executable, "-c", WAIT_PY) as pid:
        code, output = export(b, data)
    assert code == 2 and "Usage:" not in output, output
    assert (f"a process holds a lock on the state folder {b.resolve()} itself (pid {pid}, "
            "flock), which export takes while it writes: nothing was written") in output
    assert "lock another file than the state folder" in output
    assert "clawsync openclaw export` is writing" not in output
    assert "OpenClaw process" not in output
    assert not (b / "agents" / "main" / "sessions").exists()
    code, output = export(b, data)  # let go: export writes
    assert code == 0, output


def test_a_lock_on_the_state_folder_whose_taker_ended_is_not_named_as_alive(
        tmp_path: Path, locks: Path) -> None:
    """``flock`` took the lock on the state folder for the command it runs, and was
    killed: the command holds the lock on, and ``/proc/locks`` still names the pid of
    ``flock``, of a process that is no more. Export is refused, nothing written,
    saying that process has ended (the system has no such pid), rather than naming its
    pid as a live holder. Should another process take that pid meanwhile, it would be
    named instead: nothing tells the two apart."""
    data, b = imported(tmp_path)
    with stand_in("flock", "-x", str(b.resolve()), sys.executable, "-c", WAIT_PY) as pid:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        code, output = export(b, data)
    assert code == 2 and "Usage:" not in output, output
    assert (f"a process holds a lock on the state folder {b.resolve()} itself (pid {pid}, "
            "which has ended: a process it handed the lock to, one it started, may hold "
            "it), which export takes while it writes: nothing was written") in output
    assert not (b / "agents" / "main" / "sessions").exists()
    code, output = export(b, data)  # its command ended too: export writes
    assert code == 0, output


def test_the_note_of_no_lock_held_comes_after_the_last_look(
        tmp_path: Path, locks: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenClaw's locks cannot be taken (this user's lock folder cannot be made), and a
    gateway starts once export holds what it can (before its last look): export refuses,
    naming the gateway, without first saying why no OpenClaw lock is held."""
    data, b = imported(tmp_path)
    monkeypatch.setattr("node.openclaw.state_locks.LOCKS_ROOT", Path("/proc"))
    holding = node.cli.openclaw_run.holding_state_locks
    with stand_in("openclaw-gateway", "-c", WAIT_PY, executable=sys.executable) as pid:

        @contextmanager
        def gateway_starts_meanwhile(state: Path) -> Iterator[str | None]:
            with holding(state) as told:
                gateway_lock(b, pid, start_ticks(pid))
                yield told

        monkeypatch.setattr("node.cli.openclaw_run.holding_state_locks",
                            gateway_starts_meanwhile)
        code, output = export(b, data)
    assert code == 2, output
    assert f"an OpenClaw gateway is running on {b.resolve()} (pid {pid}, " in output
    assert "note:" not in output
    assert not (b / "agents" / "main" / "sessions").exists()


def test_a_writer_holding_the_locks_is_named_when_they_are_taken(
        tmp_path: Path, locks: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another export took the locks after this one last looked (here: every look comes
    too early): taking them, this one names it as an export."""
    data, b = imported(tmp_path)
    monkeypatch.setattr("node.cli.openclaw_run.held_state_lock", lambda *_, **__: None)
    with stand_in(sys.executable, "-c", HOLDING_PY, str(b), str(locks)) as pid:
        code, output = export(b, data)
    assert code == 2 and "Usage:" not in output, output
    assert (f"another `clawsync openclaw export` is writing into {b.resolve()} (pid {pid}, "
            in output)
    assert "it holds a lock on the folder itself): let it finish, then export" in output
    assert not (b / "agents" / "main" / "sessions").exists()


@pytest.mark.skipif(not hasattr(fcntl, "F_OFD_SETLK"), reason="needs Linux")
def test_a_writer_of_another_pid_namespace_is_named_as_an_export(
        tmp_path: Path, locks: Path) -> None:
    """An export in a pid namespace of its own (a container) while another export, of
    a pid namespace it cannot see into (the machine's), holds the lock on the state
    folder (its lock folder cannot be made: only that one is held): ``/proc/locks``
    there leaves that lock out, and only its mark on the folder shows. Refused, named
    as an export (with no pid), nothing written. Where a pid namespace cannot be had,
    skipped, and failed in CI."""
    if os.getuid() != 0 or shutil.which("unshare") is None:
        unavailable("needs root and unshare for a pid namespace of its own")
    data, b = imported(tmp_path)
    with stand_in(sys.executable, "-c", HOLDING_PY, str(b), "/proc"):
        refused = subprocess.run(
            ["unshare", "-pf", "--mount-proc", sys.executable, "-m",
             "tests.support.private_locks", str(locks), "openclaw", "export", KEY,
             "--state-dir", str(b), "--data-dir", str(data)],
            capture_output=True, text=True, env=child_env(), timeout=CLI_TIMEOUT_S,
            check=False)
    # unshare says why it cannot (no CAP_SYS_ADMIN in a container, /proc not mounted)
    # in its own name; the export, in its own words.
    if refused.returncode != 2 and refused.stderr.startswith("unshare: "):
        unavailable(f"a pid namespace cannot be had here: {refused.stderr.strip()}")
    assert refused.returncode == 2, refused.stderr
    assert (f"another `clawsync openclaw export` is writing into {b.resolve()} (a process "
            "this one cannot see, of another pid namespace perhaps; it holds a lock on the "
            "folder itself)") in refused.stderr
    assert not (b / "agents" / "main" / "sessions").exists()


def export_beside_another(monkeypatch: pytest.MonkeyPatch, b: Path, data: Path,
                          locks: Path) -> list[subprocess.CompletedProcess[str]]:
    """Makes the next export into ``b`` run, once it writes, a second export of it in
    another process (its lock root ``locks``), which must have written nothing by then;
    what that second export gave, once the first is done."""
    second: list[subprocess.CompletedProcess[str]] = []
    write = node.cli.openclaw_run.export_transcript

    def write_beside_another(*args: Any) -> Any:
        second.append(subprocess.run(
            [sys.executable, "-m", "tests.support.private_locks", str(locks), "openclaw",
             "export", KEY, "--state-dir", str(b), "--data-dir", str(data)],
            capture_output=True, text=True, env=child_env(), timeout=CLI_TIMEOUT_S,
            check=False))
        assert not (b / "agents" / "main" / "sessions").exists()
        return write(*args)

    monkeypatch.setattr("node.cli.openclaw_run.export_transcript", write_beside_another)
    return second

