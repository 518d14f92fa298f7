"""One peer link's state (``Runner``), shared by the parts of ``node.peers.gossip``.

The links' life (``gossip``), loop (``driver``) and pairing (``pairing``) write it; who
may link (``admission``), the learning of member addresses (``learning``) and the status
rows (``rows``) read it. Kept apart from all of them so that each can name it without
importing the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field

from node.peers.budget import WriterBudget
from node.peers.holds import Hold
from node.peers.link_errors import Refusal
from node.peers.transport import DUPLICATE_LINK, Proven
from sync.peer.machine import PeerSync


@dataclass
class Runner:
    """One link's state: its machine, what wakes it, and how it is known."""

    key: str  # "url:<peer url>" for dialed links, "in:<node>:<n>" for accepted ones
    url: str | None
    machine: PeerSync
    direction: str  # "out" or "in"
    checkpoint_key: str | None  # where its checkpoint is kept: by URL, or by node id
    learned: bool = False  # dialed because a peer listed it, not because we were told
    secret: bool = True  # dialed with the cluster secret (if any): not a member's address
    state: str = "connecting"
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    #: Ends a dialed link's back-off early: another peer was just reached
    #: (``Gossip._reached``).
    redial: asyncio.Event = field(default_factory=asyncio.Event)
    saved: dict[str, int] | None = None
    saved_at: float = 0.0
    task: asyncio.Task[None] | None = None
    #: The node the link's hello named (None until then): a node takes a new id mid-link
    #: when its origin is retired, and the link is then identified again under it.
    identified_as: str | None = None
    drop: str | None = None  # set to end the link (a duplicate), read by its own loop
    budget: WriterBudget | None = None
    device: Proven | None = None  # the device that proved its key on the current link
    shared: bool = False  # accepted on the cluster secret or a CA certificate
    #: Dialed: the current link's peer showed a certificate our CA verified
    #: (``Link.peer_certified``).
    certified: bool = False
    #: Dialed: the links that came up at this address so far, the number of the current
    #: one; what an answer was asked on (``members_failure``).
    links: int = 0
    #: The last ask for the peer's member list failed (refused, answered with no list,
    #: no answer, a fault of ours in it, before it or taking up its list:
    #: ``node.peers.list_failures``, logged once for the link and kind of failure, a
    #: fault of ours once for the peer, whichever of its links met it), and
    #: until when it is not asked again on that link
    #: (``Learning.learn_from``): a refusal holds until what it takes (the cluster
    #: secret, a certificate of its own CA), its configuration, changes, with a restart,
    #: which ends the link. But the list is asked of ``url`` anew, which a load balancer,
    #: or a name now pointing elsewhere, may have another node answer.
    members_failure: MembersFailure | None = None
    #: The current link proved no device key and was let in: from then on, starting or
    #: up, each membership change checks it again (``Admission.sweep``).
    keyless: bool = False
    gave_secret: bool = False  # accepted on the cluster secret
    refused: str | None = None  # why the peer refused this device, for people
    removal: Refusal | None = None  # the peer's last refusal as removed, if it was that
    #: The member whose last refusal was of this device as waiting to be added (its
    #: device id, as it signed it): kept through failed dials (the member may restart to
    #: take the add), so that the first ``redials.WAITING_SOON_DIALS`` of them are
    #: dialed again within a pull interval (``redials.next_dial_at``); a dial that
    #: connects, or another refusal, clears it.
    waiting_on: str | None = None
    #: The dials failed in a row since the peer refused this device as waiting, or last
    #: answered it busy (``PeerBusy``: a member that asks for time is up, not restarting).
    waiting_dials_failed: int = 0
    #: Dropped as removed (``drop``): per origin, the seq up to which the link's last
    #: push goes, the records of the removal held here (``Devices.removal_records``).
    removal_push: dict[str, int] = field(default_factory=dict)
    failure: str | None = None  # why the last dial failed, until one connects
    #: When a dialed address backing off is dialed again (the event loop's clock): the
    #: back-off's time, or sooner while a member refuses this device as waiting to be
    #: added (``Gossip``); what its status row's ``retry_in_s`` counts down to.
    redial_at: float | None = None
    #: A dial of this address is under way: no link yet, nothing proven, and ``device``
    #: is still its last link's (``Admission.recheck`` leaves it to ``_keep_dialed``).
    dialing: bool = False
    #: The peer closed this dial's last link as a second link to it (``DUPLICATE_LINK``),
    #: and whose close that was, until this address is dialed again or the link the peer
    #: kept is gone (``Pairing``): that link may not be named here yet.
    second_link: SecondLink | None = None
    #: An accepted link: the node its peer named in the handshake (``NODE_HEADER``),
    #: known before its hello is taken in (``may_be_kept``); None for a dial.
    handshake_node: str | None = None

    @property
    def node(self) -> str | None:
        """The peer's node id, as its last hello gave it: on a link down, or up before
        its hello, the one of a link before (where a dialed address stood). Not a link
        to it: that is ``linked_to``."""
        return self.machine.peer_node

    @property
    def linked_to(self) -> str | None:
        """The node this link is up to now: the one its current hello named, None
        before that hello and once the link is down. The one meaning of "linked to a
        node" (``linked_nodes``, duplicate links, standby, member lists): a redial is
        "up" once its start is sent, with ``node`` still that of its last link."""
        return self.identified_as if self.state == "up" else None

    def dial_connected(self) -> None:
        """A dial of this address connected: the peer refuses this device no more (its
        refusal is no longer its word: ``removal`` is read only with it), nor did the
        dial fail."""
        self.refused = self.failure = None
        self.waiting_on, self.waiting_dials_failed = None, 0

    def dial_failed(self, failure: str) -> None:
        """A dial of this address failed (not reached, or no link in its answer): that
        is what is wrong now, not a refusal an earlier dial got (a member that refused
        this device as waiting to be added and then went down is to be reached first),
        though one as waiting still has it dialed again soon a few times
        (``waiting_on``). ``removal`` is left as it is, as by ``dial_connected``: it
        is read only with ``refused``."""
        self.failure, self.refused = failure, None
        if self.waiting_on is not None:
            self.waiting_dials_failed += 1

    def dial_busy(self, failure: str) -> None:
        """The peer was reached and asked for time (``PeerBusy``): that is why no link,
        and a refusal it said before still stands; its failed dials are counted anew from
        here (it is up)."""
        self.failure, self.waiting_dials_failed = failure, 0


