"""How much of the store's single writer one peer link may use.

Everything a peer sends runs on the writer (``node.store``), the thread client appends
need too. A peer that floods (hellos of 4,096 origins, batch after batch) would keep it
busy for seconds. Each link therefore has a token bucket of *writer seconds*: it fills at
``peer_writer_share`` seconds per second up to ``peer_writer_burst_s``, every message
handled costs the time it took (on the writer, and to parse it and verify its signatures
beforehand, which competes with client appends for the CPU), and a link in debt handles
nothing more from its peer (it reads one message ahead, no more) until the debt is paid.
Measuring time rather than counting messages charges a hello of 4,096 origins for what
it really costs, and an honest hello almost nothing.

The share protects clients, so a link pays only while clients write: while no client
append was committed for ``CLIENTS_QUIET_S``, its messages cost nothing (``contended``
false), and a catch-up into a node nobody writes to uses the whole writer.

>>> budget = WriterBudget(share=0.5, burst_s=0.1, now=0.0)
>>> round(budget.charge(0.3, now=0.0), 3)  # 0.1 in hand, 0.2 owed, paid at 0.5 s per s
0.4
>>> budget.charge(0.0, now=10.0)  # refilled, up to the burst
0.0
"""

from __future__ import annotations

#: Seconds after a client append's commit during which peer links pay for the writer.
#: Client appends come in bursts with pauses of less than this; longer would throttle
#: a catch-up for longer after the last client went quiet.
CLIENTS_QUIET_S = 1.0


class WriterBudget:
    """One link's token bucket, in seconds of writer time."""

    def __init__(self, *, share: float, burst_s: float, now: float) -> None:
        self._share = share
        self._burst_s = burst_s
        self._credit_s = burst_s
        self._at = now
        #: Seconds this link was made to wait, in all (for ``/v1/peers``).
        self.throttled_s = 0.0

    def charge(self, used_s: float, now: float, *, contended: bool = True) -> float:
        """Take ``used_s`` of writer time from the bucket; return how long the link must
        wait before it handles another message (0 while it has credit). Uncontended
        time (no client appending) is free; the bucket refills meanwhile.

        >>> WriterBudget(share=0.5, burst_s=0.1, now=0.0).charge(5.0, 0.0, contended=False)
        0.0
        """
        refill_s = max(0.0, now - self._at) * self._share
        used_s = used_s if contended else 0.0
        self._credit_s = min(self._burst_s, self._credit_s + refill_s) - used_s
        self._at = now
        if self._credit_s >= 0:
            return 0.0
        wait_s = -self._credit_s / self._share
        self.throttled_s += wait_s
        return wait_s
