"""Starting a node where it cannot run: one line that says why, at once, and no harm done
to the node that was there first."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.certs import make_ca, make_cert
from tests.support.processes import (
    CLI_TIMEOUT_S,
    ROOT,
    NodeProcess,
    child_env,
    cli_args,
    free_port,
)
from tests.support.storage import tmpfs


def serve(*args: str) -> subprocess.CompletedProcess[str]:
    command = NodeProcess(Path("/nonexistent")).command()[:4]  # python -m node.main serve
    return subprocess.run([*command, "--host", "127.0.0.1", *args], capture_output=True,
                          text=True, env=child_env(), timeout=CLI_TIMEOUT_S)


def test_a_second_node_on_a_held_folder_is_refused_at_once(tmp_path: Path) -> None:
    with NodeProcess(tmp_path) as first:
        started = time.monotonic()
        second = serve("--data-dir", str(first.data_dir), "--port", str(free_port()))
        assert time.monotonic() - started < CLI_TIMEOUT_S / 2
        assert second.returncode == 1
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr  # one line, no traceback
        assert str(first.data_dir.resolve()) in lines[0]
        assert first.process is not None and f"process {first.process.pid}" in lines[0]
        # The first node is untouched: it still appends, and its positions stay gap-free.
        # Its first append is preceded by its device-key record (position 1).
        for n, head in enumerate([0, 2, 3]):
            assert first.get("/healthz")["head"] == head
            subprocess.run([*NodeProcess(tmp_path).command()[:3], "--node", first.url,
                            "append", "s1", "message_received", f"content=m{n}"],
                           check=True, capture_output=True, env=child_env(),
                           timeout=CLI_TIMEOUT_S)
        positions = [e["position"] for e in first.get("/v1/events")["events"]]
        assert positions == [1, 2, 3, 4]


def test_a_held_folder_is_refused_whatever_storage_the_second_node_names(
        tmp_path: Path) -> None:
    """The data folder holds the device key: a second node with that key and a log
    elsewhere would give its own events the origin and seqs the first gives its own."""
    with NodeProcess(tmp_path, extra_args=["--storage", "memory:"]) as first:
        for storage in ("memory:", str(tmp_path / "elsewhere"), str(first.data_dir)):
            second = serve("--data-dir", str(first.data_dir), "--port", str(free_port()),
                           "--storage", storage)
            assert second.returncode == 1, (storage, second.stderr)
            lines = second.stderr.strip().splitlines()
            assert len(lines) == 1, second.stderr
            assert f"the data folder {first.data_dir.resolve()} is in use by" in lines[0]
        assert first.get("/healthz")["status"] == "ok"
    # Stopped, it let go of the folder: a node starts there again, on either storage.
    with NodeProcess(tmp_path, extra_args=["--storage", str(tmp_path / "elsewhere")]) \
            as again:
        assert again.get("/healthz")["status"] == "ok"


def test_a_port_in_use_is_one_line_and_makes_nothing(tmp_path: Path) -> None:
    with NodeProcess(tmp_path) as first:
        before = sorted(first.data_dir.iterdir())
        # A new folder (two levels of it): not made, so no device key nobody used.
        second = serve("--data-dir", str(tmp_path / "other" / "data"),
                       "--port", str(first.port))
        assert second.returncode == 1
        assert second.stderr.strip().splitlines() == [
            f"Error: cannot listen on 127.0.0.1:{first.port}: Address already in use "
            "(is another node running there? give another --port)"]
        assert not (tmp_path / "other").exists()
        # A folder that exists is left as it was.
        (tmp_path / "kept").mkdir()
        third = serve("--data-dir", str(tmp_path / "kept"), "--port", str(first.port))
        assert third.returncode == 1, third.stderr
        assert list((tmp_path / "kept").iterdir()) == []
        assert first.get("/healthz")["status"] == "ok"
        assert sorted(first.data_dir.iterdir()) == before


def test_the_same_node_started_twice_is_told_its_folder_is_in_use(tmp_path: Path) -> None:
    """Same folder, same port: the folder is what to hear of (another --port would
    only be refused next for it)."""
    with NodeProcess(tmp_path) as first:
        second = serve("--data-dir", str(first.data_dir), "--port", str(first.port))
        assert second.returncode == 1
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert f"the data folder {first.data_dir.resolve()} is in use by" in lines[0]
        assert first.get("/healthz")["status"] == "ok"


def test_an_address_that_cannot_be_listened_on_makes_nothing(tmp_path: Path) -> None:
    token = ["--token", "a-long-enough-token"]  # beyond loopback a token is needed
    # An address of no interface here (TEST-NET-3), a name that does not resolve.
    for host, reason in (("203.0.113.7", "Cannot assign requested address"),
                         ("no-such-host.invalid", "Name or service not known")):
        refused = serve("--data-dir", str(tmp_path / "data"), "--port", str(free_port()),
                        "--host", host, *token)
        assert refused.returncode == 1
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"Error: cannot listen on {host}:"), \
            refused.stderr
        assert lines[0].endswith(reason), lines  # in words, not "Unknown error -2"
        assert not (tmp_path / "data").exists()


def test_tls_files_that_cannot_be_used_are_one_line_and_make_nothing(
        tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    refused = serve("--data-dir", str(tmp_path / "data"), "--port", str(free_port()),
                    "--tls-cert", str(junk), "--tls-key", str(junk))
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr  # no traceback
    assert lines[0].startswith(f"Error: cannot use --tls-cert {junk} with --tls-key {junk}")
    assert not (tmp_path / "data").exists()


def test_a_ca_file_that_cannot_be_used_is_named_not_the_certificate(tmp_path: Path) -> None:
    """The certificate and key are fine: the error names --tls-ca, which is not."""
    cert, key = make_cert(tmp_path, "node", make_ca(tmp_path, "ca"))
    junk = tmp_path / "ca.pem"
    junk.write_text("not a certificate")
    refused = serve("--data-dir", str(tmp_path / "data"), "--port", str(free_port()),
                    "--tls-cert", str(cert), "--tls-key", str(key), "--tls-ca", str(junk))
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr  # no traceback
    assert lines[0].startswith(f"Error: cannot use --tls-ca {junk}: not a PEM file of CA "
                               "certificates"), lines
    assert not (tmp_path / "data").exists()


def test_a_storage_failure_after_the_key_says_the_new_folder_may_be_reused(
        tmp_path: Path) -> None:
    # A folder that holds no log, but a folder where SQLite's write-ahead log goes: the
    # open fails once the data folder and its key are made (a --storage that is a file,
    # or inside one, is refused before anything is made).
    storage = tmp_path / "storage"
    (storage / "cache.db-wal").mkdir(parents=True)
    data = tmp_path / "new" / "data"
    refused = serve("--data-dir", str(data), "--port", str(free_port()),
                    "--storage", str(storage))
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    assert lines[0].endswith(f"(this start made {tmp_path / 'new'}, with a new device key "
                             "and no events: start again with it, or remove it)")
    # And so it may: the next start is this device, with that key.
    key = (data / "device.key").read_bytes()
    again = NodeProcess(tmp_path, extra_args=["--storage", "memory:"])
    again.data_dir = data
    with again:
        assert again.get("/healthz")["status"] == "ok"
    assert (data / "device.key").read_bytes() == key


def test_automerge_tokens_without_a_client_token_are_a_usage_error(tmp_path: Path) -> None:
    # Without --token, /v1 takes writes from every local process: a read-only or
    # per-session Automerge token would restrict nothing.
    tokens = tmp_path / "tokens.json"
    tokens.write_text('{"reader-token-1": {"sessions": ["tg:*"], "read_only": true}}')
    refused = serve("--data-dir", str(tmp_path / "data"), "--port", str(free_port()),
                    "--automerge-tokens", str(tokens))
    assert refused.returncode == 2  # click's usage error
    assert "--automerge-tokens needs --token" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not (tmp_path / "data").exists()  # refused before anything opened
    # With a token as well, the same node starts.
    with NodeProcess(tmp_path, token="node-token",
                     extra_args=["--automerge-tokens", str(tokens)]) as node:
        assert node.get("/healthz")["status"] == "ok"


def test_a_token_no_request_could_match_is_refused_at_start(tmp_path: Path) -> None:
    """The node takes white space off the token a request gives, as HTTP does off a
    header: a token that begins or ends with white space would start a node no client
    could use. Refused, named by where it came from, never shown; so is an Automerge
    token of the file that a request's Authorization header could not carry whole."""
    command = NodeProcess(Path("/nonexistent")).command()[:4]  # python -m node.main serve
    data = tmp_path / "data"
    args = [*command, "--host", "127.0.0.1", "--port", str(free_port()), "--data-dir", str(data)]
    refused = subprocess.run(args, capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
                             env=child_env({"CLAWSYNC_TOKEN": " padded-secret "}))
    assert refused.returncode == 2, refused.stderr
    assert ("Invalid value for CLAWSYNC_TOKEN (the environment's --token): the token begins "
            "or ends with white space") in " ".join(refused.stderr.split())
    assert "padded-secret" not in refused.stderr and "Traceback" not in refused.stderr
    tokens = tmp_path / "tokens.json"
    tokens.write_text('{"padded-app-token ": {"sessions": ["tg:*"]}}')
    refused = subprocess.run([*args, "--automerge-tokens", str(tokens)], capture_output=True,
                             text=True, timeout=CLI_TIMEOUT_S,
                             env=child_env({"CLAWSYNC_TOKEN": "node-token"}))
    assert refused.returncode == 2, refused.stderr
    assert "begins or ends with white space" in refused.stderr
    assert "padd" not in refused.stderr and "Traceback" not in refused.stderr
    assert not data.exists()  # refused before anything opened
    # A client given such a token says so before any request, as the node would.
    with NodeProcess(tmp_path, token="node-token") as node:
        client = subprocess.run(cli_args(node, "sessions", token=" node-token"),
                                capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
                                env=child_env())
        assert client.returncode == 2, client.stderr
        assert "'clawsync --token' (given before the command): the token begins or ends " \
            "with white space" in " ".join(client.stderr.split())
        assert "node-token" not in client.stderr


