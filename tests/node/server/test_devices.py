"""The cluster's devices over HTTP (node.server.devices, node.devices) on a real node: a
node is a member of its own cluster, devices are added and removed, a removal is final,
refusals write nothing, and the membership survives a restart."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from crdt import codec, membership
from crdt.device import device_id, private_key_from_seed, public_bytes
from crdt.events import Draft
from crdt.log.store import EventStore
from crdt.membership import AGENT_ID, DEVICE_ADDED, DEVICES_SESSION
from crdt.signing import Signer
from node.add_tries import ADD_TRIES_MAX
from node.cli.openclaw_sink import HttpSink
from node.client.api import DEVICES_CHANGING_RETRIES, Client, ClientError
from node.server.devices import DEVICES
from node.server.run import RunningNode, start
from tests.support.addresses import (
    HIDDEN_PASSWORDS,
    HIDDEN_TOKENS,
    HOST_NAMES_A_LOOKUP_TAKES,
    HOST_NAMES_NO_LOOKUP_TAKES,
)
from tests.support.nodes import read_sse

NodeFactory = Callable[..., Awaitable[RunningNode]]

PHONE = device_id(public_bytes(private_key_from_seed(bytes([7]) * 32)))
TABLET = device_id(public_bytes(private_key_from_seed(bytes([8]) * 32)))


async def call(client: aiohttp.ClientSession, method: str, path: str,
               **kwargs: Any) -> tuple[int, Any]:
    async with client.request(method, path, **kwargs) as resp:
        return resp.status, await resp.json()


async def test_a_node_is_a_cluster_of_one_until_it_adds_a_device(
        client: aiohttp.ClientSession, node: RunningNode) -> None:
    status, view = await call(client, "GET", "/v1/devices")
    own = node.device.device_id
    assert status == 200 and view["device_id"] == own and view["removed"] == []
    [me] = view["members"]
    assert (me["device_id"], me["name"], me["added_by"]) == (own, node.config.name, own)
    assert me["added_at"] is None and node.astore.head == 0  # no record yet
    # Its first membership record comes after its own add, in the same commit.
    status, _ = await call(client, "POST", "/v1/devices",
                           json={"device_id": PHONE, "name": "phone"})
    assert status == 201
    _, page = await call(client, "GET", f"/v1/sessions/{quote(DEVICES_SESSION)}/events")
    assert [(e["kind"]["type"], e["kind"].get("device_id")) for e in page["events"]] == [
        ("device_key", own), ("device_added", own), ("device_added", PHONE)]
    _, view = await call(client, "GET", "/v1/devices")
    assert {m["device_id"]: m["added_by"] for m in view["members"]} == {own: own, PHONE: own}
    assert all(m["added_at"] for m in view["members"])


async def test_adding_and_removing_a_device(client: aiohttp.ClientSession,
                                            node: RunningNode) -> None:
    changes: list[int] = []
    node.runner.app[DEVICES].add_listener(lambda: changes.append(1))
    typed = PHONE.lower().replace("-", " ")  # as a person reads it out
    status, body = await call(client, "POST", "/v1/devices", json={
        "device_id": typed, "name": "phone", "address": "http://phone.local:7878"})
    assert status == 201 and body["created"] is True
    assert body["device"]["device_id"] == PHONE and body["device"]["name"] == "phone"
    status, body = await call(client, "POST", "/v1/devices",
                              json={"device_id": PHONE, "name": "phone",
                                    "address": "http://phone.local:7878"})
    assert status == 200 and body["created"] is False
    _, view = await call(client, "GET", "/v1/devices")
    assert {m["device_id"]: m["address"] for m in view["members"]}[PHONE] == \
        "http://phone.local:7878"
    # Without "address" the member keeps its own; null clears it.
    status, body = await call(client, "POST", "/v1/devices",
                              json={"device_id": PHONE, "name": "phone"})
    assert status == 200 and body["device"]["address"] == "http://phone.local:7878"
    status, body = await call(client, "POST", "/v1/devices",
                              json={"device_id": PHONE, "name": "phone", "address": None})
    assert status == 201 and body["device"]["address"] is None

    status, body = await call(client, "DELETE", f"/v1/devices/{PHONE}?reason=lost")
    assert status == 200 and body["created"] is True
    assert body["device"] == {**body["device"], "device_id": PHONE, "name": "phone",
                              "removed_by": node.device.device_id, "reason": "lost"}
    _, view = await call(client, "GET", "/v1/devices")
    assert [m["device_id"] for m in view["members"]] == [node.device.device_id]
    assert [r["device_id"] for r in view["removed"]] == [PHONE]
    assert changes == [1, 1, 1]  # the add, the cleared address, the removal
    # Removing again changes nothing; adding it again is refused: a removal is final.
    head = node.astore.head
    status, body = await call(client, "DELETE", f"/v1/devices/{PHONE}")
    assert status == 200 and body["created"] is False
    status, body = await call(client, "POST", "/v1/devices",
                              json={"device_id": PHONE, "name": "phone"})
    assert status == 409 and body["error"]["code"] == "device_removed"
    # It names the remover as `clawsync status` does, and says how that device comes
    # back: a new key, made by its own node.
    [this] = view["members"]
    assert f"was removed by {this['name']} ({node.device.device_id}); " in \
        body["error"]["message"]
    assert "new key" in body["error"]["message"] and "move device.key out of its data " \
        "folder" in body["error"]["message"] and node.astore.head == head


async def test_refusals_say_why_and_write_nothing(client: aiohttp.ClientSession,
                                                  node: RunningNode) -> None:
    head = node.astore.head
    mistyped = PHONE[:-1] + ("A" if PHONE[-1] != "A" else "B")
    cases = [
        ("POST", "/v1/devices", {"json": {"device_id": mistyped, "name": "p"}}, 400,
         "check character 4 does not match"),
        ("POST", "/v1/devices", {"json": {"device_id": "ABC", "name": "p"}}, 400,
         "56"),
        ("POST", "/v1/devices", {"json": {"device_id": PHONE}}, 400, "required"),
        ("POST", "/v1/devices", {"json": {"device_id": PHONE, "name": "p", "x": 1}}, 400,
         "unknown field"),
        ("POST", "/v1/devices", {"json": {"device_id": PHONE, "name": "p",
                                          "address": "phone:7878"}}, 400, "http"),
        ("POST", "/v1/devices", {"json": {"device_id": PHONE, "name": "p",
                                          "address": "http://me:pw@phone:7878"}}, 400,
         "user name or password"),
        *[("POST", "/v1/devices", {"json": {"device_id": PHONE, "name": "p",
                                            "address": address}}, 400,
           "user name or password") for address in HIDDEN_PASSWORDS],
        *[("POST", "/v1/devices", {"json": {"device_id": PHONE, "name": "p",
                                            "address": address}}, 400,
           "so no node would reach its API: give the node's address alone")
          for address in [*HIDDEN_TOKENS, "http://phone:7878/?page=2",
                          "http://phone:7878?x=a@b", "http://phone#a@b"]],
        ("POST", "/v1/devices", {"json": {"device_id": PHONE, "name": "p",
                                          "address": "http:///phone:7878"}}, 400,
         "'http:///phone:7878' names no host"),
        ("POST", "/v1/devices", {"json": {"device_id": PHONE, "name": "p",
                                          "address": "http://phone:99999"}}, 400,
         "port that is not between 1 and 65535"),
        # Copied whole from an API call: every peer would dial it and get 404, for good.
        ("POST", "/v1/devices", {"json": {"device_id": PHONE, "name": "p",
                                          "address": "http://phone:7878/v1/node"}}, 400,
         "('http://phone:7878'?)"),
        # A host name no lookup takes: every peer dialing it would fail, for good.
        *[("POST", "/v1/devices", {"json": {"device_id": PHONE, "name": "p",
                                            "address": address}}, 400, f"{address!r} {said}")
          for address, said in HOST_NAMES_NO_LOOKUP_TAKES],
        ("POST", "/v1/devices", {"json": [PHONE]}, 400, "must be an object"),
        # Not a string: refused as the record would be, not taken as null (cleared).
        *[("POST", "/v1/devices", {"json": {"device_id": PHONE, "name": "p",
                                            "address": address}}, 400,
           f"must be a string, not {kind}")
          for address, kind in [(42, "integer"), (True, "boolean"), ([], "array"),
                                ({}, "object")]],
        ("DELETE", f"/v1/devices/{mistyped}", {}, 400, "check character"),
        ("DELETE", f"/v1/devices/{TABLET}", {}, 404, "no device"),
        ("DELETE", f"/v1/devices/{node.device.device_id}", {}, 400, "own device"),
        ("DELETE", f"/v1/sessions/{quote(DEVICES_SESSION)}", {}, 400, "cannot be forgotten"),
        ("DELETE", "/v1/sessions/clawsync%3Aorigins", {}, 400, "cannot be forgotten"),
        ("POST", f"/v1/sessions/{quote(DEVICES_SESSION)}/forget",
         {"json": {"events": ["00" * 32]}}, 400, "cannot be forgotten"),
        ("POST", f"/v1/sessions/{quote(DEVICES_SESSION)}/events",
         {"json": {"agent_id": "x", "kind": {"type": "message_received", "content": "hi"}}},
         400, "clients cannot write to it"),
        ("POST", "/v1/sessions/clawsync%3Aorigins/events",
         {"json": [{"agent_id": "x", "kind": {"type": "session_ended", "reason": "r"}}]},
         400, "clients cannot write to it"),
    ]
    for method, path, kwargs, expected, says in cases:
        status, body = await call(client, method, path, **kwargs)
        assert status == expected, (method, path, body)  # first: a 2xx body has no error
        assert says in body["error"]["message"], (method, path, body)
    assert node.astore.head == head
    for address in HIDDEN_PASSWORDS + HIDDEN_TOKENS:  # nor is it shown
        _, body = await call(client, "POST", "/v1/devices",
                             json={"device_id": PHONE, "name": "p", "address": address})
        assert "hunter2" not in json.dumps(body), body


async def test_an_add_that_records_keep_bearing_on_is_503(client: aiohttp.ClientSession,
                                                         node: RunningNode) -> None:
    """A rename of the device stored between the add's checks and its record, at every
    try: 503 ``devices_changing`` after ``ADD_TRIES_MAX`` tries, the add not written."""
    devices = node.runner.app[DEVICES]
    write, tries = devices._write, []

    async def rename_first(*args: Any) -> Any:
        tries.append(args)
        if len(tries) <= ADD_TRIES_MAX + 1:  # without a bound the add would end after
            await node.astore.append([membership.added(PHONE, f"phone {len(tries)}")])
        return await write(*args)

    devices._write = rename_first  # type: ignore[method-assign]
    async with client.post("/v1/devices", json={"device_id": PHONE, "name": "tablet"}) as resp:
        status, body, retry_after = resp.status, await resp.json(), resp.headers.get("Retry-After")
    assert (status, body.get("error", {}).get("code"), retry_after) == (
        503, "devices_changing", "1"), body
    assert f"({ADD_TRIES_MAX} tries)" in body["error"]["message"]
    assert len(tries) == ADD_TRIES_MAX
    devices._write = write  # type: ignore[method-assign]
    _, view = await call(client, "GET", "/v1/devices")
    assert [m["name"] for m in view["members"] if m["device_id"] == PHONE] != ["tablet"]


def renames_first(node: RunningNode, renames: int) -> list[Any]:
    """The node's adds, each try after a rename of PHONE stored between its checks and
    its record, for the first ``renames`` tries; the tries made."""
    devices = node.runner.app[DEVICES]
    write, tries = devices._write, []

    async def rename_first(*args: Any) -> Any:
        tries.append(args)
        if len(tries) <= renames:
            await node.astore.append([membership.added(PHONE, f"phone {len(tries)}")])
        return await write(*args)

    devices._write = rename_first  # type: ignore[method-assign]
    return tries


async def test_the_client_sends_an_add_again_after_a_503_devices_changing(
        node: RunningNode) -> None:
    """A 503 ``devices_changing`` wrote nothing: ``Client.add_device`` (and so
    ``clawsync devices add``) sends the add again after the answer's Retry-After."""
    tries = renames_first(node, ADD_TRIES_MAX)  # the first request's tries, all held back
    async with Client(node.url) as client:
        answer = await client.add_device(PHONE, "tablet")
    assert answer["created"] and answer["device"]["name"] == "tablet"
    assert len(tries) == ADD_TRIES_MAX + 1


