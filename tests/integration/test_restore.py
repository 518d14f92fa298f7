"""A node restored from a backup of its data folder rejoins without losing anything.

Its peers hold events of its origin that the backup lacks. They come back into their
slots; new events it wrote in numbers its peers hold with lost ones show up as conflicts
(it sends its own origin again to a peer claiming more of it), so both reach every node.
"""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest

from tests.support.cluster import Cluster, all_events, append, message, wait_converged

pytestmark = pytest.mark.integration


def test_a_node_restored_from_a_backup_converges(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        a = cluster.node("a")
        b = cluster.node("b", peers=[a.url])
        before = {e["id"] for e in append(a, "s", [message(f"kept {n}") for n in range(3)])}
        wait_converged([a, b], must_hold=before)
        a.kill(signal.SIGTERM)
        backup = tmp_path / "a-backup"
        shutil.copytree(a.data_dir, backup)
        a.start()
        lost = {e["id"] for e in append(a, "s", [message(f"lost {n}") for n in range(4)])}
        wait_converged([a, b], must_hold=before | lost)
        a.kill(signal.SIGTERM)
        shutil.rmtree(a.data_dir)
        shutil.copytree(backup, a.data_dir)  # the device is restored from its backup
        a.start()
        # Written before or after the peers are heard from: both must reach b.
        new = {e["id"] for e in append(a, "s", [message("after the restore")])}
        ids = wait_converged([a, b], must_hold=before | lost | new)
        assert ids == before | lost | new
        seqs = [(e["origin"], e["seq"]) for e in all_events(b)]
        assert len(seqs) == len(set(seqs)), "a sequence number was handed out twice"


def test_a_restored_node_catches_up_without_waiting_for_the_ack_timeout(
        tmp_path: Path) -> None:
    """a's checkpoint says b holds more than b's backup does, and a sends from there as
    the link comes up: b's hello must reset those batches at once. With an ack timeout
    longer than the wait, only that reset lets b catch up."""
    config = tmp_path / "clawsync.toml"
    config.write_text("[sync]\nack_timeout_s = 3600\n")
    slow_resend = ["--config", str(config)]
    with Cluster(tmp_path) as cluster:
        a = cluster.node("a", extra_args=slow_resend)
        b = cluster.node("b", peers=[a.url], extra_args=slow_resend)
        ids = {e["id"] for e in append(a, "s", [message(f"m{n}") for n in range(50)])}
        wait_converged([a, b], must_hold=ids)
        b.kill(signal.SIGTERM)
        backup = tmp_path / "b-backup"
        shutil.copytree(b.data_dir, backup)
        b.start()
        ids |= {e["id"] for e in append(a, "s", [message(f"n{n}") for n in range(50)])}
        wait_converged([a, b], must_hold=ids)
        b.kill(signal.SIGTERM)
        a.kill(signal.SIGTERM)  # a saves its checkpoint of b: all 100
        a.start()
        ids |= {e["id"] for e in append(a, "s", [message(f"o{n}") for n in range(20)])}
        shutil.rmtree(b.data_dir)
        shutil.copytree(backup, b.data_dir)  # b holds the first 50 again
        b.start()
        assert wait_converged([a, b], must_hold=ids) == ids
