"""Peers' signatures checked in a worker process (``node.peers.verifying``), with real
processes: the worker answers exactly as this process would, forged and crafted
signatures included; a worker killed, overrunning or unable to start costs a batch
nothing but its checks here; and a node's stop leaves no worker behind."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from crdt import device
from node.peers import verifying
from node.peers.verifying import START_FAILURES_MAX, WORKER_SIGNATURES_MIN, Verifier
from node.server.run import RunningNode
from node.workers import Worker
from tests.support.ed25519 import IDENTITY, crafted_by_holder
from tests.support.nodes import events, post
from tests.support.processes import children, never_ready_module
from tests.support.waits import (  # the signature worker is a process
    POLL_S,
    PROCESS_DEADLINE_S,
    until,
    wait_until,
)

NodeFactory = Callable[..., Awaitable[RunningNode]]
EventFactory = Callable[..., dict[str, Any]]
SECRET = "s" * 32
Batch = tuple[list[bytes], list[bytes], list[bytes]]


def batch(count: int) -> Batch:
    """``count`` checks of two keys: mostly valid, every fifth forged in a new way (a
    flipped bit, another message, a crafted signature, a small-order key, junk)."""
    seeds = [bytes([n]) * 32 for n in (1, 2)]
    secrets = [device.secret_key(device.private_key_from_seed(seed)) for seed in seeds]
    publics = [secret[32:] for secret in secrets]
    keys, signatures, messages = [], [], []
    for n in range(count):
        which = n % 2
        message = f"event {n}".encode() * 3
        signature = device.sign_bytes(secrets[which], message)
        key = publics[which]
        match n % 25:
            case 4:
                signature = bytes([signature[0] ^ 1]) + signature[1:]
            case 9:
                message += b"!"
            case 14:
                signature = crafted_by_holder(seeds[which], message)
            case 19:
                key, signature = IDENTITY, IDENTITY + bytes(32)
            case 24:
                signature = signature[:63]
        keys.append(key)
        signatures.append(signature)
        messages.append(message)
    return keys, signatures, messages


def here(checks: Batch) -> list[bool]:
    return device.verifies_many(*checks)


@pytest.fixture
def verifier() -> Iterator[Verifier]:
    started = Verifier()
    yield started
    started.stop()


def in_worker(verifier: Verifier, checks: Batch) -> list[bool]:
    """``verifier(*checks)`` once its worker answers (it starts on the first call)."""
    done = verifier.batches_in_worker
    deadline = time.monotonic() + PROCESS_DEADLINE_S
    while True:
        answer = verifier(*checks)
        if verifier.batches_in_worker > done:
            return answer
        assert answer == here(checks)  # answered here meanwhile, just as well
        assert time.monotonic() < deadline and not verifier.broken
        time.sleep(0.02)


def worker_pid(verifier: Verifier) -> int:
    pid = verifier.worker_pid
    assert pid is not None
    return pid


def ended(pid: int) -> bool:
    """True once process ``pid`` is gone (reaped) or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_the_worker_answers_as_this_process_on_valid_and_forged_signatures(
        verifier: Verifier) -> None:
    checks = batch(500)
    expected = here(checks)
    assert expected.count(False) == 100  # the forgeries are refused here
    assert in_worker(verifier, checks) == expected
    assert in_worker(verifier, batch(WORKER_SIGNATURES_MIN)) == here(
        batch(WORKER_SIGNATURES_MIN))


def test_the_worker_loads_the_check_without_cryptography_or_asyncio() -> None:
    """Each start costs the node's host CPU on a catch-up: the signature worker (started
    as the verifier starts it) imports the check and libsodium, and neither
    ``cryptography`` (key files) nor asyncio (the worker pool's). Asked of the worker's
    own ``sys.modules``, which names a module compiled into the interpreter too."""
    worker = Worker(verifying.MEMORY_BYTES, verifying.PRELOAD)
    try:
        checks = batch(WORKER_SIGNATURES_MIN)
        assert worker.call(device.verifies_many, checks, 10.0) == here(checks)
        modules = set(worker.call(eval, ("list(__import__('sys').modules)",), 10.0))
    finally:
        worker.stop(5.0)
    assert {"crdt.ed25519", "nacl.bindings"} <= modules
    assert not {name for name in modules
                if name.split(".")[0] in {"cryptography", "asyncio", "_asyncio"}}


