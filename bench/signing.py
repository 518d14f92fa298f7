"""Signatures of origin: what signing and verifying cost, and what verifying would cost
catch-up, same run.

1. Signatures/s and verifications/s (``crdt.signing``, libsodium), in batches of
   ``--batch`` events (also per second of this process's CPU time: on a shared machine,
   the steadier figure), signed as a store does (``Signer``); verification also spread
   over two threads (whether the library releases the GIL, i.e. whether verifying off
   the event loop also runs beside it). Beside them, same run, the same bytes signed and
   verified by ``cryptography`` (OpenSSL), which the node used before.
2. Catch-up as a node does it, embedded: each received event's bytes checked and rebuilt
   (``Event.from_canonical``) and stored with its (origin, seq) in commits of ``--batch``
   (``EventStore.ingest``), without and with a signature check per event; rounds
   alternate. The ratio is an upper bound on what signature checks cost a real catch-up,
   which also pays the network and the peer protocol.

3. The same catch-up through the peer protocol, two stores on disk joined by their
   ``PeerSync`` machines (hello, batches of 512, acks; parse, verification, ingest), with
   keyed stores (every event signed, sent with its signature and verified on receipt)
   and with unkeyed ones (unsigned, nothing to verify), same run, rounds alternating.
   Target: ratio >= 0.7.
4. Append throughput with signing as a ratio of without: embedded (``EventStore``, one
   event per commit and commits of ``--batch``), and over HTTP with 32 clients against a
   node process and one with signing turned off (``bench.unsigned_node``). Target >= 0.8.

    python -m bench.signing [--sessions 1000] [--per-session 20] [--batch 500]
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench import cli
from bench.http_append import measure
from crdt import device, signing
from crdt.events import Event, parse_event
from crdt.log.store import EventStore
from crdt.signing import Signer
from sync.peer.machine import PeerSync
from sync.peer.messages import About
from tests.support.processes import NodeProcess

ORIGIN = "3f9c0a1b2c3d4e5f"


def make_events(sessions: int, per_session: int) -> list[Event]:
    events = []
    for i in range(sessions * per_session):
        obj = {"agent_id": "main", "hlc": [1_700_000_000_000 + i, 0],
               "kind": {"type": "message_received", "content": f"message {i}: " + "x" * 120}}
        sealed = parse_event(obj, session_key=f"bench:{i % sessions}")
        assert isinstance(sealed, Event)
        events.append(sealed)
    return events


def rates(events: list[Event], batch: int) -> dict[str, float]:
    """Signatures/s and verifications/s over every event, batch by batch; and the same
    bytes by ``cryptography``."""
    key = device.generate()
    signer, raw = Signer(key, "bench"), device.public_bytes(key)
    starts = range(0, len(events), batch)

    def timed(work: Callable[[], object]) -> tuple[float, float]:
        started, cpu = time.perf_counter(), time.process_time()
        work()
        return time.perf_counter() - started, time.process_time() - cpu

    signatures: list[bytes] = []
    sign_s, sign_cpu_s = timed(lambda: signatures.extend(
        signer.sign(event.id, ORIGIN, seq) for seq, event in enumerate(events, 1)))

    def verify_batch(first: int) -> None:
        for seq in range(first + 1, min(first + batch, len(events)) + 1):
            assert signing.verify(raw, signatures[seq - 1], events[seq - 1].id, ORIGIN, seq)

    verify_s, verify_cpu_s = timed(lambda: [verify_batch(first) for first in starts])
    with ThreadPoolExecutor(2) as pool:
        verify_two_s, _ = timed(lambda: list(pool.map(verify_batch, starts)))
    messages = [signing.signed_bytes(event.id, ORIGIN, seq)
                for seq, event in enumerate(events, 1)]
    public = key.public_key()
    _, openssl_sign_cpu_s = timed(lambda: [key.sign(message) for message in messages])
    _, openssl_verify_cpu_s = timed(lambda: [public.verify(signature, message) for
                                             signature, message in zip(signatures, messages,
                                                                       strict=True)])
    count = len(events)
    return {"sign": count / sign_s, "verify": count / verify_s,
            "sign_cpu": count / sign_cpu_s, "verify_cpu": count / verify_cpu_s,
            "verify_two_threads": count / verify_two_s,
            "openssl_sign_cpu": count / openssl_sign_cpu_s,
            "openssl_verify_cpu": count / openssl_verify_cpu_s}


def catch_up(events: list[Event], signatures: list[bytes], public: bytes, batch: int,
             check: bool) -> float:
    """Seconds to take every event in as received bytes, with or without signatures."""
    wire = [event.canonical for event in events]
    with tempfile.TemporaryDirectory(prefix="bench-signing-") as folder, \
            EventStore.open(folder) as store:
        started = time.perf_counter()
        for first in range(0, len(wire), batch):
            items = []
            for seq, data in enumerate(wire[first:first + batch], first + 1):
                event = Event.from_canonical(data)
                if check and not signing.verify(public, signatures[seq - 1], event.id, ORIGIN,
                                                seq):
                    raise AssertionError(f"seq {seq} does not verify")
                items.append((event, ORIGIN, seq))
            store.ingest(items)
        elapsed = time.perf_counter() - started
        assert store.head == len(wire)
    return elapsed


def link_catch_up(events: list[Event], batch: int, signed: bool) -> float:
    """Seconds for an empty store to take every event of another through the peer
    protocol; ``signed``: both stores have keys (signatures sent and verified)."""
    signers = [Signer(device.generate(), name) for name in ("source", "target")] \
        if signed else [None, None]
    about = About("bench", 1, retires=True, forgets=True, signs=signed)
    with tempfile.TemporaryDirectory(prefix="bench-signing-") as folder, \
            EventStore.open(Path(folder) / "a", signer=signers[0]) as a, \
            EventStore.open(Path(folder) / "b", signer=signers[1]) as b:
        for first in range(0, len(events), batch):
            a.append_batch(events[first:first + batch])
        machines = [PeerSync(a, "b", now=0.0, rng=random.Random(1), about=about),
                    PeerSync(b, "a", now=0.0, rng=random.Random(2), about=about)]
        started = time.perf_counter()
        queue = deque((1 - side, data) for side in (0, 1)
                      for data in machines[side].start(0.0, peer_reads_about=True))
        while queue:
            side, data = queue.popleft()
            queue.extend((1 - side, reply) for reply in machines[side].receive(data, 0.0))
        elapsed = time.perf_counter() - started
        assert b.head == a.head and machines[1].counters.events_forged == 0
        if signed:
            assert b.origin_key(a.node_id) is not None
    return elapsed


def embedded_append(events: list[Event], batch: int, signed: bool) -> float:
    """Events/s appended (as a node's own) in commits of ``batch``."""
    signer = Signer(device.generate(), "bench") if signed else None
    with tempfile.TemporaryDirectory(prefix="bench-signing-") as folder, \
            EventStore.open(folder, signer=signer) as store:
        started = time.perf_counter()
        for first in range(0, len(events), batch):
            store.append_batch(events[first:first + batch])
        return len(events) / (time.perf_counter() - started)


def http_append(events: int, clients: int, rounds: int) -> tuple[float, float]:
    """Median events/s over HTTP, ``clients`` at once, with signing and without."""
    quiet = ["--log-level", "warning"]
    rates: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="bench-signing-http-") as tmp, \
            NodeProcess(Path(tmp), name="signed", extra_args=quiet) as signed_node, \
            NodeProcess(Path(tmp), name="unsigned", extra_args=quiet,
                        program="bench.unsigned_node") as unsigned_node:
        for _ in range(rounds):
            for signed, node in ((True, signed_node), (False, unsigned_node)):
                rates[signed].append(asyncio.run(measure(node.url, clients, events))[0])
    return statistics.median(rates[True]), statistics.median(rates[False])


