"""A start that fails midway, its folder made: it says what it made (a new device key, or
none) and whether to start again with it, removes only the storage folders it made while
they are empty, leaves a folder another node took meanwhile alone, and lets go of the
data folder, so that a start after it in the same program works (and a store that did not
close keeps it held)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import CLI_TIMEOUT_S, ROOT, NodeProcess, child_env, free_port, serve
from tests.support.storage import tmpfs

#: Runs ``clawsync serve`` in a new folder, ``{before}`` done (``config`` and ``socket``
#: at hand) once its address is checked and its folder made, as another start might.
MEANWHILE = """
import socket
import node.server.run as run

opening = run._start

async def meanwhile(config, *prepared):
{before}
    return await opening(config, *prepared)

run._start = meanwhile
from node.main import main
main(["serve", "--data-dir", {data!r}, "--host", "127.0.0.1", "--port", "{port}", *{extra!r}],
     prog_name="clawsync")
"""


def serve_meanwhile(data: Path, before: str, extra: tuple[str, ...] = ()
                    ) -> subprocess.CompletedProcess[str]:
    script = MEANWHILE.format(before=before, data=str(data), port=free_port(),
                              extra=list(extra))
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, env=child_env(), timeout=CLI_TIMEOUT_S, check=False)


def test_two_starts_at_once_on_one_port_the_loser_says_what_it_made(tmp_path: Path) -> None:
    """Both bind (not listening yet); the other listens first: this one cannot, after
    making its folder and key, and says both."""
    other = ("    rival = socket.socket()\n"
             "    rival.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
             "    rival.bind(('127.0.0.1', config.port))\n"
             "    rival.listen()\n")
    refused = serve_meanwhile(tmp_path / "new" / "data", other)
    assert refused.returncode == 1
    [line] = refused.stderr.strip().splitlines()
    assert "Address already in use (another node began listening there as this one " \
           "started; give another --port)" in line
    assert line.endswith(f"(this start made {tmp_path / 'new'}, with a new device key and "
                         "no events: start again with it, or remove it)")
    assert (tmp_path / "new" / "data" / "device.key").is_file()
    # A --storage folder it made holds the log the store began: kept, as the data folder.
    storage = tmp_path / "new-log"
    refused = serve_meanwhile(tmp_path / "other", other, ("--storage", str(storage)))
    assert refused.returncode == 1, refused.stderr
    assert (storage / "clawsync.lock").is_file()


def test_a_folder_another_node_took_meanwhile_is_only_said_in_use(tmp_path: Path) -> None:
    """Both made the folder; the other node holds it: it is not this start's to remove."""
    taken = ("    from crdt.storage.lock import FolderLock\n"
             "    global held\n"
             "    held = FolderLock.acquire(config.data_dir)\n")
    refused = serve_meanwhile(tmp_path / "new", taken)
    assert refused.returncode == 1
    [line] = refused.stderr.strip().splitlines()
    assert f"the data folder {(tmp_path / 'new').resolve()} is in use by" in line
    assert "this start made" not in line and "remove it" not in line


def test_a_device_key_that_cannot_be_made_says_the_folder_has_none(tmp_path: Path) -> None:
    no_key = "    (config.data_dir / 'device.key').mkdir()\n"  # where the key would go
    refused = serve_meanwhile(tmp_path / "new", no_key)
    assert refused.returncode == 1
    [line] = refused.stderr.strip().splitlines()
    assert line.endswith(f"(this start made {tmp_path / 'new'}, with no device key: start "
                         "again with it, or remove it)"), line
    assert "new device key" not in line


#: Embeds the node as ``node.server.run.start`` lets a program do: a failed start and
#: then another in the same process, which holds what the first did not let go of.
#: ``{steps}`` run in ``main`` with ``data`` and ``storage`` at hand.
EMBEDDED = """
import asyncio
from pathlib import Path
from crdt.storage.lock import FolderLock
from node.config import Config
from node.server.run import start
from node.server.start_errors import StartError

def config(data, storage):
    return Config(data_dir=Path(data), storage=storage, host="127.0.0.1", port=0)

async def main(data, storage):
{steps}

asyncio.run(main({data!r}, {storage!r}))
"""


def embedded(data: Path, storage: Path, steps: str) -> subprocess.CompletedProcess[str]:
    script = EMBEDDED.format(steps=steps, data=str(data), storage=str(storage))
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, env=child_env(), timeout=CLI_TIMEOUT_S, check=False)


