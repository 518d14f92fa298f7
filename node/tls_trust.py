"""Whether new TLS files end the peer links made under the old (only a CA trusted no
more does), and what a node's dials ended then. Its own module, so that both ends of a
link read it one way: the site's accepted connections
(``node.http.listener.BoundedSite.use_tls``) and the dials
(``node.peers.gossip.Gossip.use_tls``).
"""

from __future__ import annotations

from typing import NamedTuple


def ends_links(before: frozenset[bytes], after: frozenset[bytes]) -> bool:
    """Whether TLS that trusts the CA blocks ``after`` (their digests) ends the peer
    links made under ``before``: only if it trusts one of them no more. A CA added, the
    blocks reordered, the lines between them changed, end none: the CA that let each
    link in is trusted still.

    >>> ends_links(frozenset({b"a"}), frozenset({b"b", b"a"}))
    False
    >>> ends_links(frozenset({b"a", b"b"}), frozenset({b"b"}))
    True
    """
    return not before <= after


class DialsEnded(NamedTuple):
    """The dialed links up that a CA trusted no more ended (``Gossip.use_tls``)."""

    tls: int  # the peer verified by our CA: by the one trusted now when dialed again
    plain: int  # plain http://: ended with the pool they share, dialed again as they were
