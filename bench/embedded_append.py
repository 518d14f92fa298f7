"""Durable append throughput of the embedded store against raw diskcache, same run.

The baseline writes the same canonical event bytes with ``Cache.set`` inside
``Cache.transact()``, one transaction per batch, with the same log settings (FULL sync,
values in SQLite, no eviction). The store does that plus its indexes and projections.
Rounds alternate between the two so that disk and cache warm-up affect both alike.

    python -m bench.embedded_append [--events 20000] [--batch 500] [--sessions 10]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import diskcache

from crdt.events import Draft, Event, parse_event
from crdt.log.store import EventStore
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


def run_store(drafts: list[Draft], batch: int) -> tuple[float, list[Event]]:
    with EventStore.open(tempfile.mkdtemp(prefix="bench-store-")) as store:
        started = time.perf_counter()
        for i in range(0, len(drafts), batch):
            store.append_batch(drafts[i:i + batch])
        elapsed = time.perf_counter() - started
        events: list[Event] = []
        while len(events) < store.head:  # reads come in pages
            events += [s.event for s in store.events_after(len(events), len(drafts))]
    return elapsed, events


def run_raw(events: list[Event], batch: int) -> float:
    cache = diskcache.Cache(tempfile.mkdtemp(prefix="bench-raw-"), **SETTINGS)
    started = time.perf_counter()
    for i in range(0, len(events), batch):
        with cache.transact():
            for event in events[i:i + batch]:
                cache.set(event.id.hex(), event.canonical)
    elapsed = time.perf_counter() - started
    cache.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for stamped in (True, False):
        drafts = make_drafts(args.events, args.sessions, stamped)
        store_rates, raw_rates = [], []
        for _ in range(args.rounds):
            store_s, events = run_store(drafts, args.batch)
            raw_s = run_raw(events, args.batch)
            store_rates.append(args.events / store_s)
            raw_rates.append(args.events / raw_s)
        store_rate, raw_rate = statistics.median(store_rates), statistics.median(raw_rates)
        label = "client-stamped" if stamped else "node-stamped  "
        print(f"{label} events={args.events} batch={args.batch} sessions={args.sessions}: "
              f"store {store_rate:,.0f} ev/s, raw diskcache {raw_rate:,.0f} ev/s, "
              f"ratio {store_rate / raw_rate:.2f}")


if __name__ == "__main__":
    main()
