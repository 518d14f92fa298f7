"""node.devices with real stores that sign (one per device) and records copied between
them as replication copies them: the membership follows what is stored, whichever way
it came (a record counts from a bound origin only; this device's name and the addresses
given are the records'). Adds raced by records stored meanwhile:
``test_devices_racing_adds``; removals and the origins they retire:
``test_devices_removals``; the names members take: ``test_devices_names``."""

from __future__ import annotations

from crdt import membership
from crdt.clock import Hlc
from tests.support.device_stores import Node, copy, settled


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


async def test_this_devices_name_is_the_membership_records(nodes: list[Node]) -> None:
    a, b, _ = nodes
    assert a.devices.name == "d0"  # no record names it: the configured name
    await b.devices.add(a.key.device_id, "laptop")  # renamed elsewhere
    await copy(b, a)
    await settled(a)
    assert a.devices.name == "laptop"
    await a.devices.add(a.key.device_id, "laptop 2")  # and here
    assert a.devices.name == "laptop 2" == a.devices.members()[a.key.device_id].name


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
