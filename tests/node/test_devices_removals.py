"""node.devices removals with real stores that sign: the node that removed a device
retires its origins (and one bound after the removal), and knows where the removal
record, and its retirement, are held for the device's last push, the origin it was
written in moved or not."""

from __future__ import annotations

import asyncio

from crdt import membership
from crdt.events import parse_event
from crdt.log.records import StoredEvent
from crdt.log.retire import ORIGINS_SESSION
from crdt.membership import DEVICES_SESSION
from node.store import Commit
from tests.support.device_stores import Node, copy, settled


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
