"""node.devices with real stores that sign (one per device) and records copied between
them as replication copies them: the membership follows what is stored, whichever way
it came, and the node that removed a device retires its origins."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from crdt import membership, tokens
from crdt.clock import Hlc
from crdt.device import private_key_from_seed
from crdt.errors import InvalidInput
from crdt.events import Draft, parse_event
from crdt.log.records import StoredEvent
from crdt.log.retire import ORIGINS_SESSION
from crdt.log.store import EventStore
from crdt.membership import DEVICES_SESSION
from crdt.signing import Signer
from node.add_tries import ADD_TRIES_MAX, AddsKeepChanging
from node.device import DeviceKey
from node.devices import Devices, NameTaken, OwnRemoval, RemovalIsFinal
from node.store import AsyncStore, Commit


@dataclass
class Node:
    store: EventStore
    astore: AsyncStore
    devices: Devices
    key: DeviceKey


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[list[Node]]:
    made = []
    for n in range(3):
        key = DeviceKey(private_key_from_seed(bytes([n + 1]) * 32), tmp_path / f"k{n}")
        store = EventStore.open(tmp_path / f"n{n}", signer=Signer(key.private_key, f"d{n}"))
        astore = AsyncStore(store, ThreadPoolExecutor(max_workers=1))
        devices = await Devices.open(astore, key, name=f"d{n}", address=None)
        made.append(Node(store, astore, devices, key))
    yield made
    for node in made:
        await node.devices.close()
        await node.astore.close()


async def copy(source: Node, target: Node) -> None:
    """What the target lacks of the source's origins, as a peer sends it (signed)."""
    for origin in source.store.version:
        held = target.store.version.get(origin, 0)
        items = [(s.event, s.origin, s.seq, s.signature)
                 for s in source.store.origin_after(origin, held, 1000)]
        if items:
            await target.astore.write(lambda store, items=items: store.ingest(items))


async def settled(*nodes: Node) -> None:
    """Until every node has read what its store holds."""
    for node in nodes:
        await node.devices.refresh()


async def phone_known_to_b(a: Node, b: Node, phone: Node) -> str:
    """a adds b and the phone, and b reads both records: the phone's device id."""
    phone_id = phone.key.device_id
    await a.devices.add(b.key.device_id, "b")
    await a.devices.add(phone_id, "phone")
    await copy(a, b)
    await settled(b)
    return phone_id


async def a_removed_by_b(a: Node, b: Node) -> None:
    """a adds b, b reads it and removes a; a does not hold the removal yet."""
    await a.devices.add(b.key.device_id, "b")
    await copy(a, b)
    await settled(b)
    await b.devices.remove(a.key.device_id, "lost")


def copy_right_after_next_write(source: Node, target: Node) -> None:
    """The target's next write (an add's record, its only write), once committed, is
    followed by a copy from the source, as replication would store it before the add
    reads its record back."""
    write = target.astore.write

    async def then_copy(work: Any) -> Any:
        target.astore.write = write  # type: ignore[method-assign]
        done = await write(work)
        await copy(source, target)
        return done

    target.astore.write = then_copy  # type: ignore[method-assign]


async def test_concurrent_add_and_remove_resolve_alike_in_either_order(
        nodes: list[Node]) -> None:
    a, b, phone = nodes
    phone_id = await phone_known_to_b(a, b, phone)
    assert b.devices.is_member(phone_id) and b.devices.is_member(a.key.device_id)
    # Apart: a renames the phone, b removes it.
    await a.devices.add(phone_id, "phone 2")
    await b.devices.remove(phone_id, "stolen")
    assert a.devices.members()[phone_id].name == "phone 2"
    await copy(b, a)
    await copy(a, b)
    await settled(a, b)
    for node in (a, b):
        assert set(node.devices.members()) == {a.key.device_id, b.key.device_id}
        assert node.devices.removed()[phone_id].by == b.key.device_id
    assert a.devices.members() == b.devices.members()
    assert a.devices.removed() == b.devices.removed()