async def test_the_client_gives_up_an_add_that_keeps_being_503(node: RunningNode) -> None:
    """Past ``DEVICES_CHANGING_RETRIES``, the error says plainly that the records kept
    changing and nothing was written (not that the node failed)."""
    tries = renames_first(node, (DEVICES_CHANGING_RETRIES + 1) * ADD_TRIES_MAX + 1)
    async with Client(node.url) as client:
        with pytest.raises(ClientError) as raised:
            await client.add_device(PHONE, "tablet")
    error = raised.value
    assert (error.status, error.code, error.retry_after_s) == (503, "devices_changing", 1.0)
    assert str(error) == ("the node's device records kept changing while it checked the add "
                          f"({DEVICES_CHANGING_RETRIES + 1} times), so nothing was written; "
                          "try again")
    assert len(tries) == (DEVICES_CHANGING_RETRIES + 1) * ADD_TRIES_MAX
    assert node.runner.app[DEVICES].members()[PHONE].name != "tablet"


async def test_an_add_that_finds_this_devices_removal_on_a_second_look_is_409(
        client: aiohttp.ClientSession, node: RunningNode, tmp_path: Path) -> None:
    """This device's removal stored between the add's checks and its record: the add is
    checked again and answered as a removed device's writes are, 409 ``device_removed``,
    nothing of it written."""
    own = node.device.device_id
    tablet = EventStore.open(tmp_path / "tablet",
                             signer=Signer(private_key_from_seed(bytes([8]) * 32), "tablet"))
    try:
        tablet.append_batch([membership.removed(own, "lost")])  # signed, its origin bound
        items = [(s.event, s.origin, s.seq, s.signature) for origin in tablet.version
                 for s in tablet.origin_after(origin, 0, 100)]
    finally:
        tablet.close()
    devices = node.runner.app[DEVICES]
    status, _ = await call(client, "POST", "/v1/devices",
                           json={"device_id": TABLET, "name": "tablet"})
    assert status == 201
    write = devices._write

    async def removal_first(*args: Any) -> Any:
        devices._write = write  # type: ignore[method-assign]
        await node.astore.write(lambda store: store.ingest(items))  # as a peer sends it
        return await write(*args)

    devices._write = removal_first  # type: ignore[method-assign]
    status, body = await call(client, "POST", "/v1/devices",
                              json={"device_id": PHONE, "name": "phone"})
    assert (status, body.get("error", {}).get("code")) == (409, "device_removed"), body
    # The remover named as `clawsync status` names it, not by its id alone.
    assert f"this device was removed from the cluster by tablet ({TABLET}) at " \
        in body["error"]["message"]
    assert not devices.is_member(PHONE)
    held = await node.astore.read(
        lambda store: store.get_events_since(DEVICES_SESSION, 0, 1000))
    assert not [s for s in held if s.event.payload.get("device_id") == PHONE]


