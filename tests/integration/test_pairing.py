"""Pairing without a shared secret: one command on the new device (``serve --peer``, or
``devices add`` of a member with its address), one on a member (``devices add``); a third
device learns the others from the membership records (the introducer)."""

from __future__ import annotations

import ipaddress
import json
import shlex
import socket
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import urlsplit

import pytest

from node.server.reach import network_address
from tests.support.cluster import (
    Cluster,
    append,
    message,
    peer_rows,
    request,
    wait_converged,
    wait_until,
)
from tests.support.devices import (
    LINK_TIMEOUT_S,
    add_device,
    device_id,
    device_node,
    device_view,
    linked_devices,
)
from tests.support.processes import NodeProcess, free_port, run_cli

pytestmark = pytest.mark.integration

def test_three_devices_pair_without_a_shared_secret(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        a = device_node(cluster, "a")
        b = device_node(cluster, "b", peers=[a.url])
        ids = {node.name: device_id(node) for node in (a, b)}
        # Until a member adds it, the new device is refused, and says what to do.
        # It names the member, and the command reaches it: --node is the address b dialed.
        command = f"clawsync devices add {ids['b']} --name b --node {a.url}"
        told = f"waiting to be added on a ({ids['a']}): run `{command}` there"
        wait_until(lambda: told in device_view(b)["waiting"], LINK_TIMEOUT_S, "b told to wait")
        shown = run_cli(b, "status")
        assert shown.returncode == 0 and told in shown.stdout, shown
        assert not linked_devices(a) and not linked_devices(b)

        # The member runs the command as told.
        done = run_cli(a, *shlex.split(command)[1:])
        assert done.returncode == 0, done.stderr
        wait_until(lambda: ids["b"] in linked_devices(a), LINK_TIMEOUT_S, "a linked with b")
        # b counts the link up once a's hello reaches it, a round trip after a did.
        wait_until(lambda: ids["a"] in linked_devices(b), LINK_TIMEOUT_S, "b linked with a")
        names = {row["device_id"]: row["device_name"] for row in peer_rows(a)}
        assert names[ids["b"]] == "b"

        # The other command for a new device: add a member, with its address, on it.
        c = device_node(cluster, "c")
        ids["c"] = device_id(c)
        done = run_cli(c, "devices", "add", ids["a"], "--name", "a", "--address", a.url)
        assert done.returncode == 0, done.stderr
        add_device(a, c, "c")
        # c was told only a's address; it finds b in the records, and b takes it because
        # the record adding c reached b (or b finds c, whose address reached it).
        wait_until(lambda: ids["b"] in linked_devices(c) or ids["c"] in linked_devices(b),
                   LINK_TIMEOUT_S, "b and c linked directly")
        written = {e["id"] for e in append(c, "s", [message("from c")])}
        written |= {e["id"] for e in append(b, "s", [message("from b")])}
        wait_converged([a, b, c], must_hold=written)


def test_the_member_shows_who_waits_and_refuses_a_name_taken(tmp_path: Path) -> None:
    """As the README's pairing walks it, on the member's side: its status lists the new
    device waiting (a claimed id, with the command to add it); the new device's ``peer
    link up`` names the member before its records arrive; and a second device under a
    name a member has is refused (409 ``name_taken``, exit 1), with nothing written."""
    with Cluster(tmp_path) as cluster:
        a = device_node(cluster, "a")
        b = device_node(cluster, "b", peers=[a.url])
        ids = {node.name: device_id(node) for node in (a, b)}
        wait_until(lambda: device_view(a).get("to_add"), LINK_TIMEOUT_S, "a shows b waiting")
        shown = run_cli(a, "status")
        assert shown.returncode == 0, shown.stderr
        assert "ids as the dialers claim them" in shown.stdout
        # The command reaches the node status asked: --node, as status was given one.
        assert f"clawsync devices add {ids['b']} --name NAME --node {a.url}" in shown.stdout

        add_device(a, b, "phone")
        wait_until(lambda: ids["a"] in linked_devices(b), LINK_TIMEOUT_S, "b linked with a")
        assert not device_view(a)["to_add"]  # added: it waits no more
        [up] = [line for line in b.log_path.read_text().splitlines()
                if "peer link up" in line]
        assert "device_name=a " in up and "None" not in up

        c = device_node(cluster, "c")
        before = a.get("/v1/devices")
        refused = run_cli(a, "devices", "add", device_id(c), "--name", "Phone")
        assert refused.returncode == 1, refused
        assert f"clawsync devices add {ids['b']} --name NEW --node {a.url}" \
            in refused.stderr
        with pytest.raises(HTTPError) as answer:
            request(a, "POST", "/v1/devices", {"device_id": device_id(c), "name": "phone"})
        assert answer.value.code == 409
        error = json.loads(answer.value.read())["error"]
        assert (error["code"], error["member"]) == ("name_taken", ids["b"])
        assert "clawsync" not in error["message"]  # words for any client
        assert a.get("/v1/devices") == before


def test_removing_a_device_waiting_to_be_added_says_it_is_refused_already(
        tmp_path: Path) -> None:
    """The member's status lists a device waiting to be added (a stranger, say); its
    ``devices remove`` finds no member to remove (404, exit 1), says that the device is
    refused until added, and writes nothing: the device still waits."""
    with Cluster(tmp_path) as cluster:
        a = device_node(cluster, "a")
        b = device_node(cluster, "b", peers=[a.url])
        wait_until(lambda: device_view(a).get("to_add"), LINK_TIMEOUT_S, "a shows b waiting")
        before = a.get("/v1/devices"), a.get("/v1/node")["head"]
        refused = run_cli(a, "devices", "remove", device_id(b))
        assert refused.returncode == 1, refused
        assert (f"no device {device_id(b)} is a member here: it dialed this node and waits "
                "to be added, and is refused until a member adds it, so there is nothing "
                "to remove") in refused.stderr
        assert (a.get("/v1/devices"), a.get("/v1/node")["head"]) == before
        assert [row["device_id"] for row in device_view(a)["to_add"]] == [device_id(b)]


def test_a_new_device_that_adds_the_member_it_waits_on_is_told_it_is_not_let_in(
        tmp_path: Path) -> None:
    """The steps the wrong way round: the new device adds the member that refuses it.
    The record is written (two devices may add each other before they link), and the
    command says that this device still waits, with the command to run on the member.
    The name typed is shown on this device until they link; the member keeps its own."""
    with Cluster(tmp_path) as cluster:
        a = device_node(cluster, "a")
        b = device_node(cluster, "b", peers=[a.url])
        ids = {node.name: device_id(node) for node in (a, b)}
        told = (f"waiting to be added on a ({ids['a']}): run `clawsync devices add "
                f"{ids['b']} --name b --node {a.url}` there")
        wait_until(lambda: told in device_view(b)["waiting"], LINK_TIMEOUT_S, "b told to wait")
        done = run_cli(b, "devices", "add", ids["a"], "--name", "zed")
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"added {ids['a']} (zed)"), done.stdout
        assert (f"warning: this device is itself {told}: adding that member here does not "
                "let this device in\n") in done.stderr
        assert member_names(b)[ids["a"]] == "zed"
        # Once the member adds it, it links, and an add of a member says nothing more.
        add_device(a, b, "b")
        wait_until(lambda: ids["a"] in linked_devices(b), LINK_TIMEOUT_S, "b linked with a")
        # The records met: both show the member's own name, not the one typed on b.
        both = {ids["a"]: "a", ids["b"]: "b"}
        wait_until(lambda: member_names(a) == member_names(b) == both, LINK_TIMEOUT_S,
                   "both show a's own name")
        again = run_cli(b, "devices", "add", ids["a"], "--name", "a")
        assert again.returncode == 0 and "warning" not in again.stderr, again


