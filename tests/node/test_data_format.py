"""The data folder's format marker read and written (``node.data_format``)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest

from node.data_format import (
    DATA_FORMAT,
    FORMAT_FILE,
    FORMAT_FILE_BYTES_MAX,
    MARK_LATER_ERRNOS,
    FolderFormatError,
    Marking,
    check_format,
    mark_format,
)
from tests.node.openclaw.support import cli, export, imported


def test_a_marker_is_written_once_and_kept(tmp_path: Path) -> None:
    assert mark_format(tmp_path, "0.3.0") == Marking(written=True)
    (tmp_path / FORMAT_FILE).write_text(json.dumps({"format": 1, "written_by": "0.2.9"}))
    assert mark_format(tmp_path, "0.3.0") == Marking(written=False)
    assert json.loads((tmp_path / FORMAT_FILE).read_text())["written_by"] == "0.2.9"
    assert [path.name for path in tmp_path.iterdir()] == [FORMAT_FILE]  # no spare left


@pytest.mark.parametrize("body", [b"", b"{", b"[]", b'{"format": "1"}', b'{"format": 0}',
                                  b'{"format": true}',
                                  json.dumps({"format": 1, "pad": "x" * FORMAT_FILE_BYTES_MAX})
                                  .encode()])
def test_a_marker_that_is_not_one_is_refused_naming_it(tmp_path: Path, body: bytes) -> None:
    (tmp_path / FORMAT_FILE).write_bytes(body)
    with pytest.raises(FolderFormatError, match=r"format marker .* is damaged"):
        check_format(tmp_path)


def test_a_marker_just_within_its_limit_is_read(tmp_path: Path) -> None:
    body = json.dumps({"format": DATA_FORMAT, "pad": ""}).encode()
    padded = body[:-2] + b"x" * (FORMAT_FILE_BYTES_MAX - len(body)) + b'"}'
    assert len(padded) == FORMAT_FILE_BYTES_MAX
    (tmp_path / FORMAT_FILE).write_bytes(padded)
    assert check_format(tmp_path) == DATA_FORMAT


def test_a_writer_that_is_no_version_is_not_repeated(tmp_path: Path) -> None:
    (tmp_path / FORMAT_FILE).write_text(
        json.dumps({"format": DATA_FORMAT + 1, "written_by": "\x1b[31m" + "9" * 50}))
    with pytest.raises(FolderFormatError, match="written by a newer clawsync") as raised:
        check_format(tmp_path, "0.3.0")
    assert "\x1b" not in str(raised.value) and "clawsync 0.3.0 reads" in str(raised.value)


def _failing_marker_writes(monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    """Every file made for the marker fails with ``code``, as on a full or read-only
    disk (the rest of the folder is written as before)."""
    real_open = os.open

    def open_(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if FORMAT_FILE in os.fspath(path):
            raise OSError(code, os.strerror(code), os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)


@pytest.mark.parametrize("code", sorted(MARK_LATER_ERRNOS))
def test_a_marker_that_finds_no_room_is_left_for_a_later_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    """No marker means format 1, as the folder is read: a full disk (or quota) or a
    read-only one does not stop the node, and marking is tried again next time."""
    _failing_marker_writes(monkeypatch, code)
    marking = mark_format(tmp_path, "0.3.0")
    assert not marking.written and marking.later is not None
    assert marking.later.startswith(f"cannot write the data folder's format marker "
                                    f"{tmp_path / FORMAT_FILE}: {os.strerror(code)}; ")
    assert "marked on a later start" in marking.later
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    assert mark_format(tmp_path, "0.3.0").written


def test_a_marker_write_that_fails_otherwise_is_an_error_naming_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _failing_marker_writes(monkeypatch, errno.EACCES)
    with pytest.raises(FolderFormatError) as raised:
        mark_format(tmp_path, "0.3.0")
    assert str(raised.value) == (f"cannot write the data folder's format marker "
                                 f"{tmp_path / FORMAT_FILE}: {os.strerror(errno.EACCES)}")


def test_a_marker_written_meanwhile_by_a_newer_version_is_refused(tmp_path: Path) -> None:
    """Checked again once the folder is held: a newer version may have converted it
    between the first check and the lock."""
    (tmp_path / FORMAT_FILE).write_text(json.dumps({"format": DATA_FORMAT + 1}))
    with pytest.raises(FolderFormatError, match="written by a newer clawsync"):
        mark_format(tmp_path, "0.3.0")


def test_a_marker_that_links_to_no_file_is_refused_as_damaged(tmp_path: Path) -> None:
    """Not "no marker" (which could then never be written): it names one that is gone."""
    (tmp_path / FORMAT_FILE).symlink_to(tmp_path / "gone")
    for step in (check_format, lambda folder: mark_format(folder, "0.3.0")):
        with pytest.raises(FolderFormatError, match=r"is a symbolic link to no file: "
                                                    r"restore it"):
            step(tmp_path)
    assert not (tmp_path / "gone").exists()


@pytest.mark.parametrize("marked", [False, True])
def test_a_marker_a_crash_left_half_made_is_removed(tmp_path: Path, marked: bool) -> None:
    """A crash between writing the spare and removing it (before or after linking it)
    leaves it: the next marking removes it, and nothing else."""
    if marked:
        mark_format(tmp_path, "0.3.0")
    spare = tmp_path / f".{FORMAT_FILE}.0123abcd.new"
    spare.write_text('{"form')
    other = tmp_path / f".{FORMAT_FILE}.kept.new"
    other.write_text("not ours")
    assert mark_format(tmp_path, "0.3.0").written is not marked
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([FORMAT_FILE,
                                                                       other.name])


@pytest.mark.parametrize("command", ["import", "export"])
def test_openclaw_on_a_folder_it_cannot_mark_goes_on_and_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    """``openclaw import`` and ``export --data-dir`` on a folder of an earlier version
    (no marker) on a full disk: they work, and say that it is marked later."""
    data, state = imported(tmp_path)
    (data / FORMAT_FILE).unlink()
    _failing_marker_writes(monkeypatch, errno.ENOSPC)
    if command == "import":
        result = cli("import", "--state-dir", str(tmp_path / "a"), "--data-dir", str(data))
        code, said = result.exit_code, result.output
    else:
        code, said = export(state, data)
    assert code == 0, said
    assert (f"cannot write the data folder's format marker {data / FORMAT_FILE}: "
            f"{os.strerror(errno.ENOSPC)}; ") in said, said
    assert not (data / FORMAT_FILE).exists()