def linked_devices(runners: Iterable[Runner]) -> set[str]:
    """Devices with a link up that proved their key."""
    return {r.device.device_id for r in runners
            if r.device is not None and r.state == "up"}


def linked_nodes(runners: Iterable[Runner]) -> set[str]:
    """Nodes with a link up, named by its hello (``Runner.linked_to``)."""
    return {r.linked_to for r in runners if r.linked_to is not None}


@dataclass(frozen=True, slots=True)
class MembersFailure:
    """What went wrong asking a peer for its member list (``Runner.members_failure``): a
    failed ask, or a fault of ours before it, in it, taking up the list read or telling
    how the ask went. The link it was on (``Runner.links``); the kinds of failure of the
    ask logged on that link (``node.peers.list_failures``: one in it is logged again at
    debug); the faults of ours logged on it or a link before to the peer, each where it
    was met and its exception's type, the one met longest ago first (at most
    ``node.peers.list_failures.FAULTS_KEPT_MAX``); and until when the list is not asked
    again (None: asked at the next round; a failure is logged once for the link and kind
    all the same). A list read on the link clears the failures of the ask, a fault of
    ours in it too (``members_listed``); a list taken up whole clears all
    (``members_taken_up``); a new link, all but the faults of ours
    (``members_link_up``)."""

    link: int
    kinds: frozenset[str]
    faults: tuple[tuple[str, str], ...]
    until: Hold | None


@dataclass(frozen=True, slots=True)
class SecondLink:
    """Who closed a dial's last link as a second link to it (``Runner.second_link``):
    the device that proved its key on that link (None: it proved none), and the node of
    the dial's last hello (its close may have come before that link's hello was taken
    in: then a link before named it, and another node may answer at the address now)."""

    device: str | None
    node: str | None


def second_link(runner: Runner, reason: str | None) -> SecondLink | None:
    """What ``runner``'s link, just ended with the peer's close ``reason``, says of a
    second link: a dial of ours the peer closed as one (``DUPLICATE_LINK``), or None."""
    if runner.direction != "out" or runner.url is None or reason != DUPLICATE_LINK:
        return None
    return SecondLink(runner.device.device_id if runner.device is not None else None,
                      runner.node)


def by_same_peer(closed: SecondLink, link: Runner) -> bool:
    """Whether the peer at the other end of ``link`` is the one that made the close
    ``closed``: the same device, where the close proved one (a link that proved none is
    not it); else the same node (a device that proved none is known by the node it
    names).

    >>> from types import SimpleNamespace as Link
    >>> device = Link(device_id="D1")
    >>> by_same_peer(SecondLink("D1", "n-old"), Link(device=device, node="n-new"))
    True
    >>> by_same_peer(SecondLink("D2", "n1"), Link(device=device, node="n1"))
    False
    >>> by_same_peer(SecondLink(None, "n1"), Link(device=device, node="n1"))
    True
    >>> by_same_peer(SecondLink("D1", "n1"), Link(device=None, node="n1"))
    False
    """
    if closed.device is not None:
        # Proven: only that device made it. The node of the dial's last hello may be
        # another's that answered at the address before.
        return link.device is not None and closed.device == link.device.device_id
    return closed.node is not None and closed.node == link.node


def may_be_kept(closed: SecondLink, link: Runner) -> bool:
    """Whether ``link`` may be the one the peer that made the close ``closed`` kept
    instead of the dial it closed: up or starting with the device the close proved;
    where it proved none, up to the node the dial's last hello named, or up before its
    own hello with a handshake that named that node (the race two nodes dialing each
    other at once run: the peer closes our dial before its kept link's hello is taken
    in here).

    >>> from types import SimpleNamespace as Link
    >>> def link(**kw): return Link(**{"state": "up", "dialing": False, "device": None,
    ...                                "linked_to": None, "handshake_node": None, **kw})
    >>> may_be_kept(SecondLink(None, "n1"), link(handshake_node="n1"))
    True
    >>> may_be_kept(SecondLink(None, "n1"), link(handshake_node="n2"))
    False
    >>> may_be_kept(SecondLink(None, "n1"), link(state="down", handshake_node="n1"))
    False
    """
    if closed.device is not None:
        return live(link) and by_same_peer(closed, link)
    if link.linked_to is not None:
        return closed.node == link.linked_to
    return live(link) and closed.node is not None and closed.node == link.handshake_node


def dropped_by_peer(dial: Runner, link: Runner) -> str | None:
    """The address of ``dial``, a dial of ours not up now, if the peer at the other end
    of ``link`` closed its last link as a second link to it (``Runner.second_link``)."""
    closed = dial.second_link
    if dial is link or dial.url is None or dial.linked_to is not None or closed is None \
            or not by_same_peer(closed, link):
        return None
    return dial.url.rstrip("/")


def live(link: Runner) -> bool:
    """Whether ``link`` is up or starting with the device it proved (not a dial under
    way, whose ``device`` is still its last link's)."""
    return link.state in ("up", "connecting") and not link.dialing