def test_a_member_that_gives_no_name_is_known_by_its_id(tmp_path: Path) -> None:
    """A member that gives no name in its refusal (an older one) is named by its id
    alone in the line; ``waiting_on`` holds its id all the same, and the warning of an
    add of it, the wrong way round, is said by that id."""
    with Cluster(tmp_path) as cluster:
        a = device_node(cluster, "a", program="tests.support.nameless_member_node")
        b = device_node(cluster, "b", peers=[a.url])
        ids = {node.name: device_id(node) for node in (a, b)}
        told = (f"waiting to be added on {ids['a']}: run `clawsync devices add "
                f"{ids['b']} --name b --node {a.url}` there")
        wait_until(lambda: told in device_view(b)["waiting"], LINK_TIMEOUT_S, "b told to wait")
        assert device_view(b)["waiting_on"] == [ids["a"]]
        done = run_cli(b, "devices", "add", ids["a"], "--name", "a")
        assert done.returncode == 0, done.stderr
        assert (f"warning: this device is itself {told}: adding that member here does not "
                "let this device in\n") in done.stderr


def member_names(node: NodeProcess) -> dict[str, str]:
    """The members ``node`` lists (``GET /v1/devices``), by device id: their names."""
    return {row["device_id"]: row["name"] for row in node.get("/v1/devices")["members"]}


