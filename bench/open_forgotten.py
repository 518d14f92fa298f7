"""What opening a store costs per session forgotten whole.

One ``EventStore`` in a real diskcache folder: ``--sessions`` sessions of one message
each, every one then forgotten whole (forget records appended in batches of 1,000), and
``--live`` sessions left alone, the store closed. Then three opens of it:

* open as written (the meta record holds the count of forgotten sessions, which the
  commits that forget keep);
* open of the same folder with the count taken out of its meta record, as a folder
  written before the count was kept (or whose meta record an older node wrote since)
  reads: the open counts them once and stores the count;
* open again after that.

For each: the open's wall-clock time, that time per forgotten session, and the forget
records' keys and session headers the open read (what counting them reads).

    python -m bench.open_forgotten [--sessions 100000]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench import cli
from crdt import codec
from crdt.events import Draft, parse_event
from crdt.log import forget
from crdt.log.records import META
from crdt.log.store import EventStore
from crdt.storage.disk import DiskStorage
from tests.support.cluster import message
from tests.support.storage import CountedStorage

#: Sessions appended, then forgotten, per commit while the folder is filled.
FILL_BATCH = 1000


def fill(folder: Path, sessions: int, live: int) -> None:
    """``sessions`` sessions forgotten whole and ``live`` ones kept, in ``folder``."""
    with EventStore.open(folder) as store:
        for start in range(0, sessions + live, FILL_BATCH):
            keys = [f"s{n}" for n in range(start, min(start + FILL_BATCH, sessions + live))]
            store.append_batch([parse_event(message(f"hello {key}"), session_key=key)
                                for key in keys])
        for start in range(0, sessions, FILL_BATCH):
            drafts: list[Draft] = [forget.forget(f"s{n}", by="bench") for n in
                                   range(start, min(start + FILL_BATCH, sessions))]
            store.append_batch(drafts)
        assert store.stats()["sessions_forgotten"] == sessions


def drop_stored_count(folder: Path) -> None:
    """Take the count out of the meta record, as a folder written by an earlier version
    holds it."""
    storage = DiskStorage.open(folder)
    try:
        raw = storage.get(META)
        assert raw is not None
        record = codec.decode(raw)
        record.pop("forgotten", None)
        with storage.transaction() as tx:
            tx.put(META, codec.encode_fast(record))
    finally:
        storage.close()


def timed_open(folder: Path, sessions: int, label: str) -> None:
    began = time.perf_counter()
    storage = CountedStorage(DiskStorage.open(folder))
    store = EventStore(storage)
    open_s = time.perf_counter() - began
    read = storage.records.copy()
    try:
        counted = store.stats()["sessions_forgotten"]
    finally:
        store.close()
    print(f"{label:<32} {open_s * 1000:8.1f} ms {open_s / sessions * 1e6:6.2f} μs/session"
          f"  read {read['f']} forget keys, {read['h']} headers (count {counted})")


def main() -> None:
    parser = cli.parser("bench.open_forgotten", __doc__)
    parser.add_argument("--sessions", type=cli.positive_int, default=100_000,
                        help="sessions forgotten whole")
    parser.add_argument("--live", type=cli.at_least(0), default=1000,
                        help="sessions not forgotten")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="clawsync-bench-") as root:
        folder = Path(root) / "store"
        began = time.perf_counter()
        fill(folder, args.sessions, args.live)
        print(f"filled {args.sessions} forgotten and {args.live} live sessions in "
              f"{time.perf_counter() - began:.1f} s")
        timed_open(folder, args.sessions, "open, count stored")
        drop_stored_count(folder)
        timed_open(folder, args.sessions, "open, no count stored (older)")
        timed_open(folder, args.sessions, "open again, count stored")


if __name__ == "__main__":
    cli.run(main)