def test_a_start_on_storage_another_node_holds_lets_go_of_the_data_folder(
        tmp_path: Path) -> None:
    """The data folder is locked (``--storage``) before the storage is found taken: the
    failed start lets go of it, so a start on it in the same program works."""
    storage = tmp_path / "log"
    with NodeProcess(tmp_path, extra_args=["--storage", str(storage)]) as holder:
        data = tmp_path / "new" / "data"
        result = embedded(data, storage, (
            "    try:\n"
            "        await start(config(data, storage))\n"
            "    except StartError as error:\n"
            "        print('refused:', error)\n"
            "    node = await start(config(data, 'memory:'))\n"
            "    print('started again')\n"
            "    await node.stop()\n"))
        assert result.returncode == 0, result.stderr
        refused, again = result.stdout.strip().splitlines()
        assert holder.process is not None
        assert f"the data folder {storage.resolve()} is in use by process " \
               f"{holder.process.pid}" in refused
        assert refused.endswith(f"(this start made {tmp_path / 'new'}, with a new device "
                                "key and no events: start again with it, or remove it)")
        assert again == "started again"
        assert holder.get("/healthz")["status"] == "ok"


def test_stop_lets_go_of_the_data_folder_only_once_the_store_closed(tmp_path: Path) -> None:
    """A store that failed to close may still write: its folder stays held, and no other
    start opens it. One that closed lets go of it."""
    data, storage = tmp_path / "data", tmp_path / "log"
    result = embedded(data, storage, (
        "    node = await start(config(data, storage))\n"
        "    await node.stop()\n"
        "    FolderLock.acquire(data).release()\n"
        "    print('closed, folder let go of')\n"
        "    node = await start(config(data, storage))\n"
        "    def fails():\n"
        "        raise OSError(5, 'Input/output error')  # as a failing disk's close\n"
        "    node.astore._store.close = fails\n"
        "    try:\n"
        "        await node.stop()\n"
        "    except OSError as error:\n"
        "        print('stop failed:', error)\n"
        "    try:\n"
        "        FolderLock.acquire(data).release()\n"
        "        print('folder let go of')\n"
        "    except Exception as error:\n"
        "        print('folder held:', type(error).__name__)\n"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines() == [
        "closed, folder let go of", "stop failed: [Errno 5] Input/output error",
        "folder held: FolderInUse"], result.stdout


#: Files the small file system holds, far more than a test needs: ``leave_free`` fills it.
INODES = 64


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs that holds ``INODES`` files."""
    with tmpfs(tmp_path / "small", f"size=1m,nr_inodes={INODES}") as mount:
        yield mount


def leave_free(disk: Path, files: int) -> None:
    """Fill ``disk`` until it holds only ``files`` more files (counted by the file
    system itself, whatever it counts besides: its root, say)."""
    filler = disk / "filler"
    filler.mkdir()
    while os.statvfs(disk).f_ffree > files:
        (filler / str(os.statvfs(disk).f_ffree)).touch()
    assert os.statvfs(disk).f_ffree == files


def test_a_storage_folder_a_failed_start_made_is_removed_while_empty(
        tmp_path: Path, small_disk: Path) -> None:
    """The start makes ``--storage``'s folders, then the store cannot write its first
    file: the folders this start made go again; the one that was there stays."""
    kept = small_disk / "kept"
    kept.mkdir()
    storage = kept / "new" / "log"
    leave_free(small_disk, 2)  # new and log: not the store's lock file
    refused = serve("--data-dir", str(tmp_path / "data"), "--port", str(free_port()),
                    "--storage", str(storage))
    assert refused.returncode == 1
    [line] = refused.stderr.strip().splitlines()
    assert line.startswith(f"Error: the disk is full ({storage})"), line
    assert kept.is_dir()
    assert list(kept.iterdir()) == []
    # The data folder it made holds the key: it is told of, and kept.
    assert line.endswith(f"(this start made {tmp_path / 'data'}, with a new device key "
                         "and no events: start again with it, or remove it)")


def test_only_the_storage_folders_a_failed_start_made_are_removed(
        tmp_path: Path, small_disk: Path) -> None:
    """``--storage new/../log`` where ``log`` exists, empty: the start makes ``new`` (the
    path goes through it) and nothing else, and removes that alone; ``log`` was there
    before it and stays."""
    log = small_disk / "log"
    log.mkdir()
    storage = f"{small_disk}/new/../log"
    leave_free(small_disk, 1)  # new: not the store's lock file
    refused = serve("--data-dir", str(tmp_path / "data"), "--port", str(free_port()),
                    "--storage", storage)
    assert refused.returncode == 1
    assert "Error: the disk is full" in refused.stderr, refused.stderr
    assert log.is_dir()
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", "log"]
