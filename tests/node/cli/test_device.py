"""``clawsync device --data-dir``: the name it shows is ``--name``'s (CLAWSYNC_NAME's),
checked as ``serve`` checks it, and only where it is shown."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from node.device import open_key
from node.main import main


def device(folder: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    clean = {"CLAWSYNC_NODE": None, "CLAWSYNC_TOKEN": None, "CLAWSYNC_NAME": None,
             **(env or {})}
    return CliRunner().invoke(main, ["device", "--data-dir", str(folder), *args],
                              prog_name="clawsync", env=clean)


def test_the_id_alone_reads_no_name(tmp_path: Path) -> None:
    """--id shows no name: CLAWSYNC_NAME set empty was refused all the same (exit 2)."""
    key = open_key(tmp_path)
    result = device(tmp_path, "--id", env={"CLAWSYNC_NAME": ""})
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{key.device_id}\n"
    shown = device(tmp_path, env={"CLAWSYNC_NAME": ""})
    assert shown.exit_code == 2, shown.output
    assert "Error: CLAWSYNC_NAME is set but empty" in shown.output, shown.output


@pytest.mark.parametrize(("args", "env", "said"), [
    pytest.param(["--name", ""], {}, "Error: --name: must not be empty", id="typed-empty"),
    pytest.param(["--json"], {"CLAWSYNC_NAME": "a\x01b"},
                 "Error: --name: must not contain control characters", id="control"),
    pytest.param(["--name", "x" * 65], {}, "Error: --name: ", id="too-long")])
def test_a_name_serve_would_refuse_is_refused(tmp_path: Path, args: list[str],
                                              env: dict[str, str], said: str) -> None:
    """An empty --name showed the host name, where `serve --name ''` is refused."""
    open_key(tmp_path)
    result = device(tmp_path, *args, env=env)
    assert result.exit_code == 2, result.output
    assert said in result.output, result.output
    assert "device " not in result.stdout


def test_a_name_typed_is_shown(tmp_path: Path) -> None:
    open_key(tmp_path)
    result = device(tmp_path, "--name", "laptop", env={"CLAWSYNC_NAME": ""})
    assert result.exit_code == 0, result.output
    assert "name   laptop" in result.stdout


def test_a_name_a_new_device_may_not_take_is_shown_and_warned_of(tmp_path: Path) -> None:
    """This device's name, given before a zero-width space was refused in new names, is
    its name still (its records hold it): shown, with a warning saying of what."""
    open_key(tmp_path)
    result = device(tmp_path, "--name", "laptop\u200b")
    assert result.exit_code == 0, result.output
    assert "name   laptop" in result.stdout
    assert "Warning: --name holds invisible characters (U+200B)" in result.stderr
