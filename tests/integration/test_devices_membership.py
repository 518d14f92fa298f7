"""Device membership with real node processes: ``clawsync devices`` as a person uses it,
concurrent adds and removes on partitioned nodes resolving alike everywhere (a removal is
final), and a removal retiring the removed device's origins on every node."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from crdt.device import device_id, private_key_from_seed, public_bytes
from node.client.errors import NODE_SHOWN_CHARS_MAX, shown_address
from tests.support.addresses import HOST_NAMES_NO_LOOKUP_TAKES
from tests.support.cluster import (
    Cluster,
    append,
    message,
    peer_rows,
    proxy_url,
    request,
    wait_converged,
    wait_until,
)
from tests.support.processes import NodeProcess, free_port, run_cli

pytestmark = pytest.mark.integration

PHONE = device_id(public_bytes(private_key_from_seed(bytes([7]) * 32)))


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout


def devices(node: NodeProcess) -> dict[str, Any]:
    view: dict[str, Any] = json.loads(request(node, "GET", "/v1/devices"))
    return view


def sets(node: NodeProcess) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """Members (id -> name) and removed (id -> (by, reason)) as ``node`` lists them."""
    view = devices(node)
    return ({row["device_id"]: row["name"] for row in view["members"]},
            {row["device_id"]: (row["removed_by"], row["reason"]) for row in view["removed"]})


def own_id(node: NodeProcess) -> str:
    found: str = node.get("/v1/node")["device_id"]
    return found


def test_the_devices_commands(node: NodeProcess) -> None:
    me = own_id(node)
    listed = json.loads(ok(run_cli(node, "devices", "--json")))
    assert [row["device_id"] for row in listed["members"]] == [me]
    typed = PHONE.lower().replace("-", " ")
    out = ok(run_cli(node, "devices", "add", typed, "--name", "phone",
                     "--address", "http://phone.local:7878"))
    assert out.strip() == f"added {PHONE} (phone)"
    renamed = ok(run_cli(node, "devices", "add", PHONE, "--name", "old phone"))
    assert renamed.strip() == f"renamed {PHONE} (phone -> old phone)"
    same = ok(run_cli(node, "devices", "add", PHONE, "--name", "old phone"))
    assert same.strip() == f"is a member already: {PHONE} (old phone)"
    moved = ok(run_cli(node, "devices", "add", PHONE, "--name", "old phone", "--address",
                       "http://phone.lan:7878"))
    assert moved.strip() == f"updated {PHONE} (old phone): address http://phone.lan:7878"
    ok(run_cli(node, "devices", "add", PHONE, "--name", "phone", "--address",
               "http://phone.local:7878"))
    table = ok(run_cli(node, "devices"))
    assert PHONE in table and "http://phone.local:7878" in table and "member" in table
    out = ok(run_cli(node, "devices", "remove", PHONE, "--reason", "lost on the train"))
    assert out.startswith(f"removed {PHONE} (phone)")
    table = ok(run_cli(node, "devices"))
    assert "removed by this device" in table and "lost on the train" in table
    again = run_cli(node, "devices", "remove", PHONE)
    assert again.returncode == 0 and again.stdout.startswith(f"was removed already: {PHONE}")
    assert "stops taking" not in again.stderr  # no removal was written this time

    refused = run_cli(node, "devices", "add", PHONE, "--name", "phone")
    assert refused.returncode == 1 and "final" in refused.stderr and "new key" in refused.stderr
    mistyped = run_cli(node, "devices", "remove", PHONE[:-1] + ("A" if PHONE[-1] != "A"
                                                                  else "B"))
    assert mistyped.returncode == 2 and "check character 4" in mistyped.stderr
    itself = run_cli(node, "devices", "remove", me)
    assert itself.returncode == 2 and "own device" in itself.stderr
    forgotten = run_cli(node, "forget", "clawsync:devices")
    assert forgotten.returncode == 2 and "cannot be forgotten" in forgotten.stderr
    name = node.get("/v1/node")["name"]
    assert sets(node) == ({me: name}, {PHONE: (me, "lost on the train")})


@pytest.mark.parametrize("address", ["http:///me:hunter2@phone:7878", "http:/me:hunter2@phone",
                                     "me:hunter2@phone:7878/?next=http://x"])
def test_an_address_with_a_password_is_refused_and_never_shown(node: NodeProcess,
                                                                address: str) -> None:
    """Such an address was taken for one with a path and no host (or for no http(s) URL,
    shown whole): every node would have shown it, and logged it at each redial."""
    refused = run_cli(node, "devices", "add", PHONE, "--name", "phone", "--address", address)
    assert refused.returncode == 2, (refused.stdout, refused.stderr)
    assert "user name or password" in refused.stderr
    assert "hunter2" not in refused.stdout + refused.stderr
    assert "hunter2" not in node.log_path.read_text(errors="replace")
    assert PHONE not in sets(node)[0]


@pytest.mark.parametrize(("address", "said"), [
    *HOST_NAMES_NO_LOOKUP_TAKES,
    ("http://" + "p" * 5000, "has a host name label over 63 characters (5000)")])
def test_an_address_no_lookup_takes_is_a_usage_error(node: NodeProcess, address: str,
                                                     said: str) -> None:
    """The node took it, and every peer dialing it failed: refused as ``--node`` is, the
    address cut as there, and nothing added."""
    refused = run_cli(node, "devices", "add", PHONE, "--name", "phone", "--address", address)
    assert refused.returncode == 2, (refused.stdout, refused.stderr)
    error = refused.stderr.strip().splitlines()[-1]
    assert f"Invalid value for '--address': {shown_address(address)} {said}" in error, error
    assert len(error) < NODE_SHOWN_CHARS_MAX + 200, error
    assert PHONE not in sets(node)[0]


@pytest.mark.parametrize("address", ["http://0.0.0.0:7878", "http://[::]:7878", "http://0:7878",
                                     "http://0.0.0.0.:7878"])
def test_an_address_a_node_listens_on_is_taken_with_a_warning(node: NodeProcess,
                                                              address: str) -> None:
    """Such an address names no machine: every node dialing it reaches itself. Taken
    all the same (two nodes of one machine reach each other so), and said on stderr."""
    added = run_cli(node, "devices", "add", PHONE, "--name", "phone", "--address", address)
    assert added.stdout.strip() == f"added {PHONE} (phone)", added.stderr
    assert added.stderr.startswith(f"Warning: --address {address} is an address a node "
                                   "listens on, not one to dial"), added.stderr
    assert "give the device's address on its network" in added.stderr
    assert [row["address"] for row in devices(node)["members"]
            if row["device_id"] == PHONE] == [address]
    named = run_cli(node, "devices", "add", PHONE, "--name", "phone", "--address",
                    "http://phone.lan:7878")
    assert named.returncode == 0 and named.stderr == "", named.stderr


def test_a_listening_address_of_an_add_not_taken_is_not_warned_of(node: NodeProcess) -> None:
    """The warning follows the add the node took: an add refused, or one that reached no
    node, says its error alone."""
    address = "http://0.0.0.0:7878"
    for refused in (run_cli(node, "devices", "add", "BADID", "--name", "phone", "--address",
                            address),
                    run_cli(f"http://127.0.0.1:{free_port()}", "devices", "add", PHONE,
                            "--name", "phone", "--address", address)):
        assert refused.returncode != 0, refused.stdout
        assert "Warning" not in refused.stderr and refused.stderr.startswith("Error: "), \
            refused.stderr


@pytest.mark.skipif(sys.platform != "linux", reason="Linux dials 0.0.0.0 as this machine")
def test_node_0_0_0_0_reaches_the_node_here_without_a_word(node: NodeProcess) -> None:
    """``--node http://0.0.0.0:PORT`` (copied from where serve listens) reaches the node
    of this machine, as 127.0.0.1 does, and fails as it does when none listens there: a
    warning would be noise on a command that works, and a hint on one that fails would
    send the reader after the address instead of the node that is not running."""
    port = node.url.rsplit(":", 1)[1]
    listed = run_cli(f"http://0.0.0.0:{port}", "devices", "--json")
    assert listed.returncode == 0 and listed.stderr == "", listed.stderr
    assert [row["device_id"] for row in json.loads(listed.stdout)["members"]] == [own_id(node)]


def test_renaming_this_device_shows_in_clawsync_device(node: NodeProcess) -> None:
    me = own_id(node)
    started = node.get("/v1/node")["name"]
    assert json.loads(ok(run_cli(node, "device", "--json"))) \
        == {"device_id": me, "name": started}
    ok(run_cli(node, "devices", "add", me, "--name", "renamed laptop"))
    assert json.loads(ok(run_cli(node, "device", "--json")))["name"] == "renamed laptop"
    assert "name   renamed laptop" in ok(run_cli(node, "device"))
    assert node.get("/v1/node")["name"] == "renamed laptop" != started
    assert sets(node)[0] == {me: "renamed laptop"}
    def serving() -> list[str]:
        return [line for line in node.log_path.read_text().splitlines() if "serving" in line]
    before = len(serving())
    node.restart()  # its first log line names it as the records do, not as --name did
    # Answering comes before its line reaches the log file.
    wait_until(lambda: len(serving()) > before, 30, "the restarted node's serving line")
    assert "renamed laptop" in serving()[-1], serving()[-1]


#: b's longest pause between dials of a (``[sync] backoff_max_s``; 60 s by default). The
#: back-off grows while the link is cut, so with the default, b's first dial after the
#: heal came as long after it as the cut had lasted: 15 s for a 13 s cut on a loaded
#: machine, past the waits below for a cut of 30 s or more. Capped, b dials within
#: seconds of the heal however long the cut took.
BACKOFF_MAX_S = 1.0


def test_concurrent_add_and_remove_on_partitioned_nodes_resolve_alike(tmp_path: Path) -> None:
    config = tmp_path / "b.toml"
    config.write_text(f"[sync]\nbackoff_max_s = {BACKOFF_MAX_S}\n")
    with Cluster(tmp_path) as cluster:
        a = cluster.node("a")
        link = cluster.proxy(a)
        b = cluster.node("b", peers=[proxy_url(link)], extra_args=["--config", str(config)])
        ok(run_cli(a, "devices", "add", own_id(b), "--name", "b"))
        ok(run_cli(a, "devices", "add", PHONE, "--name", "phone"))
        wait_until(lambda: PHONE in sets(b)[0], 60, "b learns of the phone")

        link.cut()
        wait_until(lambda: all(row["state"] != "up" for row in
                               json.loads(request(b, "GET", "/v1/peers"))["peers"]),
                   30, "b's link is down")
        # The same device: renamed on a, removed on b, neither seeing the other.
        ok(run_cli(a, "devices", "add", PHONE, "--name", "phone 2"))
        ok(run_cli(b, "devices", "remove", PHONE, "--reason", "stolen"))
        assert sets(a)[0][PHONE] == "phone 2" and PHONE in sets(b)[1]

        # b dials a again soon after the heal, however long the cut lasted (None: dialing).
        retry_in = [row["retry_in_s"] for row in peer_rows(b)]
        assert all(seconds is None or seconds <= BACKOFF_MAX_S for seconds in retry_in), \
            retry_in
        link.heal()
        members, removed = {own_id(a), own_id(b)}, {PHONE: (own_id(b), "stolen")}
        for node in (a, b):
            wait_until(lambda node=node: (set(sets(node)[0]), sets(node)[1]) ==
                       (members, removed), 60, f"{node.name} lists the removal as winning")
        assert sets(a) == sets(b)
        # Adding it again is refused on both: the removal is final.
        for node in (a, b):
            refused = run_cli(node, "devices", "add", PHONE, "--name", "phone")
            assert refused.returncode == 1 and "final" in refused.stderr


def test_a_removal_replicates_and_retires_the_devices_origins(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        a = cluster.node("a")
        b = cluster.node("b", peers=[a.url])
        c = cluster.node("c", peers=[a.url])
        nodes = [a, b, c]
        for other in (b, c):
            ok(run_cli(a, "devices", "add", own_id(other), "--name", other.name))
        said = {event["id"] for event in append(c, "c:notes", [message(f"c #{n}")
                                                              for n in range(5)])}
        wait_converged(nodes, must_hold=said)
        c_origins = {row["origin"] for row in json.loads(request(c, "GET", "/v1/origins"))
                     ["origins"] if row["own"]}

        ok(run_cli(b, "devices", "remove", own_id(c), "--reason", "sold"))
        for node in (a, b):
            wait_until(lambda node=node: own_id(c) in sets(node)[1], 60,
                       f"{node.name} learns of the removal")

        def retired(node: NodeProcess) -> bool:
            rows = json.loads(request(node, "GET", "/v1/origins"))["origins"]
            return all(row["state"] == "retired" for row in rows
                       if row["origin"] in c_origins)

        for node in (a, b):
            wait_until(lambda node=node: retired(node), 60,
                       f"{node.name} retires the removed device's origins")
        for node in (a, b):  # its events stay
            held = {event["id"] for event in json.loads(request(
                node, "GET", "/v1/sessions/c%3Anotes/events"))["events"]}
            assert said <= held


# -- what a user of `clawsync devices` sees (a cluster secret; adds before linking) --------


def linked_by_secret(node: NodeProcess) -> dict[str, dict[str, Any]]:
    return {row["device_id"]: row for row in devices(node).get("linked", [])}


def test_devices_lists_the_nodes_linked_by_the_cluster_secret(tmp_path: Path) -> None:
    """They are no members (no record adds them): listed apart, as linked, with the
    existing fields as they were."""
    with Cluster(tmp_path) as cluster:
        a = cluster.node("a", advertise=True)
        b = cluster.node("b", peers=[a.url], advertise=True)
        c = cluster.node("c", peers=[a.url], advertise=True)
        others = {own_id(b): b, own_id(c): c}
        wait_until(lambda: set(linked_by_secret(a)) == set(others), 60,
                   "a lists b and c as linked")
        for device, row in linked_by_secret(a).items():
            assert row["via"] == "cluster_secret" and row["address"] == others[device].url
        listed = json.loads(ok(run_cli(a, "devices", "--json")))
        assert [row["device_id"] for row in listed["members"]] == [own_id(a)]
        assert listed["removed"] == []
        table = run_cli(a, "devices")
        assert table.returncode == 0, table.stderr
        for device in others:
            [row] = [line for line in table.stdout.splitlines() if line.startswith(device)]
            assert " linked " in row and "by the cluster secret, not a member" in row, row
        assert "1 member, 0 removed, 2 linked but no members" in table.stderr


def test_a_removed_device_hears_the_same_removal_from_every_peer(tmp_path: Path) -> None:
    """c links with a (its --peer) and with b (learned from a; b is no member c knows);
    a removes c. a's refusal is believed; b's says the same removal, and c shows it so
    (not a bare code), as it shows the removal a told it."""
    with Cluster(tmp_path) as cluster:
        a = cluster.node("a", advertise=True)
        b = cluster.node("b", peers=[a.url], advertise=True)
        c = cluster.node("c", peers=[a.url])  # no address: b cannot dial it, c dials b
        wait_until(lambda: {row["url"] for row in peer_rows(c) if row["state"] == "up"}
                   == {a.url, b.url}, 60, "c linked with a and b")
        ok(run_cli(a, "devices", "add", own_id(c), "--name", "c"))
        ok(run_cli(a, "devices", "remove", own_id(c), "--reason", "test"))

        def refusals() -> list[str] | None:
            rows = [row for row in peer_rows(c) if row["url"] in (a.url, b.url)]
            said = [row["refused"] or "" for row in rows]
            return said if len(said) == 2 and all(said) else None

        wait_until(lambda: (said := refusals()) is not None and len(set(said)) == 1
                   and said[0].startswith("removed from the cluster by "), 60,
                   "both peers' refusals read as the same removal")
        removal = c.get("/v1/node")["removed"]
        assert removal["by"] == own_id(a) and removal["reason"] == "test"
        status = run_cli(c, "status")
        assert "(device_removed)" not in status.stdout, status.stdout
        assert "(device_removed)" not in c.log_path.read_text()


def test_two_devices_adding_each_other_before_they_link_keep_both_addresses(
        tmp_path: Path) -> None:
    """Neither advertises an address; each adds the other with --address. Each one's
    add of itself, written with that command, says nothing of its address, so both
    addresses stay, on both, and each dials the other there."""
    with Cluster(tmp_path) as cluster:
        x = cluster.node("x", secret=None, extra_args=["--members-interval", "0.5"])
        y = cluster.node("y", secret=None, extra_args=["--members-interval", "0.5"])
        ok(run_cli(x, "devices", "add", own_id(y), "--name", "y", "--address", y.url))
        ok(run_cli(y, "devices", "add", own_id(x), "--name", "x", "--address", x.url))
        expected = {own_id(x): x.url, own_id(y): y.url}

        def addresses(node: NodeProcess) -> dict[str, str | None]:
            return {row["device_id"]: row["address"] for row in devices(node)["members"]}

        wait_until(lambda: addresses(x) == addresses(y) == expected, 60,
                   "both list both addresses")
        for node, other in ((x, y), (y, x)):
            table = ok(run_cli(node, "devices"))
            [row] = [line for line in table.splitlines() if line.startswith(own_id(other))]
            assert other.url in row, row