async def test_an_add_whose_device_is_removed_while_it_is_written_is_refused(
        nodes: list[Node]) -> None:
    """A peer's removal stored after the add's checks and before its record: the add is
    refused as the removal says, and writes nothing (a record then would count for
    nothing)."""
    a, b, phone = nodes
    phone_id = await phone_known_to_b(a, b, phone)
    await b.devices.remove(phone_id, "stolen")
    write = a.devices._write

    async def removal_first(*args: Any) -> StoredEvent | None:
        await copy(b, a)  # as replication would store it, just before this write
        await a.devices.refresh()  # and as the devices' follower reads it meanwhile
        return await write(*args)

    a.devices._write = removal_first  # type: ignore[method-assign]
    written = [(s.origin, s.seq) for s in a.store.get_events_since(DEVICES_SESSION, 0, 1000)]
    # The remover named as `clawsync status` names it, not by its id alone.
    with pytest.raises(RemovalIsFinal, match=rf"removed by b \({b.key.device_id}\); a removal"):
        await a.devices.add(phone_id, "phone 2")
    assert phone_id not in a.devices.members()
    assert a.devices.removed()[phone_id].by == b.key.device_id
    after = [(s.origin, s.seq) for s in a.store.get_events_since(DEVICES_SESSION, 0, 1000)]
    b_origin = b.store.node_id
    assert [held for held in after if held[0] != b_origin] == written  # none of a's new


async def test_an_add_whose_device_is_removed_right_after_its_record_is_refused(
        nodes: list[Node]) -> None:
    """A peer's removal stored right after the add's record, before the add reads it
    back: refused as "removed ... as this add was written", the record written counting
    for nothing (a removal is final)."""
    a, b, phone = nodes
    phone_id = await phone_known_to_b(a, b, phone)
    await b.devices.remove(phone_id, "stolen")
    copy_right_after_next_write(b, a)
    held = {s.position for s in a.store.get_events_since(DEVICES_SESSION, 0, 1000)}
    with pytest.raises(RemovalIsFinal, match=rf"removed by b \({b.key.device_id}\) as this "
                                             "add was written"):
        await a.devices.add(phone_id, "phone 2")
    assert phone_id not in a.devices.members()
    added = [(s.event.kind, s.event.payload)
             for s in a.store.get_events_since(DEVICES_SESSION, 0, 1000)
             if s.position not in held and s.origin == a.store.node_id]
    assert added == [(membership.DEVICE_ADDED, {"device_id": phone_id, "name": "phone 2"})]


async def test_records_that_do_not_bear_on_an_add_do_not_hold_it_back(
        nodes: list[Node]) -> None:
    """Token records, and other devices' membership records, stored between an add's
    checks and its record: the add is written at its first try."""
    a, b, c = nodes
    await a.devices.add(b.key.device_id, "b")
    write, tries = a.devices._write, []

    async def records_first(*args: Any) -> StoredEvent | None:
        tries.append(args)
        if len(tries) <= ADD_TRIES_MAX + 1:  # an add held back would still end
            _secret, issued = tokens.issue(["*"])
            await a.astore.append([issued, tokens.revoke("0" * 16)])
            # Another device's: a removal frees a name, it takes none; another name.
            await a.astore.append([membership.removed(b.key.device_id, "lost"),
                                   membership.added(b.key.device_id, "gone")])
        return await write(*args)

    a.devices._write = records_first  # type: ignore[method-assign]
    stored, member = await a.devices.add(c.key.device_id, "phone")
    assert stored is not None and member.name == "phone"
    assert len(tries) == 1


async def test_an_add_that_records_keep_bearing_on_gives_up(nodes: list[Node]) -> None:
    """A peer renaming the device without pause, each rename stored between the add's
    checks and its record: after ``ADD_TRIES_MAX`` tries the add gives up, writing
    nothing."""
    a, b, phone = nodes
    phone_id = await phone_known_to_b(a, b, phone)
    write, tries = a.devices._write, []

    async def rename_first(*args: Any) -> StoredEvent | None:
        tries.append(args)
        if len(tries) <= ADD_TRIES_MAX + 1:  # without a bound the add would end after
            await b.devices.add(phone_id, f"phone b{len(tries)}")
            await copy(b, a)
        return await write(*args)

    a.devices._write = rename_first  # type: ignore[method-assign]
    with pytest.raises(AddsKeepChanging, match="kept changing"):
        await a.devices.add(phone_id, "phone a")
    assert len(tries) == ADD_TRIES_MAX
    await settled(a)
    assert a.devices.members()[phone_id].name == f"phone b{ADD_TRIES_MAX}"
    assert not [s for s in a.store.get_events_since(DEVICES_SESSION, 0, 1000)
                if s.event.payload.get("name") == "phone a"]