async def test_an_at_sign_beyond_the_host_is_no_password(client: aiohttp.ClientSession
                                                         ) -> None:
    for address in ("http://[fe80::1%eth0]:7878", "http://[::1]:7878/", "http://phone/",
                    "http://phone:7878/a@b"):
        status, body = await call(client, "POST", "/v1/devices",
                                  json={"device_id": PHONE, "name": "p", "address": address})
        assert status in (200, 201) and body["device"]["address"] == address, body


async def test_an_address_whose_name_idna_2008_encodes_is_taken(
        client: aiohttp.ClientSession) -> None:
    """A right-to-left label ending in a digit: IDNA 2003 refuses it, the lookup (IDNA
    2008, as yarl encodes) takes it."""
    for address in HOST_NAMES_A_LOOKUP_TAKES:
        status, body = await call(client, "POST", "/v1/devices",
                                  json={"device_id": PHONE, "name": "p", "address": address})
        assert status in (200, 201) and body["device"]["address"] == address, body


async def test_an_upper_case_scheme_is_taken_and_written_in_lower_case(
        client: aiohttp.ClientSession, node: RunningNode) -> None:
    """Schemes are case-insensitive; the record says it in lower case, as every version
    reads one (an add saying "HTTP://" is no record to them), and saying it again in
    either case writes nothing more."""
    for address in ("HTTP://phone:7878", "http://phone:7878", "Http://phone:7878"):
        status, body = await call(client, "POST", "/v1/devices",
                                  json={"device_id": PHONE, "name": "p", "address": address})
        assert status in (200, 201) and body["device"]["address"] == "http://phone:7878"
        assert body["created"] is (address == "HTTP://phone:7878"), body


