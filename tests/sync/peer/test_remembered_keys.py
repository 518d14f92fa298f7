"""The keys ``PeerSync`` remembers for ``prepare`` (``_kept``), when a parse thread
(``parse``) and the writer thread (``_remember``, from the intake) remember keys at once,
as a node's links do (``node.peers.ahead``): each memory holds at most ``ORIGINS_MAX`` keys
and those of one call, however the two calls meet, and neither call loses a key the other
or the intake's ``_sender`` reads next."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping

from crdt.log.store import EventStore
from sync.peer.limits import ORIGINS_MAX
from sync.peer.machine import PeerSync
from sync.peer.messages import Events, Item, encode
from tests.sync.peer.support import SIGNS, Ev, link, message_events

#: Keys a call of the writer's remembers here: a batch's origins.
BATCH_KEYS = 8
#: How long a held call waits to be let go at most: the test lets it go well before.
HOLD_MAX_S = 30.0


def fresh_keys(tag: str, count: int) -> dict[str, bytes | None]:
    return {f"{tag}-{n}": bytes(32) for n in range(count)}


class Held(Mapping[str, bytes | None]):
    """Keys whose reading stops before the first one until ``go`` is set: a call of
    ``_remember`` given them is held halfway, past its check of the memory's size, while
    the test makes another call."""

    def __init__(self, keys: dict[str, bytes | None]) -> None:
        self._keys = keys
        self.reading, self.go = threading.Event(), threading.Event()

    def __getitem__(self, origin: str) -> bytes | None:
        return self._keys[origin]

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def items(self) -> Iterator[tuple[str, bytes | None]]:  # type: ignore[override]
        self.reading.set()
        self.go.wait(HOLD_MAX_S)
        yield from self._keys.items()


def binding_batches(keyed: Callable[[int], EventStore], ev: Ev,
                    count: int) -> list[tuple[bytes, bytes]]:
    """``count`` pairs of events messages, each of a new origin: its first event (the
    record that binds its key, which ``parse`` remembers), then its second, whose key
    only a memory gives (``PeerSync._known_key``): the batch does not carry it."""
    batches = []
    for n in range(count):
        signer = keyed(n)
        signer.append_batch(message_events(ev, 1, tag=f"b{n}"))
        first, second = (
            encode(Events((Item(signer.node_id, event.seq, event.event, event.signature),)))
            for event in signer.origin_after(signer.node_id, 0, 2))
        batches.append((first, second))
    return batches


def found_key(machine: PeerSync, batch: bytes) -> bool:
    """Whether ``parse`` finds the key of ``batch``'s one origin."""
    [key] = machine.parse(batch).keys.values()
    return key is not None


def test_the_key_the_writer_reads_survives_a_parse(
        keyed: Callable[[int], EventStore], ev: Ev) -> None:
    """The writer remembers the key it has just read for an origin (``Intake._verified``)
    into a memory past its bound, then a batch is parsed before the intake asks
    ``_sender`` about that origin: the parse's keys go to a memory of their own, so the
    writer's is not started again under it and ``_sender`` still finds the key. Had the
    two shared one memory, the parse would have started it again, and ``_sender`` would
    have answered that the origin is no node's."""
    machine = link(keyed(3), SIGNS)
    [(batch, _)] = binding_batches(keyed, ev, 1)
    peer_key = bytes([7]) * 32
    machine.peer_key = peer_key
    machine._remember(fresh_keys("old", ORIGINS_MAX))  # at its bound
    machine._remember({"peer-origin": peer_key})  # the writer reads the sender's key
    machine.parse(batch)  # a parse comes in between, on its own thread in a node
    assert machine._sender("peer-origin") == "peer-origin"


def test_a_parse_while_the_writer_remembers_keeps_the_bound(
        keyed: Callable[[int], EventStore], ev: Ev) -> None:
    """The writer's call is held as it adds its keys to a memory at its bound; a batch
    that binds a new origin's key is parsed meanwhile. Had the two shared one memory,
    both would have passed its size check and added their keys: the bound and the keys
    of two calls. The key the batch bound is still found for its origin's next batch."""
    machine = link(keyed(3), SIGNS)
    [(batch, follower)] = binding_batches(keyed, ev, 1)
    machine._remember(fresh_keys("old", ORIGINS_MAX))  # at the bound: no new start yet
    held = Held(fresh_keys("writer", BATCH_KEYS))
    writer = threading.Thread(target=machine._remember, args=(held,))
    writer.start()
    try:
        assert held.reading.wait(HOLD_MAX_S)  # past its check, adding its keys
        machine.parse(batch)  # on this thread, as the parse thread would
    finally:
        held.go.set()
        writer.join()
    assert len(machine._keys) <= ORIGINS_MAX + BATCH_KEYS
    assert found_key(machine, follower)  # seq 2: its key from a memory only


def test_parsing_and_remembering_at_once_keep_the_bounds(
        keyed: Callable[[int], EventStore], ev: Ev) -> None:
    """A thread parses batch after batch that binds keys while another remembers batch
    after batch of new keys, in one machine: each memory ends within its bound, and the
    next batch of an origin a parsed batch bound finds its key, even once the writer's
    memory has started again. The threads meet where they happen to: this guards the
    bounds under load, and the tests above pin the meetings that went wrong."""
    machine = link(keyed(3), SIGNS)
    pairs = binding_batches(keyed, ev, 3)
    failures: list[BaseException] = []

    def parse() -> None:
        try:
            for _ in range(200):
                for batch, _follower in pairs:
                    assert machine.parse(batch).fault is None
        except BaseException as exc:  # re-raised below, on the test's thread
            failures.append(exc)

    def remember() -> None:
        try:
            for n in range(1000):
                machine._remember(fresh_keys(f"w{n}", BATCH_KEYS * 8))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=parse), threading.Thread(target=remember)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(machine._keys) <= ORIGINS_MAX + BATCH_KEYS * 8
    machine._remember(fresh_keys("last", ORIGINS_MAX + 1))
    machine._remember({})  # the writer's memory starts again after the last parse
    assert all(found_key(machine, follower) for _batch, follower in pairs)
    assert len(machine._parsed_keys) <= ORIGINS_MAX + 1
