"""Failed asks for a peer's member list (``Learning.learn_from``): the kind of each
failure, which kinds hold asks off on the link, and which are news (logged at info)
rather than repeats (at debug); and faults of ours before the ask, in it, while a list
read is taken up or telling how the ask went (``fault_of_ours``), told apart so too,
each by where it was met and its type. What is kept per peer is a
``node.peers.runner.MembersFailure`` (``Runner.members_failure``): a list read on the
current link clears the failures of the ask, faults of ours in it too
(``members_listed``), a list taken up whole all (``members_taken_up``); a new link, the
failures of the ask and its hold only (``members_link_up``). Faults of ours in a members
round outside any link's ask, met handling the fault of an ask, or met on a link gone
since the ask (``RoundFaults``), are told apart so too. At most ``FAULTS_KEPT_MAX``
faults are remembered per peer, and for the node.
"""

from __future__ import annotations

import structlog

from node.peers.holds import hold_from, holds
from node.peers.link_errors import LinkClosed
from node.peers.members_fetch import MembersRefused, MembersUnlisted
from node.peers.runner import MembersFailure, Runner

log = structlog.get_logger(__name__)

#: The faults of ours remembered as logged (each a place and an exception's type), per
#: peer across its links (``MembersFailure.faults``) and for the node (``RoundFaults``):
#: one per bug, so few; past this many, the one met longest ago is forgotten, and logged
#: at error again when met. Bounded all the same: nothing else caps the types a fault
#: may have. More than this many different faults met in turn are each logged at error,
#: with its traceback, each time. Higher logs fewer tracebacks again for a node with many
#: bugs at once, lower keeps less per peer.
FAULTS_KEPT_MAX = 16

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
#: Where a fault of ours was met: in the ask itself (``members_failed``), before it (the
#: link's checks), taking up the list read, or telling how the ask went (``LEARNING``:
#: judging a failure, clearing those a list read made old) (``fault_of_ours``). A fault
#: met in one is another bug than one of the same type met in another, and news.
IN_THE_ASK, BEFORE_THE_ASK, TAKING_UP = "in the ask", "before the ask", "taking up"
LEARNING = "learning"
#: Where a fault of ours in a members round, outside any link's ask, was met
#: (``RoundFaults``): sweeping the links of devices removed, dialing member devices,
#: making the round's asks. Each step runs though one before it failed.
SWEEPING, DIALING_MEMBERS, ASKING = "sweeping links", "dialing members", "asking"
#: Where a fault of ours met handling a fault of an ask was met (``RoundFaults``): the
#: peer's memory of faults (``fault_of_ours``) is no place to keep it.
HANDLING = "handling a fault"
#: The event of a fault of ours, logged at error with its traceback the first time.
FAULT_TEXT = "learning members failed"
#: The event of a repeat of a fault of ours, at debug: no failure of the ask (the list
#: may have been read).
FAULT_REPEAT_TEXT = "learning members failed (repeat)"


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


def members_failed(runner: Runner, link: int, exc: Exception, rounds: int,
                   node_faults: RoundFaults) -> None:
    """The ask for the member list of the peer of ``runner``, made on its link number
    ``link`` at members round ``rounds``, failed with ``exc``, of its kind (``kind_of``).
    Logged at info the first time of its kind on the link (a time-out, then a 401 for a
    wrong secret: news; a 503, then a 404 that starts a hold), again at debug (a
    time-out and a 503 in turn are each said once; at info again once the list was read
    on the link: ``Learning.learn_from``). ``UNEXPECTED`` (no failure of the ask itself,
    a fault of ours; called while it is handled) is one met ``IN_THE_ASK``
    (``fault_of_ours``): at error with its traceback the first time of its type in the
    ask for the peer, and kept so in an ask that overlapped another already held off
    too (on a link gone since, kept in ``node_faults``). A failure of the ask
    itself is neither kept nor logged for a link gone since the ask, or in an ask that
    overlapped another already held off (the one as the link came up, and a round's).

    Of a kind in ``HOLDING`` (an answer that will not change: refused, 401 or 403, whose
    cause is its configuration; a route it does not have, 404, 405, 501, from an older
    node or a server of another kind; a body that is no list) not asked again on that
    link for ``ANSWERED_BY_HOLD_ROUNDS`` rounds or ``ANSWERED_BY_HOLD_S`` seconds,
    whichever ends first (the list is a request of its own to the address, which another
    node may answer by then). No hold for what may pass by the next round (no answer, a
    time-out, a reset; a 502, 503, 504, a node's 503 when busy, a 500): the link is up,
    so a list read then may name nodes to dial."""
    kind = kind_of(exc)
    if kind == UNEXPECTED:
        fault_of_ours(runner, link, exc, IN_THE_ASK, node_faults)
        return
    if link != runner.links or failure_holds(runner, rounds):
        return
    before = _kept(runner, link)
    kinds = before.kinds if before is not None else frozenset()
    runner.members_failure = MembersFailure(
        link, kinds | {kind}, before.faults if before is not None else (),
        hold_from(rounds) if kind in HOLDING else None)
    _log(runner, exc, kind, repeat=kind in kinds)


