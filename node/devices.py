"""The cluster's devices on a running node: ``crdt.membership`` kept up to date as records
are stored, this node's own or a peer's, and the commands that add and remove devices.

Not the peer address list that nodes gossip (``node.peers``): this is about devices (ids
of keys), added and removed by people.

* ``Devices.open`` folds every membership record held, then follows each commit: it reads
  the records of ``DEVICES_SESSION`` stored since (one read at a time, however many
  commits come), so a record is counted whichever way it arrived;
* a node counts itself a member (a cluster of one) until a record says otherwise, and
  writes its own ``device_added`` with the first membership record it writes (an add or
  a removal): pairing two nodes is then the union of their sets. (Not at its first
  start: a node that never pairs keeps an empty log, as before devices existed.)
* when a removal this node wrote is learned, it retires every origin of the removed
  device at the highest seq it holds (``EventStore.retire``): the events it made stay,
  and the retirement rules refuse whatever it numbers after. Other nodes do not retire
  on their own: they converge on the retirement as on any (``crdt.log.retire``);
* ``members()``, ``removed()``, ``is_member(id)`` answer from memory, and listeners
  (``add_listener``) are called on the event loop after every change.

Which device wrote a record is the store's answer (``origin_device``: the origin is bound
to a device by its ``device_key`` record); records of origins not bound count for nothing
until they are.

What it does on the store's threads (the reads, the writes that must see no record come
in between) is ``node.devices_store``'s. An add tries again as ``node.add_tries`` says.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Callable
from typing import Any

import structlog

from crdt import membership
from crdt.addresses import normal_address
from crdt.device import check_device_name, name_groups, name_key, parse_device_id, shown_name
from crdt.errors import InvalidInput, NotFound
from crdt.events import Draft
from crdt.log.records import StoredEvent
from crdt.membership import DEVICES_SESSION, Member, Membership, Removal
from node import removal_records
from node.add_tries import bears, tried
from node.device import KEY_FILE, DeviceKey
from node.devices_store import append_unless, read_since, retire_removed
from node.removal_records import Held
from node.store import AsyncStore, Commit

log = structlog.get_logger(__name__)

#: Pause before reading the membership records again after a failed read.
RETRY_S = 1.0

Listener = Callable[[], None]


class Keep(enum.Enum):
    """``Devices.add``'s address when none is given (``KEEP``)."""

    ADDRESS = "keep"


#: What an add of a removed device is told: how that device comes back, which only its
#: own folder can do (a removed id is never a member again).
COMES_BACK = (f"a removal is final, so a device comes back only with a new key (a new device "
              f"id): on it, stop the node, move {KEY_FILE} out of its data folder, start it "
              "and add the id it then shows")

#: ``Devices.add`` without an address: a member keeps the one it has.
KEEP = Keep.ADDRESS


class UnknownDevice(NotFound):
    """No record adds or removes that device id here."""


class RemovalIsFinal(InvalidInput):
    """The device id was removed: it cannot be added again (a new key is a new id)."""

    code = "device_removed"


class OwnRemoval(RemovalIsFinal):
    """This device's own removal was found as an add was checked again: every member
    refuses what it writes now, so a record written would look done and reach no other
    device (``POST /v1/devices`` answers it as its check before the add,
    ``refuse_if_removed``)."""

    def __init__(self, message: str, *, removal: dict[str, Any]) -> None:
        super().__init__(message)
        #: ``Devices.own_removal()``: what the answer says of the removal.
        self.removal = removal


class NameTaken(InvalidInput):
    """Another member has that name: two devices listed under one name cannot be told
    apart by people (``clawsync devices``, ``status``, the waiting lines)."""

    code = "name_taken"

    def __init__(self, message: str, *, field: str | None = None, member: str) -> None:
        super().__init__(message, field=field)
        #: The member that has the name (``POST /v1/devices`` gives it as ``member``).
        self.member = member


class SelfRemoval(InvalidInput):
    """A node does not remove itself."""

    code = "self_removal"