async def test_a_rename_that_counts_once_its_origin_is_bound_meanwhile_bears_on_an_add(
        nodes: list[Node]) -> None:
    """A peer's rename to the name wanted, stored before its origin's ``device_key``
    (the log takes events past a gap): the binding stored between the add's checks and
    its record makes it count, so the add is checked again and refused, writing
    nothing (not two members sharing a name)."""
    a, b, phone = nodes
    b_id, phone_id = b.key.device_id, phone.key.device_id
    await a.devices.add(b_id, "b")
    [renamed] = await phone.astore.append([membership.added(b_id, "Tablet")])
    origin = renamed.stored.origin
    key_record, rename = phone.store.origin_after(origin, 0, 10)
    assert (key_record.seq, rename.seq) == (1, 2)

    async def ingest(stored: StoredEvent) -> None:
        item = (stored.event, stored.origin, stored.seq, stored.signature)
        await a.astore.write(lambda store: store.ingest([item]))

    await ingest(rename)  # its origin not bound yet here: it counts for nothing
    await settled(a)
    assert a.devices.members()[b_id].name == "b"
    write = a.devices._write

    async def binding_first(*args: Any) -> StoredEvent | None:
        a.devices._write = write  # type: ignore[method-assign]
        await ingest(key_record)  # as replication would store it, just before this write
        return await write(*args)

    a.devices._write = binding_first  # type: ignore[method-assign]
    held = len(a.store.get_events_since(DEVICES_SESSION, 0, 1000))
    with pytest.raises(NameTaken, match=f"'tablet' is the name of the member {b_id}"):
        await a.devices.add(phone_id, "tablet")
    assert phone_id not in a.devices.members()
    assert a.devices.members()[b_id].name == "Tablet"
    assert len(a.store.get_events_since(DEVICES_SESSION, 0, 1000)) == held + 1  # the binding


async def test_an_add_held_back_by_this_devices_removal_is_refused(nodes: list[Node]) -> None:
    """This device's removal stored between an add's checks and its record: the add is
    checked again and refused as a removed device's writes are, writing nothing."""
    a, b, phone = nodes
    await a_removed_by_b(a, b)
    write, tries = a.devices._write, []

    async def removal_first(*args: Any) -> StoredEvent | None:
        tries.append(args)
        if len(tries) == 1:
            await copy(b, a)  # as replication would store it, just before this write
        return await write(*args)

    a.devices._write = removal_first  # type: ignore[method-assign]
    # The remover named as `clawsync status` names it, not by its id alone.
    with pytest.raises(OwnRemoval, match=rf"this device was removed by b \({b.key.device_id}\)"
                                         ": no other device"):
        await a.devices.add(phone.key.device_id, "phone")
    assert len(tries) == 1
    assert a.devices.own_removal() is not None
    assert not [s for s in a.store.get_events_since(DEVICES_SESSION, 0, 1000)
                if s.event.payload.get("device_id") == phone.key.device_id]


async def test_an_add_whose_own_device_is_removed_right_after_its_record_is_refused(
        nodes: list[Node]) -> None:
    """This device's removal stored right after the add's record, before the add reads
    it back: refused, the record written reaching no other device."""
    a, b, phone = nodes
    await a_removed_by_b(a, b)
    copy_right_after_next_write(b, a)
    with pytest.raises(OwnRemoval, match=rf"this device was removed by b \({b.key.device_id}\)"):
        await a.devices.add(phone.key.device_id, "phone")


