"""``clawsync openclaw export`` beside a gateway: refused while one runs on the state
folder (its lock names a live process that is that gateway), not for a lock a killed
gateway left behind, and refused when a lock cannot be read.

Stand-in processes take the gateway's place: a process named as the gateway names itself,
or a real ``node`` running a script named as OpenClaw's."""

from __future__ import annotations

import fcntl
import functools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import node.cli.openclaw_run
from node.openclaw.state_locks import LOCK_FAMILIES, lock_paths
from tests.node.openclaw.conftest import OtherUser
from tests.node.openclaw.test_export import KEY, SID, cli, imported
from tests.support.processes import CLI_TIMEOUT_S, child_env

#: A stand-in's code: says it runs (its command line is its own by then), then waits.
WAIT_PY = "import sys; print(flush=True); sys.stdin.read()"
WAIT_JS = ('process.stdout.write("\\n"); process.stdin.resume(); '
           'process.stdin.on("end", () => process.exit(0));')


def start_ticks(pid: int) -> int:
    """When ``pid`` started, as OpenClaw writes it in the lock on Linux: field 22 of
    ``/proc/<pid>/stat``."""
    stat = Path(f"/proc/{pid}/stat").read_bytes()
    return int(stat[stat.rfind(b")") + 2:].split()[19])


def gateway_lock(state: Path, pid: int, start: int | None, state_dir: Path | str | None = None
                 ) -> Path:
    """The lock OpenClaw 2026.9's gateway holds while it runs, as one wrote it (its
    ``startTime`` left out as an older or non-Linux one may)."""
    lock = state / "tmp" / f"openclaw-{os.getuid()}" / "gateway.state.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    payload = {"pid": pid, "ownerId": "6778bf67-e0a2-4f1c-8d27-26d23ef18194",
               "cronOwnerProjection": "dynamic-default-v1",
               "createdAt": "2026-12-05T13:20:18.608Z",
               "configPath": str(state / "openclaw.json"),
               "stateDir": str(state if state_dir is None else state_dir),
               "port": 58005, **({} if start is None else {"startTime": start})}
    lock.write_text(json.dumps(payload, indent=2) + "\n" + "\t \t\t " * 16)
    return lock