def test_a_short_batch_is_checked_here_and_starts_no_worker(verifier: Verifier) -> None:
    checks = batch(WORKER_SIGNATURES_MIN - 1)
    assert verifier(*checks) == here(checks)
    assert verifier.worker_state == "none"
    assert verifier.batches_in_worker == 0


def test_a_killed_worker_costs_its_batch_nothing_and_is_replaced(verifier: Verifier) -> None:
    checks = batch(200)
    in_worker(verifier, checks)
    pid = worker_pid(verifier)
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: ended(pid), PROCESS_DEADLINE_S, "the killed worker ended")
    assert verifier(*checks) == here(checks)  # the worker is gone: checked here
    assert verifier.batches_failed == 1
    assert in_worker(verifier, checks) == here(checks)  # by a new worker
    assert worker_pid(verifier) != pid and ended(pid)


def test_a_worker_that_overruns_is_killed_and_its_batch_checked_here() -> None:
    verifier = Verifier(call_time_s=60.0)
    try:
        checks = batch(2_000)  # about 0.1 s of checks
        in_worker(verifier, checks)
        pid = worker_pid(verifier)
        verifier.call_time_s = 1e-6
        assert verifier(*checks) == here(checks)
        assert verifier.batches_failed == 1 and verifier.worker_state == "none"
        wait_until(lambda: ended(pid), PROCESS_DEADLINE_S, "the overrunning worker ended")
    finally:
        verifier.stop()


def test_without_a_worker_every_batch_is_checked_here() -> None:
    verifier = Verifier(memory_bytes=1024 * 1024)  # Python cannot start in 1 MiB
    try:
        checks = batch(100)
        deadline = time.monotonic() + PROCESS_DEADLINE_S
        while not verifier.broken:
            assert verifier(*checks) == here(checks)
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert verifier(*checks) == here(checks)
        assert verifier.worker_state == "none" and verifier.batches_in_worker == 0
        assert verifier.start_failures == START_FAILURES_MAX  # tried again, then no more
    finally:
        verifier.stop()


def test_stopping_ends_the_worker_and_later_batches_are_checked_here() -> None:
    verifier = Verifier()
    checks = batch(100)
    in_worker(verifier, checks)
    pid = worker_pid(verifier)
    verifier.stop()
    assert ended(pid)
    assert verifier(*checks) == here(checks)
    assert verifier.worker_state == "none"


def test_stopping_while_the_worker_checks_a_batch_still_answers_it() -> None:
    verifier = Verifier()
    in_worker(verifier, batch(100))
    pid = worker_pid(verifier)
    checks = batch(5_000)  # about 0.3 s of checks
    answers: list[list[bool]] = []
    calling = threading.Thread(target=lambda: answers.append(verifier(*checks)))
    calling.start()
    wait_until(lambda: verifier.worker_busy, PROCESS_DEADLINE_S, "the worker checking",
               poll_s=0.001)  # while it checks: about 0.3 s
    verifier.stop()
    calling.join()
    assert answers == [here(checks)]  # checked in its thread once the worker was killed
    assert ended(pid) and verifier.worker_state == "none"


def test_stopping_while_the_worker_starts_ends_it_too() -> None:
    before = children()
    verifier = Verifier()
    checks = batch(100)
    assert verifier(*checks) == here(checks)  # starts one
    assert verifier.worker_starting
    verifier.stop()
    # The stop waits a moment only; the start ends its worker anyway.
    wait_until(lambda: verifier.worker_state == "none" and not children() - before,
               PROCESS_DEADLINE_S, "the starting worker ended")