async def test_a_record_counts_only_from_a_bound_origin(nodes: list[Node]) -> None:
    a, b, _ = nodes
    await b.devices.add(a.key.device_id, "a")  # b's records, signed under b's origin
    heard: list[int] = []
    a.devices.add_listener(lambda: heard.append(1))
    await copy(b, a)
    await settled(a)
    assert a.devices.members()[b.key.device_id].added_by == b.key.device_id and heard
    # The same kind of record under an origin no device key binds counts for nothing.
    record = membership.removed(b.key.device_id, "x").seal(Hlc(1, 0))
    stray = await a.astore.write(
        lambda store: store.ingest([(record, "0123456789abcdef", 1, None)]))
    assert stray[0].created
    await settled(a)
    assert a.devices.is_member(b.key.device_id) and a.devices.removed() == {}


async def test_the_remover_retires_the_removed_devices_origins(nodes: list[Node]) -> None:
    a, b, c = nodes
    await a.devices.add(c.key.device_id, "c")
    await c.astore.append([parse_event({"agent_id": "main", "kind": {
        "type": "message_received", "content": f"c {n}"}}, session_key="c:notes")
        for n in range(4)])
    await copy(c, a)
    await copy(c, b)
    [c_origin] = c.store.device_origins(c.key.device_id)
    held = a.store.version[c_origin]
    await a.devices.remove(c.key.device_id, "sold")
    assert a.store.retired[c_origin] == held
    # b did not remove it: it retires the origin only as the retirement reaches it.
    assert c_origin in b.store.version
    await copy(a, b)
    await settled(b)
    assert b.store.retired[c_origin] == held and not b.devices.is_member(c.key.device_id)
    assert len(b.store.get_events("c:notes")) == 4  # its events stay


async def test_where_a_devices_removal_is_held_is_known(nodes: list[Node]) -> None:
    """A link's last push to a removed device goes up to its removal record: the
    remover, and a node that got the record from it, know where that is here."""
    a, b, c = nodes
    await a.devices.add(c.key.device_id, "c")
    assert a.devices.removal_records(c.key.device_id) == {}
    stored, _ = await a.devices.remove(c.key.device_id, "lost")
    assert stored is not None
    at = {stored.origin: stored.seq}
    assert a.devices.removal_records(c.key.device_id) == at
    await copy(a, b)
    await settled(b)
    assert b.devices.removal_records(c.key.device_id) == at  # in the same slot
    assert b.devices.removal_records(a.key.device_id) == {}


async def test_where_the_removers_retirement_is_held_is_known_too(nodes: list[Node]
                                                                   ) -> None:
    """The remover's last push to a removed device carries its retirement of the
    device's origin too, written after the removal record: where it is held is known.
    A node that did not write the retirement notes the removal record only."""
    a, b, c = nodes
    await a.devices.add(c.key.device_id, "c")
    await c.astore.append([parse_event({"agent_id": "main", "kind": {
        "type": "message_received", "content": "c"}}, session_key="c:notes")])
    await copy(c, a)  # a holds c's origin
    stored, _ = await a.devices.remove(c.key.device_id, "lost")
    assert stored is not None
    [c_origin] = c.store.device_origins(c.key.device_id)
    assert c_origin in a.store.retired
    own = a.store.node_id
    assert a.store.version[own] > stored.seq  # the retirement, after the record
    [retirement] = [s for s in a.store.origin_after(own, stored.seq, 10)
                    if s.event.session_key == "clawsync:origins"]
    assert a.devices.removal_records(c.key.device_id) == {own: retirement.seq}
    await copy(a, b)
    await settled(b)
    assert b.devices.removal_records(c.key.device_id) == {own: stored.seq}


