"""The addresses peers give: a node's own, in the handshake of a link it opens
(``X-Clawsync-Advertise``: ``node.peers.transport.accept``), and the ones its member
list names (``node.peers.learning``). Each is checked as a ``--peer`` is
(``crdt.addresses``) before it is kept, listed, shown or dialed; one that fails is
dropped and logged by why only: it may hold a password (``http://user:pw@host``).
An address whose scheme is not in lower case (``HTTP://h``) is dropped too: a node
writes its own and those it lists in lower case (``node.config``), so one that does not
comes from no node of this project, and kept it would be a second address of a node.
"""

from __future__ import annotations

from typing import TypeGuard

import structlog

from crdt.addresses import address_refusal, normal_address

log = structlog.get_logger(__name__)


def dialable(url: object, said_by: object, dropped: str) -> TypeGuard[str]:
    """Whether ``url``, an address the peer ``said_by`` (its node id, if it gave one)
    gives, is one a node could dial; if it is not, ``dropped`` is logged with the
    reason, never the address. None (no address given) is not, and is not logged."""
    if not isinstance(url, str):
        return False
    refusal = address_refusal(url)
    if refusal is None and normal_address(url) != url:
        refusal = "has a scheme not in lower case"
    if refusal is not None:
        log.debug(dropped, said_by=said_by if isinstance(said_by, str) else None,
                  reason=refusal)
    return refusal is None
