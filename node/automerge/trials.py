"""``Trials``: a client's changes are tried in a worker process before the node applies
them (``crdt.automerge.trial`` in a ``node.workers.WorkerPool``).

The connection's machine hands out the changes it would apply (``Outcome.trial``) once
its own checks passed (a write token, unpacked size, document size). Changes that
overrun the worker's time or memory, crash it, or that the trial refuses cost their
sender the connection, and the node's document is never touched.
"""

from __future__ import annotations

import structlog

from crdt.automerge.trial import Tried, try_sync_message
from node.workers import WorkerDied, WorkerPool, WorkerRaised, WorkerTimeout
from sync.repo.config import RepoLimits
from sync.repo.host import CLOSE_GOING_AWAY, CLOSE_INTERNAL, CLOSE_POLICY, Trial

log = structlog.get_logger(__name__)


class Trials:
    """The worker pool of a node's Automerge clients, and what to try in it."""

    def __init__(self, limits: RepoLimits, actor: bytes) -> None:
        self.limits = limits
        self.actor = actor  # the node's, whose documents the changes are tried on
        self.pool = WorkerPool(limits.workers, limits.worker_time_s, limits.worker_memory_bytes,
                               preload=(try_sync_message.__module__,))

    async def stop(self) -> None:
        await self.pool.stop()

    async def check(self, trial: Trial) -> tuple[int, str] | Tried | None:
        """Try ``trial``'s changes in a worker; the close code and reason to refuse them
        with, or what the worker made of them (None: nothing to take, apply them)."""
        limits = self.limits
        try:
            verdict = await self.pool.run(try_sync_message, trial.saved, trial.data,
                                         self.actor, trial.generation)
        except WorkerTimeout:
            return CLOSE_POLICY, (f"changes refused: applying them took more than "
                                  f"{limits.worker_time_s:g} s")
        except WorkerRaised as error:
            if error.kind == "MemoryError":
                return CLOSE_POLICY, (f"changes refused: applying them needed more than "
                                      f"{limits.worker_memory_bytes // 2**20} MiB")
            return CLOSE_POLICY, f"changes refused: automerge failed on them ({error.kind})"
        except WorkerDied:
            if self.pool.stopping:
                return CLOSE_GOING_AWAY, "the node is stopping"
            log.warning("automerge worker died trying a client's changes",
                        session=trial.session_key)
            return CLOSE_INTERNAL, "changes refused: applying them crashed a worker"
        if isinstance(verdict, str):
            return CLOSE_POLICY, f"changes refused: {verdict}"
        return verdict if isinstance(verdict, Tried) else None
