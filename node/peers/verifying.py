"""``Verifier``: peers' signatures checked in a worker process, beside the node's threads.

A catch-up verifies one Ed25519 signature per event (about 50 us in libsodium). libsodium
releases the GIL for each check, but the thread then waits for it again, up to the
switch interval, behind the node's Python work (parsing, storing, the event loop): 1,000
checks beside one busy Python thread took 1.09 s instead of 0.05 s at the node's 1 ms
interval. So in threads the checks do not overlap that work, and a catch-up took about
the sum of the two on one core while the second stayed mostly idle. In a process of its
own a batch's checks take no GIL time here: the node sends the keys, signatures and
signed bytes (about 200 bytes per event) and gets a list of booleans back
(``crdt.ed25519.verifies_many``), one round trip per batch.

What it must never do is lose or wrongly accept anything, so whenever the worker cannot
answer, the batch is checked in the calling thread instead, by the same function:

* a batch of fewer than ``WORKER_SIGNATURES_MIN`` signatures (a live push of a few
  events), where the round trip costs about as much as the checks;
* until the worker has started (it starts in the background when a peer's hello says
  it holds ``WORKER_SIGNATURES_MIN`` events or more that we lack (``warm``), or on the
  first long batch: a node without peers, or one that only sends, never starts one);
* a worker that died, overran ``CALL_TIME_S``, or answered something other than one
  boolean per signature: it is ended, and a new one started on the next long batch (one
  that raised is kept);
* when no worker can start (a sandbox that forbids processes): after
  ``START_FAILURES_MAX`` failed starts in a row the node logs it once and checks every
  batch in its threads, as before.

The worker is a ``node.workers.Worker``: its own command (never forked: the node has
threads and open databases), its address space capped. ``stop`` ends it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Literal

import structlog

from crdt import ed25519
from node.workers import STOP_WAIT_S, Start, Worker, WorkerError, WorkerRaised

log = structlog.get_logger(__name__)

#: Batches with fewer signatures are checked in the calling thread. Measured on two
#: cores: a round trip to the worker costs the node about 35 us of CPU plus 0.7 us per
#: signature, and adds about 100 us of waiting, against 55 us of CPU per signature
#: checked here. At 8 the worker saves the node some 400 us per batch; below it the
#: waiting, which a live push of one or two events would pay, is most of the time.
WORKER_SIGNATURES_MIN = 8
#: Longest a batch's checks may take in the worker before it is killed and the batch
#: checked here: the longest batch (4,096 events) takes about 0.25 s.
CALL_TIME_S = 10.0
#: The worker's address space: Python with libsodium takes about 20 MiB;
#: a batch's data is well under 2 MiB.
MEMORY_BYTES = 256 * 1024 * 1024
#: Failed starts in a row after which no worker is tried again (a start costs a Python
#: process, about 0.1 s of CPU); one that fails by chance is tried again.
START_FAILURES_MAX = 3
#: What the worker imports before it says it is ready: the check and libsodium, and no
#: more (``crdt.device`` would add ``cryptography``: some 40 ms of CPU per start).
PRELOAD = (ed25519.__name__,)


class Verifier:
    """``crdt.ed25519.verifies_many`` for the node's threads, answered by a worker process
    when it can (the module's rules); safe to call from several threads at once (calls
    take turns at the worker)."""

    def __init__(self, *, call_time_s: float = CALL_TIME_S,
                 memory_bytes: int = MEMORY_BYTES) -> None:
        self.call_time_s = call_time_s
        self.memory_bytes = memory_bytes
        self._lock = threading.Condition()
        self._worker: Worker | None = None  # the running worker, busy or not
        self._busy = False
        self._starting: threading.Thread | None = None
        self._start_handle: Start | None = None  # calls ``_starting``'s start off
        self._stopped = False
        #: Set when workers failed to start ``START_FAILURES_MAX`` times in a row: no
        #: more tries, threads check everything.
        self.broken = False
        self._start_failures = 0
        #: Batches checked by a worker, and batches a worker failed to answer.
        self.batches_in_worker = 0
        self.batches_failed = 0
        self._here = threading.local()  # ``worker_s`` of each calling thread

    @property
    def worker_state(self) -> Literal["none", "starting", "running"]:
        """Whether a worker runs (long batches go to it), is starting in the background,
        or neither (none was needed yet, the last one was lost, or the verifier stopped:
        long batches are checked in their threads)."""
        with self._lock:
            if self._worker is not None:
                return "running"
            return "starting" if self._starting is not None else "none"

    @property
    def worker_pid(self) -> int | None:
        """The process id of the running worker; None if none runs."""
        with self._lock:
            return None if self._worker is None else self._worker.process.pid

    @property
    def worker_busy(self) -> bool:
        """Whether a thread's batch is in the worker now (one at a time)."""
        with self._lock:
            return self._busy

    @property
    def worker_starting(self) -> bool:
        """Whether a worker is starting in the background (``worker_state`` says
        "running" instead if one runs as well)."""
        with self._lock:
            return self._starting is not None

    @property
    def start_failures(self) -> int:
        """Workers that failed to start in a row (``broken`` at ``START_FAILURES_MAX``)."""
        with self._lock:
            return self._start_failures

    def worker_s(self) -> float:
        """Seconds the calling thread has waited, in all, on the worker's answers: the
        most CPU the worker can have spent on its batches (one thread), which the caller
        charges to whoever sent them (``node.peers.driver``), as the checks cost when
        they ran in its thread."""
        return float(getattr(self._here, "worker_s", 0.0))

    def __call__(self, public_keys: Sequence[bytes], signatures: Sequence[bytes],
                 messages: Sequence[bytes]) -> list[bool]:
        """Whether each signature verifies (as ``crdt.ed25519.verifies_many``)."""
        if len(public_keys) >= WORKER_SIGNATURES_MIN:
            worker = self._take()
            if worker is not None:
                answer = self._call(worker, public_keys, signatures, messages)
                if answer is not None:
                    return answer
        return ed25519.verifies_many(public_keys, signatures, messages)

    def stop(self) -> None:
        """End the worker (a call in it falls back to its thread) and start no more.
        A worker still starting is killed, not waited for (a start may take up to
        ``START_TIMEOUT_S``); its start then fails at once and reaps it."""
        with self._lock:
            self._stopped = True
            starting, worker, self._worker = self._starting, self._worker, None
            busy = self._busy
            if self._start_handle is not None:
                self._start_handle.cancel()
            self._lock.notify_all()
        if starting is not None:
            # Killed, its start ends at once, or ends the worker it started on seeing
            # ``_stopped``; the bound is a safety net, not a wait.
            starting.join(STOP_WAIT_S)
        if worker is None:
            return
        if busy:
            # A thread is reading its pipe: killed, the worker closes it, and that
            # thread ends it (``_call``) and checks the batch itself. Closing the pipe
            # here instead could hand its descriptor to a new file under the reader.
            worker.kill()
        else:
            worker.stop(0.0)

    def _take(self) -> Worker | None:
        """The worker, once no other call uses it; None if there is none yet (one is
        started, in the background), or none will come."""
        with self._lock:
            while True:
                if self._stopped or self.broken:
                    return None
                if self._worker is None:
                    self._start_soon()
                    return None
                if not self._busy:
                    self._busy = True
                    return self._worker
                self._lock.wait()

    def warm(self) -> None:
        """Start the worker now, in the background, if none runs or starts: a peer has
        said it holds many events we lack. Otherwise the first long batches would be
        checked in the threads while it starts (a few tenths of a second), at two to
        four times their cost in the worker beside the node's other work."""
        with self._lock:
            if not (self._stopped or self.broken or self._worker is not None):
                self._start_soon()

    def _start_soon(self) -> None:
        """Under ``_lock``: start a worker in the background, unless one is starting."""
        if self._starting is None:
            self._start_handle = Start()
            self._starting = threading.Thread(
                target=self._start, args=(self._start_handle,),
                name="clawsync-verify-start", daemon=True)
            self._starting.start()

    def _start(self, start: Start) -> None:
        try:
            worker: Worker | None = Worker(self.memory_bytes, PRELOAD, start)
        except Exception as error:  # WorkerError, OSError from Popen: any, it is logged
            failed = str(error)
            worker = None
        with self._lock:
            self._starting = self._start_handle = None
            if worker is not None:
                self._start_failures = 0
            elif not start.cancelled:  # one ``stop`` called off is no failure
                self._start_failures += 1
                self.broken = self._start_failures >= START_FAILURES_MAX
                if self.broken:
                    log.warning("signatures are checked in this process: no worker process "
                                "could start", error=failed)
            if worker is not None and not self._stopped:
                self._worker, self._busy, worker = worker, False, None
            self._lock.notify_all()
        if worker is not None:  # started while stopping
            worker.stop(0.0)

    def _call(self, worker: Worker, public_keys: Sequence[bytes], signatures: Sequence[bytes],
              messages: Sequence[bytes]) -> list[bool] | None:
        """The worker's answer, or None if it gave none to trust; then it is ended,
        unless it only raised (``MemoryError`` at its limit, say), which leaves it
        usable."""
        args = (list(public_keys), list(signatures), list(messages))
        answer: object = None
        keep = True
        started = time.monotonic()
        try:
            answer = worker.call(ed25519.verifies_many, args, self.call_time_s)
            if not (isinstance(answer, list) and len(answer) == len(args[0])
                    and all(type(valid) is bool for valid in answer)):
                raise WorkerError(f"it answered a {type(answer).__name__}, not "
                                  f"{len(args[0])} booleans")
        except WorkerRaised as error:
            log.warning("signature worker raised; checked here instead", error=str(error))
            answer = None
        except Exception as error:
            # Overran (still working), died, talks nonsense, or its answer could not be
            # read here (``MemoryError`` unpickling it, say): never used again, and the
            # bookkeeping below still runs, or every later long batch would wait on
            # ``_busy`` for good.
            if not self._stopped:
                log.warning("signature worker lost; checked here instead", error=str(error))
            answer, keep = None, False
        self._here.worker_s = self.worker_s() + time.monotonic() - started
        with self._lock:
            self._busy = False
            if answer is None:
                self.batches_failed += 1
            else:
                self.batches_in_worker += 1
            if not keep and self._worker is worker:
                self._worker = None  # the next long batch starts another
            keep = keep and not self._stopped  # ``stop`` left it to this call to end
            self._lock.notify_all()
        if not keep:
            worker.kill()
            worker.stop(0.0)
        return answer
