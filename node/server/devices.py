"""The cluster's devices over HTTP (``node.devices``, ``crdt.membership``).

    GET    /v1/devices            members and removed devices: names, addresses, who added
                                  or removed each and when; and ``linked``: devices linked
                                  now that are no members (the cluster secret, a CA
                                  certificate), which no record lists
    POST   /v1/devices            {"device_id", "name", "address"?}: add a device (or
                                  rename it); 201 with the member as GET lists it (with
                                  ``name_shared_with``), 200 if unchanged
    DELETE /v1/devices/{id}       remove a device for good (?reason=); 200

All take the client token (as every /v1 route: ``node.server.app``). A device id is taken
as a person types it (``crdt.device.parse_device_id``): a mistyped one is 400 saying which
check character does not match. Removing an id that is no member here is 404 (of a
device waiting to be added, saying it is refused already); removing this node's own
device is 400 (another device removes it); adding an id that was removed is 409: a
removal is final, a device comes back only with a new key. Adding a device, or renaming
one, under a name another member has is 409 ``name_taken``, naming that member (members
that came to share a name before keep it). A device that was
removed itself gets 409 ``device_removed`` for adds and removals (and for tokens): no other
device would take what it writes. Nothing is written on any refusal (but an add whose
device a peer's removal, stored meanwhile, removed while its record was written: 409
``device_removed``, the record counting for nothing). An add that found records bearing on
it come in between its checks and its record ``ADD_TRIES_MAX`` times in a row is 503
``devices_changing``, nothing written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from crdt.addresses import unshown_refusal
from crdt.clock import Hlc
from crdt.device import parse_device_id, shared_with
from crdt.errors import InvalidInput
from crdt.log import bound
from crdt.log.store import EventStore
from crdt.membership import Member, Removal, check_reason
from node.add_tries import AddsKeepChanging
from node.checks import api_path_base, dial_problem
from node.config import Config
from node.device import DeviceKey
from node.devices import (
    KEEP,
    Devices,
    NameTaken,
    OwnRemoval,
    RemovalIsFinal,
    UnknownDevice,
)
from node.http.errors import HttpError
from node.http.params import one_param, takes_params
from node.http.wire import respond
from node.peers.api import GOSSIP
from node.peers.links import removal_text
from node.server import bodies
from node.store import AsyncStore

DEVICES = web.AppKey("devices", Devices)
_FIELDS = {"device_id", "name", "address"}


def setup(app: web.Application, config: Config, astore: AsyncStore,
          device: DeviceKey) -> Devices:
    """Add the routes; the membership is read when the application starts, before it
    serves."""
    devices = Devices(astore, device)
    app[DEVICES] = devices

    async def on_startup(_app: web.Application) -> None:
        await devices.start(name=config.name, address=config.advertise_url)

    async def on_cleanup(_app: web.Application) -> None:
        await devices.close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    limits = config.limits

    async def post_device(request: web.Request) -> web.Response:
        value = await bodies.read_fields(
            request, bytes_max=limits.body_bytes_max, timeout_s=limits.read_timeout_s,
            allowed=_FIELDS, shape='{"device_id": ..., "name": ...}',
            required=("device_id", "name"))
        device_id = parse_device_id(value["device_id"])
        # No "address": a member keeps its own; null clears it.
        name, address = value["name"], value.get("address", KEEP)
        if isinstance(address, str):
            unshown = unshown_refusal(address)
            if unshown is not None:  # not shown: a password, or a token in a query
                said = "every node would show and log it" if unshown.password \
                    else "no node would reach its API"
                raise InvalidInput(f"{unshown.why}, so {said}: give the node's address "
                                   "alone", field="address")
            # Its scheme in any case ("HTTP://"): Devices.add writes it in lower case.
            # A host name no lookup takes (``node.checks.dial_problem``): the URL parser
            # takes it, and every peer's lookup of it fails.
            problem = dial_problem(address) \
                if address.lower().startswith(("http://", "https://")) else None
            if problem is not None:  # every peer would dial it, and fail, for good
                raise InvalidInput(f"{address!r} {problem}", field="address")
            base = api_path_base(address)
            if base is not None:  # every peer would dial it, and get 404, for good
                raise InvalidInput(f"{address!r} names an API path; give the node's own "
                                   f"address ({base!r}?)", field="address")
        refuse_if_removed(request)
        try:
            stored, _member = await devices.add(device_id, name, address)
        except OwnRemoval as refused:  # come in since the check above
            raise removed_refusal(refused.removal, devices) from None
        except RemovalIsFinal as refused:
            raise HttpError(409, refused.code, refused.reason, field=refused.field) from None
        except NameTaken as refused:  # the member too, for a client to name its command
            raise HttpError(409, refused.code, refused.reason, field=refused.field,
                            details={"member": refused.member}) from None
        except AddsKeepChanging as busy:  # a peer's records kept coming: nothing written
            raise HttpError(503, "devices_changing", str(busy),
                            headers={"Retry-After": "1"}) from None
        # As GET /v1/devices lists it, with ``name_shared_with``: an add that keeps a
        # name (a new address) keeps a name shared. Read in the turn the add returned
        # in, with the member it found (a removal read in meanwhile is 409 above).
        row = member_rows(devices)[device_id]
        answer = {"device": row, "created": stored is not None}
        return respond(request, answer, status=201 if stored is not None else 200)

    @takes_params("reason")
    async def delete_device(request: web.Request) -> web.Response:
        device_id = parse_device_id(request.match_info["id"])
        reason = check_reason(one_param(request, "reason") or "")
        refuse_if_removed(request)
        try:
            stored, removal = await devices.remove(device_id, reason)
        except UnknownDevice:
            gossip = request.app.get(GOSSIP)
            if gossip is not None and device_id in gossip.linked_devices():
                raise UnknownDevice(
                    f"device {device_id} links with the cluster secret (or a certificate), "
                    "not as a member: add it (clawsync devices add) to remove it, or change "
                    "the secret") from None
            # A device listed as waiting to be added looks like one to remove, and is
            # what a stranger dialing this node looks like: say it is shut out already.
            if gossip is not None and device_id in {
                    row["device_id"] for row in gossip.admission.waiting_rows()}:
                raise UnknownDevice(
                    f"no device {device_id} is a member here: it dialed this node and "
                    "waits to be added, and is refused until a member adds it, so there "
                    "is nothing to remove") from None
            raise
        return respond(request, {"device": removal_json(device_id, removal),
                                 "created": stored is not None})

    async def get_devices(request: web.Request) -> web.Response:
        gossip = request.app.get(GOSSIP)
        told = gossip.removed.view() if gossip is not None else None
        linked = gossip.linked_not_members() if gossip is not None else {}
        if linked:
            names = await astore.read(lambda store: key_names(store, list(linked)))
            linked = {device: {**row, "name": names.get(device)}
                      for device, row in linked.items()}
        return respond(request, listing(devices, told, linked))

    app.router.add_get("/v1/devices", get_devices)
    app.router.add_post("/v1/devices", post_device)
    app.router.add_delete("/v1/devices/{id}", delete_device)
    return devices


def refuse_if_removed(request: web.Request) -> None:
    """409 if this device was removed (a member told it so, or the removal reached it):
    every member refuses what it writes now, so a record written here would look done
    and reach no other device."""
    devices = request.app.get(DEVICES)
    told = request.app[GOSSIP].own_removal() if GOSSIP in request.app \
        else devices.own_removal() if devices is not None else None
    if told is not None:
        raise removed_refusal(told, devices)


def removed_refusal(told: dict[str, Any], devices: Devices | None) -> HttpError:
    """The 409 of a device removed (``told``: its removal, as ``own_removal`` says it),
    its remover named as ``clawsync status`` names it (``Devices.named``)."""
    named = devices.named(told) if devices is not None else told
    return HttpError(409, "device_removed", f"this device was {removal_text(named)}: no "
                     "other device takes what it writes now")


def key_names(store: EventStore, device_ids: list[str]) -> dict[str, str]:
    """On a reader thread: the name each device gave itself in the ``device_key`` record
    of its latest origin known here (a device that wrote no event has none yet)."""
    names = {}
    for device in device_ids:
        for origin in reversed(list(store.device_origins(device))):
            [event_id] = store.ids_at(origin, [1])
            if event_id is None:
                continue
            event = store.get_event(event_id).event
            name = event.payload.get("name")
            if bound.read(event) is not None and isinstance(name, str):
                names[device] = name
                break
    return names


def listing(devices: Devices, told: Mapping[str, Any] | None = None,
            linked: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """``GET /v1/devices``: this device's id, the members and the removed, by id, and
    the devices linked now that are no members (``linked``: ``Gossip.linked_not_members``,
    with ``name``: the one their key's record gives, or null).

    Each member has ``name_shared_with`` (``member_rows``).

    ``told``: this device's removal as a member told it (``Gossip.removed``). The record
    of it never reaches a removed device (every member refuses it now), so without this
    it would list itself as a member."""
    members = member_rows(devices, told is not None)
    removed = dict(devices.removed())
    own = devices.device_id
    if told is not None and own not in removed:
        member = devices.members().get(own)
        removed[own] = Removal(by=str(told.get("by")), at_ms=int(told.get("at_ms") or 0),
                               reason=str(told.get("reason") or ""),
                               name=member.name if member is not None else None)
    return {
        "device_id": own,
        "members": list(members.values()),
        "removed": [removal_json(device_id, removal)
                    for device_id, removal in sorted(removed.items())],
        # Not members: no record adds them, and their records and removals count for
        # nothing here (``crdt.membership``); what links them is shared, not theirs.
        "linked": [{"device_id": device_id, "name": row.get("name"),
                    "address": row.get("address"), "node_id": row.get("node_id"),
                    "via": row.get("via")}
                   for device_id, row in sorted((linked or {}).items())
                   if device_id not in members and device_id not in removed],
    }


def member_rows(devices: Devices, told: bool = False) -> dict[str, dict[str, Any]]:
    """The members as ``GET /v1/devices`` lists them (``Devices.listed_members``), by
    id, in order: each with ``name_shared_with``, the other members whose names read as
    its own (``crdt.device.name_key``), empty for most; renaming all but one ends the
    clash. ``POST /v1/devices`` answers the row of the device it added."""
    shared = shared_with(devices.name_groups(told))
    return {device_id: {**member_json(device_id, member),
                        "name_shared_with": shared.get(device_id, [])}
            for device_id, member in sorted(devices.listed_members(told).items())}


def member_json(device_id: str, member: Member) -> dict[str, Any]:
    """A member; ``added_at`` null for this device while no record names it."""
    return {"device_id": device_id, "name": member.name, "address": member.address,
            "added_by": member.added_by,
            "added_at": Hlc(member.at_ms, 0).rfc3339() if member.at_ms else None}


def removal_json(device_id: str, removal: Removal) -> dict[str, Any]:
    return {"device_id": device_id, "name": removal.name, "removed_by": removal.by,
            "removed_at": Hlc(removal.at_ms, 0).rfc3339(), "reason": removal.reason}

