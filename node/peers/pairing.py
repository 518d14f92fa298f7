"""One link per pair of nodes: what a hello that names the peer settles, and what goes
when the link that named it ends.

Whatever addresses two nodes know each other by, once a link's hello names the peer, a
second link to the same node is dropped (of a link each of the two dialed, both keep the
one dialed by the smaller node id; of two we dialed, the older), and a dialed address
that stands for a node already linked waits on standby (``Gossip._standby`` asks
``linked_elsewhere``). A dial dropped as a second link, by us or by the peer, reached the
node all the same: its address is live, and member lists say so while the node's link
lasts (``Learning.reached_as``).

``node.peers.gossip`` runs the links; the link's loop (``node.peers.driver``) tells
``identified`` and ``ended`` here.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from node.peers.admission import Admission
from node.peers.learning import Learning
from node.peers.rows import Rows
from node.peers.runner import Runner, dropped_by_peer, may_be_kept
from node.peers.transport import DUPLICATE_LINK
from node.store import AsyncStore

log = structlog.get_logger(__name__)
#: What ``peer link up`` adds on the first link with a device that refused this one as
#: waiting to be added (``peer refused this device``) since this process started.
ADDED_NOTE = "this device was added since it was refused"


class Pairing:
    """Which link to each node is kept, and what a link that names its peer tells the
    other parts. ``reached`` is told when a peer was just reached (``Gossip._reached``),
    ``learn`` when a dial first names its peer and may be asked for members
    (``Learning.learn_from``, in a task of its own)."""

    def __init__(self, astore: AsyncStore, runners: dict[str, Runner], learning: Learning,
                 rows: Rows, admission: Admission, *, reached: Callable[[], None],
                 learn: Callable[[Runner], None], stopping: Callable[[], bool]) -> None:
        self.astore = astore
        self.runners = runners
        self.learning = learning
        self.rows = rows
        self.admission = admission
        self._reached = reached
        self._learn = learn
        self._stopping = stopping

    def identified(self, runner: Runner) -> None:
        """A hello named the peer, first on this link or anew: remember the address's
        node id (so member lists name it), and keep one link per node; a peer dialed
        with a secret or CA is asked which nodes it knows now, not at the next round."""
        first, before = runner.identified_as is None, runner.identified_as
        runner.identified_as = node = runner.node
        if before is not None and before != node:
            # A new id on the same link (its origin retired): the old id's link ended
            # here, and what it said of its addresses goes with it.
            self.ended(runner, before)
        if node is not None:
            self.rows.back(node)
        if runner.device is not None:
            # A member linked: back, maybe at the address its record names.
            self.learning.elsewhere.pop(runner.device.device_id, None)
        if runner.url is not None and runner.direction == "out":
            self.learning.members[runner.url] = node
        if node is not None and runner.direction == "in":
            # The address it advertises now (None: none; it moved behind a NAT):
            # member lists say linked of it, not of one it moved from.
            self.learning.advertises(node, runner.url)
        # It is back: the link's address, and the one it advertises, may be learned
        # again at once; not another it was forgotten under (one it moved from is dead).
        advertised = self.learning.advertised_by.get(node) if node is not None else None
        self.learning.forgotten.reached(runner.url.rstrip("/") if runner.url else None,
                                        advertised)
        self._reached()
        for other in list(self.runners.values()):
            if node is not None and (dropped := dropped_by_peer(other, runner)) is not None:
                # The peer dropped our dial there for this link, whose hello came after
                # its close: a live address all the same, as below. Counted once: a
                # later link to the node says nothing of that address.
                self.learning.reached_as_duplicate(node, dropped)
                other.second_link = None
            if other is runner or other.linked_to != node:
                continue
            loser = self.duplicate(runner, other)
            if loser is not None and loser.drop is None:
                log.info("duplicate peer link dropped", peer=node, link=loser.key)
                loser.drop = DUPLICATE_LINK
                loser.wake.set()
                if node is not None and loser.direction == "out" and loser.url is not None:
                    # Our dial reached it there: a live address, though the link kept is
                    # the one it dialed, which may name none (it advertises nothing).
                    self.learning.reached_as_duplicate(node, loser.url.rstrip("/"))
        if first and runner.drop is None:
            self._log_up(runner, node)
        if first and runner.direction == "out" and runner.drop is None \
                and self.admission.linked_shared(runner) and not self._stopping():
            self._learn(runner)

    def _log_up(self, runner: Runner, node: str | None) -> None:
        """Say that a link is up, once per link: at its first hello, the one that names
        the peer, and not for a second link to the same node, dropped above. After a
        refusal (``peer refused this device``), this line is the news that the device
        was added, and says so (``note``) on the first link with the device that refused
        it. Named as the link's ``peer link down`` names it (a dialed address, or an
        accepted link's key), with the device as the records name it (or as it named
        itself refusing this device, until they arrive); never a credential."""
        device = runner.device.device_id if runner.device is not None else None
        fields = self.named(runner)
        added, named = self.admission.added_since_refused(device) \
            if device is not None else (False, None)
        if named is not None:
            # Before the records naming a member that just added this device arrive: the
            # name it signed in its refusal.
            fields.setdefault("device_name", named)
        log.info("peer link up", peer=runner.url if runner.direction == "out" else runner.key,
                 direction=runner.direction, url=runner.url, node_id=node, device_id=device,
                 **{key: value for key, value in fields.items() if key != "device_id"},
                 **({"note": ADDED_NOTE} if added else {}))

    def named(self, runner: Runner) -> dict[str, str]:
        """The device at the other end of ``runner``'s link, for its log lines: its id
        once it proved its key, and its name once the records name it (an accepted
        link's key names only the node it said it was); no field for what is unknown,
        rather than "None"."""
        if runner.device is None:
            return {}
        device = runner.device.device_id
        membership = self.admission.membership
        member = membership.members().get(device) if membership is not None else None
        return {"device_id": device, **({"device_name": member.name} if member else {})}

    def ended(self, runner: Runner, node: str | None) -> None:
        """A link ended, which named ``node`` (None: its hello was not taken in): if it
        was the last link up to that node, what it said of its addresses goes
        (``Learning.unlinked``); a next link says anew. A dial the peer closed as a
        second link, once no link of that peer is left here that it may have kept
        (``_kept_here``), says nothing more: a next link of the peer's does not count
        its address."""
        if node is not None and not self._linked(node, besides=runner):
            self.learning.unlinked(node)
        for other in self.runners.values():
            if other is not runner and other.second_link is not None \
                    and not self._kept_here(other, besides=runner):
                other.second_link = None  # of that link's time: not the next one's

    def dial_ended(self, runner: Runner) -> None:
        """Our dial's link ended. If the peer closed it as a second link, its hello not
        taken in, while the link it kept is up and named already, the dial reached the
        node all the same: its address is live while that link lasts (``identified``
        counts a dial closed so before the kept link is named; this dial, waiting on
        standby while the node is linked, names nothing that would count it later). Not
        when another device than that link's closed it (``by_same_peer``). And none is
        kept at all when no link of that peer is left here (``_kept_here``)."""
        if runner.second_link is None:
            return
        for other in list(self.runners.values()):
            node = other.linked_to
            if node is not None and (dropped := dropped_by_peer(runner, other)) is not None:
                self.learning.reached_as_duplicate(node, dropped)
                runner.second_link = None  # counted once, as in ``identified``
                return
        if not self._kept_here(runner, besides=runner):
            runner.second_link = None  # the link it kept ended already

    def _kept_here(self, dial: Runner, *, besides: Runner) -> bool:
        """Whether a link may be up here, other than ``dial`` and ``besides``, that the
        peer which closed ``dial`` as a second link kept instead (``may_be_kept``). The
        link kept is this node's already when the peer closes the dial: it closes it once
        it has our hello on the link kept, sent once that link's runner is here."""
        closed = dial.second_link
        assert closed is not None
        return any(link is not dial and link is not besides and may_be_kept(closed, link)
                   for link in self.runners.values())

    def duplicate(self, new: Runner, old: Runner) -> Runner | None:
        """Which of two links to one node ends: both nodes must pick the same one."""
        own, peer = self.astore.node_id, new.node or ""

        def dialer(runner: Runner) -> str:
            return own if runner.direction == "out" else peer

        if dialer(new) != dialer(old):
            return new if dialer(new) > dialer(old) else old
        if dialer(new) == peer:
            return None  # both dialed by the peer: it drops one, and so ends ours
        return new

    def linked_elsewhere(self, runner: Runner) -> bool:
        """Whether another link is up to the node this address last reached."""
        return self._linked(runner.node, besides=runner)

    def _linked(self, node: str | None, *, besides: Runner) -> bool:
        """Whether a link other than ``besides`` is up to ``node``."""
        return any(other is not besides and other.linked_to == node
                   for other in self.runners.values())

