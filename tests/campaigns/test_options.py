"""The campaigns' command lines: values that could only fail are refused before anything
starts, and Ctrl-C stops the nodes and says where the folder was kept."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.campaigns import faults, hostile
from tests.support.cluster import wait_until

#: Long enough to be interrupted while its nodes run.
INTERRUPTED_RUN_S = 300
#: For the nodes to start, and to stop once interrupted.
WAIT_S = 120


@pytest.mark.parametrize(("main", "args", "said"), [
    (faults.main, ["--seconds", "-5"], "--seconds: must be more than 0 seconds"),
    (faults.main, ["--clients", "0"], "--clients: must be at least 1"),
    (faults.main, ["--nodes", "1"], "--nodes: must be at least 2"),
    (hostile.main, ["--workers", "0"], "--workers: must be at least 1"),
    (hostile.main, ["--seconds", "x"], "--seconds: 'x' is not a number"),
])
def test_values_that_could_only_fail_are_refused_at_once(
        capsys: pytest.CaptureFixture[str], main: object, args: list[str], said: str) -> None:
    with pytest.raises(SystemExit) as exited:
        main(args)  # type: ignore[operator]
    assert exited.value.code == 2
    assert said in capsys.readouterr().err


def test_ctrl_c_stops_the_nodes_and_says_where_the_folder_is() -> None:
    campaign = subprocess.Popen(
        [sys.executable, "-m", "tests.campaigns.faults", "--seconds", str(INTERRUPTED_RUN_S),
         "--nodes", "2", "--no-skew"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True)
    try:
        assert campaign.stdout is not None
        [folder] = re.findall(r"folder (\S+)$", campaign.stdout.readline())
        wait_until(lambda: len(nodes_in(folder)) == 2, WAIT_S, "the campaign's nodes run")
        campaign.send_signal(signal.SIGINT)
        _, err = campaign.communicate(timeout=WAIT_S)
    finally:
        if campaign.poll() is None:
            campaign.kill()
    assert campaign.returncode == 130, err
    assert "Traceback" not in err, err
    assert f"interrupted: logs and data kept in {folder}; rerun with --seed" in err, err
    assert Path(folder).is_dir() and not nodes_in(folder)
    shutil.rmtree(folder)


def nodes_in(folder: str) -> list[str]:
    """The command lines of the node processes serving from ``folder``."""
    found = subprocess.run(["pgrep", "-af", f"serve --data-dir {folder}"],
                           capture_output=True, text=True)
    return [line for line in found.stdout.splitlines() if "pgrep" not in line]
