"""node.peers.addresses: the addresses peers give, as a members round reads them
(``node.peers.member_lists``): one no node could dial is dropped and logged once, by why
only, not every round; the node's memory of what it logged is its own, bounded, and
holds neither an address nor a peer's node id; a member's address no lookup takes is
not dialed."""

from __future__ import annotations

import structlog

from crdt.events import Draft
from crdt.membership import AGENT_ID, DEVICE_ADDED, DEVICES_SESSION
from node.peers.addresses import (
    REFUSALS_LOGGED_MAX,
    SAID_BY_SHOWN_MAX,
    RefusalsLogged,
    dialable,
)
from node.peers.learning import MEMBER_ADDRESS_NOT_DIALED
from node.peers.member_lists import SKIPPED, member_urls
from node.server.devices import DEVICES
from tests.node.peers.support import FAST, NodeFactory, add_member, new_device_id, until
from tests.support.addresses import HOST_NAMES_A_LOOKUP_TAKES, HOST_NAMES_NO_LOOKUP_TAKES
from tests.support.processes import free_port


def _listed(lister: str | None, url: str) -> dict[str, object]:
    return {"node_id": lister, "advertise_url": "http://a:1",
            "peers": [{"url": url, "node_id": "n1"}, {"url": "http://b:1", "node_id": "n2"}]}


def test_a_refused_address_is_logged_once_not_every_members_round() -> None:
    listed, logged = _listed("n0", "http://u:hunter2@hub:7878"), RefusalsLogged()
    with structlog.testing.capture_logs() as first:
        assert [one.url for one in member_urls(listed, logged=logged)] == [
            "http://a:1", "http://b:1"]
    with structlog.testing.capture_logs() as second:
        assert [one.url for one in member_urls(listed, logged=logged)] == [
            "http://a:1", "http://b:1"]
    assert [(entry["event"], entry["said_by"], entry["reason"]) for entry in first] == [
        (SKIPPED, "n0", "holds a user name or password")]
    assert second == []
    assert "hunter2" not in repr(first) + repr(logged._seen)


def test_each_node_remembers_what_it_logged_itself() -> None:
    """Two nodes in one process: one's log does not silence the other's."""
    listed = _listed("n0", "http:///hub")
    with structlog.testing.capture_logs() as said:
        for node in (RefusalsLogged(), RefusalsLogged()):
            member_urls(listed, logged=node)
            member_urls(listed, logged=node)
    assert [entry["said_by"] for entry in said] == ["n0", "n0"]


def test_a_lister_that_names_no_node_is_told_by_the_address_it_was_dialed_at() -> None:
    """Logged once, not every round, as a lister that names its node id; a lister
    dialed at another address is another."""
    logged = RefusalsLogged()
    with structlog.testing.capture_logs() as said:
        for dialed in ("http://p:1", "http://p:1", "http://q:1", "http://q:1"):
            member_urls(_listed(None, "http:///hub"), logged=logged, dialed=dialed)
    assert [(entry["said_by"], entry["peer"]) for entry in said] == [
        (None, "http://p:1"), (None, "http://q:1")]


def test_an_answer_told_from_no_other_logs_each_reason_once() -> None:
    """A lister that names no node id, read with no address it was dialed at (or with
    no memory): each reason is logged once for the answer, not once per entry (an
    answer ``members_bytes_max`` long holds tens of thousands), and the node's memory
    keeps nothing of it, so other such listers are not silenced."""
    flood = {"advertise_url": "http://a:1",
             "peers": [{"url": "x"}] * 20_000 + [{"url": "http:///hub"}] * 20_000}
    logged = RefusalsLogged()
    with structlog.testing.capture_logs() as said:
        for _round in range(2):
            assert [one.url for one in member_urls(flood, logged=logged)] == ["http://a:1"]
        member_urls({**flood, "node_id": "n0"})  # no memory
    assert [entry["reason"] for entry in said] == [
        "must be an http:// or https:// URL", "names no host"] * 3
    assert len(logged) == 0