def ratio_line(what: str, with_s: float, without_s: float, unit: str = "ev/s") -> str:
    return (f"{what}: {with_s:,.0f} {unit} signed, {without_s:,.0f} {unit} unsigned, "
            f"ratio {with_s / without_s:.2f}")


def main() -> None:
    parser = cli.parser("bench.signing", __doc__)
    parser.add_argument("--sessions", type=cli.positive_int, default=1000,
                        help="sessions the events are spread over")
    parser.add_argument("--per-session", type=cli.positive_int, default=20,
                        help="events per session")
    parser.add_argument("--batch", type=cli.positive_int, default=500,
                        help="events per batch, and per commit")
    parser.add_argument("--rounds", type=cli.positive_int, default=3,
                        help="rounds of every figure (medians are printed)")
    parser.add_argument("--http-events", type=cli.positive_int, default=4000,
                        help="appends per HTTP run, shared among the clients")
    parser.add_argument("--http-clients", type=cli.clients(0), default=32,
                        help="clients appending over HTTP at once; 0: no HTTP figure")
    args = parser.parse_args()
    if args.http_events < args.http_clients:
        parser.error(f"--http-events {args.http_events} leaves some of {args.http_clients} "
                     "clients without an append: give at least one per client")
    events = make_events(args.sessions, args.per_session)
    measured = [rates(events, args.batch) for _ in range(args.rounds)]
    median = {name: statistics.median(m[name] for m in measured) for name in measured[0]}
    print(f"batches of {args.batch}, {len(events):,} events: sign {median['sign']:,.0f}/s, "
          f"verify {median['verify']:,.0f}/s, {median['verify_two_threads']:,.0f}/s on two "
          f"threads; per CPU second: sign {median['sign_cpu']:,.0f}, verify "
          f"{median['verify_cpu']:,.0f} (cryptography/OpenSSL, same bytes: sign "
          f"{median['openssl_sign_cpu']:,.0f}, verify {median['openssl_verify_cpu']:,.0f})")
    key = device.generate()
    signatures = [signing.sign(key, event.id, ORIGIN, seq)
                  for seq, event in enumerate(events, 1)]
    plain, checked = [], []
    for _ in range(args.rounds):
        plain.append(catch_up(events, signatures, device.public_bytes(key), args.batch, False))
        checked.append(catch_up(events, signatures, device.public_bytes(key), args.batch, True))
    plain_rate = len(events) / statistics.median(plain)
    checked_rate = len(events) / statistics.median(checked)
    print(f"embedded catch-up, {args.sessions:,} sessions x {args.per_session} events, "
          f"commits of {args.batch}: {plain_rate:,.0f} ev/s unsigned, {checked_rate:,.0f} "
          f"ev/s with a signature check each, ratio {checked_rate / plain_rate:.2f}")
    linked: dict[bool, list[float]] = {True: [], False: []}
    appended: dict[tuple[int, bool], list[float]] = {}
    batches = sorted({1, args.batch})  # one event per commit, and --batch
    for _ in range(args.rounds):
        for signed in (False, True):
            linked[signed].append(link_catch_up(events, args.batch, signed))
            for batch in batches:
                count = min(len(events), 1_000) if batch == 1 else len(events)
                appended.setdefault((batch, signed), []).append(
                    embedded_append(events[:count], batch, signed))
    plain_rate = len(events) / statistics.median(linked[False])
    checked_rate = len(events) / statistics.median(linked[True])
    print(ratio_line(f"catch-up over the peer protocol, {args.sessions:,} sessions x "
                     f"{args.per_session} events (target >= 0.7)", checked_rate, plain_rate))
    for batch in batches:
        print(ratio_line(f"embedded append, commits of {batch} (target >= 0.8)",
                         statistics.median(appended[batch, True]),
                         statistics.median(appended[batch, False])))
    if args.http_clients:
        with_signing, without = http_append(args.http_events, args.http_clients, args.rounds)
        print(ratio_line(f"append over HTTP, {args.http_clients} clients, one event per "
                         f"request (target >= 0.8)", with_signing, without))


if __name__ == "__main__":
    cli.run(main)
