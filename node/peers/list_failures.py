"""Failed asks for a peer's member list (``Learning.learn_from``): the kind of each
failure, which kinds hold asks off on the link, and which are news (logged at info)
rather than repeats (at debug). What is kept per link is a
``node.peers.runner.MembersFailure`` (``Runner.members_failure``); a list read on the
link clears it.
"""

from __future__ import annotations

import structlog

from node.peers.holds import hold_from, holds
from node.peers.runner import MembersFailure, Runner
from node.peers.transport import LinkClosed, MembersRefused, MembersUnlisted

log = structlog.get_logger(__name__)

#: The kinds of failure of an ask for a peer's member list (``members_failed``): each
#: logged at info the first time on a link (since a list was last read on it), again at
#: debug. Refused (401, 403) and not served (404, 405, 501, a body that is no list),
#: answers that will not change, hold asks off; unlisted (500, 502, 503, 504) and no
#: answer may pass by the next round. Unexpected ones (faults of ours) are told apart
#: by the exception's type: a fault of another type is news.
REFUSED, NOT_SERVED, UNLISTED = "refused", "not served", "unlisted"
NO_ANSWER, UNEXPECTED = "no answer", "unexpected"
#: The kinds that hold asks off on the link (``members_failed``).
HOLDING = frozenset({REFUSED, NOT_SERVED})


def kind_of(exc: Exception) -> str:
    """The kind of failure (``REFUSED`` ... ``UNEXPECTED``) an ask that raised ``exc``
    met. The most particular exceptions first: a refusal is also an answer with no list,
    and that, also a link closed."""
    if isinstance(exc, MembersRefused):  # 401, 403
        return REFUSED
    if isinstance(exc, MembersUnlisted):  # answered with no list
        return NOT_SERVED if exc.lasting else UNLISTED
    if isinstance(exc, LinkClosed):  # no answer: a time-out, a reset
        return NO_ANSWER
    return UNEXPECTED


def failure_holds(runner: Runner, rounds: int) -> bool:
    """Whether the last ask for the member list of the peer of ``runner`` failed on the
    current link in a way that holds asks off, and the hold still runs at members round
    ``rounds`` (``members_failed``)."""
    failure = runner.members_failure
    return failure is not None and failure.until is not None \
        and failure.link == runner.links and holds(failure.until, rounds)


def members_failed(runner: Runner, link: int, exc: Exception, rounds: int) -> None:
    """The ask for the member list of the peer of ``runner``, made on its link number
    ``link`` at members round ``rounds``, failed with ``exc``, of its kind (``kind_of``).
    Logged at info the first time of its kind on the link (a time-out, then a 401 for a
    wrong secret: news; a 503, then a 404 that starts a hold), again at debug (a
    time-out and a 503 in turn are each said once; at info again once the list was read
    on the link: ``Learning.learn_from``). ``UNEXPECTED`` (no failure of the ask itself,
    a fault of ours; called while it is handled) at error with its traceback, the first
    time of that type on the link: a fault of another type is another bug. Nothing for a
    link gone since the ask, or an ask that overlapped another already held off (the one
    as the link came up, and a round's).

    Of a kind in ``HOLDING`` (an answer that will not change: refused, 401 or 403, whose
    cause is its configuration; a route it does not have, 404, 405, 501, from an older
    node or a server of another kind; a body that is no list) not asked again on that
    link for ``ANSWERED_BY_HOLD_ROUNDS`` rounds or ``ANSWERED_BY_HOLD_S`` seconds,
    whichever ends first (the list is a request of its own to the address, which another
    node may answer by then). No hold for what may pass by the next round (no answer, a
    time-out, a reset; a 502, 503, 504, a node's 503 when busy, a 500): the link is up,
    so a list read then may name nodes to dial."""
    if link != runner.links or failure_holds(runner, rounds):
        return
    kind = kind_of(exc)
    before = runner.members_failure
    logged = before.logged if before is not None and before.link == link else frozenset()
    fault = type(exc)
    said = kind if kind != UNEXPECTED else f"{kind} {fault.__module__}.{fault.__qualname__}"
    runner.members_failure = MembersFailure(
        link, logged | {said}, hold_from(rounds) if kind in HOLDING else None)
    # A fault of ours says what it is (its repr); a failure of the ask, why it failed.
    reason = repr(exc) if kind == UNEXPECTED else str(exc)
    if said in logged:
        log.debug("members not listed", peer=runner.url, reason=reason)
    elif kind == UNEXPECTED:
        log.exception("learning members failed", peer=runner.url)
    else:
        log.info("members not listed", peer=runner.url, reason=reason)