def test_a_variable_set_empty_is_refused_at_start_naming_it(tmp_path: Path) -> None:
    """CLAWSYNC_PEERS= (a template not filled in, say) is a usage error before anything
    opens, not a node that quietly runs on the file's peers or none."""
    command = NodeProcess(Path("/nonexistent")).command()[:4]  # python -m node.main serve
    data = tmp_path / "data"
    refused = subprocess.run([*command, "--port", str(free_port()), "--data-dir", str(data)],
                             capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
                             env=child_env({"CLAWSYNC_PEERS": ""}))
    assert refused.returncode == 2, refused.stderr
    assert "CLAWSYNC_PEERS is set but empty" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not data.exists()


def test_a_data_folder_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    # A name longer than file systems take (255 bytes): refused by the OS when the node
    # opens the folder, past the usage checks (a folder inside a file is a usage error).
    data = tmp_path / ("x" * 300) / "sub"
    refused = serve("--data-dir", str(data), "--port", str(free_port()))
    assert refused.returncode == 1
    [line] = refused.stderr.strip().splitlines()
    assert line.startswith(f"Error: cannot read the data folder's format marker {data}/")
    assert line.endswith(": File name too long")


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


def test_an_empty_variable_over_the_files_credential_is_warned_of(tmp_path: Path) -> None:
    """CLAWSYNC_TOKEN="" means no token whatever the file holds, and CLAWSYNC_CLUSTER_SECRET
    = "" no secret: an environment file left empty by mistake opens the API to local
    clients, or stops links with peers on the secret. Said at start, naming the variable
    and the file, never the value; and not when the file gives none."""
    file = tmp_path / "clawsync.toml"
    file.write_text('token = "file-token-value"\ncluster_secret = "file-secret-value"\n')
    empty = {"CLAWSYNC_TOKEN": "", "CLAWSYNC_CLUSTER_SECRET": ""}
    with NodeProcess(tmp_path, extra_args=["--config", str(file)], env=empty) as node:
        assert node.get("/healthz")["status"] == "ok"  # no token asked for
    log = node.log_path.read_text()
    warned = [line for line in log.splitlines() if "empty variable overrides" in line]
    assert len(warned) == 2, log
    token, secret = sorted(warned, key=lambda line: "CLAWSYNC_CLUSTER_SECRET" in line)
    for line, variable in ((token, "CLAWSYNC_TOKEN"), (secret, "CLAWSYNC_CLUSTER_SECRET")):
        assert "warn" in line.lower() and variable in line and str(file) in line, line
    assert "the API is open to local clients" in token
    assert "peers linking by the secret are refused" in secret
    assert "file-token-value" not in log and "file-secret-value" not in log
    file.write_text("")  # the file gives none: the empty variables take nothing away
    with NodeProcess(tmp_path, name="other", extra_args=["--config", str(file)],
                     env=empty) as other:
        assert other.get("/healthz")["status"] == "ok"
    assert "empty variable overrides" not in other.log_path.read_text()