def test_stopping_while_the_worker_starts_slowly_kills_it_and_counts_no_failure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A start may wait up to ``START_TIMEOUT_S`` (a loaded machine); a stop kills it
    instead of leaving it to end by itself, and a start called off is no failure."""
    monkeypatch.setattr(verifying, "PRELOAD", (never_ready_module(tmp_path, monkeypatch),))
    before = children()
    verifier = Verifier()
    verifier.warm()
    wait_until(lambda: children() - before, PROCESS_DEADLINE_S, "the worker started")
    time.sleep(0.2)  # the start is under way (it would be until its timeout)
    assert verifier.worker_starting
    verifier.stop()
    assert children() <= before  # killed and reaped before the stop returned
    assert verifier.worker_state == "none"
    assert verifier.start_failures == 0 and not verifier.broken


def test_the_time_a_thread_waited_on_the_worker_is_counted_for_its_link(
        verifier: Verifier) -> None:
    checks = batch(500)
    in_worker(verifier, checks)
    waited = verifier.worker_s()
    assert waited > 0
    verifier(*batch(WORKER_SIGNATURES_MIN - 1))  # checked here: no worker time
    assert verifier.worker_s() == waited
    in_worker(verifier, checks)
    assert verifier.worker_s() > waited
    seen: list[float] = []
    other = threading.Thread(target=lambda: seen.append(verifier.worker_s()))
    other.start()
    other.join()
    assert seen == [0.0]  # each thread counts its own


def test_an_answer_that_cannot_be_read_leaves_later_batches_checked(
        verifier: Verifier, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading the worker's answer can fail with other than a ``WorkerError`` (memory
    running out while unpickling it, say): that batch is checked here, the worker is
    replaced, and later long batches are not left waiting for it."""
    checks = batch(100)
    in_worker(verifier, checks)
    pid = worker_pid(verifier)
    real = Worker.call

    def fails_once(self: Worker, *args: Any) -> Any:
        monkeypatch.setattr(Worker, "call", real)
        raise MemoryError

    monkeypatch.setattr(Worker, "call", fails_once)
    assert verifier(*checks) == here(checks)
    assert verifier.batches_failed == 1 and not verifier.worker_busy
    assert in_worker(verifier, checks) == here(checks)
    assert worker_pid(verifier) != pid and ended(pid)


#: Events per post in the node tests: a batch long enough for the worker.
POSTED = 4 * WORKER_SIGNATURES_MIN


async def test_nodes_replicate_through_the_worker_and_stop_leaves_none(
        make_node: NodeFactory, event_body: EventFactory) -> None:
    a = await make_node(cluster_secret=SECRET)
    b = await make_node(cluster_secret=SECRET, peers=(a.url,))
    verifier = b.gossip.verifier
    sent = 0

    async def worker_checked_a_batch_and_b_holds_all() -> bool:
        """One check for both steps, so that they share one bound: until B's worker has
        checked a batch, each look posts more events to A; then B holds all of them."""
        nonlocal sent
        if verifier.batches_in_worker == 0:
            await post(a, "s1", *(event_body(n, content=f"message {n}")
                                  for n in range(sent, sent + POSTED)))
            sent += POSTED
            return False
        return len(await events(b, "s1")) >= sent

    # POLL_S, not until's shorter gap: each look is an HTTP request to a node.
    await until(worker_checked_a_batch_and_b_holds_all, within_s=PROCESS_DEADLINE_S,
                poll_s=POLL_S)
    assert [e["id"] for e in await events(a, "s1")] == [e["id"] for e in await events(b, "s1")]
    assert b.gossip.verifier.batches_failed == 0
    pid = worker_pid(verifier)
    assert not ended(pid)
    await b.stop()
    assert ended(pid)


def test_warming_starts_the_worker_before_the_first_long_batch(verifier: Verifier) -> None:
    verifier.warm()
    assert verifier.worker_starting
    wait_until(lambda: verifier.worker_state == "running" or verifier.broken,
               PROCESS_DEADLINE_S, "the worker running")
    assert not verifier.broken
    checks = batch(WORKER_SIGNATURES_MIN)
    assert verifier(*checks) == here(checks)
    assert verifier.batches_in_worker == 1  # the first long batch, not checked here
    verifier.warm()  # one runs: no second
    assert not verifier.worker_starting


def test_a_stopped_verifier_is_not_warmed() -> None:
    verifier = Verifier()
    verifier.stop()
    verifier.warm()
    assert verifier.worker_state == "none"
