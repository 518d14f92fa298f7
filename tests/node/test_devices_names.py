"""The names members take (node.devices), with real stores that sign: a name another
member has, read as people read it, is refused and writes nothing, two adds at once
cannot both take one, a name that hides text is refused; names recorded before these
rules, and members already sharing a name, keep working."""

from __future__ import annotations

import asyncio
import threading

import pytest

from crdt import membership
from crdt.errors import InvalidInput
from crdt.events import Draft
from crdt.membership import DEVICES_SESSION
from node.devices import NameTaken
from tests.support.device_stores import Node, copy, settled


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
