"""Device membership: which devices belong to the cluster, as a pure fold of records.

Not to be confused with the peer *address* list that nodes gossip (``node.peers``,
"members" there): this module is about devices, named by their device ids
(``crdt.device``), added and removed by people.

Every device record is an ordinary event in the reserved session ``DEVICES_SESSION``, so
it replicates as every event does, and older nodes store and forward it as a kind they do
not know (``crdt.kinds``; like ``origin_retired``, none of these kinds is in ``KINDS``):

    {"type": "device_added", "device_id": <id>, "name": <text>, "address": <URL or null>}
                                       ("address" left out: the record says nothing of it)
    {"type": "device_removed", "device_id": <id>, "reason": <text, may be empty>}

The session also holds ``device_key`` (an origin bound to a device's key) and
``token_issued`` / ``token_revoked`` (an app's token); their names are here so that every
module reads them from one place.

The rule, the same on every node (a 2P-set of device ids):

* a device is a member iff some ``device_added`` names it and no ``device_removed`` does;
* a removal is final for its device id: a device comes back only with a new key (a new
  id). So a removal wins over every add, seen or concurrent, and nodes holding the same
  records agree, whatever order the records came in;
* a record counts only if its origin is bound to a device (``bound(origin)`` gives the
  device id, or None): that device is who added or removed;
* of several adds of one id, the last by ``(timestamp, id)`` gives its name; the last
  of those that say an address (a URL, or null: cleared) gives its address. An add that
  leaves ``address`` out says nothing of it: a device writes its own first add so when
  it has no ``--advertise-url``, and two devices that add each other with ``--address``
  before they link would otherwise each erase, by that later add of itself, the address
  the other gave it. Both picks are a maximum over a set, so nodes agree whatever order
  the records came in. (Nodes before this rule read a left-out address as null and take
  the last add's: they may show no address where a newer node shows one, as they did.)
  Of several removals, the first gives who removed it, when and why.

A record that only looks like one (a wrong field type, an id not in its written form, an
address that is no ``http(s)://`` text, in lower case: ``HTTP://h`` too, as every version
has read it) is kept as any event, and counts for nothing.
An add whose address is one of those but no node could dial (``check_address``: a user
name or password, a query or a fragment, no host, a port not between 1 and 65535),
whether it arrives now or was stored by a node whose check was only ``http(s)://``,
counts, with its address read as unsaid (``UNSAID``): left out of the record's fields,
so never shown and never dialed. It must count: nodes whose check was only
``http(s)://`` count it, and who is a member decides what a node admits, so all must
agree on that; only the address shown may differ from theirs. No node of this version
writes one (its own ``--advertise-url`` and ``POST /v1/devices`` are checked the same
way).

>>> from crdt.clock import Hlc
>>> from crdt.device import device_id, private_key_from_seed, public_bytes
>>> laptop, phone = (device_id(public_bytes(private_key_from_seed(bytes([n]) * 32)))
...                  for n in (1, 2))
>>> bound = {"o1": laptop}.get
>>> records = [("o1", added(laptop, "laptop").seal(Hlc(1, 0))),
...            ("o1", added(phone, "phone", "http://phone:8765").seal(Hlc(2, 0)))]
>>> view = Membership.of(records, bound)
>>> sorted(m.name for m in view.members().values()), view.is_member(phone)
(['laptop', 'phone'], True)
>>> view.add("o1", removed(phone, "lost").seal(Hlc(3, 0)))
True
>>> view.is_member(phone), view.removed()[phone].reason, view.removed()[phone].by == laptop
(False, 'lost', True)
>>> view.add("o1", added(phone, "phone again").seal(Hlc(4, 0)))   # removal is final
False
>>> view.name_of(phone), view.name_of(laptop), view.name_of("unknown")  # by its last add
('phone again', 'laptop', None)
>>> view.add("o1", added(laptop, "my laptop", UNSAID).seal(Hlc(6, 0)))  # says no address
True
>>> view.add("o1", added(laptop, "laptop", "http://laptop:8765").seal(Hlc(5, 0)))
True
>>> view.members()[laptop].name, view.members()[laptop].address
('my laptop', 'http://laptop:8765')
>>> view.add("stranger", added(phone, "sneaky").seal(Hlc(5, 0)))  # origin not bound
False
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from crdt.addresses import address_refusal, normal_address
from crdt.device import parse_device_id, stored_device_name
from crdt.errors import InvalidInput, LimitExceeded
from crdt.events import Draft, Event
from crdt.keys import check_name, utf8_len
from crdt.kinds import NODES_AGENT_ID

#: The reserved session of device, membership and token records (never forgotten).
DEVICES_SESSION = "clawsync:devices"
AGENT_ID = NODES_AGENT_ID
#: The kinds of record in ``DEVICES_SESSION``.
DEVICE_KEY = "device_key"
DEVICE_ADDED = "device_added"
DEVICE_REMOVED = "device_removed"
TOKEN_ISSUED = "token_issued"
TOKEN_REVOKED = "token_revoked"
MEMBERSHIP_KINDS = frozenset({DEVICE_ADDED, DEVICE_REMOVED})
#: Longest advertised address (a URL) and removal reason, in UTF-8 bytes.
ADDRESS_BYTES_MAX = 2048
REASON_BYTES_MAX = 256

#: Who signed a record: the device id of an origin, None if the origin is not bound.
Bound = Callable[[str], "str | None"]
SortKey = tuple[int, int, bytes]


@dataclass(frozen=True, slots=True)
class Member:
    """A member device: its name and advertised address (from its last add), who added
    it and when (its first add, in milliseconds since the epoch of the record's
    timestamp: a device re-advertising its address later does not become its adder)."""

    name: str
    address: str | None
    added_by: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class Removal:
    """A removed device: who removed it, when (ms) and why (its first removal), and the
    name it had, if an add of it is known."""

    by: str
    at_ms: int
    reason: str
    name: str | None = None


class Unsaid(Enum):
    UNSAID = "unsaid"


#: ``added``'s address when the record should say nothing of it (the key is left out).
UNSAID: Final = Unsaid.UNSAID


def check_address(value: object, field: str = "address") -> str | None:
    """An advertised address: None, or one a node could dial, as a node's own
    ``--advertise-url`` must be (``crdt.addresses``: ``http(s)://``, a host, a port
    between 1 and 65535, no user name or password, no query or fragment); the error
    never shows it.

    >>> check_address("http://u:hunter2@hub:7878")
    Traceback (most recent call last):
    ...
    crdt.errors.InvalidInput: address: holds a user name or password
    >>> check_address("HTTP://hub:7878")  # as ``added`` writes it
    'http://hub:7878'
    """
    if value is None:
        return None
    address = check_name(value, field, bytes_max=ADDRESS_BYTES_MAX)
    refusal = address_refusal(address)
    if refusal is not None:
        raise InvalidInput(refusal, field=field)
    # Written with its scheme in lower case: every version reads an add whose address
    # does not start "http://" or "https://" as no record (``_said_address``).
    return normal_address(address)


def check_reason(value: object, field: str = "reason") -> str:
    """A removal's reason: text of at most ``REASON_BYTES_MAX`` bytes, may be empty."""
    if not isinstance(value, str):
        raise InvalidInput("must be a string", field=field)
    size = utf8_len(value, field)
    if size > REASON_BYTES_MAX:
        raise LimitExceeded(f"is {size} bytes; the limit is {REASON_BYTES_MAX}", field=field)
    if value:
        check_name(value, field, bytes_max=REASON_BYTES_MAX)
    return value


