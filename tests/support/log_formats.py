"""Event logs and folders for the tests of format checks: a log marked as a newer
version's or damaged, a start on a log elsewhere (``--storage``), and a folder's files to
compare, byte for byte, before and after."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from crdt import codec
from crdt.log.records import LOG_FORMAT, META
from crdt.log.store import EventStore
from crdt.storage.disk import DiskStorage
from tests.support.processes import CLI_TIMEOUT_S, child_env, free_port


def files_of(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file under ``folder``: its size, modification time and bytes."""
    return {str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns,
                                            path.read_bytes())
            for path in sorted(folder.rglob("*")) if path.is_file()}


def bump_log_format(folder: Path, **fields: object) -> None:
    """The log's meta record marked as a newer version's (``LOG_FORMAT`` + 1), with
    ``fields`` put in (or, None, taken out)."""
    storage = DiskStorage.open(folder)
    try:
        with storage.transaction() as tx:
            meta = {**codec.decode_trusted(_meta_record(tx.get(META))),
                    "format": LOG_FORMAT + 1, **fields}
            tx.put(META, codec.encode_fast(
                {key: value for key, value in meta.items() if value is not None}))
    finally:
        storage.close()


def damage_log(folder: Path, how: str) -> None:
    """A new log in ``folder`` whose meta record is damaged ``how``."""
    EventStore.open(folder).close()
    storage = DiskStorage.open(folder)
    try:
        with storage.transaction() as tx:
            meta = codec.decode_trusted(_meta_record(tx.get(META)))
            record = {"bytes": b"\xff\xff not CBOR",
                      "no_node_id": codec.encode_fast({"format": LOG_FORMAT}),
                      "true": codec.encode_fast({**meta, "format": True}),
                      "list": codec.encode_fast([1, 2]),
                      "seq_null": codec.encode_fast({**meta, "seq": None}),
                      "sessions_text": codec.encode_fast({**meta, "sessions": "x"}),
                      "no_format": codec.encode_fast(
                          {key: value for key, value in meta.items() if key != "format"}),
                      "long": codec.encode_fast({**meta, "format": "x" * 5000})}[how]
            tx.put(META, record)
    finally:
        storage.close()


def serve_on(data_dir: Path, log: Path) -> subprocess.CompletedProcess[str]:
    """``serve`` on ``data_dir`` with its event log in ``log`` (``--storage``), run till
    it ends (a start refused)."""
    return subprocess.run(
        [sys.executable, "-m", "node.main", "serve", "--data-dir", str(data_dir),
         "--storage", str(log), "--host", "127.0.0.1", "--port", str(free_port())],
        capture_output=True, text=True, env=child_env(), timeout=CLI_TIMEOUT_S)


def _meta_record(raw: bytes | None) -> bytes:
    """A log's meta record, which every log has."""
    assert raw is not None, "the log has no meta record"
    return raw
