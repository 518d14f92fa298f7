"""Durable append throughput of the embedded store against raw diskcache, same run.

The baseline writes the same canonical event bytes with ``Cache.set`` inside
``Cache.transact()``, one transaction per batch, with the same log settings (FULL sync,
values in SQLite, no eviction). The store does that plus its indexes and projections.
Rounds alternate between the two, each round starting with the side the last one ended
with, so that disk and cache warm-up and a change of load affect both alike; the folders
are removed after each round. Each side's CPU time per event is printed too: on a shared
machine the rates swing with the load and the disk, the CPU an event costs much less.
``--signed`` gives the store a device key, so that it signs every event it stores, as a
keyed node does (the raw side writes the same event bytes, without signatures).

    python -m bench.embedded_append [--events 20000] [--batch 500] [--sessions 10]
                                    [--rounds 5] [--signed]
"""

from __future__ import annotations

import statistics
import tempfile
import time

import diskcache

from bench import cli
from crdt import device
from crdt.events import Draft, Event, parse_event
from crdt.log.store import EventStore
from crdt.signing import Signer
from crdt.storage.disk import SETTINGS


def make_drafts(count: int, sessions: int, stamped: bool) -> list[Draft]:
    drafts = []
    for i in range(count):
        obj = {"agent_id": "main",
               "kind": {"type": "message_received", "content": f"message {i}: " + "x" * 120}}
        if stamped:
            obj["hlc"] = [1_700_000_000_000 + i, 0]
        drafts.append(parse_event(obj, session_key=f"bench:{i % sessions}"))
    return drafts


def run_store(drafts: list[Draft], batch: int,
              signer: Signer | None = None) -> tuple[float, float, list[Event]]:
    with tempfile.TemporaryDirectory(prefix="bench-store-") as folder, \
            EventStore.open(folder, signer=signer) as store:
        started, cpu_started = time.perf_counter(), time.process_time()
        for i in range(0, len(drafts), batch):
            store.append_batch(drafts[i:i + batch])
        elapsed, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
        events: list[Event] = []
        while len(events) < store.head:  # reads come in pages
            events += [s.event for s in store.events_after(len(events), len(drafts))]
    return elapsed, cpu_s, events


def run_raw(events: list[Event], batch: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="bench-raw-") as folder:
        cache = diskcache.Cache(folder, **SETTINGS)
        started, cpu_started = time.perf_counter(), time.process_time()
        for i in range(0, len(events), batch):
            with cache.transact():
                for event in events[i:i + batch]:
                    cache.set(event.id.hex(), event.canonical)
        elapsed, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
        cache.close()
    return elapsed, cpu_s


def main() -> None:
    parser = cli.parser("bench.embedded_append", __doc__)
    parser.add_argument("--events", type=cli.positive_int, default=20_000,
                        help="events each side writes per round")
    parser.add_argument("--batch", type=cli.positive_int, default=500,
                        help="events per commit (per transaction on the raw side)")
    parser.add_argument("--sessions", type=cli.positive_int, default=10,
                        help="sessions the events are spread over")
    parser.add_argument("--rounds", type=cli.positive_int, default=5,
                        help="rounds, alternating which side goes first")
    parser.add_argument("--signed", action="store_true",
                        help="the store signs every event it stores, as a keyed node does")
    args = parser.parse_args()
    signer = Signer(device.generate(), "bench") if args.signed else None
    for stamped in (True, False):
        drafts = make_drafts(args.events, args.sessions, stamped)
        # The raw side writes the events the store stamped: take them once, unmeasured.
        events = run_store(drafts, args.batch, signer)[2]
        store_rates, raw_rates, store_cpus, raw_cpus = [], [], [], []
        for round_number in range(args.rounds):
            if round_number % 2:  # raw first, then the store (store first in even rounds)
                raw_s, raw_cpu_s = run_raw(events, args.batch)
            store_s, store_cpu_s, _ = run_store(drafts, args.batch, signer)
            if not round_number % 2:
                raw_s, raw_cpu_s = run_raw(events, args.batch)
            store_rates.append(args.events / store_s)
            raw_rates.append(args.events / raw_s)
            store_cpus.append(store_cpu_s * 1e6 / args.events)
            raw_cpus.append(raw_cpu_s * 1e6 / args.events)
        store_rate, raw_rate = statistics.median(store_rates), statistics.median(raw_rates)
        store_cpu, raw_cpu = statistics.median(store_cpus), statistics.median(raw_cpus)
        label = ("client" if stamped else "node") + "-stamped" \
            + (", signed" if args.signed else "")
        print(f"{label:14} events={args.events} batch={args.batch} sessions={args.sessions}: "
              f"store {store_rate:,.0f} ev/s, raw diskcache {raw_rate:,.0f} ev/s, "
              f"ratio {store_rate / raw_rate:.2f}; CPU per event: store {store_cpu:.0f} us, "
              f"raw {raw_cpu:.0f} us, ratio {raw_cpu / store_cpu:.2f}")


if __name__ == "__main__":
    cli.run(main)
