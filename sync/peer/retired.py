"""Retired origins on a link: what we send of them, and what we take.

An origin retires by an ordinary event (``crdt.log.retire``); a node that holds it up to
its final seq drops it from its version vector, so hellos and acks no longer carry it.
On a link that means:

* Sending: we send a retired origin's events only to a peer whose version vector still
  has the origin active below its final seq (it learned of the retirement but lacks
  some of the events, or it came back from a backup), and never beyond the final seq.
  A peer that does not name the origin has retired it too, or will ask for it once the
  retirement reaches it (``crdt.log.retire`` makes it active from 0). The same holds
  for an origin we are still retiring (``retiring``: we lack some of its events), if
  the peer drops retired origins (``peer_retires``, its hello said so): one that does
  not name it holds it in full, and what we fetch of it would only go back as late
  copies. A peer that keeps retired origins active gets its events as any origin's.
* Receiving (``verdict``): an event numbered above an origin's final seq is refused, the
  sender's fault (the origin wrote after it was retired): it is not stored and not
  acknowledged, and the link goes on, because a peer that lacks the retirement sends
  such events in good faith until it arrives. An event of a dropped origin at or below
  the final seq is a late copy: acknowledged (our version holds it) and not stored
  again. Anything else is an ordinary event.

>>> verdict("old", 4, retired={"old": 3}, retiring={})
'refuse'
>>> verdict("old", 2, retired={"old": 3}, retiring={})
'late'
>>> sendable({"n1": 9, "x": 2}, retired={"old": 3}, retiring={"x": 5}, known={"old": 1})
{'n1': 9, 'x': 2, 'old': 3}
>>> sendable({"n1": 9, "x": 2}, retired={}, retiring={"x": 5}, known={}, peer_retires=True)
{'n1': 9}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

Verdict = Literal["take", "late", "refuse"]


def verdict(origin: str, seq: int, *, retired: Mapping[str, int],
            retiring: Mapping[str, int]) -> Verdict:
    """What to do with a peer's event numbered ``seq`` of ``origin``, given the origins
    we dropped (``retired``) and those retired that we still lack events of
    (``retiring``), each with its final seq."""
    final_seq = retired.get(origin, retiring.get(origin))
    if final_seq is not None and seq > final_seq:
        return "refuse"
    return "late" if origin in retired else "take"


def sendable(version: Mapping[str, int], *, retired: Mapping[str, int],
             retiring: Mapping[str, int], known: Mapping[str, int],
             peer_retires: bool = False) -> dict[str, int]:
    """Per origin, the highest seq we may send a peer that is known to hold ``known``:
    our active origins (``version``; never past a final seq; those we are retiring, to
    a peer that drops retired origins, only if it names them), and the origins we
    dropped that the peer still has active below their final seq."""
    out = {origin: min(seq, retiring.get(origin, seq)) for origin, seq in version.items()
           if not peer_retires or origin in known or origin not in retiring}
    for origin, final_seq in retired.items():
        if origin in known and known[origin] < final_seq:
            out[origin] = final_seq
    return out
