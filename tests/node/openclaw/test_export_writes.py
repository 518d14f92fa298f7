"""``clawsync openclaw export`` writing to disk: each name it makes reaches the disk
before the next is written, a write that fails leaves the index and the folders as they
were, and a state folder it cannot write into is named with what to do."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.node.openclaw.support import KEY, SID, cli, imported


@pytest.mark.skipif(os.name != "posix", reason="folders are fsynced where they open")
def test_each_name_export_makes_reaches_the_disk_before_the_next_is_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash may lose a rename not yet flushed to its folder: the transcript's could
    reach the disk before the index's, which the index's going first is there to stop.
    Each folder export makes, and each rename into place, is flushed to the folder
    holding it before the next file is written."""
    data, b = imported(tmp_path)
    done: list[tuple[str, int | str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        real_fsync(fd)
        done.append(("fsync", os.fstat(fd).st_ino))

    def replace(src: Any, dst: Any) -> None:
        real_replace(src, dst)
        done.append(("replace", Path(dst).name))

    monkeypatch.setattr("os.fsync", fsync)
    monkeypatch.setattr("node.openclaw.export.os.replace", replace)
    result = cli("export", KEY, "--state-dir", str(b), "--data-dir", str(data))
    assert result.exit_code == 0, result.output
    sessions = b / "agents" / "main" / "sessions"
    # A file renamed into place keeps the inode of the temporary file written.
    names = {path.stat().st_ino: path.name for path in [
        b / "agents", sessions.parent, sessions, sessions / "sessions.json",
        sessions / f"{SID}.jsonl"]}
    assert [(what, names.get(one, one) if what == "fsync" else one)
            for what, one in done if what == "replace" or one in names] == [
        ("fsync", "agents"), ("fsync", "main"),  # main made in agents, sessions in main
        ("fsync", "sessions.json"), ("replace", "sessions.json"), ("fsync", "sessions"),
        ("fsync", f"{SID}.jsonl"), ("replace", f"{SID}.jsonl"), ("fsync", "sessions")]


def test_a_transcript_that_cannot_be_written_leaves_the_index_as_it_was(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data, b = imported(tmp_path)
    sessions = b / "agents" / "main" / "sessions"
    sessions.mkdir(parents=True)
    before = json.dumps({"agent:main:other": {"sessionId": "x"}}).encode()
    (sessions / "sessions.json").write_bytes(before)
    real_replace = os.replace

    def disk_full_for_transcripts(src: Any, dst: Any) -> None:
        if str(dst).endswith(".jsonl"):
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr("node.openclaw.export.os.replace", disk_full_for_transcripts)
    result = cli("export", KEY, "--state-dir", str(b), "--data-dir", str(data))
    assert result.exit_code == 1 and "No space left on device" in result.output
    assert [p.name for p in sessions.iterdir()] == ["sessions.json"]
    assert (sessions / "sessions.json").read_bytes() == before


@pytest.mark.skipif(os.name != "posix", reason="folders are fsynced where they open")
def test_a_transcript_whose_rename_cannot_be_flushed_keeps_its_index_entry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The transcript is in place, and the index naming it, when the flush of its
    folder fails (EIO): putting the old index back would leave a transcript that no
    entry names, what writing the index first is there to stop. Both stay; the error
    names the folder."""
    data, b = imported(tmp_path)
    sessions = b / "agents" / "main" / "sessions"
    sessions.mkdir(parents=True)
    (sessions / "sessions.json").write_bytes(
        json.dumps({"agent:main:other": {"sessionId": "x"}}).encode())
    flushes = []
    real_fsync = os.fsync

    def failing_second_flush(fd: int) -> None:
        if os.fstat(fd).st_ino == sessions.stat().st_ino:
            flushes.append(fd)
            if len(flushes) == 2:  # the index's went through, the transcript's fails
                raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_fsync(fd)

    monkeypatch.setattr("os.fsync", failing_second_flush)
    result = cli("export", KEY, "--state-dir", str(b), "--data-dir", str(data))
    assert result.exit_code == 1, result.output
    assert sorted(p.name for p in sessions.iterdir()) == [f"{SID}.jsonl", "sessions.json"]
    index = json.loads((sessions / "sessions.json").read_bytes())
    assert index[KEY]["sessionId"] == SID and index["agent:main:other"] == {"sessionId": "x"}
    assert os.strerror(errno.EIO) in result.output and str(sessions) in result.output
    assert (f"{sessions}: {SID}.jsonl and its entry in sessions.json are written in that "
            "folder, but a crash may lose them; run the export again to finish it"
            ) in result.output
    monkeypatch.setattr("os.fsync", real_fsync)
    again = cli("export", KEY, "--state-dir", str(b), "--data-dir", str(data))
    assert again.exit_code == 0, again.output


@pytest.mark.skipif(os.name != "posix", reason="folders are fsynced where they open")
@pytest.mark.parametrize("index_before", [True, False])
def test_an_index_whose_rename_cannot_be_flushed_is_put_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, index_before: bool) -> None:
    """The index is renamed into place, and the flush of its folder fails (EIO) before
    the transcript is written: the index would name a transcript never written. It is
    put back as it was (removed if there was none), and so is the folder export made."""
    data, b = imported(tmp_path)
    sessions = b / "agents" / "main" / "sessions"
    before = json.dumps({"agent:main:other": {"sessionId": "x"}}).encode()
    if index_before:
        sessions.mkdir(parents=True)
        (sessions / "sessions.json").write_bytes(before)
    real_fsync = os.fsync

    def failing_flushes_of_sessions(fd: int) -> None:
        if sessions.is_dir() and os.path.samestat(os.fstat(fd), sessions.stat()):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_fsync(fd)

    monkeypatch.setattr("os.fsync", failing_flushes_of_sessions)
    result = cli("export", KEY, "--state-dir", str(b), "--data-dir", str(data))
    assert result.exit_code == 1, result.output
    assert os.strerror(errno.EIO) in result.output and str(sessions) in result.output
    if index_before:
        assert [p.name for p in sessions.iterdir()] == ["sessions.json"]
        assert (sessions / "sessions.json").read_bytes() == before
    else:
        assert [p.name for p in (b / "agents").iterdir()] == []


def test_a_file_that_cannot_be_written_is_named(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk fails the write of a file's temporary copy, whose error names no
    file: the file being written is named."""
    data, b = imported(tmp_path)
    sessions = b / "agents" / "main" / "sessions"
    real_fsync = os.fsync

    def disk_full(fd: int) -> None:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr("os.fsync", disk_full)
    result = cli("export", KEY, "--state-dir", str(b), "--data-dir", str(data))
    assert result.exit_code == 1, result.output
    assert (f"{os.strerror(errno.ENOSPC)} (writing it to disk): "
            f"'{sessions / 'sessions.json'}'") in result.output
    assert [p.name for p in (b / "agents").iterdir()] == []


#: A user id other than this one's, for a folder of another user's.
NOBODY_UID = 65534


@pytest.mark.parametrize(("code", "said"), [
    (errno.EACCES, "run clawsync as the user OpenClaw runs as"),
    (errno.EPERM, "run clawsync as the user OpenClaw runs as"),
    (errno.EROFS, "the state folder is read-only")])
def test_a_state_folder_this_user_cannot_write_is_a_usage_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, said: str) -> None:
    """Another user's folder, or a read-only one: the person has to change something, as
    for a folder whose files are in the way (exit 2); not a failure to try again."""
    data, b = imported(tmp_path)
    if code != errno.EROFS:  # refused for want of permission: the folder is another's
        if os.geteuid() != 0:
            pytest.skip("giving a folder to another user takes root")
        sessions = b / "agents" / "main" / "sessions"
        sessions.mkdir(parents=True, exist_ok=True)
        os.chown(sessions, NOBODY_UID, -1)
    real_replace = os.replace

    def refused(src: Any, dst: Any) -> None:
        if str(dst).endswith(".jsonl"):
            raise OSError(code, os.strerror(code), str(dst))
        real_replace(src, dst)

    monkeypatch.setattr("node.openclaw.export.os.replace", refused)
    result = cli("export", KEY, "--state-dir", str(b), "--data-dir", str(data))
    assert result.exit_code == 2 and "Usage:" not in result.output, result.output
    assert f"{os.strerror(code)}: " in result.output and f": {said}" in result.output
    if code == errno.EROFS:  # the folders the export made are gone again
        assert [p.name for p in (b / "agents").iterdir()] == []
    else:  # the one that was there stays
        assert [p.name for p in (b / "agents" / "main" / "sessions").iterdir()] == []


@pytest.mark.parametrize("failing", [".jsonl", "sessions.json"])
def test_a_failed_export_leaves_no_folder_it_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str) -> None:
    """The agent's folders did not exist: a write that fails (the transcript, or the
    index before it) takes away the empty folders the export made for it."""
    data, b = imported(tmp_path)
    (b / "agents" / "other").mkdir()
    real_replace = os.replace

    def disk_full(src: Any, dst: Any) -> None:
        if str(dst).endswith(failing):
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr("node.openclaw.export.os.replace", disk_full)
    result = cli("export", KEY, "--state-dir", str(b), "--data-dir", str(data))
    assert result.exit_code == 1 and "No space left on device" in result.output
    assert [p.name for p in (b / "agents").iterdir()] == ["other"]
    monkeypatch.setattr("node.openclaw.export.os.replace", real_replace)
    result = cli("export", KEY, "--state-dir", str(b), "--data-dir", str(data))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (b / "agents" / "main" / "sessions").iterdir()) == [
        f"{SID}.jsonl", "sessions.json"]


@contextmanager
def closed_to_writing(folder: Path) -> Iterator[None]:
    """``folder`` made so that this user cannot write in it: its mode, or, for root,
    whom modes do not stop, the immutable attribute (``chattr +i``: EPERM)."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
    elif shutil.which("chattr") is None or subprocess.run(
            ["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("root, and no chattr +i here")
    try:
        yield
    finally:
        if os.geteuid() != 0:
            folder.chmod(0o755)
        else:
            subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_a_state_folder_closed_to_this_user_is_a_usage_error(tmp_path: Path) -> None:
    """The folder is this user's own: running as another user would not help, making
    it writable would."""
    data, b = imported(tmp_path)
    with closed_to_writing(b / "agents"):
        result = cli("export", KEY, "--state-dir", str(b), "--data-dir", str(data))
    assert result.exit_code == 2 and "Usage:" not in result.output, result.output
    assert f"{b / 'agents' / 'main'}" in result.output
    assert f"{b / 'agents'} is this user's but not writable" in result.output, result.output
    assert "run clawsync as the user OpenClaw runs as" not in result.output
    assert not (b / "agents" / "main").exists()