async def test_a_clients_append_between_removal_and_retirement_stays_out_of_its_push(
        nodes: list[Node]) -> None:
    """A client's event committed after the removal record and before the remover's
    retirement lies between them in the remover's origin: the removed device's last
    push stops at the removal record then, the retirement left out with that event."""
    a, _b, c = nodes
    await a.devices.add(c.key.device_id, "c")
    await c.astore.append([parse_event({"agent_id": "main", "kind": {
        "type": "message_received", "content": "c"}}, session_key="c:notes")])
    await copy(c, a)
    private = parse_event({"agent_id": "main", "kind": {
        "type": "message_received", "content": "secret"}}, session_key="private")
    between: list[asyncio.Future[object]] = []

    def client(commit: Commit) -> None:
        # Queued on the writer as the removal commits, before the retirement's write
        # (which comes after a read of the record): a busy node's next client append.
        # Handed to the writer's thread here, in the commit's own turn of the loop: a
        # task would start a turn later, and a read of the membership records begun
        # before the removal (the follower of an earlier commit), finishing first under
        # load, could have the retirement queued ahead of it.
        if commit.appends and commit.touches(membership.DEVICES_SESSION) and not between:
            between.append(asyncio.get_running_loop().run_in_executor(
                a.astore._writer, a.store.append, private))

    a.astore.add_commit_listener(client)
    stored, _ = await a.devices.remove(c.key.device_id, "stolen")
    await between[0]
    assert stored is not None
    own = a.store.node_id
    after = a.store.origin_after(own, stored.seq, 10)
    assert [s.event.session_key for s in after] == ["private", "clawsync:origins"]
    assert a.devices.removal_records(c.key.device_id) == {own: stored.seq}


async def test_this_devices_name_is_the_membership_records(nodes: list[Node]) -> None:
    a, b, _ = nodes
    assert a.devices.name == "d0"  # no record names it: the configured name
    await b.devices.add(a.key.device_id, "laptop")  # renamed elsewhere
    await copy(b, a)
    await settled(a)
    assert a.devices.name == "laptop"
    await a.devices.add(a.key.device_id, "laptop 2")  # and here
    assert a.devices.name == "laptop 2" == a.devices.members()[a.key.device_id].name


async def test_an_origin_bound_after_its_devices_removal_is_retired(nodes: list[Node]) -> None:
    a, _, c = nodes
    await c.astore.append([parse_event({"agent_id": "main", "kind": {
        "type": "message_received", "content": "c"}}, session_key="c:notes")])
    [c_origin] = c.store.device_origins(c.key.device_id)
    await a.devices.add(c.key.device_id, "c")
    await a.devices.remove(c.key.device_id, "lost")
    assert c_origin not in a.store.retired  # a holds nothing of it yet
    await copy(c, a)  # its device_key binds the origin here only now
    await settled(a)
    assert a.store.retired[c_origin] == 2  # its device_key and its one event


async def test_a_device_named_by_a_peer_does_not_add_itself_again(nodes: list[Node]) -> None:
    a, b, c = nodes
    await b.devices.add(a.key.device_id, "laptop")
    await copy(b, a)  # not settled: a has not read the record yet
    await a.devices.add(c.key.device_id, "c")
    assert a.devices.name == "laptop"
    written = [s.event for s in a.store.get_events(membership.DEVICES_SESSION)
               if s.origin == a.store.node_id and membership.read(s.event) is not None]
    assert [membership.read(e)[:2] for e in written] == [  # type: ignore[index]
        (membership.DEVICE_ADDED, c.key.device_id)]


async def test_adding_a_member_again_without_its_address_keeps_it(nodes: list[Node]) -> None:
    a, b, _ = nodes
    url = "http://laptop.local:7878"
    stored, member = await a.devices.add(b.key.device_id, "laptop", url)
    assert stored is not None and member.address == url
    # The same add without the address (as `clawsync devices add ID NAME` sends it)
    # changes nothing and writes nothing; a rename keeps the address too.
    head = a.store.head
    stored, member = await a.devices.add(b.key.device_id, "laptop")
    assert stored is None and member.address == url and a.store.head == head
    stored, member = await a.devices.add(b.key.device_id, "work laptop")
    assert stored is not None and (member.name, member.address) == ("work laptop", url)
    # None clears it (`devices add --no-address`, "address": null).
    stored, member = await a.devices.add(b.key.device_id, "work laptop", None)
    assert stored is not None and member.address is None


