"""Devices paired without a shared secret, for the tests of real node processes: a node
named as a device (``device_node``), its id and what it shows of itself, the devices
linked with it, the ``devices add`` and ``devices remove`` commands run on a member,
three devices added on the first (``paired``), a device its remover removed
(``removed_phone``), and two nodes whose members came to share a name
(``sharing_a_name``)."""

from __future__ import annotations

from typing import Any

from crdt.device import device_id as id_of
from crdt.device import generate, public_bytes
from tests.support.cluster import Cluster, peer_rows, wait_until
from tests.support.processes import NodeProcess, run_cli

#: Members rounds twice a second: a device learns the others' addresses soon.
FAST = ["--members-interval", "0.5"]
#: Seconds a test waits for links to come up or close, and for a device to be told.
LINK_TIMEOUT_S = 60.0


def device_id(node: NodeProcess) -> str:
    found: str = node.get("/v1/node")["device_id"]
    return found


def add_device(member: NodeProcess, new: NodeProcess, name: str) -> None:
    done = run_cli(member, "devices", "add", device_id(new), "--name", name)
    assert done.returncode == 0, done.stderr


def remove_device(member: NodeProcess, device: str, reason: str | None = None) -> None:
    """``devices remove`` of the device id ``device`` on ``member``, which succeeds."""
    why = ["--reason", reason] if reason is not None else []
    done = run_cli(member, "devices", "remove", device, *why)
    assert done.returncode == 0, done.stderr


def linked_devices(node: NodeProcess) -> set[str]:
    return {row["device_id"] for row in peer_rows(node) if row["state"] == "up"}


def device_view(node: NodeProcess) -> dict[str, Any]:
    view: dict[str, Any] = node.get("/v1/peers")["device"]
    return view


def told_removed(node: NodeProcess) -> dict[str, Any]:
    """Wait until ``node`` says it was removed; its removal as it shows it."""
    wait_until(lambda: device_view(node)["removed"], LINK_TIMEOUT_S,
               f"{node.name} told it was removed")
    removal: dict[str, Any] = device_view(node)["removed"]
    return removal


def device_node(cluster: Cluster, name: str, peers: list[str] = (),  # type: ignore[assignment]
                program: str = "node.main") -> NodeProcess:
    return cluster.node(name, secret=None, peers=peers, advertise=True,
                        extra_args=[*FAST, "--name", name], program=program)


def paired(cluster: Cluster) -> tuple[NodeProcess, NodeProcess, NodeProcess]:
    """A, B and P, each added on A, all linked with A."""
    a = device_node(cluster, "a")
    b = device_node(cluster, "b", peers=[a.url])
    add_device(a, b, "b")
    p = device_node(cluster, "p", peers=[a.url, b.url])
    add_device(a, p, "phone")
    wait_until(lambda: {device_id(b), device_id(p)} <= linked_devices(a), LINK_TIMEOUT_S,
               "b and p linked with a")
    return a, b, p


def removed_phone(cluster: Cluster, remover: str,
                  reason: str) -> tuple[NodeProcess, NodeProcess]:
    """A (named ``remover``) and a phone added on it and linked with it, which A then
    removed for ``reason``, the phone told so: (a, phone)."""
    a = cluster.node("a", secret=None, advertise=True,
                     extra_args=[*FAST, "--name", remover])
    phone = device_node(cluster, "phone", peers=[a.url])
    add_device(a, phone, "phone")
    wait_until(lambda: device_id(phone) in linked_devices(a), LINK_TIMEOUT_S,
               "the phone linked with a")
    remove_device(a, device_id(phone), reason)
    told_removed(phone)
    return a, phone


def member_ids(node: NodeProcess) -> set[str]:
    return {row["device_id"] for row in node.get("/v1/devices")["members"]}


def sharing_a_name(cluster: Cluster, names: tuple[str, str] = ("phone", "Phone"), *,
                   program: str = "node.main") -> tuple[NodeProcess, NodeProcess, str, str]:
    """Nodes a and b (running ``program``), each of which added a device, ``phone`` on a
    as "phone" and ``tablet`` on b as "Phone" (or as ``names`` says), before they were
    linked (each found the name free); then linked, and their records met: (a, b, phone,
    tablet)."""
    phone, tablet = (id_of(public_bytes(generate())) for _ in range(2))
    a, b = device_node(cluster, "a"), device_node(cluster, "b", program=program)
    for node, new, name in zip((a, b), (phone, tablet), names, strict=True):
        done = run_cli(node, "devices", "add", new, "--name", name)
        assert done.returncode == 0, done.stderr
    # Linked: b adds a with its address, a adds b; the records meet.
    done = run_cli(b, "devices", "add", device_id(a), "--name", "a", "--address", a.url)
    assert done.returncode == 0, done.stderr
    add_device(a, b, "b")
    everyone = {device_id(a), device_id(b), phone, tablet}
    wait_until(lambda: member_ids(a) == member_ids(b) == everyone, LINK_TIMEOUT_S,
               "the records met")
    return a, b, phone, tablet