def added(device_id: str, name: str, address: str | Unsaid | None = None) -> Draft:
    """The record that adds ``device_id`` (as typed: it is parsed) under ``name``, at
    ``address`` (None: clears it; ``UNSAID``: says nothing of it); ``InvalidInput``
    naming the field that is wrong. The name as records may hold it: a new name is
    checked further where it is given (``crdt.device.check_device_name``), a name a
    member has kept as it is."""
    payload: dict[str, Any] = {"device_id": parse_device_id(device_id),
                               "name": stored_device_name(name)}
    if address is not UNSAID:
        payload["address"] = check_address(address)
    return Draft(DEVICES_SESSION, AGENT_ID, DEVICE_ADDED, payload)


def shown(event: Event) -> dict[str, Any]:
    """``event.to_json()`` as clients are shown it: an add's address that no node could
    dial (``address_refusal``; an older node stored it, and it may hold a password) is
    left out, as the add is read (``UNSAID``: it says nothing of the address), and
    ``withheld`` names it, as ``forgotten_by`` marks a skeleton. Only what is shown
    changes: the stored bytes, and what peers are sent, stay the record's own, whose id
    the shown event carries (so its JSON, marked so, no longer hashes to that id).

    >>> from crdt.clock import Hlc
    >>> said = Draft(DEVICES_SESSION, AGENT_ID, DEVICE_ADDED, {"device_id": "D" * 52,
    ...     "name": "q", "address": "http://u:hunter2@hub"}).seal(Hlc(1, 0))
    >>> shown(said)["kind"]["name"], "address" in shown(said)["kind"], shown(said)["withheld"]
    ('q', False, ['address'])
    >>> shown(said)["id"] == said.id.hex(), said.payload["address"]
    (True, 'http://u:hunter2@hub')
    """
    out = event.to_json()
    address = event.payload.get("address")
    if event.session_key == DEVICES_SESSION and event.kind == DEVICE_ADDED \
            and isinstance(address, str) and address_refusal(address) is not None:
        out["kind"] = {key: value for key, value in out["kind"].items() if key != "address"}
        out["withheld"] = ["address"]
    return out