async def test_two_devices_adding_each_other_keep_the_addresses_given(
        nodes: list[Node]) -> None:
    """Each adds the other with an address before they link (neither advertises one):
    the add of itself each writes first, later than the other's add of it, says
    nothing of its address, so it does not erase the one given. Either copy order
    gives both the same view."""
    a, b, _ = nodes
    url_a, url_b = "http://a.local:7878", "http://b.local:7878"
    await a.devices.add(b.key.device_id, "b", url_b)
    await b.devices.add(a.key.device_id, "a", url_a)  # b's add of itself comes later
    read = [membership.read(s.event) for s in b.store.get_events(membership.DEVICES_SESSION)]
    own = [found for found in read if found is not None and found[1] == b.key.device_id]
    assert own and all("address" not in found[2] for found in own)
    await copy(a, b)
    await copy(b, a)
    await settled(a, b)
    expected = {a.key.device_id: url_a, b.key.device_id: url_b}
    for node in (a, b):
        members = node.devices.members()
        assert {device: m.address for device, m in members.items()} == expected
    assert a.devices.members() == b.devices.members()
    # `devices add ID --name NAME` of a device not known here says nothing either.
    stored, _ = await a.devices.add(nodes[2].key.device_id, "c")
    assert stored is not None and "address" not in stored.event.payload


def carried(node: Node, through: dict[str, int]) -> list[StoredEvent]:
    """What a last push up to ``through`` carries at most (the device lacking all)."""
    return [stored for origin, seq in through.items()
            for stored in node.store.origin_after(origin, 0, seq)]


async def note(node: Node) -> None:
    """A message in ``node``'s own origin (a client's)."""
    await node.astore.append([parse_event({"agent_id": "main", "kind": {
        "type": "message_received", "content": "note"}}, session_key="notes")])


async def removed_then_moved(a: Node, b: Node, c: Node) -> tuple[StoredEvent, str]:
    """a adds c (c writing a message) and removes it, holding none of c yet; b retires
    a's origin at all a holds and a reads that, moving to a new origin. The removal
    record, and the origin a left."""
    await a.devices.add(c.key.device_id, "c")
    await note(c)
    stored, _ = await a.devices.remove(c.key.device_id, "lost")  # a holds none of c yet
    assert stored is not None
    await copy(a, b)
    old = a.store.node_id
    await b.astore.write(lambda store: store.retire(old))  # at all a holds
    await copy(b, a)
    return stored, old


async def test_a_removal_record_moved_with_this_nodes_origin_is_pushed_from_there(
        nodes: list[Node]) -> None:
    """Retired below the record that removes a device (by a node that held less of
    it), this node's origin moves the record, and the retirement after it, to its new
    origin: the device's last push goes up to them there, not to the slot they left."""
    a, b, c = nodes
    await a.devices.add(c.key.device_id, "c")
    await note(c)
    await copy(c, a)
    await copy(a, b)  # b holds a's origin up to here
    old = a.store.node_id
    final_seq = a.store.version[old]
    stored, _ = await a.devices.remove(c.key.device_id, "lost")
    assert stored is not None and stored.seq > final_seq
    before = carried(a, a.devices.removal_records(c.key.device_id))
    assert [s.event.session_key for s in before[-2:]] == [DEVICES_SESSION, ORIGINS_SESSION]
    await b.astore.write(lambda store: store.retire(old))  # at what b holds
    await copy(b, a)
    await settled(a)
    assert a.store.node_id != old and a.store.retired[old] == final_seq
    assert a.store.origin_after(old, final_seq, 10) == []  # the slots left are empty
    through = a.devices.removal_records(c.key.device_id)
    assert set(through) == {a.store.node_id}
    after = carried(a, through)
    assert [s.event.id for s in after[-2:]] == [s.event.id for s in before[-2:]]


async def test_a_removal_record_is_found_when_read_after_its_origin_moved(
        nodes: list[Node]) -> None:
    """The record is read only after the move (the retirement came between its commit
    and the read): the stored event names the slot it left, yet the push finds it."""
    a, b, c = nodes
    await a.devices.add(c.key.device_id, "c")
    await copy(a, b)
    old, final_seq = a.store.node_id, a.store.version[a.store.node_id]
    await b.astore.write(lambda store: store.retire(old))
    record = await a.astore.write(lambda store: store.append(
        membership.removed(c.key.device_id, "lost")))  # not through Devices
    await copy(b, a)
    assert a.store.node_id != old and a.store.retired[old] == final_seq
    await settled(a)
    assert a.devices.is_removed(c.key.device_id)
    through = a.devices.removal_records(c.key.device_id)
    assert record.stored.event.id in {s.event.id for s in carried(a, through)}


