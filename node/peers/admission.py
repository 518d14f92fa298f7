"""Who may link with this node, and what this node was told when it may not.

Devices (``crdt.linkproof``, ``node.peers.transport``): every link proves both keys when
both nodes have them. A dialer must be a member of the cluster unless it holds the
cluster secret or a CA certificate (``admit``); a dialed device must be a member too,
except the one at an address given with ``--peer`` (a new device pairs by dialing an
address it was told; it learns the membership from there), or one whose link rests on
the secret or a certificate our CA verified (``credential``: not a plain http://
address, where none is asked for). A removed device is refused either way and its links
close when the removal arrives (``sweep``).

A peer that proves no device key (``keyless_refusal``) is a node of 0.2, which has
none, or a node leaving its proof out: a removed device could link again so. It links
only on the cluster secret or a CA certificate (dialed: only if this node gave the
secret, or verified the peer's certificate), and only while no membership record counts
here: from the first ``devices add`` or ``devices remove`` on (the README's upgrade,
once every node runs a version with keys), it is refused with ``KEY_REQUIRED``, unless
``--keyless-peers`` lets it link.

The other way round, a peer that refuses this device says why (``refused_by_peer``): in
the log once, until it changes, and as the link's ``refused`` for people. A removal it
signs is believed only from a member, or from the device at a ``--peer`` address, and
then kept (``node.peers.links.Removed``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from node.config import Config
from node.device import DeviceKey
from node.devices import Devices
from node.log_window import LineWindow, may_log
from node.peers.link_errors import LinkRefused, Refusal
from node.peers.links import (
    Removed,
    member_name,
    refusal_for,
    removal_text,
    waiting_text,
)
from node.peers.runner import Runner
from node.peers.transport import DEVICE_REMOVED, KEY_REQUIRED, NOT_MEMBER, Proven
from node.peers.waiting import Waiting

#: Devices remembered as having given a wrong cluster secret (each logged once).
WRONG_SECRETS_KEPT_MAX = 1024
#: Peers remembered as refused for proving no device key (each logged once).
KEYLESS_KEPT_MAX = 1024
#: Addresses whose last refusal of this device is remembered (``Admission._refusals``).
REFUSALS_KEPT_MAX = 1024
#: Devices remembered as logged waiting to be added here (each logged once).
WAITING_KEPT_MAX = 1024
#: Devices remembered as having refused this one as waiting to be added (``peer link
#: up`` with each says it was added since).
WAITED_ON_KEPT_MAX = 1024
#: ``device waiting to be added`` lines logged per ``CLAIMED_LINES_WINDOW_S``, and
#: ``a peer gave a wrong cluster secret`` lines (each its own count): the device id and
#: address in them are what a dialer claims, and a dialer claiming a new id at each
#: request would have a line for each. The rest are counted, the count logged as the
#: next window opens (``lines not logged``).
CLAIMED_LINES_MAX = 10
#: The window of ``CLAIMED_LINES_MAX``, in seconds.
CLAIMED_LINES_WINDOW_S = 60.0
#: ``peer link proof refused`` lines logged per ``UNPROVEN_LINES_WINDOW_S``, and ``peer
#: link down`` lines of links that went away before they proved a key (each its own
#: count): a dialer admitted on a device id it claims (a member's, told in refusals)
#: proves nothing yet, and could have one for each request. The rest are counted, the
#: count logged as the next window opens (``lines not logged``).
UNPROVEN_LINES_MAX = 10
#: The window of ``UNPROVEN_LINES_MAX``, in seconds.
UNPROVEN_LINES_WINDOW_S = 60.0
#: The lines ``Admission.unproven`` bounds.
UNPROVEN_EVENTS = ("peer link proof refused", "peer link down")
#: Why an accepted link's handshake ended after this node signed its proof and before
#: the dialer's proved its key (``Admission.proofs_failed``): ``invalid``, the dialer's
#: proof did not verify or was malformed (a wrong key, a replayed proof, a frame over
#: ``MESSAGE_BYTES_MAX``); ``missing``, none came: the dialer closed the link, reset or
#: dropped its connection, or stayed silent for ``connect_timeout_s``, as one that only
#: wanted this node's signature does (a connection lost by a network fault once the
#: signature went out is counted here too: a dialer resets as easily, and would keep
#: out of ``missing`` if a reset were not); ``lost``, the connection was lost before
#: our proof went out (its send failed): no signature was given.
PROOF_FAILURES = ("invalid", "missing", "lost")
log = structlog.get_logger(__name__)


def _keep(kept: set[str] | dict[str, str | None], item: str, kept_max: int,
          value: str | None = None) -> None:
    """Remember ``item`` in ``kept`` (in a dict, with ``value``), emptied first once it
    holds ``kept_max`` and ``item`` is new: what is kept only spares lines (or a name
    for one), so forgetting all at once costs a line each again, no more."""
    if len(kept) >= kept_max and item not in kept:
        kept.clear()
    if isinstance(kept, dict):
        kept[item] = value
    else:
        kept.add(item)


class Admission:
    """Admission of peers' devices, and the refusals of this one, over the links in
    ``runners`` (``Gossip``'s, read and marked here)."""

    def __init__(self, config: Config, device: DeviceKey,
                 membership: Devices | None, runners: dict[str, Runner], *,
                 now: Callable[[], float]) -> None:
        self.config = config
        self.device = device
        self.membership = membership
        self.runners = runners
        self._now = now  # the event loop's clock
        #: The lines logged of a waiting device and of a wrong secret (``_may_log``).
        self._waiting_lines = LineWindow(CLAIMED_LINES_MAX, CLAIMED_LINES_WINDOW_S)
        self._wrong_secret_lines = LineWindow(CLAIMED_LINES_MAX, CLAIMED_LINES_WINDOW_S)
        #: The lines logged of links that failed before they proved a key, by event
        #: (``unproven``).
        self._unproven_lines = {
            event: LineWindow(UNPROVEN_LINES_MAX, UNPROVEN_LINES_WINDOW_S)
            for event in UNPROVEN_EVENTS}
        #: Accepted handshakes that ended without the dialer's proof, by
        #: ``PROOF_FAILURES`` reason, since start (the metrics read them).
        self.proofs_failed = dict.fromkeys(PROOF_FAILURES, 0)
        #: This device's removal, as a member told it when refusing a link (persisted).
        self.removed = Removed(config.data_dir, device.device_id)
        #: Devices that gave a wrong cluster secret, logged once (``admit``).
        self._wrong_secret: set[str] = set()
        #: Devices refused as waiting to be added, logged once (``refusing``).
        self._waiting: set[str] = set()
        #: The last devices refused as waiting, for ``clawsync status`` (bounded).
        self.waiting = Waiting()
        #: Peers refused for proving no device key, logged once (``keyless_refusal``).
        self._keyless: set[str] = set()
        #: The refusal last warned of (what the peer signed and whether it is believed,
        #: else its words), by dialed address, kept when its runner is forgotten: a
        #: peer's member list can name an address that refuses this device (a node of
        #: another cluster took a stopped node's port), which is forgotten after
        #: ``learned_failures_max`` refusals and learned again later.
        self._refusals: dict[str, str] = {}
        #: Devices that refused this device as waiting to be added since this process
        #: started (in memory only), until a link with each is up: its ``peer link up``
        #: says this device was added since (``added_since_refused``).
        self._waited_on: dict[str, str | None] = {}

    # -- peers' devices ----------------------------------------------------------------

    def is_member(self, device_id: str) -> bool:
        if device_id == self.device.device_id:
            return True
        return self.membership is not None and self.membership.is_member(device_id)

    def _own_name(self) -> str:
        """This device's name: as the membership names it, else the configured one."""
        return self.membership.name if self.membership else self.config.name

    def admit(self, device_id: str, *, shared: bool, wrong_secret: bool = False,
              remote: str | None = None) -> tuple[str, dict[str, Any], str] | None:
        """Why the device ``device_id`` may not link with us (code, signed detail, text
        for people), or None if it may: a member, or a holder of the cluster secret or a
        CA certificate (migration) that was not removed. ``wrong_secret``: it gave a
        cluster secret, not ours; if that is why it is refused, the refusal says so (its
        operator should hear of the secret, not of a device to add) and so does our log,
        once per device (it redials every few seconds), with its address ``remote``:
        both as the dialer claims them, nothing proven yet, so at most
        ``CLAIMED_LINES_MAX`` such lines a minute."""
        removal = self.membership.removal(device_id) if self.membership else None
        if removal is not None:
            return refusal_for(removal)
        if shared or self.is_member(device_id):
            return None
        waiting = waiting_text(self.device.device_id, device_id)
        if not (wrong_secret and self.config.cluster_secret is not None):
            # Our name, so that the waiting device names us to its user by it (signed).
            own = self._own_name()
            return (NOT_MEMBER, {"name": own} if own else {}, waiting)
        # Remembered only once logged: one held back by a full window is logged when
        # it dials in a later one (it redials until its secret is fixed).
        if device_id not in self._wrong_secret and self._may_log(
                self._wrong_secret_lines, "a peer gave a wrong cluster secret", log.warning):
            log.warning("a peer gave a wrong cluster secret", device_id=device_id,
                        peer=remote)
            _keep(self._wrong_secret, device_id, WRONG_SECRETS_KEPT_MAX)
        return (NOT_MEMBER, {"secret": "wrong"},
                f"{waiting}; or the cluster secret it gave does not match this node's")

    def refusing(self, device_id: str, code: str, detail: dict[str, Any], *,
                 remote: str | None) -> None:
        """A device that dialed us is refused (``admit``). One waiting to be added is
        logged at info, once (it redials every few seconds): its own log and status give
        the command to run here, and this node's user learns of it too. The id and the
        address are what the dialer claims (it proves its key only once admitted), so
        at most ``CLAIMED_LINES_MAX`` such lines a minute."""
        waits = code == NOT_MEMBER and "secret" not in detail
        if waits:
            self.waiting.seen(device_id, remote, self._now())  # every dial: its last
        if not waits or device_id in self._waiting:
            log.debug("peer device refused", device_id=device_id, code=code, peer=remote)
            return
        # No command: its name is the new device's to give, and its log gives it whole.
        if not self._may_log(self._waiting_lines, "device waiting to be added", log.info):
            # Not remembered: a real device dialing while forged ids fill the window is
            # logged when it dials in a later one (it redials every few seconds).
            return
        log.info("device waiting to be added", device_id=device_id, peer=remote)
        _keep(self._waiting, device_id, WAITING_KEPT_MAX)

    def waiting_rows(self) -> list[dict[str, Any]]:
        """The devices refused as waiting to be added that are still no member and not
        removed, newest first (``node.peers.waiting``): ids as their dialers claim them."""
        removed = self.membership.removed() if self.membership is not None else {}
        return self.waiting.rows(self._now(), lambda device: not self.is_member(device)
                                 and device not in removed)

    def unproven(self, event: str, say: Callable[..., Any], **fields: Any) -> None:
        """Log ``event`` (one of ``UNPROVEN_EVENTS``) with ``say`` for an accepted link
        that failed before it proved a key: at most ``UNPROVEN_LINES_MAX`` a window of
        each, as anyone reaching this node can make them."""
        if self._may_log(self._unproven_lines[event], event, say):
            say(event, **fields)

    def proof_failed(self, remote: str | None, reason: str) -> None:
        """An accepted link's proof did not verify, or was malformed: log it (bounded as
        ``unproven``) and count it."""
        self.proofs_failed["invalid"] += 1
        self.unproven("peer link proof refused", log.warning, peer=remote, reason=reason)

    def proof_missing(self, remote: str | None, reason: str, *, lost: bool = False) -> None:
        """An accepted link ended before the dialer proved its key: once this node's
        proof went out, before the dialer's came (or none came in time), ``missing``;
        with ``lost``, before ours could go out (its send failed: no signature was
        given). Log it (bounded as ``unproven``) and count it (``PROOF_FAILURES``)."""
        self.proofs_failed["lost" if lost else "missing"] += 1
        self.unproven("peer link down", log.info, peer=remote, reason=reason)

    def _may_log(self, lines: LineWindow, event: str, say: Callable[..., Any]) -> bool:
        """Whether a line ``event`` may be logged now (``node.log_window.may_log``)."""
        return may_log(lines, self._now(), event, say)

    def dialed_why(self, runner: Runner, proven: Proven | None) -> str | None:
        """Why the device at the other end of a link we dialed may not stay (``proven``:
        the key it proved, None if none), or None; a keyless one let in is marked
        ``keyless``, so that a membership record stored before its link is up ends it
        too. A keyless refusal is logged once per address (``keyless_refusal``)."""
        if proven is None:
            runner.keyless = self.keyless_refusal(shared=self.linked_shared(runner),
                                                  peer=runner.url) is None
            return None if runner.keyless else KEY_REQUIRED
        why = self.dialed_refusal(runner, proven)
        if why is not None:
            log.info("dialed device refused", peer=runner.url, device_id=proven.device_id,
                     code=why)
        return why

    def dialed_refusal(self, runner: Runner, proven: Proven) -> str | None:
        """Why a device we dialed may not stay linked: removed; or not a member, at an
        address we learned (one given with ``--peer`` pairs: see the module), over a link
        that rests on no cluster secret or verified certificate (``linked_shared``)."""
        if self.membership is not None and self.membership.is_removed(proven.device_id):
            return DEVICE_REMOVED
        if runner.learned and not self.is_member(proven.device_id) \
                and not self.linked_shared(runner):
            return NOT_MEMBER
        return None

    def keyless_refusal(self, *, shared: bool, peer: str | None) -> str | None:
        """Why a peer that proved no device key may not link with us (for people, and
        our log, once per ``peer``: it redials every few seconds), or None if it may (see
        the module). ``shared``: the link rests on the cluster secret or a CA
        certificate (``linked_shared``)."""
        if not shared:
            why = ("it proved no device key, and the link rests on no cluster secret or "
                   "certificate: nothing shows which device it is")
        elif self.config.keyless_peers or self.membership is None \
                or not self.membership.recorded():
            return None
        else:
            why = ("it proved no device key (a node of 0.2, or one leaving its key out), "
                   "and devices were added or removed in this cluster: upgrade that node, "
                   "or let such peers link with --keyless-peers")
        peer = peer or "?"
        if peer not in self._keyless:
            log.warning("peer refused: no device key", peer=peer, code=KEY_REQUIRED,
                        reason=why)
            _keep(self._keyless, peer, KEYLESS_KEPT_MAX)
        return why

    def credential(self, runner: Runner) -> str | None:
        """The shared credential ``runner``'s link rests on: ``cluster_secret`` (accepted
        on it, or dialed giving it), ``certificate`` (accepted on a client certificate of
        our CA, or dialed where the peer showed one our CA verified), or None. Having a CA
        is not enough: at a plain http:// address no certificate is asked for."""
        if runner.direction == "in":
            return "cluster_secret" if runner.gave_secret \
                else "certificate" if runner.shared else None
        if runner.secret and self.config.cluster_secret is not None:
            return "cluster_secret"
        return "certificate" if runner.certified else None

    def linked_shared(self, runner: Runner) -> bool:
        """Whether ``runner``'s link rests on a shared credential (``credential``): the
        peer's member list is asked for over it, and answered (a certificate our CA
        verified was shown in a handshake where this node showed its own, which
        ``--tls-ca`` needs)."""
        return self.credential(runner) is not None

    def sweep(self) -> None:
        """End every link to a device that may no longer link with us."""
        for runner in self.runners.values():
            self.recheck(runner)

    def recheck(self, runner: Runner) -> None:
        """End ``runner``'s link if its device may no longer link with us: up, or let in
        and still starting (its loop ends it before its hello goes out, or once up)."""
        if runner.state not in ("up", "connecting") or runner.drop is not None \
                or runner.dialing:
            # A dial under way has reached no one: ``Gossip._keep_dialed`` checks what it
            # proves. Its ``device`` is still its last link's: dropped for that device's
            # removal, a dial that then failed would have its address forgotten, though
            # another device (a member) may answer there.
            return
        if runner.keyless:
            # Let in (its dial or handshake checked it) before the first membership
            # record arrived, or while one did: before it is up, too.
            if self.keyless_refusal(shared=self.linked_shared(runner),
                                    peer=runner.url or runner.node):
                runner.drop = KEY_REQUIRED
                runner.wake.set()
            return
        if runner.device is None:
            return  # nothing proven to judge
        refused = self.admit(runner.device.device_id, shared=runner.shared)
        if refused is not None and (refused[0] == DEVICE_REMOVED
                                    or runner.direction == "in"):
            log.info("peer link closed: device no longer a member",
                     device_id=runner.device.device_id, code=refused[0])
            if refused[0] == DEVICE_REMOVED and self.membership is not None:
                runner.removal_push = self.membership.removal_records(
                    runner.device.device_id)
            runner.drop = refused[0]
            runner.wake.set()

    # -- this device, refused ----------------------------------------------------------

    def trusted(self, runner: Runner, device_id: str) -> bool:
        """Whether a removal signed by ``device_id`` is believed: a member's (or a former
        member's), or that of the device at an address given with ``--peer`` (trusted
        as far as linking with it, since a new device may not know the members yet)."""
        return not runner.learned or self.membership is None \
            or self.is_member(device_id) or self.membership.is_removed(device_id)

    def refused_by_peer(self, runner: Runner, exc: LinkRefused) -> None:
        """The peer turned this device away: say why (in the log once, until it changes),
        and remember a signed removal."""
        refusal = exc.refusal
        runner.removal, runner.waiting_on, taken = None, None, False
        runner.waiting_dials_failed = 0
        if refusal is None:
            runner.refused = str(exc)
        elif refusal.code == DEVICE_REMOVED:
            runner.removal = refusal
            if self.trusted(runner, refusal.by) and not self.removed.known:
                self.removed.record(refusal)
            taken = self.believed(runner, refusal) is not None
            runner.refused = self.removal_refused(runner, refusal)
        elif refusal.code == NOT_MEMBER and refusal.detail.get("secret") == "wrong":
            runner.refused = (f"refused by {refusal.by}: the cluster secret this node gave "
                              "does not match that node's (check --cluster-secret on both)")
        elif refusal.code == NOT_MEMBER:
            # With the name the member signed in its refusal: ``peer link up`` says it
            # while no membership record names the member here yet.
            named = member_name(refusal.detail)
            _keep(self._waited_on, refusal.by, WAITED_ON_KEPT_MAX, named)
            runner.waiting_on = refusal.by
            runner.refused = waiting_text(refusal.by, self.device.device_id,
                                          self._own_name(), member_name=named,
                                          address=runner.url)
        else:
            runner.refused = f"refused by {refusal.by} ({refusal.code})"
        # Told apart by what the peer said and whether this device believes it, not by
        # the words saying it: those of a removal change once a record names its
        # remover, and it is no news; a claim taken once its signer is a member is.
        said = str(exc) if refusal is None else f"{refusal.by} {refusal.text()} {taken}"
        if runner.url is None or self._refusals.get(runner.url) != said:
            log.warning("peer refused this device", peer=runner.url, reason=runner.refused)
            if runner.url is not None:
                if len(self._refusals) >= REFUSALS_KEPT_MAX:
                    self._refusals.clear()
                self._refusals[runner.url] = said

    def added_since_refused(self, device_id: str) -> tuple[bool, str | None]:
        """Whether ``device_id`` refused this device as waiting to be added before this
        link with it came up, since this process started (remembered in memory only:
        restarted before it was added, this device says nothing of it), asked once: a
        later link is no news; and the name it gave itself in that refusal, if any."""
        if device_id not in self._waited_on:
            return False, None
        return True, self._waited_on.pop(device_id)

    def believed(self, runner: Runner, refusal: Refusal) -> dict[str, Any] | None:
        """The removal this device believes (as told by a trusted peer, or as its record
        says), if ``refusal``, a peer's refusal of it as removed, says it: the peer is
        trusted (``trusted``) or repeats it; else None (a claim not taken)."""
        believed = self.own_removal()
        detail = refusal.detail
        if believed is not None and (self.trusted(runner, refusal.by) or (
                detail.get("by"), detail.get("at_ms")) == (believed["by"], believed["at_ms"])):
            return believed
        return None

    def removal_refused(self, runner: Runner, refusal: Refusal) -> str:
        """What a peer's refusal of this device as removed says, for people (and the
        log): the removal this device believes, if the peer is trusted (``trusted``) or
        repeats it; else what the peer claims, said to be not taken. An untrusted
        device's claim is never recorded: anyone with the cluster secret could make it;
        nor is it once a record makes that device a member, until it refuses this device
        again (``refused_by_peer``), which is said as the membership stands when read.
        The remover is named as the records name it now (``named``)."""
        believed = self.believed(runner, refusal)
        if believed is not None:
            return removal_text(self.named(believed))
        detail = refusal.detail
        claimed = {"by": str(detail.get("by")), "at_ms": detail.get("at_ms"),
                   "reason": str(detail.get("reason", ""))}
        said = f"refused by {refusal.by}: it says this device was " \
            f"{removal_text(self.named(claimed))}; "
        if self.trusted(runner, refusal.by):
            return said + ("it was no member this device knew when it said so, and is "
                           "known now: that is taken as this device's removal at its "
                           "next refusal")
        return said + "it is no member this device knows, so that is not taken as this " \
            "device's removal"

    def refusal(self, runner: Runner) -> str | None:
        """Why ``runner``'s peer refuses this device, for people (``Rows``): a removal
        with its remover named as the records name it now, not as when it was told. A
        remover no record named then is named once one does, as ``removed_text`` names
        it: ``clawsync status`` and the console leave out a refusal that repeats that
        sentence, and would say the removal twice. Whether the removal is believed stays
        as when it was told (a claim of a device not trusted then is taken only when a
        peer trusted says it again), but whether its teller is a member is read now."""
        if runner.refused is not None and runner.removal is not None:
            return self.removal_refused(runner, runner.removal)
        return runner.refused

    def forget_refusal(self, url: str) -> None:
        """A dial of ``url`` connected, or failed: a later refusal there is news again
        (after a failure, status no longer shows the one before)."""
        self._refusals.pop(url, None)

    def own_removal(self) -> dict[str, Any] | None:
        """This device's removal (``GET /v1/node``'s ``removed``): as a member told it
        when refusing a link, or else as the record of it stored here. A node no one
        refuses a dial to (a hub, which dials no one) learns it only by the record,
        which reaches it before its links close; ``told_by`` is then null."""
        told = self.removed.view()
        if told is not None or self.membership is None:
            return told
        return self.membership.own_removal()

    def named(self, removal: dict[str, Any]) -> dict[str, Any]:
        """``removal`` with its remover named for people, if a record names it here
        (``Devices.who``): the name as the tables show it (``shown_name``), so that every
        reader of the sentence (the CLI, the console, the API) tells a name typed
        ``\\u3164`` from one holding U+3164."""
        return self.membership.named(removal) if self.membership is not None else removal
