"""A data folder whose device key cannot be used, given as ``--data-dir``: ``device``,
``openclaw import`` and ``openclaw watch`` refuse it alike, as input (exit 2), in the
same words, which name the file and never show what it holds."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from crdt.log.store import EventStore
from node.device import open_key
from tests.support.processes import free_port, run_cli

#: What a damaged key file holds: a secret's shape, which no error line may repeat.
GARBAGE = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWJ1dC1icm9rZW4=\n"


def open_to_others(key: Path) -> str:
    key.chmod(0o644)  # a whole key, but readable by anyone
    return "is open to others (mode 0644)"


def damaged(key: Path) -> str:
    key.write_text(GARBAGE)
    return "is not a private key in PEM (PKCS #8)"


def not_a_file(key: Path) -> str:
    # Unreadable as a key whoever runs the test (root reads a file of mode 000).
    key.unlink()
    key.mkdir()
    return "is not a file"


def command(name: str, folder: Path, state: Path) -> list[str]:
    if name == "device":
        return ["device", "--data-dir", str(folder)]
    return ["openclaw", name, "--state-dir", str(state), "--data-dir", str(folder)]


@pytest.mark.parametrize("breaking", [open_to_others, damaged, not_a_file],
                         ids=lambda breaking: breaking.__name__)
def test_an_unusable_key_is_refused_alike(tmp_path: Path,
                                          breaking: Callable[[Path], str]) -> None:
    """``openclaw import`` and ``watch`` exited 1, as for a node's failure, where
    ``device`` exits 2; and said the folder twice."""
    folder = tmp_path / "data"
    folder.mkdir()
    with EventStore.open(folder):  # a node's folder: its store and its key
        pass
    key = open_key(folder).path
    secret = key.read_text()
    said = breaking(key)
    state = tmp_path / "openclaw"
    (state / "agents" / "main").mkdir(parents=True)
    before = sorted(os.listdir(folder))
    lines = set()
    for name in ("device", "import", "watch"):
        # No node is asked: an address nobody answers at would say so otherwise.
        result = run_cli(f"http://127.0.0.1:{free_port()}", *command(name, folder, state))
        assert result.returncode == 2, (name, result.returncode, result.stderr)
        assert f"Error: the device key {key} {said}" in result.stderr, (name, result.stderr)
        assert "Traceback" not in result.stderr and result.stdout == ""
        for part in (secret, GARBAGE):
            assert part.splitlines()[1] not in result.stderr, (name, result.stderr)
        lines.add(result.stderr.splitlines()[-1])
    assert len(lines) == 1, lines  # the same words from each command
    assert sorted(os.listdir(folder)) == before