def removed(device_id: str, reason: str = "") -> Draft:
    """The record that removes ``device_id`` for good."""
    payload = {"device_id": parse_device_id(device_id), "reason": check_reason(reason)}
    return Draft(DEVICES_SESSION, AGENT_ID, DEVICE_REMOVED, payload)


def _written_id(value: Any) -> str | None:
    """``value`` if it is a device id in its written form, else None."""
    try:
        parsed = parse_device_id(value)
    except InvalidInput:
        return None
    return parsed if parsed == value else None


def _said_address(value: object) -> str | Unsaid | None:
    """The address an add's record says: ``InvalidInput`` if it is no address at all, as
    every version has read it (no text of at most ``ADDRESS_BYTES_MAX`` bytes, or not
    ``http(s)://`` and more); ``UNSAID`` if it is one no node could dial
    (``check_address``), which is never shown or dialed but leaves the add counted.

    >>> _said_address("http://u:hunter2@hub"), _said_address("http://hub:7878")
    (<Unsaid.UNSAID: 'unsaid'>, 'http://hub:7878')
    """
    if value is None:
        return None
    address = check_name(value, "address", bytes_max=ADDRESS_BYTES_MAX)
    # In lower case only, as every version has read it: an add saying "HTTP://h" is no
    # record to older nodes, so it counts for nothing here either (who is a member must
    # be the same on every node); no node of this version writes one (``check_address``).
    if not address.startswith(("http://", "https://")) or not address.split("//", 1)[1]:
        raise InvalidInput("must be an http:// or https:// URL", field="address")
    return address if address_refusal(address) is None else UNSAID


def read(event: Event) -> tuple[str, str, dict[str, Any]] | None:
    """``(kind, device_id, fields)`` if ``event`` is a well-formed membership record
    (fields: ``name`` and, if the record says one a node could dial, or null,
    ``address`` of an add; ``reason`` of a removal), else None."""
    if event.session_key != DEVICES_SESSION or event.kind not in MEMBERSHIP_KINDS:
        return None
    payload = event.payload
    device = _written_id(payload.get("device_id"))
    if device is None:
        return None
    fields: dict[str, Any]
    try:
        if event.kind == DEVICE_ADDED:
            fields = {"name": stored_device_name(payload.get("name"))}
            if "address" in payload:
                address = _said_address(payload["address"])
                if address is not UNSAID:
                    fields["address"] = address
        else:
            fields = {"reason": check_reason(payload.get("reason"))}
    except InvalidInput:
        return None
    return event.kind, device, fields


@dataclass(frozen=True, slots=True)
class _Record:
    sort_key: SortKey
    by: str
    fields: dict[str, Any]

    @property
    def order(self) -> tuple[SortKey, str]:
        """Records in event order; the same event from two origins (a copy numbered
        again elsewhere) by its signer, so that the choice never depends on arrival."""
        return self.sort_key, self.by


