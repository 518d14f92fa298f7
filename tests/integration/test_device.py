"""A device is a key: a real node makes its key on first start, keeps its device id across
restarts, shows it with ``clawsync device``, and refuses to start with a key others may
read (issue 9, test d). The example of ``clawsync device --help`` runs as shown."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from crdt.device import parse_device_id
from node.device import KEY_FILE
from node.server.reach import network_address
from tests.support.processes import (
    CLI_TIMEOUT_S,
    NodeProcess,
    child_env,
    free_port,
    run_cli,
)


def clawsync(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node.main", *args], capture_output=True,
                          text=True, env=child_env(), timeout=CLI_TIMEOUT_S)


def test_first_start_makes_the_key_and_restarts_keep_the_device_id(tmp_path: Path) -> None:
    with NodeProcess(tmp_path, extra_args=["--name", "Anna's laptop"]) as node:
        key = node.data_dir / KEY_FILE
        assert key.stat().st_mode & 0o777 == 0o600
        about = node.get("/v1/node")
        device_id = about["device_id"]
        assert parse_device_id(device_id) == device_id
        assert about["name"] == "Anna's laptop"
        shown = run_cli(node, "device")
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.splitlines() == [f"device {device_id}", "name   Anna's laptop"]
        as_json = run_cli(node, "device", "--json")
        assert json.loads(as_json.stdout) == {"device_id": device_id, "name": "Anna's laptop"}
        alone = run_cli(node, "device", "--id")  # for scripts: $(clawsync device --id)
        assert (alone.returncode, alone.stdout) == (0, f"{device_id}\n"), alone.stderr
        both = run_cli(node, "device", "--id", "--json")
        assert both.returncode == 2 and "give one" in both.stderr, both
        pem = key.read_bytes()
        node.restart()
        assert node.get("/v1/node")["device_id"] == device_id
        assert key.read_bytes() == pem
    # With the node stopped, the data folder tells the same.
    offline = clawsync("device", "--data-dir", str(node.data_dir), "--name", "laptop")
    assert offline.returncode == 0, offline.stderr
    assert offline.stdout.splitlines() == [f"device {device_id}", "name   laptop"]
    offline_id = clawsync("device", "--data-dir", str(node.data_dir), "--id")
    assert (offline_id.returncode, offline_id.stdout) == (0, f"{device_id}\n"), offline_id.stderr
    assert f"device_id={device_id}" in node.log_path.read_text()  # in the start line


def test_a_key_readable_by_others_stops_the_node(tmp_path: Path) -> None:
    with NodeProcess(tmp_path) as node:
        device_id = node.get("/v1/node")["device_id"]
        head_before = node.get("/healthz")["head"]
    key = node.data_dir / KEY_FILE
    key.chmod(0o644)
    refused = clawsync("serve", "--data-dir", str(node.data_dir), "--host", "127.0.0.1",
                       "--port", str(node.port))
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert lines == [f"Error: the device key {key} is open to others (mode 0644): anyone "
                     f"who can read it can write as this device. Make it the owner's only: "
                     f"chmod 600 {key}"], refused.stderr
    # The fix the message names brings back the same device.
    key.chmod(0o600)
    node.start()
    try:
        assert node.get("/v1/node")["device_id"] == device_id
        assert node.get("/healthz")["head"] == head_before
    finally:
        node.stop()


def test_a_damaged_key_stops_the_node_and_stays(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    key = folder / KEY_FILE
    key.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    key.chmod(0o600)
    refused = clawsync("serve", "--data-dir", str(folder), "--host", "127.0.0.1",
                       "--port", "0")
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"Error: the device key {key} is not a private key "
                                     "in PEM (PKCS #8). Restore the file from a backup")
    assert "Traceback" not in refused.stderr
    assert key.read_text().count("not a key") == 1  # left as it was
    assert sorted(p.name for p in folder.iterdir()) == [KEY_FILE]  # no log was opened
    # clawsync device says the same about it.
    shown = clawsync("device", "--data-dir", str(folder))
    assert shown.returncode == 2 and "is not a private key in PEM" in shown.stderr


def test_a_folder_without_a_key_is_input_the_command_cannot_use(tmp_path: Path) -> None:
    # It exited 1, the code of a node that refused, where a folder that is not there
    # exits 2 (README, Exit codes: input a command cannot use as it is).
    empty = clawsync("device", "--data-dir", str(tmp_path))
    assert empty.returncode == 2, empty
    assert empty.stderr == (f"Error: {tmp_path / KEY_FILE} does not exist: a node makes its "
                            f"device key when it first starts (clawsync serve --data-dir "
                            f"{tmp_path})\n")
    absent = clawsync("device", "--data-dir", str(tmp_path / "absent"))
    assert absent.returncode == 2 and "does not exist" in absent.stderr, absent


def test_no_node_listening_says_how_to_read_the_id_with_it_stopped(tmp_path: Path) -> None:
    # On a new device `clawsync device` often comes before its first `serve`.
    with NodeProcess(tmp_path) as node:
        pass
    stopped = run_cli(node, "device")
    assert stopped.returncode == 1, stopped
    assert stopped.stderr == (
        f"Error: cannot reach the node at {node.url} (connection refused) — is `clawsync "
        "serve` running?; with the node stopped, `clawsync device --data-dir DIR` reads "
        "the id from its data folder\n")
    offline = clawsync("device", "--data-dir", str(node.data_dir), "--id")
    assert offline.returncode == 0 and parse_device_id(offline.stdout.strip()), offline


def test_no_node_listening_elsewhere_says_nothing_of_a_data_folder(tmp_path: Path) -> None:
    """A node at another machine's address: its data folder is there, not here."""
    address = network_address()
    if address is None:
        pytest.skip("no address of this machine beyond loopback")
    url = f"http://{address}:{free_port()}"  # nothing listens there
    refused = clawsync("--node", url, "device")
    assert refused.returncode == 1, refused
    assert refused.stderr == (f"Error: cannot reach the node at {url} (connection refused) "
                              "— is `clawsync serve` running?\n")


def test_the_example_of_device_help_adds_this_device_on_another(tmp_path: Path) -> None:
    # It gave no --name, which devices add requires: copied, it failed with a usage error.
    helped = clawsync("device", "--help")
    # An example goes on over the lines its ``\\`` continues (help keeps to 80 columns).
    lines = re.sub(r"\\\n\s*", "", helped.stdout).splitlines()
    [example] = [line.strip() for line in lines
                 if line.strip().startswith("clawsync ") and " devices add " in line]
    bin_dir = tmp_path / "bin"  # `clawsync` as a person types it, for this checkout
    bin_dir.mkdir()
    (bin_dir / "clawsync").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m node.main "$@"\n')
    (bin_dir / "clawsync").chmod(0o755)
    with NodeProcess(tmp_path, name="home") as home, \
            NodeProcess(tmp_path, name="laptop") as laptop:
        # The laptop's node is the one `clawsync device` asks by default; home is the
        # example's home-server.
        script = example.replace("http://home-server:7878", home.url)
        assert script != example
        env = child_env({"CLAWSYNC_NODE": laptop.url,
                         "PATH": os.pathsep.join([str(bin_dir), os.environ["PATH"]])})
        ran = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env,
                             timeout=CLI_TIMEOUT_S)
        assert ran.returncode == 0, (script, ran.stdout, ran.stderr)
        laptop_id = laptop.get("/v1/node")["device_id"]
        members = {row["device_id"]: row["name"] for row in home.get("/v1/devices")["members"]}
        assert members.get(laptop_id) == "laptop", (members, ran.stdout)
