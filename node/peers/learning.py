"""Member addresses, learned from peers and from the membership records.

Links come from ``--peer`` URLs, from peers that dial us, and from members learned from
peers (``/peer/v1/members``), so a new device needs one address. Every round
(``members_interval_s``, and at once when the membership changes) this node asks the
peers it dialed over a link resting on the cluster secret or a verified certificate
which nodes they know and dials the ones it does not (``learn_once``), and dials member
devices at the addresses their records advertise (``dial_members``): the introducer.
A learned address that fails too often is forgotten and held off from peers' lists for
a while (``sync.peer.forgotten``).

A member's record may still name an address where another device answers now (the
member moved, and a device that is no member, or a removed one, took its port): our
dial there is refused (``Admission.dialed_refusal``) and given up. That member is not
dialed there again, round after round, until its record changes, a link with it comes
up (``answered_by``), or the device that answered is a member (a dial there then stays
linked): the device there, if it holds the cluster secret, may dial us, and the member,
once back, may dial us (if it has our address); back at the same address under the
same name it writes no new record. Nor for ever: after
``ANSWERED_BY_HOLD_ROUNDS`` rounds, or ``ANSWERED_BY_HOLD_S`` seconds if sooner, it is
dialed once more (DHCP may have given its address back to the member, which cannot dial
a node that advertises none), and held off again if another device still answers. An
address from a peer's list where another device answered (no member, or a removed one)
is held off so too: the lister's word that a node is linked there says that something
answers, not which device; until that device is a member.

This node's own list (``member_list``) is what peers learn from in turn. A peer's list is
read in ``node.peers.member_lists``, and a failed ask for one is judged (its kind, a
hold, news or a repeat) in ``node.peers.list_failures``; the holds' lengths and records,
and the clock they count in, are ``node.peers.holds``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import structlog

from crdt.membership import Member
from node.checks import dial_problem
from node.config import Config
from node.devices import Devices
from node.peers import members_answer
from node.peers.addresses import RefusalsLogged
from node.peers.admission import Admission
from node.peers.holds import (
    ANSWERED_BY_HOLD_ROUNDS,
    ANSWERED_BY_HOLD_S,
    HELD_TEXT,
    Answered,
    Held,
    awake_s,
    hold_from,
    holds,
)
from node.peers.list_failures import (
    ASKING,
    BEFORE_THE_ASK,
    DIALING_MEMBERS,
    HANDLING,
    LEARNING,
    SWEEPING,
    TAKING_UP,
    RoundFaults,
    failure_holds,
    fault_of_ours,
    members_failed,
    members_listed,
    members_taken_up,
)
from node.peers.member_lists import lister, member_urls
from node.peers.members_fetch import fetch_members
from node.peers.runner import Runner, linked_devices, linked_nodes
from node.peers.waits import set_or_timeout
from node.store import AsyncStore
from sync.peer.forgotten import Forgotten, HeldOff

log = structlog.get_logger(__name__)

#: What is logged, once per member and address, of a member's record whose address no
#: node could dial (an older node took it): the member is not dialed at it.
MEMBER_ADDRESS_NOT_DIALED = "member address not dialed"

#: How many peers' member lists this node asks for at once (``Learning.asks``), a
#: members round's asks (``learn_once``) and those made as links come up
#: (``Gossip._learn_from``) together: a peer slow to answer (up to ``connect_timeout_s``,
#: a peer paused or behind a dead route) holds up no other's ask, while a node with many
#: links, or many coming up at its start, opens no more requests than this at a time.
#: Higher ends a round with many slow peers sooner, lower opens fewer connections at once.
MEMBER_ASKS_AT_ONCE = 4


class Learning:
    """The addresses of members this node knows, and the rounds that learn more.
    ``add_peer`` dials an address (``Gossip.add_peer``), ``redial`` ends a dial's
    back-off now (``Gossip._redial``)."""

    def __init__(self, config: Config, astore: AsyncStore,
                 membership: Devices | None, device_id: str, runners: dict[str, Runner],
                 own_urls: set[str], admission: Admission, *,
                 tls: Callable[[], ssl.SSLContext | None],
                 add_peer: Callable[..., Awaitable[bool]],
                 redial: Callable[[Runner], None],
                 http: Callable[[], aiohttp.ClientSession | None],
                 stopping: Callable[[], bool]) -> None:
        self.config = config
        #: The context dials are made with now (``Gossip.tls``: renewed files change it).
        self._tls = tls
        self.astore = astore
        self.membership = membership
        self.device_id = device_id
        self.runners = runners
        self.own_urls = own_urls
        self.admission = admission
        self._dial = add_peer
        self._redial = redial
        self._http = http
        self._stopping = stopping
        #: Set when the membership changed: the next round starts at once.
        self.changed = asyncio.Event()
        self.members: dict[str, str | None] = {}  # peer URL -> node id, when known
        #: The members' addresses a holder of the cluster secret gave (``--peer``, a link
        #: that gave the secret, a peer's list that says so): the only ones dialed with
        #: the secret. Any other came from a device or a certificate holder, who could
        #: name a server of their own to collect it.
        self.secret_urls: set[str] = set()
        #: Learned addresses forgotten after their failures, held off from peers' member
        #: lists for a while unless a lister says it is linked to the node there now
        #: (``sync.peer.forgotten``; at most ``forgotten_kept_max``).
        self.forgotten = Forgotten(config.sync)
        #: The addresses in peers' lists no node could dial that this node logged: each
        #: logged once, not every round (``node.peers.addresses``).
        self.refusals = RefusalsLogged()
        #: Per node, the address it advertises itself (None: none), as its hello gave it
        #: on a link it opened, or its own member list on one we dialed: a list says
        #: ``linked`` of it, and of the addresses the links use, not of others remembered
        #: for the node (``sync.peer.forgotten.linked_at``). Kept while a link to the node
        #: is up (``unlinked``): a node may come back advertising another. At most
        #: ``peers_max``, those of nodes with no link up dropped first.
        self.advertised_by: dict[str, str | None] = {}
        #: Per node, the addresses our dials reached it at, during its current link, whose
        #: links were dropped as duplicates of the one kept (``Pairing.duplicate``): live
        #: addresses, said ``linked`` like the kept link's (one the node closed itself too,
        #: before or after the kept link was named: ``Runner.second_link``,
        #: ``Pairing.dial_ended``). A node that advertises none and dials us too keeps,
        #: half the time, its own link, which names no address: its address, live, would
        #: be said linked nowhere. Kept while a link to it is up.
        self.reached_as: dict[str, set[str]] = {}
        #: The node a peer's list named at an address we dialed because of it, until the
        #: address is dropped: a held-off address names its node (``hold_off``) though
        #: its dial never reached it. At most ``peers_max``.
        self.listed_nodes: dict[str, str] = {}
        #: Per member device, its record when another device (no member, or a removed
        #: one) answered our dial at the address it names (``answered_by``): not dialed
        #: there again until that record changes, a link with the member comes up, that
        #: device is a member, or ``ANSWERED_BY_HOLD_ROUNDS`` rounds (or
        #: ``ANSWERED_BY_HOLD_S``) went by. At most ``peers_max``, the oldest dropped.
        self.elsewhere: dict[str, Held] = {}
        #: Per address where another device answered our dial, that device and until
        #: when a peer's list may not have the address dialed (``answered_by``), unless
        #: that device is a member now. At most ``peers_max``, the oldest dropped.
        self.answered: dict[str, Answered] = {}
        #: Members rounds run (``run``): what the hold-offs above count.
        self.rounds = 0
        #: Held by each ask for a peer's member list (``learn_from``), whoever makes it:
        #: ``MEMBER_ASKS_AT_ONCE`` at most in flight.
        self.asks = asyncio.Semaphore(MEMBER_ASKS_AT_ONCE)
        #: Faults of ours in a round, outside any link's ask (``one_round``), in
        #: handling the fault of an ask (``learn_from``), and on a link gone since its
        #: ask (``fault_of_ours``).
        self.round_faults = RoundFaults()

    async def run(self) -> None:
        """Ask dialed peers which nodes they know; dial the ones we do not. Also (and at
        once when the membership changes) dial member devices at their addresses, and
        close links of devices removed (``sweep``, in case a change was not told)."""
        while True:
            await set_or_timeout(self.changed, self.config.sync.members_interval_s)
            self.changed.clear()
            await self.one_round()

    async def one_round(self) -> None:
        """One members round (``run``): sweep, dial members, ask. A fault of ours in a
        step ends no other (a bug in the sweep stops no dial nor ask), and is logged at
        error the first time of its type in that step, a repeat at debug, until the step
        meets none in a round (``RoundFaults``): each round would meet it again."""
        self.rounds += 1
        for where, step in ((SWEEPING, self._sweep), (DIALING_MEMBERS, self.dial_members),
                            (ASKING, self.learn_once)):
            try:
                await step()
            except Exception as exc:
                self.round_faults.fault(exc, where)
            else:
                self.round_faults.clean(where)

    async def _sweep(self) -> None:
        """Close the links of devices removed (``Admission.sweep``), a round's first step."""
        self.admission.sweep()

    async def dial_members(self) -> None:
        """Dial each member device's advertised address that no link reaches yet (the
        introducer: a new device learns the others from the records it replicated).
        Not once this device's removal is known, told or stored: each would refuse it."""
        if self.membership is None or self.admission.own_removal() is not None:
            return
        linked = linked_devices(self.runners.values())
        members = self.membership.members()
        for device_id, member in list(members.items()):
            if device_id == self.device_id or device_id in linked or member.address is None:
                continue
            if self._member_held(device_id, member, members):
                continue  # another device answered there, and the hold still runs
            problem = dial_problem(member.address)
            if problem is not None:  # an older node took it: every dial fails, for good
                self._unusable_member_address(device_id, member.address, problem)
                continue
            # A member proves its key: the secret is not sent to an address any member
            # may have written in a record (it would hand the secret to whoever is there).
            if await self._dial(member.address, learned=True, secret=False):
                log.info("dialing member", device_id=device_id, url=member.address)

    def _unusable_member_address(self, device_id: str, address: str, problem: str) -> None:
        """Warn, once per member and address (``refusals``), that the member's record
        names an address no node could dial, and how to give another. The address is
        not shown: an older node may have taken one holding a password."""
        if self.refusals.first(MEMBER_ADDRESS_NOT_DIALED, f"{device_id}\0{address}", problem):
            log.warning(MEMBER_ADDRESS_NOT_DIALED, device_id=device_id,
                        reason=f"its address {problem}",
                        fix=f"clawsync devices add {device_id} --address URL")

    async def learn_once(self) -> None:
        """Ask each peer this node dialed for its member list (``learn_from``, at once
        but for ``MEMBER_ASKS_AT_ONCE``): one whose answer is slow delays no other's.
        A fault of one ask is logged and ends no other; a cancel (the node's stop)
        ends them all, and is raised."""
        # A task group: a cancel of the round cancels every ask and is raised once all
        # ended (each ask logs its own faults, ``learn_from``: a fault raised would
        # cancel the others).
        async with asyncio.TaskGroup() as asks:
            for runner in [r for r in self.runners.values() if r.direction == "out"]:
                asks.create_task(self.learn_from(runner), name="members-ask")

    async def learn_from(self, runner: Runner, link: int | None = None) -> None:
        """Ask the peer ``runner`` dialed which nodes it knows; dial those not linked
        (``_learn_from``), once one of the ``MEMBER_ASKS_AT_ONCE`` slots (``asks``) is
        free: asks made as links come up wait with a round's. Its checks are made once
        the slot is taken: the link may have ended while the ask waited. An ask made as
        link number ``link`` came up (``Runner.links``) is dropped if another link is up
        by then: that link made its own ask, and a peer whose links come and go would
        pile up asks (a round's asks, ``link`` None, take the link up then).

        Raises nothing but a cancel: a fault of ours, before the ask (the link's checks),
        in it, taking up the list read or telling how the ask went (``LEARNING``: judging
        a failure, clearing old ones), is logged at error once per type and place for
        the peer, on whichever of its links, again at debug (``fault_of_ours``,
        ``members_failed``); one met on a link gone since the ask, or handling such a
        fault (``HANDLING``), once per type and place for the node (``RoundFaults``):
        each round, and each ask as a link comes up, would meet it again, and an ask in
        a task of its own would pass it to no one."""
        try:
            async with self.asks:
                if link is not None and runner.links != link:
                    return
                await self._learn_from(runner)
        except Exception as exc:  # telling how the ask went (judging a failure, clearing
            # old ones): those before the ask, in it and taking up its list are told in
            # _learn_from, each by its place
            try:
                fault_of_ours(runner, runner.links, exc, LEARNING, self.round_faults)
            except Exception as fault:  # judging the fault failed: the peer's memory
                # of faults is no place to keep it, and each round would meet it again
                self.round_faults.fault(fault, HANDLING, peer=runner.url)

    async def _learn_from(self, runner: Runner) -> None:
        """Ask for the list, and dial what it names (``learn_from``). Only over a link
        that rests on the cluster secret or a certificate our CA verified
        (``Admission.linked_shared``): the peer lists its members for no one else, and a
        node with a CA would be answered 401 at every round by each peer it reaches at
        an http:// address, where no certificate is shown."""
        try:
            http = self._http()
            if runner.state != "up" or runner.url is None or http is None \
                    or self._stopping() or not self.admission.linked_shared(runner) \
                    or failure_holds(runner, self.rounds):
                return
        except Exception as exc:  # a fault of ours before the ask: each round meets it
            fault_of_ours(runner, runner.links, exc, BEFORE_THE_ASK,
                          self.round_faults)
            return
        link = runner.links
        try:
            listed = await fetch_members(
                http, runner.url, tls=self._tls(), config=self.config.sync,
                secret=self.config.cluster_secret if runner.secret else None,
                hide=(self.config.cluster_secret, self.config.token))
        except Exception as exc:  # a fault of ours too: in a task of its own, nothing
            # else would log it (each kind told and logged in ``list_failures``)
            members_failed(runner, link, exc, self.rounds, self.round_faults)
            return
        # Listed now: a failure of an ask later on this link is news (``members_failed``).
        members_listed(runner, link)
        try:
            await self._take_up(runner, listed)
        except Exception as exc:  # a fault of ours: each round would meet it again
            fault_of_ours(runner, link, exc, TAKING_UP, self.round_faults)
            return
        members_taken_up(runner, link)

    async def _take_up(self, runner: Runner, listed: dict[str, Any]) -> None:
        """Dial the nodes the list ``listed``, read from the peer of ``runner``, names
        and no link reaches (``_learn_from``)."""
        # Its address checked (a bad one logged) once; a lister that names no node id is
        # told from others by the address dialed.
        own = lister(listed, self.refusals, runner.url)
        if own.node is not None and own.node == runner.linked_to:
            self.advertises(own.node, own.url)  # the peer's own word, while its link is up
            self.forgotten.reached(own.url)  # live: linked, there or where we dialed it
        named = member_urls(listed, own, self.refusals, runner.url)
        for url, node, secret, linked, node_linked in named:
            if node == self.astore.node_id or node in linked_nodes(self.runners.values()):
                continue
            if node_linked:
                self.listed_linked(url, node)
            if not self.forgotten.may_learn(url, awake_s(), linked=linked):
                continue  # forgotten after its failures, and no news that it is back
            if self._answered_holds(url):
                continue  # another device answered there: linked, but not to be ours
            # The secret goes where a holder of it says one gave the address, and only
            # if that holder was itself given it: a peer we do not send the secret to
            # has no say in who gets it.
            if await self._dial(url, learned=True, secret=runner.secret and secret):
                log.info("learned peer", url=url, via=runner.url)
                if node is not None:
                    _put(self.listed_nodes, url, node, self.config.sync.peers_max)

    def answered_by(self, url: str, device_id: str) -> None:
        """Our dial of ``url`` reached ``device_id``, which may not stay linked (no
        member, or removed): each member whose record names ``url`` is not dialed there
        again until its record changes or a link with it comes up (``dial_members``),
        and no peer's list has it dialed (``learn_from``), until ``device_id`` is a
        member, for ``ANSWERED_BY_HOLD_ROUNDS`` rounds or ``ANSWERED_BY_HOLD_S``
        seconds, whichever ends first; then it is dialed once more, and held off again
        if another device still answers (logged once per record). A device that is no
        member but holds the cluster secret is not sent it at an address a record names
        (anyone who may write a record could collect it): it is kept only on a dial of
        its own."""
        until = hold_from(self.rounds)
        most = self.config.sync.peers_max
        _put(self.answered, url.rstrip("/"), Answered(device_id, until), most)
        for member_id, member in self._members_at(url):
            if member_id != device_id:
                held = self.elsewhere.get(member_id)
                if held is None or held.member != member:
                    log.info(HELD_TEXT, device_id=member_id, url=url,
                             answered_by=device_id, rounds=ANSWERED_BY_HOLD_ROUNDS,
                             hold_s=ANSWERED_BY_HOLD_S)
                _put(self.elsewhere, member_id, Held(member, device_id, until), most)

    def _member_held(self, device_id: str, member: Member,
                     members: dict[str, Member]) -> bool:
        """Whether the member ``device_id`` is not dialed at the address its record
        ``member`` names: another device answered there, the record is the same, the
        hold runs, and that device is no member (it may be one since: a record added
        it, and a dial there now stays linked; then the hold ends)."""
        held = self.elsewhere.get(device_id)
        if held is None or held.member != member or not holds(held.until, self.rounds):
            return False  # kept: dialed, refused again, it is not logged anew
        if held.device in members:
            del self.elsewhere[device_id]
            return False
        return True

    def answered_held(self) -> int:
        """How many addresses are not dialed now as another device answered there
        (``answered_by``): in peers' lists or members' records, each once, none dialed."""
        members = self.membership.members() if self.membership is not None else {}
        urls = {url for url, answered in self.answered.items()
                if holds(answered.until, self.rounds) and answered.device not in members}
        urls.update(held.member.address.rstrip("/")
                    for member_id, held in self.elsewhere.items()
                    if held.member.address is not None and members.get(member_id) == held.member
                    and holds(held.until, self.rounds) and held.device not in members)
        return len(urls - {runner.url for runner in self.runners.values()})

    def _answered_holds(self, url: str) -> bool:
        """Whether a peer's list may not have ``url`` dialed: another device answered
        there, the hold runs, and that device is no member (it may be one since: a
        record added it; then the hold ends)."""
        answered = self.answered.get(url)
        if answered is None:
            return False
        if holds(answered.until, self.rounds) and not (
                self.membership is not None
                and answered.device in self.membership.members()):
            return True
        del self.answered[url]
        return False

    def advertises(self, node: str, url: str | None) -> None:
        """``node`` said itself that it advertises ``url`` (None: no address). Past
        ``peers_max`` nodes, one with no link up goes first (an id a node left when its
        origin was retired), else the oldest."""
        self.advertised_by.pop(node, None)
        self._make_room(self.advertised_by)
        self.advertised_by[node] = url.rstrip("/") if url else None

    def reached_as_duplicate(self, node: str, url: str) -> None:
        """Our dial of ``url`` reached ``node`` and was dropped as a duplicate of another
        link to it (``reached_as``). Past ``peers_max`` nodes, one with no link up goes
        first, else the oldest, as in ``advertises``."""
        if node not in self.reached_as:
            self._make_room(self.reached_as)
        self.reached_as.setdefault(node, set()).add(url)

    def _make_room(self, by_node: dict[str, Any]) -> None:
        """Past ``peers_max`` nodes in ``by_node``, drop one: with no link up if any
        (an id a node left when its origin was retired), else the oldest."""
        if len(by_node) >= self.config.sync.peers_max:
            linked = linked_nodes(self.runners.values())
            del by_node[next((known for known in by_node if known not in linked),
                             next(iter(by_node)))]

    def unlinked(self, node: str) -> None:
        """The last link up to ``node`` ended: what it said it advertises, and where our
        dials reached it, go. A list says ``linked`` of its addresses again once a link
        is up; until it says what it advertises, of every address of it (``linked_at``):
        it may be back advertising another (or, an impostor with the secret, have named
        none for it)."""
        self.advertised_by.pop(node, None)
        self.reached_as.pop(node, None)

    def listed_linked(self, url: str, node: str | None) -> None:
        """A peer's list says its link to ``node`` is up now: a partition may
        have healed, so our dials of it that back off (configured or learned, by that
        address or another of that node) are made now, not up to ``backoff_max_s``
        later. A forgotten address that was relearned made that dial, with a fresh
        back-off, before addresses were held off (``sync.peer.forgotten``)."""
        for runner in list(self.runners.values()):
            if runner.direction == "out" and (runner.url == url
                                              or (node is not None and runner.node == node)):
                self._redial(runner)

    def advertised(self, url: str) -> bool:
        """Whether a member device advertises ``url`` in its membership record: such an
        address is dialed on, backing off, however often it fails (a laptop that is shut
        for the night), not forgotten like one a peer listed and taken up again at the
        next members round with a fresh back-off."""
        return any(self._members_at(url))

    def _members_at(self, url: str) -> Iterator[tuple[str, Member]]:
        """The member devices whose membership record names the address ``url``."""
        if self.membership is None:
            return
        url = url.rstrip("/")
        for member_id, member in self.membership.members().items():
            if member.address is not None and member.address.rstrip("/") == url:
                yield member_id, member

    def hold_off(self, url: str, node: str | None) -> float | None:
        """Forget the learned address ``url`` (of ``node``, if known) after its failures:
        how long it is held off from peers' lists, or None (not while this node reaches
        no peer at all: its own network is down, and the address may be fine)."""
        node = self.members.get(url) or node or self.listed_nodes.get(url)
        return self.forgotten.forgot(url, node, awake_s()) \
            if linked_nodes(self.runners.values()) else None

    def held_off(self) -> list[HeldOff]:
        """The learned addresses held off now after their failures (``Forgotten``)."""
        return self.forgotten.held_off(awake_s())

    def drop(self, url: str) -> None:
        self.members.pop(url, None)
        self.secret_urls.discard(url)
        self.undialed(url)

    def undialed(self, url: str) -> None:
        """Our dial of ``url`` is given up, though the address may stay listed (a second
        address of a node linked already): no node is kept for it from a list."""
        self.listed_nodes.pop(url, None)

    def member_list(self) -> dict[str, Any]:
        """What ``/peer/v1/members`` answers (``node.peers.members_answer``)."""
        return members_answer.member_list(
            self.astore.node_id, self.config.advertise_url, self.members,
            self.runners.values(), secret_urls=self.secret_urls, own_urls=self.own_urls,
            reached_as=self.reached_as, advertised_by=self.advertised_by)


def _put(kept: dict[str, Any], key: str, value: Any, most: int) -> None:
    """``kept[key] = value``, the newest last; past ``most`` entries the oldest goes."""
    kept.pop(key, None)
    while len(kept) >= most:
        del kept[next(iter(kept))]
    kept[key] = value