@contextmanager
def stand_in(*argv: str, executable: str | None = None) -> Iterator[int]:
    """A process running ``argv``, once it runs its own code (it has exec'd: its command
    line and start time are its own); its pid. Ended (stdin closed) on exit."""
    process = subprocess.Popen(list(argv), executable=executable, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == b"\n"
        yield process.pid
    finally:
        process.communicate()


def export(state: Path, data: Path) -> tuple[int, str]:
    result = cli("export", KEY, "--state-dir", str(state), "--data-dir", str(data))
    return result.exit_code, result.output


def refused(state: Path, data: Path, pid: int) -> bool:
    """Export refused because of the gateway ``pid``, the usual way; nothing written."""
    code, output = export(state, data)
    if code == 0:
        shutil.rmtree(state / "agents" / "main" / "sessions")  # written: undone
        return False
    assert code == 2 and "Usage:" not in output, output
    assert f"an OpenClaw gateway is running on {state.resolve()} (pid {pid}, " \
           "port 58005): stop it first" in output
    assert not (state / "agents" / "main" / "sessions").exists()
    return True


def test_export_refuses_while_a_gateway_runs_on_the_state_folder(tmp_path: Path) -> None:
    data, b = imported(tmp_path)
    with stand_in("openclaw-gateway", "-c", WAIT_PY, executable=sys.executable) as pid:
        gateway_lock(b, pid, start_ticks(pid))
        assert refused(b, data, pid)
        gateway_lock(b, pid, None)  # a lock without its start time: the name tells
        assert refused(b, data, pid)
    # Killed, a gateway leaves its lock behind: that of a process gone, or of one that
    # is not OpenClaw's (its pid taken since; this one names OpenClaw in its arguments
    # only), stops nothing.
    for lock_pid in (pid, os.getpid()):
        gateway_lock(b, lock_pid, None)
        assert not refused(b, data, lock_pid)


def test_a_gateway_pid_taken_by_another_gateway_stops_nothing(tmp_path: Path) -> None:
    """The pid of a killed gateway, taken since by another OpenClaw process (say the
    gateway of another state folder): that one started at another time than the lock
    says. A lock that came with a copy of another folder names that folder."""
    data, b = imported(tmp_path)
    other = tmp_path / "a"  # a state folder of its own, whose gateway the stand-in is
    with stand_in("openclaw-gateway", "-c", WAIT_PY, executable=sys.executable) as pid:
        gateway_lock(b, pid, start_ticks(pid) - 1)
        assert not refused(b, data, pid)
        gateway_lock(b, pid, start_ticks(pid), state_dir=other)
        assert not refused(b, data, pid)
        # Named by another path (or one not there: another machine's, a container's),
        # the lock counts.
        alias = tmp_path / "b-alias"
        alias.symlink_to(b)
        gateway_lock(b, pid, start_ticks(pid), state_dir=alias)
        assert refused(b, data, pid)
        gateway_lock(b, pid, start_ticks(pid), state_dir="/nowhere/.openclaw")
        assert refused(b, data, pid)


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node")
def test_a_gateway_node_runs_with_options_is_recognised(tmp_path: Path) -> None:
    """``node --stack-size=... --require x openclaw.mjs gateway run``: the script comes
    after node's options. Node running another script, or a command naming OpenClaw in
    its arguments only (``clawsync openclaw watch --state-dir ~/.openclaw``), is not it."""
    data, b = imported(tmp_path)
    node = str(shutil.which("node"))
    package = tmp_path / "lib" / "openclaw"
    package.mkdir(parents=True)
    for script in ("openclaw.mjs", "tool.mjs"):
        (package / script).write_text(WAIT_JS)
    (package / "preload.cjs").write_text("")
    with stand_in(node, "--stack-size=2000", "--require", str(package / "preload.cjs"),
                  str(package / "openclaw.mjs"), "gateway", "run", "--port", "58005") as pid:
        gateway_lock(b, pid, start_ticks(pid))
        assert refused(b, data, pid)
        gateway_lock(b, pid, None)
        assert refused(b, data, pid)
    with stand_in(node, "--stack-size=2000", str(package / "tool.mjs"),
                  str(package / "openclaw.mjs")) as pid:
        gateway_lock(b, pid, None)
        assert not refused(b, data, pid)
    clawsync = tmp_path / "bin" / "clawsync"
    clawsync.parent.mkdir()
    clawsync.write_text(WAIT_PY)
    with stand_in(sys.executable, str(clawsync), "openclaw", "watch", "--state-dir",
                  str(tmp_path / ".openclaw")) as pid:
        gateway_lock(b, pid, None)
        assert not refused(b, data, pid)


def test_a_lock_that_cannot_be_read_refuses(tmp_path: Path) -> None:
    """Whether a gateway runs cannot be told: refused, saying which lock and what to do."""
    data, b = imported(tmp_path)
    (b / "tmp").mkdir()
    (b / "tmp" / "openclaw-notes.txt").write_text("")  # a file, not a folder of locks
    assert not refused(b, data, 0)
    lock = b / "tmp" / f"openclaw-{os.getuid()}" / "gateway.state.lock"
    lock.mkdir(parents=True)  # there, and not readable as a file, even by root
    code, output = export(b, data)
    assert code == 2 and "Usage:" not in output, output
    assert f"{lock.parent.resolve()}/gateway.state.lock cannot be read" in output
    assert "whether an OpenClaw gateway runs on the folder cannot be told: run clawsync " \
           "as the user OpenClaw runs as; or, if no gateway runs on it (openclaw gateway " \
           "status), remove that lock" in output
    assert not (b / "agents" / "main" / "sessions").exists()


def export_as(user: OtherUser, state: Path, data: Path) -> tuple[int, str]:
    """``export``, run by ``user`` (``setpriv``): root reads whatever the permissions
    say, that user only what they let it. Its per-machine locks in ``data``'s folder."""
    result = user.run("-m", "tests.support.private_locks", str(data.parent / "locks"),
                      "openclaw", "export", KEY, "--state-dir", str(state),
                      "--data-dir", str(data))
    return result.returncode, result.stdout + result.stderr


def test_a_lock_of_another_user_refuses(shared: Path, request: pytest.FixtureRequest) -> None:
    """A lock export may not read (the lock, its folder, or the folder of those): whether
    a gateway runs cannot be told. Run as root, export runs as ``nobody``
    (``other_user``), everything else that user's."""
    as_root = os.geteuid() == 0
    run = export
    if as_root:
        user: OtherUser = request.getfixturevalue("other_user")
        run = functools.partial(export_as, user)
    data, b = imported(shared)
    lock = gateway_lock(b, os.getpid(), None)
    if as_root:
        (shared / "locks").mkdir()
        for folder, names, files in os.walk(shared):
            for name in [folder, *(os.path.join(folder, n) for n in names + files)]:
                os.chown(name, user.uid, user.uid)
    for unreadable, mode in ((lock, 0o600), (lock.parent, 0o700), (lock.parent.parent, 0o755)):
        unreadable.chmod(0)
        try:
            code, output = run(b, data)
        finally:
            unreadable.chmod(mode)
        assert code == 2 and "cannot be read (Permission denied)" in output, output
        assert not (b / "agents" / "main" / "sessions").exists()
    # Readable, the lock names no gateway (this test's pid): the same export writes.
    code, output = run(b, data)
    assert code == 0 and "records written" in output, output


#: A stand-in for an OpenClaw process at work: it holds the lock file as OpenClaw does
#: (an open transaction on an empty SQLite file: exclusive, or a read for
#: ``state-handles``), says so, then waits.
HOLD_PY = """import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=0)
db.execute("PRAGMA journal_mode = MEMORY")
if sys.argv[2] == "state-handles":
    db.execute("BEGIN")
    db.execute("SELECT rootpage FROM sqlite_schema LIMIT 1").fetchall()
else:
    db.execute("BEGIN EXCLUSIVE")
print(flush=True)
sys.stdin.read()
"""


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


#: Try to take a lock as OpenClaw does, waiting for no one: prints "taken" or why not.
TAKE_PY = """import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=0)
try:
    db.execute("PRAGMA journal_mode = MEMORY")
    db.execute("BEGIN EXCLUSIVE")
    print("taken")
except sqlite3.OperationalError as error:
    print(error)
"""


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


def take(path: Path) -> str:
    """Whether another process can take the lock ``path`` now."""
    return subprocess.run([sys.executable, "-c", TAKE_PY, str(path)], check=True,
                          capture_output=True, text=True).stdout.strip()


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
    monkeypatch.setattr("node.openclaw.state_locks._held", lambda _: None)
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
    second: list[subprocess.CompletedProcess[str]] = []
    write = node.cli.openclaw_run.export_transcript

    def write_beside_another(*args: Any) -> Any:
        second.append(subprocess.run(
            [sys.executable, "-m", "tests.support.private_locks", "/proc", "openclaw",
             "export", KEY, "--state-dir", str(b), "--data-dir", str(data)],
            capture_output=True, text=True, env=child_env(), timeout=CLI_TIMEOUT_S,
            check=False))
        assert not (b / "agents" / "main" / "sessions").exists()
        return write(*args)

    monkeypatch.setattr("node.cli.openclaw_run.export_transcript", write_beside_another)
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


#: A writer holding the locks of a state folder (argv[1]) under a lock root (argv[2]).
HOLDING_PY = """import sys
from pathlib import Path
from node.openclaw.state_locks import holding_state_locks
with holding_state_locks(Path(sys.argv[1]), Path(sys.argv[2])):
    print(flush=True)
    sys.stdin.read()
"""