def test_a_name_a_new_device_may_not_take_is_warned_of_at_start(tmp_path: Path) -> None:
    """A node named before the zero-width space and the bidirectional controls were
    refused in new names starts under that name, and says what its name holds."""
    with NodeProcess(tmp_path, extra_args=["--name", "\u202elaptop\u200b"]) as node:
        assert node.get("/v1/node")["name"] == "\u202elaptop\u200b"
    warned = [line for line in node.log_path.read_text().splitlines()
              if "device name holds characters a new name may not" in line]
    assert len(warned) == 1, node.log_path.read_text()
    assert "invisible characters (U+200B), bidirectional controls (U+202E)" in warned[0]


@pytest.mark.parametrize("name", ["\u2800\u2800", "\u200d"], ids=["braille-blanks", "joiner"])
def test_a_name_that_shows_as_nothing_is_warned_of_at_start(tmp_path: Path, name: str) -> None:
    """A node named, before such names were refused, with only braille blanks or only a
    joiner starts under that name, and says its name shows as nothing (not the name)."""
    with NodeProcess(tmp_path, extra_args=["--name", name]) as node:
        assert node.get("/v1/node")["name"] == name
    log = node.log_path.read_text()
    warned = [line for line in log.splitlines() if "device name shows as nothing" in line]
    assert len(warned) == 1, log
    assert "warn" in warned[0].lower() and name not in warned[0]


