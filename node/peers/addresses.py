"""The addresses peers give: a node's own, in the handshake of a link it opens
(``X-Clawsync-Advertise``: ``node.peers.transport.accept``), and the ones its member
list names (``node.peers.learning``). Each is checked as a ``--peer`` is
(``crdt.addresses``, ``node.checks.host_name_problem``: a host name no lookup takes)
before it is kept, listed, shown or dialed; one that fails is
dropped and logged by why only: it may hold a password (``http://user:pw@host``).
An address whose scheme is not in lower case (``HTTP://h``) is dropped too: a node
writes its own and those it lists in lower case (``node.config``), so one that does not
comes from no node of this project, and kept it would be a second address of a node.

A peer says the same list every members round: each (what, who said it, why) is logged
once, not every round, while it stays among the last ``REFUSALS_LOGGED_MAX`` seen by the
node (``RefusalsLogged``, which each node's ``node.peers.learning`` holds). Who said it is
the peer's node id, or, for a peer that names none, the address this node dialed it at
(``dialed``). The address a link gives for itself is logged once too, by the node id
the link names (``node.peers.transport.accept``): a peer gives the same at each link.
A line shows at most ``SAID_BY_SHOWN_MAX`` characters of the node id a peer gives (it
chooses it, up to a members answer long).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import TypeGuard

import structlog

from crdt.addresses import address_refusal, normal_address
from node.checks import host_name_problem

log = structlog.get_logger(__name__)

#: How many (what, who said it, why) refusals a node remembers as logged already, the
#: one seen longest ago forgotten first: a peer's refused address is logged again only
#: after this many others were seen since (a bound on memory, whatever peers say).
REFUSALS_LOGGED_MAX = 256

#: Bytes of the digest a peer's node id (or the address it was dialed at) is remembered
#: by: the id is the peer's to choose, up to a members answer long (``members_bytes_max``).
SAID_BY_DIGEST_BYTES = 16

#: Characters of a peer's node id a log line shows, the rest cut to an ellipsis: twice
#: the length of the ids nodes of this project take (16 hexadecimal digits), so any of
#: theirs is shown whole, and a line stays short whatever id a peer gives.
SAID_BY_SHOWN_MAX = 32


class RefusalsLogged:
    """The refused addresses a node logged, as (what, a digest of who said it, why):
    at most ``entries_max``, and no address nor peer's word kept whole. Who said it is
    the peer's node id, else the address this node dialed it at, else no one known
    (kept too: a memory of one answer, ``node.peers.member_lists``, logs each reason
    once).

    >>> logged = RefusalsLogged()
    >>> logged.first("listed address skipped", "n1", "names no host")
    True
    >>> logged.first("listed address skipped", "n1", "names no host")
    False
    >>> logged.first("listed address skipped", None, "names no host", "http://n1:7878")
    True
    """

    def __init__(self, entries_max: int = REFUSALS_LOGGED_MAX) -> None:
        self.entries_max = entries_max
        self._seen: OrderedDict[tuple[str, bytes, str], None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def first(self, dropped: str, said_by: str | None, reason: str,
              dialed: str | None = None) -> bool:
        """Whether ``dropped`` is news: not seen lately for this reason and peer, told
        by its node id ``said_by``, or by the address ``dialed`` it was dialed at if it
        names none (a node id and an address never taken for each other)."""
        who = f"node\0{said_by}" if said_by is not None else f"dialed\0{dialed or ''}"
        digest = hashlib.blake2b(who.encode("utf-8", "surrogatepass"),
                                 digest_size=SAID_BY_DIGEST_BYTES).digest()
        key = (dropped, digest, reason)
        if key in self._seen:
            self._seen.move_to_end(key)  # said every round: stays remembered
            return False
        self._seen[key] = None
        if len(self._seen) > self.entries_max:
            self._seen.popitem(last=False)
        return True


def shown(said_by: str | None) -> str | None:
    """A peer's node id as a log line shows it: at most ``SAID_BY_SHOWN_MAX``
    characters, then an ellipsis.

    >>> shown("a1b2c3d4e5f60718"), shown("n" * 100_000) == "n" * 32 + "…"
    ('a1b2c3d4e5f60718', True)
    """
    if said_by is None or len(said_by) <= SAID_BY_SHOWN_MAX:
        return said_by
    return said_by[:SAID_BY_SHOWN_MAX] + "…"


def dialable(url: object, said_by: object, dropped: str,
             logged: RefusalsLogged | None = None, dialed: str | None = None
             ) -> TypeGuard[str]:
    """Whether ``url``, an address the peer ``said_by`` (its node id, if it gave one;
    ``dialed``: the address this node dialed it at, if it did) gives, is one a node
    could dial; if it is not, ``dropped`` is logged with the reason, never the address:
    once while ``logged`` remembers it, every time without ``logged``. None (no address
    given) is not, and is not logged."""
    if not isinstance(url, str):
        return False
    refusal = address_refusal(url) or host_name_problem(url)
    if refusal is None and normal_address(url) != url:
        refusal = "has a scheme not in lower case"
    if refusal is not None:
        who = said_by if isinstance(said_by, str) else None
        if logged is None or logged.first(dropped, who, refusal, dialed):
            log.debug(dropped, said_by=shown(who), peer=dialed, reason=refusal)
    return refusal is None