def members_listed(runner: Runner, link: int) -> None:
    """A list was read on the link number ``link`` of ``runner``: a failure of the ask
    after it is news again (``members_failed``), a fault of ours in the ask too, and no
    hold runs. The faults of ours logged before the ask or taking up a list
    (``fault_of_ours``) stay until the list is taken up whole (``members_taken_up``):
    one met while taking up each round's list is read anew every round, and is not news
    for that."""
    failure = _kept(runner, link)
    if link != runner.links or failure is None:
        return
    ours = tuple(fault for fault in failure.faults if fault[0] != IN_THE_ASK)
    runner.members_failure = MembersFailure(link, frozenset(), ours, None) if ours else None


def members_taken_up(runner: Runner, link: int) -> None:
    """The list read on the link number ``link`` of ``runner`` was taken up with no
    fault: any failure or fault after it is news again."""
    if link == runner.links:
        runner.members_failure = None


def fault_of_ours(runner: Runner, link: int, exc: Exception, where: str,
                  node_faults: RoundFaults) -> None:
    """A fault of ours (``exc``, called while it is handled) on the link number ``link``
    of ``runner``, met ``where``: ``BEFORE_THE_ASK`` (the link's checks), ``IN_THE_ASK``
    (``members_failed``), ``TAKING_UP`` the list read on it (its addresses checked,
    dialed) or ``LEARNING`` (telling how the ask went). At error with its traceback the
    first time of its type and place for the peer since a list was taken up whole from
    it (one in the ask: read), on whichever of its links, again at debug: each round,
    and each link coming up, meets it again (kept across links: ``members_link_up``).
    Past ``FAULTS_KEPT_MAX`` of them for the peer, the one met longest ago is forgotten
    (news again). On a link gone since (a fault in the ask or taking up its list),
    remembered in ``node_faults`` instead, once per type and place for the node: the
    current link's failure stays its own, and a peer whose links come and go would
    meet it on each."""
    if link != runner.links:
        node_faults.fault(exc, where, peer=runner.url)
        return
    fault = (where, _type_of(exc))
    kept = _kept(runner, link)
    faults = kept.faults if kept is not None else ()
    runner.members_failure = MembersFailure(
        link, kept.kinds if kept is not None else frozenset(), _remembered(faults, fault),
        kept.until if kept is not None else None)
    _log(runner, exc, UNEXPECTED, repeat=fault in faults, where=where)


def members_link_up(runner: Runner) -> None:
    """A new link of ``runner`` came up (its number, ``Runner.links``): the failures of
    the ask and a hold were of the link before, and are dropped; the faults of ours
    logged stay, now kept for this link (``fault_of_ours``): a bug met on one link is
    met again on the next, and is no news for that."""
    failure = runner.members_failure
    runner.members_failure = None if failure is None or not failure.faults else \
        MembersFailure(runner.links, frozenset(), failure.faults, None)