async def test_a_token_is_needed(make_node: NodeFactory) -> None:
    node = await make_node(token="s3cret")
    async with aiohttp.ClientSession(base_url=node.url) as client:
        status, _ = await call(client, "GET", "/v1/devices")
        assert status == 401
        status, _ = await call(client, "POST", "/v1/devices",
                               json={"device_id": PHONE, "name": "phone"})
        assert status == 401
        status, view = await call(client, "GET", "/v1/devices",
                                  headers={"Authorization": "Bearer s3cret"})
        assert status == 200 and len(view["members"]) == 1


async def test_the_membership_survives_a_restart_and_the_node_adds_itself_once(
        make_node: NodeFactory) -> None:
    node = await make_node()
    async with aiohttp.ClientSession(base_url=node.url) as client:
        await call(client, "POST", "/v1/devices", json={"device_id": PHONE, "name": "phone"})
        await call(client, "POST", "/v1/devices", json={"device_id": TABLET, "name": "tab"})
        await call(client, "DELETE", f"/v1/devices/{TABLET}")
    head = node.astore.head
    await node.stop()
    again = await start(dataclasses.replace(node.config, port=0))
    try:
        devices = again.runner.app[DEVICES]
        assert again.astore.head == head
        assert set(devices.members()) == {again.device.device_id, PHONE}
        assert set(devices.removed()) == {TABLET} and not devices.is_member(TABLET)
    finally:
        await again.stop()