class Devices:
    """This node's view of the cluster's devices (create with ``await Devices.open``)."""

    def __init__(self, astore: AsyncStore, device: DeviceKey) -> None:
        self._astore = astore
        self._device = device
        self._bindings: dict[str, str | None] = {}
        self._view = Membership(self._bindings.get)
        self._position = 0
        self._listeners: list[Listener] = []
        self._lock = asyncio.Lock()
        #: Held by ``add`` from its look at the members to its record stored: two adds
        #: at once would each find the name free. Not ``_lock``, which ``_append`` takes
        #: (``refresh``).
        self._adding = asyncio.Lock()
        self._dirty = False
        self._follower: asyncio.Task[None] | None = None
        self._closed = False
        self._name = device.device_id[:7]
        self._address: str | None = None
        #: Whether a membership record read so far names this device (counted or not).
        self._named = False
        #: The devices this node removed whose origins it retired (``_retire_removed``).
        self._retired: set[str] = set()
        #: Per device a record removes, those records (and the retirements of its
        #: origins this node wrote that ride along with them: ``removal_records.rides``)
        #: and where they are held here (``removal_records``). As many as removals read.
        self._removal_records: dict[str, list[Held]] = {}
        #: This node's origin when the records were last located: they may move with it.
        self._origin = astore.node_id

    @classmethod
    async def open(cls, astore: AsyncStore, device: DeviceKey, *, name: str,
                   address: str | None) -> Devices:
        """A started ``Devices`` (``start``)."""
        devices = cls(astore, device)
        await devices.start(name=name, address=address)
        return devices

    async def start(self, *, name: str, address: str | None) -> None:
        """Fold every record held and follow the store's commits; ``name`` and
        ``address`` are this device's, for its own ``device_added``."""
        self._name, self._address = name, address
        self._astore.add_commit_listener(self._committed)  # first: no commit slips by
        await self.refresh()

    async def close(self) -> None:
        self._closed = True
        self._astore.remove_commit_listener(self._committed)
        if self._follower is not None:
            await asyncio.gather(self._follower, return_exceptions=True)

    # -- the interface ---------------------------------------------------------------

    @property
    def device_id(self) -> str:
        """This node's own device id."""
        return self._device.device_id

    @property
    def name(self) -> str:
        """This device's name: as the membership records name it (``clawsync devices add
        <own id> --name`` renames it), else the configured one (``--name``)."""
        return self._view.name_of(self.device_id) or self._name

    def members(self) -> dict[str, Member]:
        """Member devices by id; this device too while no record names it (``at_ms``
        0: never recorded)."""
        members = self._view.members()
        own = self.device_id
        if own not in members and not self._view.is_removed(own):
            members[own] = Member(self._name, self._address, own, 0)
        return members

    def removed(self) -> dict[str, Removal]:
        return self._view.removed()

    def removal(self, device_id: str) -> Removal | None:
        """``removed().get(device_id)``, without building ``removed`` (``Membership``)."""
        return self._view.removal(device_id)

    def listed_members(self, told: bool = False) -> dict[str, Member]:
        """``members()`` as ``GET /v1/devices`` and ``GET /v1/peers`` list them: without
        this device once a member told it it was removed (``told``: ``Admission.removed``
        holds it), since the record of its removal never reaches it."""
        members = self.members()
        if told:
            members.pop(self.device_id, None)
        return members

    def name_groups(self, told: bool = False) -> list[list[str]]:
        """The members (``listed_members``) whose names read as one another's
        (``crdt.device.name_groups``), by name. A node refuses a new name a member has
        here, but two nodes adding at once, each before the other's record reached it,
        each find it free: once the records meet, people cannot tell the two apart until
        one is renamed."""
        return name_groups({device_id: member.name
                            for device_id, member in self.listed_members(told).items()})

    @property
    def position(self) -> int:
        """The last position of ``DEVICES_SESSION`` read: ``removed()`` holds what the
        records up to there remove (``node.peers.removals`` starts from both)."""
        return self._position

    def own_removal(self) -> dict[str, Any] | None:
        """This device's removal as its record, stored here, says it (no member told
        it: ``told_by`` and ``told_at_ms`` null), or None."""
        removal = self.removal(self.device_id)
        if removal is None:
            return None
        return {"by": removal.by, "at_ms": removal.at_ms, "reason": removal.reason,
                "told_by": None, "told_at_ms": None}

    def who(self, device_id: str) -> str:
        """``device_id`` for people, as ``clawsync status`` names a remover: the name a
        record gives it here, as the tables show it (``shown_name``), and the id; the id
        alone when no record names it."""
        name = self._view.name_of(device_id)
        return f"{shown_name(name)} ({device_id})" if name is not None else device_id

    def named(self, removal: dict[str, Any]) -> dict[str, Any]:
        """``removal`` (its ``by``, ``at_ms``, ``reason``) with its remover named as
        ``who`` names it, if a record names it here."""
        by = str(removal.get("by"))
        named = self.who(by)
        return removal if named == by else {**removal, "by": named}

    def is_member(self, device_id: str) -> bool:
        return self._view.is_member(device_id) or (
            device_id == self.device_id and not self._view.is_removed(device_id))

    def is_removed(self, device_id: str) -> bool:
        return self._view.is_removed(device_id)

    def recorded(self) -> bool:
        """Whether a membership record counts here (an add or a removal, this node's
        own or a peer's): the cluster has moved to device keys, so a peer that proves
        none is refused (``node.peers.admission``)."""
        return self._view.recorded()

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener()`` on the event loop after members or removed changed."""
        self._listeners.append(listener)

    # -- the commands ----------------------------------------------------------------

    async def add(self, device_id: str, name: str, address: str | Keep | None = KEEP
                  ) -> tuple[StoredEvent | None, Member]:
        """Add a device (or rename it, or change its address; None clears it): the record
        written, None if the device is a member under that name and address already.
        ``KEEP`` (not given): a member keeps the address it has (as it advertised it).
        ``RemovalIsFinal`` if the device was removed: nothing is written then, but where
        a peer's removal is stored right after the record (which then counts for
        nothing). ``OwnRemoval`` if this device's removal is found by a check (the
        caller checks it before: ``refuse_if_removed``). ``AddsKeepChanging`` after
        ``ADD_TRIES_MAX`` tries (``node.add_tries``)."""
        device_id = parse_device_id(device_id)
        async with self._adding:
            return await tried(lambda: self._add(device_id, name, address))

    async def _add(self, device_id: str, name: str, address: str | Keep | None
                   ) -> tuple[StoredEvent | None, Member] | None:
        """``add``'s checks and record, written only if no record that bears on them
        (``node.add_tries.bears``) came in after those the checks read (None: nothing
        written)."""
        read = self._position  # what the view below holds, till the first await
        held = self.members().get(device_id)
        said: str | membership.Unsaid | None
        if isinstance(address, Keep):
            # The address held, said again for nodes that take the last add's (before
            # ``crdt.membership`` took the last that says one); none held: say nothing,
            # so that an address another device gives concurrently is not cleared.
            address = held.address if held is not None else None
            said = address if address is not None else membership.UNSAID
        else:  # as the record says it: the scheme in lower case; not a string: refused
            said = address = normal_address(address) if isinstance(address, str) else address
        draft = membership.added(device_id, name, said)  # InvalidInput
        self._refuse_own_removal()  # come in since the caller's check (a try held back)
        removal = self.removal(device_id)
        if removal is not None:
            raise RemovalIsFinal(f"was removed by {self.who(removal.by)}; {COMES_BACK}",
                                 field="device_id")
        if held is not None and (held.name, held.address) == (name, address):
            return None, held
        if held is None or held.name != name:  # a name kept is not checked again
            check_device_name(name)  # InvalidInput: a character that hides text, or none shows
            self._refuse_taken(device_id, name)
        wanted, own = name_key(name), self.device_id
        stored = await self._append(
            draft, unless=(read, lambda record: bears(record, device_id, wanted, own)))
        if stored is None:
            return None
        self._refuse_own_removal()  # stored right after: the record reaches no other device
        member = self.members().get(device_id)
        if member is None:  # a peer's removal stored right after: the record counts for nothing
            by = getattr(self.removal(device_id), "by", None)
            raise RemovalIsFinal(f"was removed by {self.who(by) if by else 'a member'} as this "
                                 f"add was written; {COMES_BACK}",
                                 field="device_id")
        return stored, member

    def _refuse_own_removal(self) -> None:
        """``OwnRemoval`` if this device's removal is stored here."""
        removal = self.own_removal()
        if removal is not None:
            raise OwnRemoval(f"this device was removed by {self.who(str(removal['by']))}: "
                             "no other device takes what it writes now", removal=removal)

    def _refuse_taken(self, device_id: str, name: str) -> None:
        """``NameTaken`` if another member has ``name`` as people read it
        (``crdt.device.name_key``: "Phone", "phone " and "phone" in fullwidth letters are one
        name; letters of other scripts that look alike are not caught). Only a new name
        is checked: members that came to share one (two nodes adding concurrently, or a
        store of a version that let it) keep working, and keep their address on an add
        that does not rename them. A removed device's name is free again: the phone that
        replaces a lost one takes its name."""
        wanted = name_key(name)
        for other, member in sorted(self.members().items()):
            if other != device_id and name_key(member.name) == wanted:
                # Words for any client: the CLI adds its own command (``node.cli.devices``).
                raise NameTaken(
                    f"{name!r} is the name of the member {other}: give this device another "
                    "name, or first rename that member", field="name", member=other)

    async def remove(self, device_id: str, reason: str = "") -> tuple[StoredEvent | None,
                                                                         Removal]:
        """Remove a device for good; the record written (None: it was removed already)."""
        device_id = parse_device_id(device_id)
        if device_id == self.device_id:
            raise SelfRemoval("is this node's own device: remove it from another device "
                              "of the cluster (a node cannot cut itself off)",
                              field="device_id")
        draft = membership.removed(device_id, reason)  # InvalidInput
        held = self.removal(device_id)
        if held is not None:
            return None, held
        if device_id not in self.members():
            raise UnknownDevice(f"no device {device_id} is a member here")
        stored = await self._append(draft)
        assert stored is not None  # written whatever came in: no ``unless``
        removal = self.removal(device_id)
        assert removal is not None  # just written
        return stored, removal

    async def _append(self, draft: Draft, unless: _Unless | None = None
                      ) -> StoredEvent | None:
        """Append ``draft``, after this device's own add if no record names it yet;
        with ``unless`` (a position and a test), only if the devices session holds no
        record after that position that passes the test (None: nothing written)."""
        drafts = [draft]
        if not self._named:
            await self.refresh()  # a peer's record naming it may have come since
        if not self._named:
            # No --advertise-url: say nothing of the address, so that this later record
            # does not clear one a member gave with ``devices add --address``.
            address = self._address if self._address is not None else membership.UNSAID
            drafts.insert(0, membership.added(self.device_id, self._name, address))
        # Shielded, and waited for when the add is cancelled: drafts once queued are
        # committed anyway, and ``add`` must not give up ``_adding`` before they are
        # read back (a second add would find their name free).
        write = asyncio.ensure_future(self._write(drafts, unless))
        try:
            return await asyncio.shield(write)
        except asyncio.CancelledError:
            await _finished(write)
            raise

    async def _write(self, drafts: list[Draft], unless: _Unless | None
                     ) -> StoredEvent | None:
        if unless is None:
            appended = await self._astore.append(drafts)
        else:  # the look and the write in one call on the writer thread: nothing between
            after, bears = unless
            appended = await self._astore.write(
                lambda store: append_unless(store, drafts, after, bears))
        await self.refresh()
        return appended[-1].stored if appended else None

    # -- following the store ---------------------------------------------------------

    def _committed(self, commit: Commit) -> None:
        """After a commit that may have stored membership records: read them, once at a
        time."""
        if self._closed or not commit.touches(DEVICES_SESSION):
            return
        self._dirty = True
        if self._follower is None or self._follower.done():
            self._follower = asyncio.create_task(self._follow(), name="clawsync-devices")

    async def _follow(self) -> None:
        while self._dirty and not self._closed:
            self._dirty = False
            try:
                await self.refresh()
            except Exception:  # a closing store, a full disk: try again in a while
                log.warning("devices: could not read the membership records", exc_info=True)
                self._dirty = True  # commits outside the devices session do not retry
                await asyncio.sleep(RETRY_S)

    async def refresh(self) -> bool:
        """Take in the records stored since the last call; True if anything changed."""
        async with self._lock:
            waiting = {origin for origin, _ in self._view.unbound()}
            before, held, origin = self._position, dict(self._removal_records), self._origin
            new, bindings, writers, position, located = await self._astore.read(
                lambda store: read_since(store, before, waiting, held, origin))
            if located is not None:
                self._removal_records, self._origin = located
            self._bindings.update(bindings)
            self._position = position
            changed = self._view.refresh() if waiting else False
            own = self.device_id
            for stored in new:
                changed = self._view.add(stored.origin, stored.event) or changed
                self._named = self._named or _names(stored, own)
            # A new removal, or a record of a removed device (such as the
            # ``device_key`` binding an origin of it after the removal came).
            await self._retire_removed(writers)
        if changed:
            for listener in list(self._listeners):
                try:
                    listener()
                except Exception:
                    log.exception("devices: listener failed")
        return changed

    def removal_records(self, device_id: str) -> dict[str, int]:
        """Where the records removing ``device_id`` are held here, wherever this node's
        own origin moved them (``node.removal_records.locate``): per origin, the
        highest seq of one (empty: none read), and of the retirements of its origins
        this node wrote (``_retire_removed``) when only ``device_key`` records and
        retirements lie between those and what the push carries already. A link's last
        push to the device sends these origins up to there
        (``sync.peer.machine.PeerSync.push_through``)."""
        return removal_records.through(self._removal_records.get(device_id, []))

    async def _retire_removed(self, writers: set[str]) -> None:
        """Retire the origins of every device this node removed, at what it holds (an
        origin retired there already is left as it is), when a removal is new or one
        of ``writers`` (devices whose records were just read) is a removed device: a
        writer hop otherwise wasted on every membership or token record."""
        mine = [device for device, removal in self.removed().items()
                if removal.by == self.device_id]
        if self._retired.issuperset(mine) and writers.isdisjoint(mine):
            return
        held = {device: self._removal_records.get(device, []) for device in mine}
        retired, located = await self._astore.write(lambda store: retire_removed(store, held))
        self._retired.update(mine)  # after the write: a failed one is tried again
        self._removal_records.update(located)
        for device, origin, final_seq in retired:
            log.info("device removed: origin retired", device_id=device, origin=origin,
                     final_seq=final_seq)


#: ``Devices._append``'s ``unless``: a position of the devices session, and which
#: records stored after it keep the record from being written.
_Unless = tuple[int, Callable[[StoredEvent], bool]]


def _names(stored: StoredEvent, device_id: str) -> bool:
    """True if ``stored`` is a membership record naming ``device_id`` (counted or not)."""
    found = membership.read(stored.event)
    return found is not None and found[1] == device_id


async def _finished(task: asyncio.Future[Any]) -> None:
    """Wait for ``task`` to end, through further cancellations of the caller, which
    raises its own cancellation after: what ``task`` raised is not the caller's to say
    (its store's committer logs a failed write)."""
    while not task.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait([task])
    if not task.cancelled():
        task.exception()  # retrieved: the caller was cancelled, not failed by it