def test_an_address_a_node_listens_on_given_to_dial_is_warned_of_at_start(
        tmp_path: Path) -> None:
    """README: 0.0.0.0 is no address to dial (a member told of it shows a waiting device
    ``--node http://0.0.0.0:...``). A node given it, or ``::``, as a peer or as the address
    to advertise starts as before (dialed here it reaches a node on this machine), and
    says, for each, which address to give instead."""
    with NodeProcess(tmp_path, extra_args=["--peer", "http://0.0.0.0:9", "--peer",
                                           "http://[::]:9", "--peer", "http://10.0.0.5:9",
                                           "--advertise-url", "http://0.0.0.0:7878"]) as node:
        assert node.get("/healthz")["status"] == "ok"
    warned = [line for line in node.log_path.read_text().splitlines()
              if "address a node listens on, not one to dial" in line]
    assert len(warned) == 3, node.log_path.read_text()
    assert sum("--peer" in line and "the peer machine's address" in line
               for line in warned) == 2
    assert sum("--advertise-url" in line and "this machine's address" in line
               for line in warned) == 1
    assert any("http://[::]:9" in line for line in warned)  # which one, of several


def limits_warned_of(tmp_path: Path, config: str) -> list[str]:
    """The ``limits out of order`` lines of a node started, and answering, with the
    config file ``config``."""
    file = tmp_path / "clawsync.toml"
    file.write_text(config)
    with NodeProcess(tmp_path, extra_args=["--config", str(file)]) as node:
        assert node.get("/healthz")["status"] == "ok"
    return [line for line in node.log_path.read_text().splitlines()
            if "limits out of order" in line]


def test_limits_out_of_order_are_warned_of_at_start(tmp_path: Path) -> None:
    """A per-address cap above the whole one can never bite: the node starts, and says
    so once, naming both limits, their values and where each came from."""
    warned = limits_warned_of(tmp_path, "[limits]\nstreams-per-address-max = 300\n")
    assert len(warned) == 1, warned
    assert ("streams-per-address-max (300, from the file) is above [limits] streams_max "
            "(256, the default)") in warned[0], warned


def test_a_warning_names_the_table_as_the_file_wrote_it(tmp_path: Path) -> None:
    """[automerge-limits], as refusals name it; and ephemeral data larger than its outbox
    is warned of (it would never be passed on)."""
    warned = limits_warned_of(tmp_path,
                              "[automerge-limits]\nephemeral-outbox-bytes-max = 32768\n")
    assert len(warned) == 1, warned
    assert ("[automerge-limits] ephemeral_bytes_max (65536, the default) is above "
            "[automerge-limits] ephemeral-outbox-bytes-max (32768, from the file)"
            ) in warned[0], warned


def test_a_smaller_outbox_starts_as_before_and_is_warned_of(tmp_path: Path) -> None:
    """A file that shrinks a client's outbox below what ephemeral data and a first sync
    may need started before those pairs were checked: it still starts, with each risk
    warned of, naming both settings and what to set."""
    warned = limits_warned_of(tmp_path, "[automerge_limits]\noutbox-frames-max = 16\n"
                              "outbox-bytes-max = 1000000\nserved-bytes-max = 500000\n")
    assert len(warned) == 2, warned
    assert ("ephemeral_outbox_frames_max (32, the default) is not below [automerge_limits] "
            "outbox-frames-max (16, from the file): presence messages alone") in warned[0]
    assert "set [automerge_limits] outbox-bytes-max to at least 1552672" in warned[1]
