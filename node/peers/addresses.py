"""The addresses peers give: a node's own, in the handshake of a link it opens
(``X-Clawsync-Advertise``: ``node.peers.transport.accept``), and the ones its member
list names (``node.peers.learning``). Each is checked as a ``--peer`` is
(``crdt.addresses``) before it is kept, listed, shown or dialed; one that fails is
dropped and logged by why only: it may hold a password (``http://user:pw@host``).
An address whose scheme is not in lower case (``HTTP://h``) is dropped too: a node
writes its own and those it lists in lower case (``node.config``), so one that does not
comes from no node of this project, and kept it would be a second address of a node.

A peer says the same list every members round: each (what, who said it, why) is logged
once, not every round, as long as it stays among the last ``REFUSALS_LOGGED_MAX`` logged.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TypeGuard

import structlog

from crdt.addresses import address_refusal, normal_address

log = structlog.get_logger(__name__)

#: How many (what, who said it, why) refusals are remembered as logged already: a
#: peer's refused address is logged again only after this many others were (a bound on
#: memory, whatever peers say; no address is kept, only who and why).
REFUSALS_LOGGED_MAX = 256

_logged: OrderedDict[tuple[str, str | None, str], None] = OrderedDict()


def dialable(url: object, said_by: object, dropped: str) -> TypeGuard[str]:
    """Whether ``url``, an address the peer ``said_by`` (its node id, if it gave one)
    gives, is one a node could dial; if it is not, ``dropped`` is logged with the
    reason, never the address, once (``REFUSALS_LOGGED_MAX``). None (no address given)
    is not, and is not logged."""
    if not isinstance(url, str):
        return False
    refusal = address_refusal(url)
    if refusal is None and normal_address(url) != url:
        refusal = "has a scheme not in lower case"
    if refusal is not None:
        _log_once(dropped, said_by if isinstance(said_by, str) else None, refusal)
    return refusal is None


def _log_once(dropped: str, said_by: str | None, reason: str) -> None:
    """Log ``dropped`` unless it was logged for this peer and reason lately."""
    key = (dropped, said_by, reason)
    if key in _logged:
        _logged.move_to_end(key)
        return
    _logged[key] = None
    if len(_logged) > REFUSALS_LOGGED_MAX:
        _logged.popitem(last=False)
    log.debug(dropped, said_by=said_by, reason=reason)
