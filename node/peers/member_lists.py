"""A peer's member list (``/peer/v1/members``), read: the node that answers
(``Lister``, ``lister``) and the addresses it names (``Listed``, ``member_urls``),
malformed entries and addresses no node could dial left out (and logged). It keeps no
state and dials nothing: ``node.peers.learning`` dials what it finds here.
"""

from __future__ import annotations

from typing import NamedTuple

from node.peers.addresses import RefusalsLogged, dialable
from sync.peer.forgotten import said


class Listed(NamedTuple):
    """One address of a members answer."""

    url: str
    node: str | None  # the node id there, when the lister knows it
    secret: bool  # a holder of the cluster secret gave the address
    linked: bool  # the lister has a link up to that node at this address now
    node_linked: bool  # the lister has a link up to that node now, at whatever address


def member_urls(listed: object, own: Lister | None = None,
                logged: RefusalsLogged | None = None, dialed: str | None = None
                ) -> list[Listed]:
    """Peer URLs, node ids (when known), whether a holder of the cluster secret gave
    the address and whether the lister is linked to that node now, there and at all
    (``sync.peer.forgotten.said``; the lister's own address: all three) from a members
    answer, without a trailing slash (as ``add_peer`` keys them); anything malformed is
    skipped, and so is an address no node could dial (``dialable``: logged, once while
    the node's ``logged`` remembers it for the lister, told by its node id, or by
    ``dialed``, the address this node asked it at, if it names none). Without
    ``logged``, or for a lister told by neither, each reason is logged once for the
    answer: one may hold tens of thousands of entries. ``own``: the lister, as ``lister`` read it
    from this answer (read here if not given). A list
    without ``cluster_secret`` or ``linked`` (an older node's) does not say so: its
    addresses are dialed without the secret, and a forgotten one waits out its
    hold-off."""
    if not isinstance(listed, dict):
        return []
    memory = _told(logged, own.node if own is not None else _named(listed), dialed)
    lister_node, advertise = own if own is not None else _lister(listed, memory, dialed)
    found = []
    if advertise is not None:
        found.append(Listed(advertise.rstrip("/"), lister_node, secret=True, linked=True,
                            node_linked=True))
    for peer in listed.get("peers", []) if isinstance(listed.get("peers"), list) else []:
        if isinstance(peer, dict) and dialable(peer.get("url"), lister_node, SKIPPED,
                                               memory, dialed):
            node = peer.get("node_id")
            linked, node_linked = said(peer)
            found.append(Listed(peer["url"].rstrip("/"), node if isinstance(node, str) else None,
                                secret=peer.get("cluster_secret") is True,
                                linked=linked, node_linked=node_linked))
    return found


class Lister(NamedTuple):
    """The node a members answer is from, as it names itself."""

    node: str | None  # its node id; None if it names none
    url: str | None  # the address it advertises, if one a node could dial (``dialable``)


#: What is logged of an address in a members answer that no node could dial.
SKIPPED = "listed address skipped"


def lister(listed: object, logged: RefusalsLogged | None = None,
           dialed: str | None = None) -> Lister:
    """The lister's node id and the address it advertises, from its own members answer:
    the address is checked here, once for both its uses (a bad one is logged once, while
    ``logged`` remembers it for the lister, told as in ``member_urls``: ``dialable``)."""
    return _lister(listed, _told(logged, _named(listed), dialed), dialed)


def _lister(listed: object, memory: RefusalsLogged, dialed: str | None) -> Lister:
    node = _named(listed)
    url = listed.get("advertise_url") if isinstance(listed, dict) else None
    return Lister(node, url if dialable(url, node, SKIPPED, memory, dialed) else None)


def _named(listed: object) -> str | None:
    """The node id a members answer names for the node that gave it, if any."""
    node = listed.get("node_id") if isinstance(listed, dict) else None
    return node if isinstance(node, str) else None


def _told(logged: RefusalsLogged | None, node: str | None,
          dialed: str | None) -> RefusalsLogged:
    """What remembers the refusals logged of one answer: the node's ``logged`` if the
    lister is told from others (its node id, or the address it was dialed at), else a
    memory of this answer alone, so each reason is logged once for it."""
    if logged is not None and (node is not None or dialed is not None):
        return logged
    return RefusalsLogged()
