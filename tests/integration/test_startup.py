"""Starting a node where it cannot run: one line that says why, at once, and no harm done
to the node that was there first. What a start that fails midway made, and lets go of:
``test_startup_failed``; what a node that starts warns of: ``test_startup_warnings``."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.support.certs import make_ca, make_cert
from tests.support.processes import (
    CLI_TIMEOUT_S,
    NodeProcess,
    child_env,
    cli_args,
    free_port,
    serve,
)


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
