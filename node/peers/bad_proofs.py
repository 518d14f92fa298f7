"""Addresses whose dialers keep sending link proofs that do not verify.

A dialer is let in on the device id it claims (a member's, which every refusal of this
node names), or on the cluster secret or a certificate, before it proves a key: the
acceptor then signs its own proof and checks the dialer's (``node.peers.transport``).
A proof that does not verify, or is malformed, ends that link; but nothing stopped the
same address from dialing again at once, each dial costing this node a websocket, a
signature and a check, as often as the dialer likes, with only its log lines bounded
(``node.peers.admission.UNPROVEN_LINES_MAX``).

So an address (an IPv6 one's /64, which one host commonly holds, as the node's other
per-address limits count) that sent ``BAD_PROOFS_MAX`` such proofs within
``BAD_PROOFS_WINDOW_S`` is refused at its next dials, before the upgrade and without
any signing, with 429 and ``Retry-After``, until that window ends. A real device never
sends a proof that fails (its key is the one its id names), so only a dialer with a
wrong key, or one replaying another's proof, is refused; a member behind the same
address (one NAT) as such a dialer is refused for the rest of the window too, and
dials again after it.

Addresses are remembered up to ``BAD_PROOF_ADDRESSES_KEPT_MAX``: past that, those whose
window ended are forgotten, and if none did, all (an attacker with that many addresses
is not bounded per address anyway).

>>> bad = BadProofs(proofs_max=2, window_s=60.0)
>>> bad.refused_for("a", now=0.0), bad.failed("a", now=0.0), bad.failed("a", now=1.0)
(None, False, True)
>>> bad.refused_for("a", now=30.0), bad.refused_for("b", now=30.0)
(30.0, None)
>>> bad.refused_for("a", now=60.0), bad.failed_total, bad.refused_total
(None, 2, 1)
"""

from __future__ import annotations

#: Link proofs that fail from one address within ``BAD_PROOFS_WINDOW_S`` after which its
#: dials are refused until the window ends: a device that proves its key never fails one,
#: and a few leave room for a key changed by mistake to be told apart in the log.
BAD_PROOFS_MAX = 8
#: The window of ``BAD_PROOFS_MAX``, in seconds (it opens with an address's first failed
#: proof).
BAD_PROOFS_WINDOW_S = 60.0
#: Addresses whose failed proofs are counted at once.
BAD_PROOF_ADDRESSES_KEPT_MAX = 1024


class BadProofs:
    """Failed link proofs counted by the dialer's address, in windows of ``window_s``
    seconds of whatever clock is given."""

    def __init__(self, proofs_max: int = BAD_PROOFS_MAX,
                 window_s: float = BAD_PROOFS_WINDOW_S,
                 kept_max: int = BAD_PROOF_ADDRESSES_KEPT_MAX) -> None:
        self.proofs_max = proofs_max
        self.window_s = window_s
        self.kept_max = kept_max
        #: By address: when its window opened, and the failed proofs in it.
        self._windows: dict[str, tuple[float, int]] = {}
        #: Failed proofs, and dials refused for them, since start (the metrics).
        self.failed_total = 0
        self.refused_total = 0

    def failed(self, address: str, now: float) -> bool:
        """Count a failed proof from ``address``; whether it is the one that reaches
        ``proofs_max`` (from here its dials are refused: say so, once)."""
        self.failed_total += 1
        opened, count = self._window(address, now)
        if address not in self._windows and len(self._windows) >= self.kept_max:
            self._windows = {kept: window for kept, window in self._windows.items()
                             if now - window[0] < self.window_s}
            if len(self._windows) >= self.kept_max:
                self._windows.clear()
        self._windows[address] = (opened, count + 1)
        return count + 1 == self.proofs_max

    def refused_for(self, address: str, now: float) -> float | None:
        """Seconds until ``address`` may dial again, if it is refused now (counted),
        else None."""
        opened, count = self._window(address, now)
        if count < self.proofs_max:
            return None
        self.refused_total += 1
        return opened + self.window_s - now

    def _window(self, address: str, now: float) -> tuple[float, int]:
        """``address``'s window at ``now``: a new one if its last ended."""
        opened, count = self._windows.get(address, (now, 0))
        return (opened, count) if now - opened < self.window_s else (now, 0)
