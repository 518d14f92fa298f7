"""When a dialed address that failed, or whose link ended, is dialed again: its
back-off's time (``PeerSync.connection_failed``), and not before a wait its peer asked
for (``Retry-After``); sooner while a member refuses this device as waiting to be added,
or refused it so and has not been reached since, for a few failed dials (the member may
be restarting to take this device's add), and at once when another peer was just reached
(``Gossip._reached``). Decisions only:
``now`` is passed in.
"""

from __future__ import annotations

from node.peers.runner import Runner

#: Failed dials in a row of a member that refused this device as waiting to be added
#: that are each made again within a pull interval (30 s at the default 5 s): a member
#: restarting to take the add is back within them, and dialed within a pull interval of
#: its return. Past them, the member stays down: its address backs off as any other
#: that fails.
WAITING_SOON_DIALS = 6


def next_dial_at(runner: Runner, retry_at: float, ended_at: float, *,
                 pull_interval_s: float, removed: bool) -> float:
    """When to dial ``runner`` again after a failed dial or a link that ended (at
    ``ended_at``), once it is known to be dialed again (not forgotten): at ``retry_at``,
    its back-off's time and not before a wait its peer asked for (bounded by
    ``backoff_max_s``: ``PeerSync.connection_failed``; no redial cuts it short,
    ``ends_back_off``), and within a pull interval of ``ended_at`` while a member
    refuses this device (``removed``: this device was told it is removed, which no wait
    ends), and after each of the first ``WAITING_SOON_DIALS`` failed dials in a row of a
    member whose last refusal was as waiting to be added (``Runner.waiting_on``; a
    dial that connects or another refusal ends it, a busy answer starts the count anew):
    asked again soon, not after the back-off's minute, nor later by however long the
    store's writer kept the failure."""
    restarting = runner.waiting_on is not None \
        and runner.waiting_dials_failed <= WAITING_SOON_DIALS
    if (runner.refused is not None or restarting) and not removed:
        soon = ended_at + pull_interval_s
        retry_at = min(retry_at, max(soon, runner.machine.asked_until))
    return retry_at


def ends_back_off(runner: Runner, now: float, *, pull_interval_s: float) -> bool:
    """Whether another peer reached ends ``runner``'s back-off now: it waits beyond a
    pull interval (those due sooner keep their turn), was not refused and waits no more
    for what its peer asked (a wait that no news of the network cuts short)."""
    return runner.state == "backoff" and runner.refused is None \
        and runner.machine.wakeup_at > now + pull_interval_s \
        and runner.machine.asked_until <= now
