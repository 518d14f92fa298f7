"""What a node that starts says of its settings, starting as before: an empty variable
over the file's credential, a name a new device may not take (or that shows as
nothing), an address a node listens on given to dial, and limits out of order, each
named with where it came from and never a secret's value."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.processes import NodeProcess


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
