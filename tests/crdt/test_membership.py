"""Device membership (crdt.membership): the 2P-set rule, records from bound origins only,
and the same members and removed devices whatever the order or split of the records."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crdt import membership
from crdt.clock import Hlc
from crdt.device import device_id, private_key_from_seed, public_bytes
from crdt.errors import InvalidInput
from crdt.events import Draft, Event
from crdt.membership import Membership

DEVICES = [device_id(public_bytes(private_key_from_seed(bytes([n]) * 32))) for n in range(4)]
BOUND = {"o-a": DEVICES[0], "o-b": DEVICES[1]}
ORIGINS = [*BOUND, "o-unbound"]


def _view(records: list[tuple[str, Event]]) -> tuple[object, object]:
    view = Membership.of(records, BOUND.get)
    return view.members(), view.removed()


record = st.builds(
    lambda origin, remove, device, ms, name, address: (origin, (
        membership.removed(DEVICES[device], name) if remove
        else membership.added(DEVICES[device], name, address)).seal(Hlc(ms, 0))),
    st.sampled_from(ORIGINS), st.booleans(), st.integers(0, 3), st.integers(1, 50),
    st.sampled_from(["laptop", "phone", "home"]),
    st.sampled_from([membership.UNSAID, None, "http://a:1", "http://b:2"]))


@settings(max_examples=200)
@given(st.lists(record, max_size=12), st.randoms(use_true_random=False),
       st.integers(0, 12))
def test_any_order_or_split_of_the_records_gives_the_same_set(
        records: list[tuple[str, Event]], rnd: object, cut: int) -> None:
    expected = _view(records)
    shuffled = list(records)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert _view(shuffled) == expected
    # Two partitioned nodes each hold a part, then each takes the other's (and repeats).
    left, right = shuffled[:cut], shuffled[cut:]
    assert _view(left + right + left) == _view(right + left) == expected
    # The rule itself: added and never removed, counting bound origins only.
    counted = [(o, membership.read(e)) for o, e in records if o in BOUND]
    adds = {r[1] for _, r in counted if r and r[0] == membership.DEVICE_ADDED}
    removes = {r[1] for _, r in counted if r and r[0] == membership.DEVICE_REMOVED}
    members, removed = expected
    assert set(members) == adds - removes  # type: ignore[arg-type]
    assert set(removed) == removes  # type: ignore[arg-type]


def test_a_removal_wins_over_a_later_add_and_says_who_and_why() -> None:
    phone = DEVICES[2]
    records = [("o-a", membership.added(phone, "phone").seal(Hlc(1, 0))),
               ("o-b", membership.removed(phone, "lost").seal(Hlc(2, 0))),
               ("o-a", membership.added(phone, "phone").seal(Hlc(3, 0)))]
    view = Membership.of(records, BOUND.get)
    assert not view.is_member(phone) and view.is_removed(phone)
    assert view.removed()[phone] == membership.Removal(DEVICES[1], 2, "lost", "phone")


def test_the_last_add_names_a_member_the_first_says_who_added_it() -> None:
    phone = DEVICES[2]
    view = Membership(BOUND.get)
    assert view.add("o-a", membership.added(phone, "new", "http://p:1").seal(Hlc(5, 0)))
    assert view.members()[phone] == membership.Member("new", "http://p:1", DEVICES[0], 5)
    # An earlier add arriving later: the adder changes, the name and address do not.
    assert view.add("o-b", membership.added(phone, "old").seal(Hlc(4, 0)))
    assert view.members()[phone] == membership.Member("new", "http://p:1", DEVICES[1], 4)
    # A device re-advertising itself later does not become its own adder.
    assert view.add("o-a", membership.added(phone, "newer").seal(Hlc(6, 0)))
    assert view.members()[phone] == membership.Member("newer", None, DEVICES[1], 4)
    assert view.add("o-b", membership.removed(phone, "second").seal(Hlc(9, 0)))
    assert view.add("o-a", membership.removed(phone, "first").seal(Hlc(7, 0)))
    assert not view.add("o-b", membership.removed(phone, "third").seal(Hlc(8, 0)))
    assert view.removed()[phone].reason == "first"


def test_a_record_of_an_unbound_origin_counts_once_the_origin_is_bound() -> None:
    bound: dict[str, str] = {}
    view = Membership(bound.get)
    assert not view.add("o-late", membership.added(DEVICES[3], "tv").seal(Hlc(1, 0)))
    assert view.members() == {} and not view.refresh()
    bound["o-late"] = DEVICES[0]
    assert view.refresh() and view.is_member(DEVICES[3])


def test_records_that_only_look_like_membership_count_for_nothing() -> None:
    fakes = [
        Draft(membership.DEVICES_SESSION, "x", membership.DEVICE_ADDED,
              {"device_id": DEVICES[2].lower(), "name": "lower", "address": None}),
        Draft(membership.DEVICES_SESSION, "x", membership.DEVICE_ADDED,
              {"device_id": DEVICES[2], "name": 7, "address": None}),
        Draft(membership.DEVICES_SESSION, "x", membership.DEVICE_REMOVED,
              {"device_id": DEVICES[2]}),
        Draft("elsewhere", "x", membership.DEVICE_ADDED,
              {"device_id": DEVICES[2], "name": "n", "address": None}),
    ]
    view = Membership.of([("o-a", d.seal(Hlc(1, 0))) for d in fakes], BOUND.get)
    assert view.members() == {} and view.removed() == {}


@pytest.mark.parametrize("call, field, message", [
    (lambda: membership.added("ABC", "x"), "device_id", "56"),
    (lambda: membership.added(DEVICES[0][:-1] + "B", "x"), "device_id", "check character 4"),
    (lambda: membership.added(DEVICES[0], ""), "name", "empty"),
    (lambda: membership.added(DEVICES[0], "x", "ftp://h"), "address", "http"),
    (lambda: membership.removed(DEVICES[0], "r" * 257), "reason", "limit"),
    (lambda: membership.added(DEVICES[0], "x", "http://" + "h" * 2042), "address", "limit"),
])
def test_bad_input_is_refused_naming_the_field(call: object, field: str,
                                               message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        call()  # type: ignore[operator]
    assert caught.value.field == field and message in str(caught.value)


def test_the_longest_address_and_reason_are_taken() -> None:
    address = "http://" + "h" * (membership.ADDRESS_BYTES_MAX - 7)
    assert membership.added(DEVICES[0], "x", address).payload["address"] == address
    reason = "r" * membership.REASON_BYTES_MAX
    assert membership.removed(DEVICES[0], reason).payload["reason"] == reason


def test_an_add_that_says_no_address_keeps_the_one_given_in_any_order() -> None:
    """Two devices that add each other with an address before they link: each one's
    later add of itself says nothing of its address, and does not erase it."""
    laptop, phone = DEVICES[0], DEVICES[1]
    records = [
        ("o-a", membership.added(laptop, "laptop", membership.UNSAID).seal(Hlc(1, 0))),
        ("o-a", membership.added(phone, "phone", "http://phone:1").seal(Hlc(2, 0))),
        ("o-b", membership.added(phone, "phone", membership.UNSAID).seal(Hlc(3, 0))),
        ("o-b", membership.added(laptop, "laptop", "http://laptop:1").seal(Hlc(4, 0)))]
    forward = Membership.of(records, BOUND.get).members()
    backward = Membership.of(reversed(records), BOUND.get).members()
    assert forward == backward
    assert {device: (m.name, m.address, m.added_by) for device, m in forward.items()} == {
        laptop: ("laptop", "http://laptop:1", DEVICES[0]),
        phone: ("phone", "http://phone:1", DEVICES[0])}
    assert "address" not in records[0][1].payload


def test_a_null_address_clears_and_the_last_said_wins() -> None:
    phone = DEVICES[2]
    view = Membership(BOUND.get)
    assert view.add("o-a", membership.added(phone, "p", "http://p:1").seal(Hlc(1, 0)))
    assert view.add("o-b", membership.added(phone, "p", "http://p:2").seal(Hlc(3, 0)))
    # An earlier address arriving late (it changes the adder only), and a later add
    # saying none: the address stays.
    assert view.add("o-a", membership.added(phone, "p", "http://p:9").seal(Hlc(0, 5)))
    assert view.add("o-a", membership.added(phone, "q", membership.UNSAID).seal(Hlc(4, 0)))
    assert view.members()[phone].address == "http://p:2"
    assert view.members()[phone].name == "q"
    # A later null clears it (``devices add --no-address``).
    assert view.add("o-a", membership.added(phone, "q", None).seal(Hlc(5, 0)))
    assert view.members()[phone].address is None
    # And a later address after it gives one again.
    assert view.add("o-b", membership.added(phone, "q", "http://p:3").seal(Hlc(6, 0)))
    assert view.members()[phone].address == "http://p:3"


def test_an_add_without_an_address_key_is_read_as_saying_none() -> None:
    """What older nodes read as null (``payload.get``); a newer node reads it as silent."""
    event = membership.added(DEVICES[0], "x", membership.UNSAID).seal(Hlc(1, 0))
    found = membership.read(event)
    assert found is not None and found[2] == {"name": "x"}
    assert event.payload.get("address") is None


#: Addresses that passed the older check (``http(s)://`` and anything after it), and that
#: no node could dial, or that hold a password ("hunter2") no error may show (or a token
#: in a query or fragment, which the node's paths would land in).
UNDIALABLE = ["http://u:hunter2@hub:7878", "http://u:hunter2?x@hub/", "http://u:hunter2#x@hub",
              "http://u:1\\hunter2@hub", "http:///hub", "http://hub:0", "http://hub:65536",
              "https://hub:x", "http://hub:7878/?sig=hunter2", "http://hub:7878/?page=2",
              "http://hub#hunter2"]


@pytest.mark.parametrize("address", UNDIALABLE)
def test_an_address_no_node_could_dial_is_refused_without_showing_it(address: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        membership.added(DEVICES[0], "x", address)
    assert caught.value.field == "address" and "hunter2" not in str(caught.value)


@pytest.mark.parametrize("address", UNDIALABLE)
def test_a_record_with_such_an_address_counts_without_it(address: str) -> None:
    """Sent by another node, or stored by one whose check was only ``http(s)://``: read
    without raising, and counted as the add of a member (as those nodes count it), with
    its address unsaid: the address another add gave stays, and none is shown."""
    phone, tablet = DEVICES[2], DEVICES[3]
    view = Membership(BOUND.get)
    assert view.add("o-a", membership.added(phone, "p", "http://p:1").seal(Hlc(1, 0)))
    bad = _add_saying(phone, "q", address, Hlc(2, 0))
    assert membership.read(bad) == (membership.DEVICE_ADDED, phone, {"name": "q"})
    assert view.add("o-a", bad)
    assert view.members()[phone].name == "q" and view.members()[phone].address == "http://p:1"
    alone = Membership.of([("o-a", _add_saying(tablet, "t", address, Hlc(3, 0)))], BOUND.get)
    assert alone.is_member(tablet) and alone.recorded()
    assert alone.members()[tablet].address is None
    assert "hunter2" not in repr(alone.members())


@pytest.mark.parametrize("address", [5, "ftp://hub", "http://", "hub:7878", "x" * 3000,
                                     "http://" + "h" * (membership.ADDRESS_BYTES_MAX - 6),
                                     "HTTP://hub:7878", "Https://hub"])
def test_a_record_whose_address_is_no_address_at_all_counts_for_nothing(
        address: object) -> None:
    """As every version has read it: no text, not ``http(s)://`` (in lower case) and
    more, or longer than ``ADDRESS_BYTES_MAX`` bytes (the last, an address but for its
    length). Who is a member decides admission, so nodes must agree on it: an upper-case
    scheme, which older nodes read as no record, is none here either."""
    view = Membership.of([("o-a", _add_saying(DEVICES[2], "q", address, Hlc(1, 0)))],
                         BOUND.get)
    assert view.members() == {} and not view.recorded()


def _add_saying(device: str, name: str, address: object, at: Hlc) -> Event:
    """An add written as another node would, its address not checked here."""
    return Draft(membership.DEVICES_SESSION, membership.AGENT_ID, membership.DEVICE_ADDED,
                 {"device_id": device, "name": name, "address": address}).seal(at)


@pytest.mark.parametrize("address", ["HTTP://hub:7878", "HTTPS://hub/cs"])
def test_an_address_given_with_an_upper_case_scheme_is_written_in_lower_case(
        address: str) -> None:
    """Schemes are case-insensitive: the address is taken, and written as every version
    reads a record (``http(s)://``), so that the add counts on older nodes too."""
    add = membership.added(DEVICES[2], "p", address).seal(Hlc(1, 0))
    assert add.payload["address"] == address.lower()
    view = Membership.of([("o-a", add)], BOUND.get)
    assert view.members()[DEVICES[2]].address == address.lower()