async def test_a_retirement_written_under_a_new_origin_rides_along_a_removal_of_the_old(
        nodes: list[Node]) -> None:
    """The record in an origin this node left (retired at all it held), the retirement
    of the device's origin in the next: it rides along if only ``device_key`` records
    and retirements come before it there; a client's event there keeps it out."""
    a, b, c = nodes
    stored, old = await removed_then_moved(a, b, c)
    await settled(a)
    new = a.store.node_id
    assert new != old and a.store.retired[old] == stored.seq
    await copy(c, a)  # c's origin: a retires it now, under its new origin
    await settled(a)
    [c_origin] = c.store.device_origins(c.key.device_id)
    assert c_origin in a.store.retired
    through = a.devices.removal_records(c.key.device_id)
    assert through == {old: stored.seq, new: a.store.version[new]}
    assert [s.event.kind for s in carried(a, through) if s.origin == new] == [
        "device_key", "origin_retired"]


async def test_a_clients_event_under_the_new_origin_keeps_the_retirement_out(
        nodes: list[Node]) -> None:
    a, b, c = nodes
    stored, old = await removed_then_moved(a, b, c)
    await note(a)  # under the new origin, before the retirement
    await copy(c, a)
    await settled(a)
    assert a.devices.removal_records(c.key.device_id) == {old: stored.seq}


async def test_a_name_another_member_has_is_refused_and_nothing_is_written(
        nodes: list[Node]) -> None:
    """Two members listed under one name cannot be told apart: an add or a rename to a
    name another member has (in any case) is refused, naming that member, and writes
    nothing. A removed device's name is free again."""
    a, b, c = nodes
    await a.devices.add(b.key.device_id, "phone")
    head = a.store.head
    for device_id, name, holder in ((c.key.device_id, "phone", b), (c.key.device_id, "Phone", b),
                                    (a.key.device_id, "phone", b), (b.key.device_id, "d0", a)):
        with pytest.raises(NameTaken) as refused:
            await a.devices.add(device_id, name)
        assert refused.value.code == "name_taken" and refused.value.field == "name"
        assert refused.value.member == holder.key.device_id
        assert holder.key.device_id in str(refused.value)
    assert a.store.head == head
    await a.devices.remove(b.key.device_id)
    stored, member = await a.devices.add(c.key.device_id, "phone")
    assert stored is not None and member.name == "phone"


async def test_two_adds_at_once_cannot_both_take_a_name(nodes: list[Node]) -> None:
    """Adds on one node are taken one at a time: of two at once under one name (in two
    cases), one is refused, though neither found it taken when it began."""
    a, b, c = nodes
    done = await asyncio.gather(a.devices.add(b.key.device_id, "phone"),
                                a.devices.add(c.key.device_id, "Phone"),
                                return_exceptions=True)
    assert sorted(type(result).__name__ for result in done) == ["NameTaken", "tuple"]
    names = [member.name for member in a.devices.members().values()]
    assert sorted(names) in (["Phone", "d0"], ["d0", "phone"])


async def test_an_add_cancelled_once_its_record_is_queued_holds_the_name_till_written(
        nodes: list[Node]) -> None:
    """A record queued for the disk is written even if its add is cancelled: the next
    add waits for it, and finds the name taken."""
    a, b, c = nodes
    await a.devices.add(a.key.device_id, "d0")  # this node's own add first
    # The writer thread held busy, so that the add's write waits in its queue.
    busy, free = threading.Event(), threading.Event()
    held = asyncio.ensure_future(a.astore.write(lambda _store: busy.set() or free.wait()))
    await asyncio.to_thread(busy.wait)
    first = asyncio.create_task(a.devices.add(b.key.device_id, "phone"))
    queue = a.astore._writer._work_queue  # type: ignore[attr-defined]
    while not queue.qsize():
        assert not first.done()
        await asyncio.sleep(0)
    first.cancel()
    second = asyncio.create_task(a.devices.add(c.key.device_id, "Phone"))
    await asyncio.sleep(0)
    free.set()
    await held
    with pytest.raises(NameTaken):
        await second
    with pytest.raises(asyncio.CancelledError):
        await first
    names = [member.name for member in a.devices.members().values()]
    assert sorted(names) == ["d0", "phone"]