async def restarted_removed(node: RunningNode, **told: Any) -> RunningNode:
    """``node`` stopped and started again, told it was removed by ``TABLET`` as a member's
    signed refusal leaves it (``node.peers.links.Removed``); ``told`` adds to that."""
    await node.stop()
    removal = {"by": TABLET, "at_ms": 1, "reason": "lost", "told_by": TABLET,
               "told_at_ms": 2, **told}
    (node.config.data_dir / "removed.json").write_text(json.dumps(removal))
    return await start(dataclasses.replace(node.config, port=0))


async def test_a_removed_device_is_told_its_adds_removals_and_tokens_reach_no_one(
        make_node: NodeFactory) -> None:
    node = await make_node()
    again = await restarted_removed(node)
    try:
        head = again.astore.head
        async with aiohttp.ClientSession(base_url=again.url) as client:
            for method, path, kwargs in [
                    ("POST", "/v1/devices", {"json": {"device_id": PHONE, "name": "p"}}),
                    ("DELETE", f"/v1/devices/{PHONE}", {}),
                    ("POST", "/v1/tokens", {"json": {"sessions": ["*"]}})]:
                status, body = await call(client, method, path, **kwargs)
                assert (status, body["error"]["code"]) == (409, "device_removed"), path
                assert f"removed from the cluster by {TABLET}" in body["error"]["message"]
        assert again.astore.head == head
    finally:
        await again.stop()


async def test_a_removed_device_names_its_remover_as_status_does(
        make_node: NodeFactory) -> None:
    """A removed device's 409 names its remover as ``clawsync status`` does: the name a
    record gives it here, then its id."""
    node = await make_node()
    async with aiohttp.ClientSession(base_url=node.url) as client:
        status, _ = await call(client, "POST", "/v1/devices",
                               json={"device_id": TABLET, "name": "tablet"})
        assert status == 201
    again = await restarted_removed(node)
    try:
        async with aiohttp.ClientSession(base_url=again.url) as client:
            for method, path, kwargs in [
                    ("POST", "/v1/devices", {"json": {"device_id": PHONE, "name": "p"}}),
                    ("POST", "/v1/tokens", {"json": {"sessions": ["*"]}})]:
                status, body = await call(client, method, path, **kwargs)
                assert (status, body["error"]["code"]) == (409, "device_removed"), path
                assert f"this device was removed from the cluster by tablet ({TABLET}) at " \
                    in body["error"]["message"], path
    finally:
        await again.stop()


async def test_a_removal_told_to_another_key_of_the_folder_holds_nothing_back(
        make_node: NodeFactory) -> None:
    """A folder whose key was moved away is a new device; the removal told to the old
    one (kept in the folder) does not concern it."""
    node = await make_node()
    again = await restarted_removed(node, device_id=PHONE)
    try:
        async with aiohttp.ClientSession(base_url=again.url) as client:
            status, body = await call(client, "POST", "/v1/devices",
                                      json={"device_id": PHONE, "name": "p"})
            assert status == 201, body
            status, body = await call(client, "GET", "/v1/node")
            assert body["removed"] is None
    finally:
        await again.stop()