def start_log(tmp_path: Path, *args: str) -> str:
    """What a node started with ``args`` logs, read once it has stopped (every line of
    its start is written then)."""
    with NodeProcess(tmp_path, extra_args=list(args)) as node:
        pass
    return node.log_path.read_text(errors="replace")


def test_a_node_alone_on_loopback_says_no_device_can_dial_it_and_what_to_do(
        tmp_path: Path) -> None:
    """The default address is this machine only: a new device given --peer with it, or
    with this machine's host name, could never link."""
    log = start_log(tmp_path)
    [line] = [line for line in log.splitlines() if "other devices cannot dial" in line]
    assert "listening='127.0.0.1, this machine only'" in line
    assert "serve with --host 0.0.0.0 and --token" in line
    url = urlsplit(line.rsplit("clawsync serve --peer ", 1)[1].rstrip("'"))
    assert url.port is not None and url.hostname is not None
    address = network_address()
    if address is None:  # no network here: it says so rather than guess
        assert url.hostname == "ADDRESS"
        return
    # An address of this machine (it binds), not loopback, not a host name.
    assert url.hostname == address and not ipaddress.ip_address(address).is_loopback
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))


def test_a_node_alone_gives_the_url_to_dial_and_one_with_peers_gives_none(
        tmp_path: Path) -> None:
    log = start_log(tmp_path, "--advertise-url", "http://laptop.lan:7878")
    assert "to pair a new device, run on it command='clawsync serve --peer " \
        "http://laptop.lan:7878'" in log
    # With a peer to dial it is no first node: nothing to say (its status says the rest).
    (tmp_path / "b").mkdir()
    log = start_log(tmp_path / "b", "--peer", f"http://127.0.0.1:{free_port()}")
    assert "serving" in log
    assert "to pair" not in log and "cannot dial" not in log


TOKEN = ["--token", "a-long-enough-client-token"]  # beyond loopback a token is needed


def test_the_url_to_dial_is_of_the_address_bound_not_the_host_text(tmp_path: Path) -> None:
    """``--host 0`` is 0.0.0.0: the URL is this machine's network address, not ``0``."""
    log = start_log(tmp_path, "--host", "0", *TOKEN)
    [line] = [line for line in log.splitlines() if "to pair a new device" in line]
    url = urlsplit(line.rsplit("clawsync serve --peer ", 1)[1].rstrip("'"))
    assert url.hostname == (network_address() or "ADDRESS")


def resolves_to_loopback_only(name: str) -> bool:
    try:
        infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


@pytest.mark.skipif(not resolves_to_loopback_only(socket.gethostname()),
                    reason="this machine's name resolves beyond loopback here")
def test_a_host_name_of_loopback_only_says_no_device_can_dial_it(tmp_path: Path) -> None:
    """Many systems map their own name to 127.0.1.1 (or 127.0.0.1) in /etc/hosts: a node
    given it listens on this machine only, though the name looks like a network one."""
    name = socket.gethostname()
    log = start_log(tmp_path, "--host", name, *TOKEN)
    [line] = [line for line in log.splitlines() if "other devices cannot dial" in line]
    assert "this machine only" in line and f"--peer http://{name}:" not in line
    assert "to pair a new device" not in log