class Membership:
    """The members and removed devices of a set of records (the module's rule).

    ``add`` takes records one at a time, in any order, each at most once or more; the
    result depends only on the set. ``bound`` is read when a record is added: a record
    of an origin not bound yet counts for nothing until it is added again (``refresh``
    re-reads those kept aside, after bindings were learned).
    """

    def __init__(self, bound: Bound) -> None:
        self._bound = bound
        #: The last add of each device: its name.
        self._adds: dict[str, _Record] = {}
        #: The last add of each device that says an address: its address.
        self._addresses: dict[str, _Record] = {}
        #: The earliest add of each device: who added it, and when.
        self._first_adds: dict[str, _Record] = {}
        self._removals: dict[str, _Record] = {}
        #: Well-formed records of origins not bound (yet), by event id.
        self._unbound: dict[bytes, tuple[str, Event]] = {}

    @classmethod
    def of(cls, records: Iterable[tuple[str, Event]], bound: Bound) -> Membership:
        """The membership of ``(origin, event)`` records (other events are skipped)."""
        view = cls(bound)
        for origin, event in records:
            view.add(origin, event)
        return view

    def add(self, origin: str, event: Event) -> bool:
        """Take in one event of ``origin``; True if members or removed changed."""
        record = read(event)
        if record is None:
            return False
        kind, device, fields = record
        by = self._bound(origin)
        if by is None:
            self._unbound[event.id] = (origin, event)
            return False
        self._unbound.pop(event.id, None)
        taken = _Record(event.sort_key, by, fields)
        if kind == DEVICE_REMOVED:
            first = self._removals.get(device)
            if first is not None and first.order <= taken.order:
                return False
            self._removals[device] = taken
            return True
        first = self._first_adds.get(device)
        changed = first is None or taken.order < first.order
        if changed:
            self._first_adds[device] = taken
        said = self._addresses.get(device)
        if "address" in fields and (said is None or said.order < taken.order):
            self._addresses[device] = taken
            changed = True
        last = self._adds.get(device)
        if last is None or last.order < taken.order:
            self._adds[device] = taken
            changed = True
        return changed and device not in self._removals

    def refresh(self) -> bool:
        """Take in again the records kept aside for want of a bound origin; True if
        members or removed changed."""
        changed = False
        for origin, event in list(self._unbound.values()):
            changed = self.add(origin, event) or changed
        return changed

    def unbound(self) -> list[tuple[str, Event]]:
        """The ``(origin, event)`` records kept aside for want of a bound origin."""
        return list(self._unbound.values())

    def members(self) -> dict[str, Member]:
        """Member devices by id."""
        return {device: Member(record.fields["name"], self.address_of(device),
                               self._first_adds[device].by,
                               self._first_adds[device].sort_key[0])
                for device, record in self._adds.items() if device not in self._removals}

    def address_of(self, device_id: str) -> str | None:
        """The address the last add of ``device_id`` that says one gives (None: none
        does, or it was cleared)."""
        said = self._addresses.get(device_id)
        return said.fields["address"] if said is not None else None

    def removed(self) -> dict[str, Removal]:
        """Removed devices by id (an id removed and never added is listed too)."""
        return {device: self._removal(device, record)
                for device, record in self._removals.items()}

    def removal(self, device_id: str) -> Removal | None:
        """``device_id``'s removal, as ``removed`` lists it (None: not removed), without
        building that list: a status row or a handshake asks of one device.

        >>> Membership(lambda origin: None).removal("AAA") is None
        True
        """
        record = self._removals.get(device_id)
        return None if record is None else self._removal(device_id, record)

    def _removal(self, device_id: str, record: _Record) -> Removal:
        add = self._adds.get(device_id)
        return Removal(record.by, record.sort_key[0], record.fields["reason"],
                       add.fields["name"] if add else None)

    def is_member(self, device_id: str) -> bool:
        return device_id in self._adds and device_id not in self._removals

    def recorded(self) -> bool:
        """Whether any record counts (an add or a removal, of any device): the cluster
        has moved to device keys.

        >>> Membership(lambda origin: None).recorded()
        False
        """
        return bool(self._adds or self._removals)

    def name_of(self, device_id: str) -> str | None:
        """The name the records give ``device_id``: its last add's, removed or not;
        None if no counted add names it (a caller falls back on a configured name)."""
        add = self._adds.get(device_id)
        return add.fields["name"] if add is not None else None

    def is_removed(self, device_id: str) -> bool:
        return device_id in self._removals