def test_a_line_shows_a_long_node_id_cut() -> None:
    """The id is the peer's to choose, up to a members answer long."""
    with structlog.testing.capture_logs() as said:
        member_urls(_listed("n" * 100_000, "http:///hub"), logged=RefusalsLogged())
        member_urls(_listed("n" * SAID_BY_SHOWN_MAX, "http:///hub"))
    assert [entry["said_by"] for entry in said] == [
        "n" * SAID_BY_SHOWN_MAX + "…", "n" * SAID_BY_SHOWN_MAX]


def test_another_reason_or_lister_is_logged_and_the_memory_is_bounded() -> None:
    logged = RefusalsLogged()
    with structlog.testing.capture_logs() as said:
        assert not dialable("http://hub:0", "n0", SKIPPED, logged)
        assert not dialable("http:///hub", "n0", SKIPPED, logged)  # another reason
        assert not dialable("http://hub:0", "n1", SKIPPED, logged)  # another lister
        assert not dialable("http://hub:0", "n0", SKIPPED, logged)  # said already
    assert len(said) == 3
    for n in range(REFUSALS_LOGGED_MAX):  # as many others: the first is forgotten
        dialable("http://hub:0", f"other-{n}", SKIPPED, logged)
    assert len(logged) == REFUSALS_LOGGED_MAX
    with structlog.testing.capture_logs() as again:
        assert not dialable("http://hub:0", "n0", SKIPPED, logged)
    assert [entry["said_by"] for entry in again] == ["n0"]


def test_a_refusal_said_again_is_remembered_from_then() -> None:
    """Forgotten after ``REFUSALS_LOGGED_MAX`` others were seen since it was last seen,
    not since it was logged: a peer that says it every round is not logged again for
    others said meanwhile."""
    logged = RefusalsLogged()
    dialable("http://hub:0", "n0", SKIPPED, logged)
    for n in range(REFUSALS_LOGGED_MAX - 1):
        dialable("http://hub:0", f"other-{n}", SKIPPED, logged)
    dialable("http://hub:0", "n0", SKIPPED, logged)  # seen again: the newest
    dialable("http://hub:0", "one-more", SKIPPED, logged)
    with structlog.testing.capture_logs() as again:
        assert not dialable("http://hub:0", "n0", SKIPPED, logged)
    assert again == []


def test_the_memory_holds_a_digest_of_a_peers_node_id_not_the_id() -> None:
    """A node id is the peer's to choose, as long as a members answer."""
    logged, long_id = RefusalsLogged(), "n" * 100_000
    dialable("http://hub:0", long_id, SKIPPED, logged)
    dialable("http://hub:0", "\ud800", SKIPPED, logged)  # JSON may hold a lone surrogate
    assert len(logged) == 2
    assert all(len(said_by) == 16 for _dropped, said_by, _reason in logged._seen)


def test_without_a_memory_each_refusal_is_logged() -> None:
    with structlog.testing.capture_logs() as said:
        assert not dialable("http://hub:0", "n0", "advertised address dropped")
        assert not dialable("http://hub:0", "n0", "advertised address dropped")
    assert len(said) == 2


def test_an_address_a_peer_gives_with_an_upper_case_scheme_is_dropped() -> None:
    """A node of this project lists addresses with their scheme in lower case
    (``node.config``): kept, "HTTP://b:1" would be a second address of "http://b:1"."""
    with structlog.testing.capture_logs() as said:
        assert [one.url for one in member_urls(_listed("n0", "HTTP://b:1"))] == [
            "http://a:1", "http://b:1"]
    assert [entry["reason"] for entry in said] == ["has a scheme not in lower case"]


def test_a_listed_address_no_lookup_takes_is_skipped() -> None:
    """A host name no lookup takes (``node.checks.host_name_problem``): an older node
    took it, and a dial of it fails at every retry. Skipped, its reason logged once at
    debug, as any refused address."""
    for url, said in HOST_NAMES_NO_LOOKUP_TAKES:
        logged = RefusalsLogged()
        with structlog.testing.capture_logs() as first:
            assert [one.url for one in member_urls(_listed("n0", url), logged=logged)] == [
                "http://a:1", "http://b:1"]
        with structlog.testing.capture_logs() as second:
            member_urls(_listed("n0", url), logged=logged)
        assert [(entry["reason"], entry["log_level"]) for entry in first] == [
            (said, "debug")]
        assert second == []


