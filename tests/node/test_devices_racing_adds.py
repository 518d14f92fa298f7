"""node.devices adds raced by what is stored meanwhile, with real stores that sign: an
add and a removal made apart on two nodes resolve alike in either order; a removal, a
rename or a binding stored between an add's checks and its record (or right after its
record) has it checked again and refused as it says, writing nothing; records that do
not bear on it do not hold it back, and an add they keep bearing on gives up."""

from __future__ import annotations

from typing import Any

import pytest

from crdt import membership, tokens
from crdt.log.records import StoredEvent
from crdt.membership import DEVICES_SESSION
from node.add_tries import ADD_TRIES_MAX, AddsKeepChanging
from node.devices import NameTaken, OwnRemoval, RemovalIsFinal
from tests.support.device_stores import Node, copy, settled


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
