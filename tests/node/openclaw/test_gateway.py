"""``clawsync openclaw export`` beside a gateway: refused while one runs on the state
folder (its lock names a live process that is that gateway), not for a lock a killed
gateway left behind, and refused when a lock cannot be read.

Stand-in processes take the gateway's place: a process named as the gateway names itself,
or a real ``node`` running a script named as OpenClaw's."""

from __future__ import annotations

import functools
import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.node.openclaw.support import (
    KEY,
    WAIT_PY,
    export,
    gateway_lock,
    imported,
    stand_in,
    start_ticks,
)
from tests.support.other_user import OtherUser

WAIT_JS = ('process.stdout.write("\\n"); process.stdin.resume(); '
           'process.stdin.on("end", () => process.exit(0));')


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