async def test_a_member_address_no_lookup_takes_is_not_dialed(make_node: NodeFactory
                                                              ) -> None:
    """A member record whose address an older node took (``http://a..example``): every
    dial of it would fail at its lookup, for good. Not dialed; a member's address that
    can be looked up is, in the same round."""
    node = await make_node(sync=FAST)
    dead = f"http://127.0.0.1:{free_port()}"
    await add_member(node, "laptop", dead)
    taken = [url for url, _said in HOST_NAMES_NO_LOOKUP_TAKES]
    for url in taken:  # written as an older node wrote it: POST /v1/devices refuses it
        await node.astore.append([Draft(DEVICES_SESSION, AGENT_ID, DEVICE_ADDED, {
            "device_id": new_device_id(), "name": "old", "address": url})])
    devices = node.runner.app[DEVICES]
    await until(lambda: {m.address for m in devices.members().values()} >= set(taken))
    await node.gossip.dial_members()
    assert f"url:{dead}" in node.gossip.runners
    assert not [url for url in taken if f"url:{url}" in node.gossip.runners]


async def test_a_member_address_no_node_could_dial_is_warned_of_once(
        make_node: NodeFactory) -> None:
    """Not dialed, and said: a warning once per member and address (each round meets it
    again), naming the member, why, and how to give another address; not the address,
    which an older node may have taken with a password in it."""
    node = await make_node(sync=FAST)
    with structlog.testing.capture_logs() as said:
        added = {}
        for url, why in HOST_NAMES_NO_LOOKUP_TAKES:
            member = new_device_id()
            added[member] = why
            await node.astore.append([Draft(DEVICES_SESSION, AGENT_ID, DEVICE_ADDED, {
                "device_id": member, "name": "old", "address": url})])
        devices = node.runner.app[DEVICES]
        await until(lambda: set(devices.members()) >= set(added))
        await node.gossip.dial_members()
        await node.gossip.dial_members()
    warned = [entry for entry in said if entry["event"] == MEMBER_ADDRESS_NOT_DIALED]
    assert sorted((entry["device_id"], entry["reason"], entry["fix"], entry["log_level"])
                  for entry in warned) == sorted(
        (member, f"its address {why}", f"clawsync devices add {member} --address URL",
         "warning") for member, why in added.items())
    shown = repr(warned)
    assert not [url for url, _why in HOST_NAMES_NO_LOOKUP_TAKES if url in shown]


async def test_a_member_address_idna_2008_encodes_is_dialed(make_node: NodeFactory) -> None:
    """A right-to-left label ending in a digit: IDNA 2003 refuses it, the lookup (IDNA
    2008, as yarl encodes) takes it, so the member is dialed."""
    node = await make_node(sync=FAST)
    for url in HOST_NAMES_A_LOOKUP_TAKES:  # written as the record is: no check of ours
        await node.astore.append([Draft(DEVICES_SESSION, AGENT_ID, DEVICE_ADDED, {
            "device_id": new_device_id(), "name": "rtl", "address": url})])
    devices = node.runner.app[DEVICES]
    await until(lambda: {m.address for m in devices.members().values()}
                >= set(HOST_NAMES_A_LOOKUP_TAKES))
    await node.gossip.dial_members()
    assert [url for url in HOST_NAMES_A_LOOKUP_TAKES if f"url:{url}" not in node.gossip.runners
            ] == []


def test_a_listed_address_idna_2008_encodes_is_kept() -> None:
    for url in HOST_NAMES_A_LOOKUP_TAKES:
        with structlog.testing.capture_logs() as said:
            assert [one.url for one in member_urls(_listed("n0", url))] == [
                "http://a:1", url, "http://b:1"]
        assert said == []
