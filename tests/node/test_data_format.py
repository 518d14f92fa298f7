"""The data folder's format marker read and written (``node.data_format``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node.data_format import (
    DATA_FORMAT,
    FORMAT_FILE,
    FORMAT_FILE_BYTES_MAX,
    FolderFormatError,
    check_format,
    mark_format,
)


def test_a_marker_is_written_once_and_kept(tmp_path: Path) -> None:
    assert mark_format(tmp_path, "0.3.0")
    (tmp_path / FORMAT_FILE).write_text(json.dumps({"format": 1, "written_by": "0.2.9"}))
    assert not mark_format(tmp_path, "0.3.0")
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