def _remembered(faults: tuple[tuple[str, str], ...], fault: tuple[str, str]
               ) -> tuple[tuple[str, str], ...]:
    """``faults`` (the one met longest ago first) with ``fault`` met now: the last,
    and past ``FAULTS_KEPT_MAX`` the first forgotten.

    >>> _remembered((("a", "KeyError"), ("b", "KeyError")), ("a", "KeyError"))
    (('b', 'KeyError'), ('a', 'KeyError'))
    >>> full = tuple((str(n), "KeyError") for n in range(FAULTS_KEPT_MAX))
    >>> _remembered(full, ("x", "KeyError")) == (*full[1:], ("x", "KeyError"))
    True
    """
    return (*(met for met in faults if met != fault), fault)[-FAULTS_KEPT_MAX:]


def _kept(runner: Runner, link: int) -> MembersFailure | None:
    """What is kept of the asks on the link number ``link`` of ``runner``, if any."""
    failure = runner.members_failure
    return failure if failure is not None and failure.link == link else None


def _type_of(exc: BaseException) -> str:
    """The full name of the type of ``exc``.

    >>> _type_of(KeyError("k"))
    'builtins.KeyError'
    """
    fault = type(exc)
    return f"{fault.__module__}.{fault.__qualname__}"


def _reason(exc: BaseException) -> str:
    """What the fault ``exc`` says it is, for its repeat's line: its repr, else (a repr
    that fails is a bug of its own, and would end the round or the ask that logs it)
    the full name of its type.

    >>> _reason(KeyError("k"))
    "KeyError('k')"
    >>> class Broken(Exception):
    ...     def __repr__(self) -> str:
    ...         return self.missing
    >>> _reason(Broken())
    '...Broken'
    """
    try:
        return repr(exc)
    except Exception:
        return _type_of(exc)


def _log(runner: Runner, exc: Exception, kind: str, *, repeat: bool,
         where: str | None = None) -> None:
    """Log a failure ``exc`` of kind ``kind`` for the peer of ``runner``: a repeat at
    debug, news of a fault of ours (met ``where``) at error with its traceback (called
    while ``exc`` is handled), other news at info."""
    if kind == UNEXPECTED:  # a fault of ours says what it is (its repr), and where
        if repeat:
            log.debug(FAULT_REPEAT_TEXT, peer=runner.url, where=where,
                      reason=_reason(exc))
        else:
            log.exception(FAULT_TEXT, peer=runner.url, where=where)
    else:  # a failure of the ask, why it failed
        (log.debug if repeat else log.info)("members not listed", peer=runner.url,
                                            reason=str(exc))


class RoundFaults:
    """Faults of ours outside any peer's memory of its asks, met again at each round
    that follows: in a members round outside any link's ask (``Learning.one_round``:
    the sweep of links, the dials of members, the round's asks), handling the fault of
    an ask (``HANDLING``, ``Learning.learn_from``), and in an ask or taking up its list
    on a link gone since (``fault_of_ours``). Logged at error with its traceback the
    first time of its type and place (``SWEEPING`` ...), a repeat at debug, and news
    again after that place met no fault in a round (``clean``, for a round's steps
    only), or once forgotten past ``FAULTS_KEPT_MAX``. A fault of the same type met in
    another place is another bug. One met on a link gone since is never cleared: no
    later ask on that link can tell it passed, and a bug of ours is fixed by new code,
    so a restart, which starts this memory anew; a reset would only log its traceback
    again."""

    def __init__(self) -> None:
        #: The places and types of the faults met (a round's step: since it last met
        #: none), the one met longest ago first: few, one per bug (at most
        #: ``FAULTS_KEPT_MAX``).
        self.met: tuple[tuple[str, str], ...] = ()

    def fault(self, exc: Exception, where: str, peer: str | None = None) -> None:
        """The fault ``exc`` was met ``where`` (called while it is handled), in an ask
        of the peer at ``peer`` if one."""
        fault = (where, _type_of(exc))
        said = {"where": where} if peer is None else {"where": where, "peer": peer}
        if fault in self.met:
            log.debug(FAULT_REPEAT_TEXT, **said, reason=_reason(exc))
        else:
            log.exception(FAULT_TEXT, **said)
        self.met = _remembered(self.met, fault)

    def clean(self, where: str) -> None:
        """The round met no fault ``where``: the next one there is news."""
        self.met = tuple(fault for fault in self.met if fault[0] != where)