@pytest.mark.parametrize("name", ["Phone", "phone ", " phone", "\uff50\uff48\uff4f\uff4e\uff45",
                                  "PHONE\u200d", "phone\ufe0f", "phone\u034f", "phone\u2800"])
async def test_names_that_read_alike_are_one_name(nodes: list[Node], name: str) -> None:
    """Names are compared as people read them: case, compatibility forms (fullwidth
    letters), spaces at either end and invisible characters (the joiners, variation
    selectors, a braille blank at an end) do not tell two apart."""
    a, b, c = nodes
    await a.devices.add(b.key.device_id, "phone")
    with pytest.raises(NameTaken):
        await a.devices.add(c.key.device_id, name)


async def test_a_composed_and_a_decomposed_accent_are_one_name(nodes: list[Node]) -> None:
    a, b, c = nodes
    await a.devices.add(b.key.device_id, "caf\u00e9")
    with pytest.raises(NameTaken):
        await a.devices.add(c.key.device_id, "cafe\u0301")


@pytest.mark.parametrize(("name", "said"), [
    ("laptop\u200b", "invisible characters"), ("\u202elaptop", "bidirectional controls"),
    ("lap\u00adtop", "invisible characters"), ("pho\u2028ne", "line or paragraph separators"),
    ("\u200d", "shows as nothing"), (" ", "shows as nothing"),
    ("phone\u3164", "invisible characters"), ("pho\U0001d173ne", "invisible characters"),
    ("\u2800", "shows as nothing")])
async def test_a_new_name_that_hides_text_is_refused(
        nodes: list[Node], name: str, said: str) -> None:
    """A character that shows as nothing or reorders the text makes a name read as
    another's; a name of nothing visible reads as none."""
    a, b, c = nodes
    head = a.store.head
    with pytest.raises(InvalidInput, match=said):
        await a.devices.add(b.key.device_id, name)
    assert a.store.head == head
    stored, _ = await a.devices.add(b.key.device_id, "\U0001f468\u200d\U0001f4bb")
    assert stored is not None  # the joiner of an emoji is taken
    stored, _ = await a.devices.add(c.key.device_id, "\u0644\u067e\u200c\u062a\u0627\u067e")
    assert stored is not None  # and the non-joiner of Persian


async def test_a_name_recorded_with_an_invisible_character_still_counts(
        nodes: list[Node]) -> None:
    """A record written before such names were refused still adds its device, under
    its name, and an add that keeps the name (a new address) is taken."""
    a, b, _ = nodes
    old = "laptop\u200b"
    payload = {"device_id": b.key.device_id, "name": old}
    await a.devices.add(a.key.device_id, "d0")  # this node's own add first
    await a.astore.append([Draft(DEVICES_SESSION, membership.AGENT_ID,
                                 membership.DEVICE_ADDED, payload)])
    await settled(a)
    assert a.devices.members()[b.key.device_id].name == old
    stored, member = await a.devices.add(b.key.device_id, old, "http://laptop.lan:7878")
    assert stored is not None and (member.name, member.address) == (
        old, "http://laptop.lan:7878")
    with pytest.raises(NameTaken):  # and it is the name "laptop"
        await a.devices.add(a.key.device_id, "Laptop")


async def test_members_that_share_a_name_already_keep_working(nodes: list[Node]) -> None:
    """Two nodes adding two devices under one name concurrently (or a store of a version
    that let it) leave two members with that name: both stay members, and an add that
    does not rename either (a new address) is taken."""
    a, b, c = nodes
    await a.devices.add(c.key.device_id, "phone")
    await b.devices.add(a.key.device_id, "phone")  # b does not know c yet
    await copy(b, a)
    await settled(a)
    members = a.devices.members()
    assert members[a.key.device_id].name == members[c.key.device_id].name == "phone"
    assert a.devices.name_groups() == [sorted([a.key.device_id, c.key.device_id])]
    stored, member = await a.devices.add(c.key.device_id, "phone", "http://phone.lan:7878")
    assert stored is not None and member.address == "http://phone.lan:7878"
    await a.devices.add(c.key.device_id, "tablet")  # a rename ends the clash
    assert a.devices.name_groups() == []