@pytest.mark.parametrize("address", ["http://me:hunter2@phone:7878",
                                     "http://phone:7878/?access_token=hunter2"])
async def test_an_address_an_older_node_stored_with_a_password_is_never_shown(
        client: aiohttp.ClientSession, node: RunningNode, address: str) -> None:
    """An older node checked only ``http(s)://``: its add holds a password. The add is
    shown to clients (events pages, JSON and CBOR, and the live stream) without that
    address, as it is read, under its own id; the stored record, which peers are sent
    and verify by that id, keeps it."""
    stored = Draft(DEVICES_SESSION, AGENT_ID, DEVICE_ADDED, {
        "device_id": PHONE, "name": "p", "address": address})
    [written] = await node.astore.append([stored])
    event = written.stored.event
    devices = f"/v1/sessions/{quote(DEVICES_SESSION)}/events"
    shown = []
    for path in (devices, "/v1/events"):
        for accept in ("application/json", "application/cbor"):
            async with client.get(path, headers={"Accept": accept}) as reply:
                body = await reply.read()
            assert reply.status == 200 and b"hunter2" not in body
            page = json.loads(body) if accept.endswith("json") else codec.decode(body)
            shown += [one for one in page["events"] if one["id"] == event.id.hex()]
    async with client.get(f"/v1/events?after={written.stored.position - 1}",
                          headers={"Accept": "text/event-stream"}) as reply:
        [streamed] = await read_sse(reply, 1)
    shown.append(json.loads(streamed["data"]))
    assert len(shown) == 5
    assert all(one["kind"] == {"type": DEVICE_ADDED, "device_id": PHONE, "name": "p"}
               and one["withheld"] == ["address"] for one in shown), shown
    # What reads a session's events to rebuild them (an export over HTTP) passes over it:
    # its JSON does not hash to its id, which told of a forged event.
    async with Client(node.url) as reader:
        found, forgotten = await HttpSink(reader).events(DEVICES_SESSION)
    assert event.id not in [one.id for one in found] and forgotten == 0
    kept = await node.astore.read(lambda store: store.get_event(event.id))
    assert kept.event.payload["address"] == address
    # A member on this node as on the older one: only its address is not taken.
    async with client.get("/v1/devices") as reply:
        listed = await reply.json()
    assert reply.status == 200 and "hunter2" not in json.dumps(listed)
    assert [(one["name"], one["address"]) for one in listed["members"]
            if one["device_id"] == PHONE] == [("p", None)], listed
    assert hashlib.blake2b(kept.event.canonical, digest_size=32).digest() == event.id


async def test_names_shared_with_a_device_told_it_was_removed_are_listed_alike(
        make_node: NodeFactory) -> None:
    """A member's name that reads as this device's (a record of an older version, which
    did not check) is shared while this device is a member; once a member told it it was
    removed, ``GET /v1/devices`` lists it as removed and ``GET /v1/peers`` agrees: no
    name is shared."""
    node = await make_node(name="phone")
    own = node.device.device_id
    await node.astore.append([Draft(DEVICES_SESSION, AGENT_ID, DEVICE_ADDED, {
        "device_id": PHONE, "name": "PHONE"})])
    await node.runner.app[DEVICES].refresh()
    async with aiohttp.ClientSession(base_url=node.url) as client:
        _, view = await call(client, "GET", "/v1/devices")
        assert {m["device_id"]: m["name_shared_with"] for m in view["members"]} == {
            own: [PHONE], PHONE: [own]}
        _, peers = await call(client, "GET", "/v1/peers")
        assert peers["device"]["shared_names"] == [
            {"name": "phone" if own < PHONE else "PHONE", "members": sorted([own, PHONE])}]
    again = await restarted_removed(node)
    try:
        async with aiohttp.ClientSession(base_url=again.url) as client:
            _, view = await call(client, "GET", "/v1/devices")
            assert [(m["device_id"], m["name_shared_with"]) for m in view["members"]] == [
                (PHONE, [])]
            assert own in [r["device_id"] for r in view["removed"]]
            _, peers = await call(client, "GET", "/v1/peers")
            assert peers["device"]["shared_names"] == []
    finally:
        await again.stop()
