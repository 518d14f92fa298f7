"""``Forgotten``: addresses a node gave up dialing after their failures, and when a
peer's member list may bring one back.

A learned address (one a peer's member list named) is forgotten after
``learned_failures_max`` failed links in a row. A peer that still lists it (a hub names
every node it has linked with, so that a partition heals quickly) would bring it back at
the next members round with a fresh back-off: a node stopped for good would be dialed,
forgotten and learned again every round, by every node that asks, for as long as the
hub runs. So a node remembers what it forgot, and takes such an address up again from a
list only once a hold-off has passed, one that doubles each time the address is
forgotten again; or at once when there is news that the node is back there: a lister
says its link to that node at that address is up now, or a link with that node came up
here at that address or at the one the node advertises itself. Not every address the
node was forgotten under: the one it moved from is dead still.

What a list says of links (``linked_at``, ``Said``): ``linked`` of an address only where
the lister's link to its node is up at it, or it is the address that node advertises
itself; ``node_linked`` of every address of a node linked, whatever the address. A node
that moved is linked at its new address: its old, dead one is listed still, but not as
linked, so a learner that forgot it leaves it held off; the redial of a healed partition
goes by node. Lists without ``node_linked`` (older nodes') said ``linked`` of every
address of a node linked, dead old ones too: they are read as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from sync.peer.config import SyncConfig


@dataclass(frozen=True, slots=True)
class _Entry:
    node: str | None  # the node id the address stood for, when known
    until: float  # when a list may bring it back
    times: int  # forgotten this often with no link to its node in between


class HeldOff(NamedTuple):
    """An address held off now, for people (``Forgotten.held_off``)."""

    url: str
    node: str | None  # the node id it stood for, when known
    for_s: float  # seconds until a list may bring it back
    times: int  # forgotten this often with no link to its node in between


class Forgotten:
    """Addresses forgotten after their failures, each held off for a while: at first
    ``forgotten_hold_s``, doubled at each forgetting up to ``forgotten_hold_max_s``; at
    most ``forgotten_kept_max`` addresses (``SyncConfig``).

    >>> forgotten = Forgotten()
    >>> forgotten.forgot("http://laptop:8765", "n1", now=0.0)
    300.0
    >>> forgotten.may_learn("http://laptop:8765", now=60.0, linked=False)
    False
    >>> forgotten.may_learn("http://laptop:8765", now=300.0, linked=False)
    True
    >>> forgotten.forgot("http://laptop:8765", "n1", now=400.0)  # again: held longer
    600.0
    >>> forgotten.may_learn("http://laptop:8765", now=401.0, linked=True)  # news of it
    True
    >>> len(forgotten)
    0
    """

    def __init__(self, config: SyncConfig = SyncConfig()) -> None:
        self.kept_max = config.forgotten_kept_max
        self.hold_s = config.forgotten_hold_s
        self.hold_max_s = config.forgotten_hold_max_s
        self._entries: dict[str, _Entry] = {}  # the one forgotten longest ago first

    def __len__(self) -> int:
        return len(self._entries)

    def forgot(self, url: str, node: str | None, now: float) -> float:
        """``url`` was given up after its failures; returns the seconds it is held off."""
        old = self._entries.pop(url, None)
        times = 1 if old is None else old.times + 1
        hold_s = min(self.hold_max_s, self.hold_s * 2.0 ** min(times - 1, 62))
        while len(self._entries) >= self.kept_max:
            del self._entries[next(iter(self._entries))]
        if node is None and old is not None:
            node = old.node
        self._entries[url] = _Entry(node, now + hold_s, times)
        return hold_s

    def held_off(self, now: float) -> list[HeldOff]:
        """The addresses whose hold-off still runs at ``now``, the one forgotten longest
        ago first; one whose hold-off has passed is remembered, not held off.

        >>> forgotten = Forgotten()
        >>> forgotten.forgot("http://laptop:8765", "n1", now=0.0)
        300.0
        >>> forgotten.held_off(now=100.0)
        [HeldOff(url='http://laptop:8765', node='n1', for_s=200.0, times=1)]
        >>> forgotten.held_off(now=300.0)
        []
        """
        return [HeldOff(url, entry.node, entry.until - now, entry.times)
                for url, entry in self._entries.items() if entry.until > now]

    def may_learn(self, url: str, now: float, *, linked: bool) -> bool:
        """Whether ``url``, named by a peer's member list, may be dialed now: unless it
        was forgotten and its hold-off runs; ``linked``, the lister's link to the node
        there is up now, ends the hold-off (and the memory of its failures). A hold-off
        that has passed is remembered still: a next forgetting holds it off longer."""
        entry = self._entries.get(url)
        if entry is None:
            return True
        if linked:
            del self._entries[url]
            return True
        return now >= entry.until

    def reached(self, *urls: str | None) -> None:
        """A link with a node came up: ``urls``, the link's address and the one the node
        advertises itself (None: not known), may be learned again at once (as
        ``linked_at`` says of them). Other addresses the node was forgotten under wait
        out their hold-off: the one it moved from is dead still.

        >>> forgotten = Forgotten()
        >>> for url in ("http://laptop:8765", "http://old-laptop:8765"):
        ...     _ = forgotten.forgot(url, "n1", now=0.0)
        >>> forgotten.reached("http://10.0.0.2:8765", "http://laptop:8765")
        >>> [held.url for held in forgotten.held_off(now=1.0)]
        ['http://old-laptop:8765']
        """
        for url in urls:
            if url is not None:
                self._entries.pop(url, None)


def linked_at(url: str, node: str | None, *, up: Mapping[str, set[str]],
              advertised: Mapping[str, str | None]) -> bool:
    """Whether a member list says ``linked`` of ``url``, an address of ``node``: the
    lister's link to ``node`` is up (``up``: node -> the addresses its links up use, and
    those the lister's dials reached it at during them, dropped as duplicates) at
    ``url``, or ``url`` is the address ``node`` advertises itself (``advertised``, from
    its hello or its own list; a node not in it has not said yet: every address of it
    counts, as before). Not another address it remembers for that node: the one a node
    moved from is dead.

    >>> up = {"n1": {"http://10.0.0.2:8765"}}
    >>> advertised = {"n1": "http://laptop:8765"}
    >>> [linked_at(url, "n1", up=up, advertised=advertised) for url in
    ...  ("http://10.0.0.2:8765", "http://laptop:8765", "http://old-laptop:8765")]
    [True, True, False]
    >>> linked_at("http://old-laptop:8765", "n1", up=up, advertised={})  # not said yet
    True
    >>> linked_at("http://laptop:8765", "n1", up={}, advertised=advertised)  # no link up
    False
    """
    if node is None or node not in up:
        return False
    return url in up[node] or node not in advertised or advertised[node] == url


class Said(NamedTuple):
    """What one row of a peer's member list says of links (``said``)."""

    linked: bool  # the lister is linked to the node at this address: news that it is back
    node_linked: bool  # the lister is linked to the node, at whatever address


def said(row: Mapping[str, object]) -> Said:
    """What a member list's ``row`` says of links; only ``true`` says yes. A row without
    ``node_linked`` (an older node's list) said ``linked`` of every address of a node
    linked: both read as that, as before.

    >>> said({"linked": False, "node_linked": True})
    Said(linked=False, node_linked=True)
    >>> said({"linked": True})  # an older node's
    Said(linked=True, node_linked=True)
    >>> said({"linked": "true", "node_linked": 1})
    Said(linked=False, node_linked=False)
    """
    linked = row.get("linked") is True
    if "node_linked" not in row:
        return Said(linked, linked)
    return Said(linked, row.get("node_linked") is True)
