"""The lost phone (issue 9, test b): devices A, B and P are linked; P goes offline and is
removed on B; A learns it from B; P comes back with new events and its old key. No node
takes a link or an event from it, its earlier events stay on A and B, A and B converge,
and P says it was removed. Also: a removal closes the links of a device still online."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cluster import Cluster, all_events, append, message, wait_converged, wait_until
from tests.support.devices import (
    FAST,
    LINK_TIMEOUT_S,
    add_device,
    device_id,
    device_node,
    device_view,
    linked_devices,
    paired,
    remove_device,
    told_removed,
)
from tests.support.processes import NodeProcess, run_cli

pytestmark = pytest.mark.integration


def removed_here(node: NodeProcess, device: str) -> bool:
    return any(row["device_id"] == device for row in node.get("/v1/devices")["removed"])


def test_a_lost_phone_is_shut_out_and_its_past_events_stay(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        a, b, p = paired(cluster)
        phone = device_id(p)
        before = {e["id"] for e in append(p, "chat", [message(f"p{n}") for n in range(5)])}
        wait_converged([a, b, p], must_hold=before)

        p.stop()
        remove_device(b, phone, "lost on the train")
        wait_until(lambda: removed_here(a, phone), LINK_TIMEOUT_S, "a learned the removal")

        p.start()
        after = {e["id"] for e in append(p, "chat", [message(f"late{n}") for n in range(5)])}
        # P dials A and B (its --peer addresses): each refuses it, signed; P says so.
        removal = told_removed(p)
        assert removal["by"] == device_id(b) and removal["reason"] == "lost on the train"
        assert p.get("/v1/node")["removed"]["by"] == device_id(b)
        shown = run_cli(p, "status")
        # The remover by name (P replicated the record adding it) and by id.
        [line] = [s for s in shown.stdout.splitlines() if s.startswith("REMOVED:")]
        assert line.startswith("REMOVED: this device was removed from the cluster by ")
        assert f" ({device_id(b)}) at " in line, line
        # Appending there still stores (P's own apps read it), but says it goes nowhere.
        late = run_cli(p, "append", "chat", "message_received", "content=late again")
        assert late.returncode == 0 and late.stdout.startswith("stored: "), late.stderr
        assert "warning: this device was removed from the cluster by " in late.stderr
        assert "every other device refuses what it writes now" in late.stderr
        # So does a forget there: its record stays on P, no other node takes it.
        assert run_cli(p, "append", "scratch", "message_received",
                       "content=x").returncode == 0
        forgot = run_cli(p, "forget", "scratch")
        assert forgot.returncode == 0 and "forgot the session" in forgot.stdout, forgot.stderr
        assert "warning: this device was removed from the cluster by " in forgot.stderr
        assert "the record and what it erased stay on this node" in forgot.stderr
        assert "every other device refuses what it writes now" in forgot.stderr
        assert "every node that receives the record" not in forgot.stderr
        after |= {e["id"] for e in all_events(p) if e["kind"].get("content") == "late again"}

        more = {e["id"] for e in append(a, "chat", [message("a after")])}
        more |= {e["id"] for e in append(b, "chat", [message("b after")])}
        held = wait_converged([a, b], must_hold=before | more)
        for node in (a, b):
            ids = {e["id"] for e in all_events(node)}
            assert before <= ids and not ids & after, node.name
            assert phone not in linked_devices(node)
        assert not after & held


def test_a_removal_closes_the_links_of_a_device_online(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        a, b, p = paired(cluster)
        phone = device_id(p)
        remove_device(a, phone)
        for node in (a, b):
            wait_until(lambda node=node: phone not in linked_devices(node), LINK_TIMEOUT_S,
                       f"{node.name} closed its links with p")
        assert told_removed(p)["by"] == device_id(a)


def test_a_removed_device_comes_back_with_a_new_key(tmp_path: Path) -> None:
    """The way back the README gives: the folder's key moved away, the new device id
    added. The old removal, kept in the folder, is of the old id and holds nothing back."""
    with Cluster(tmp_path) as cluster:
        a = device_node(cluster, "a")
        b = device_node(cluster, "b", peers=[a.url])
        add_device(a, b, "b")
        p = device_node(cluster, "p", peers=[a.url])  # b only as a member's address
        add_device(a, p, "phone")
        old = device_id(p)
        wait_until(lambda: device_id(b) in linked_devices(p), LINK_TIMEOUT_S, "p dialed b")
        p.stop()
        remove_device(a, old)
        p.start()
        told_removed(p)
        # As its status says, its list of devices says it was removed.
        listed = p.get("/v1/devices")
        assert old in {row["device_id"] for row in listed["removed"]}
        assert old not in {row["device_id"] for row in listed["members"]}

        p.stop()
        (p.data_dir / "device.key").rename(p.data_dir / "device.key.old")
        p.start()
        new = device_id(p)
        assert new != old and device_view(p)["removed"] is None
        assert p.get("/v1/node")["removed"] is None
        add_device(a, p, "phone again")
        wait_until(lambda: {device_id(a), device_id(b)} <= linked_devices(p),
                   LINK_TIMEOUT_S, "the new device linked with a and, as a member, b")
        renamed = run_cli(p, "devices", "add", new, "--name", "phone")
        assert renamed.returncode == 0, renamed.stderr
        back = run_cli(p, "append", "chat", "message_received", "content=back")
        assert back.returncode == 0 and "warning" not in back.stderr, back.stderr
        held = {e["id"] for e in all_events(p) if e["kind"].get("content") == "back"}
        wait_converged([a, b, p], must_hold=held)


def test_a_removed_hub_that_dials_no_one_says_it_was_removed(tmp_path: Path) -> None:
    """No member refuses a dial of a node that dials no one: the record of its removal,
    which reaches it before its links close, is what tells it."""
    with Cluster(tmp_path) as cluster:
        hub = device_node(cluster, "hub")
        # b tells no one its address: a hub that learned it would dial b, and b's
        # refusal, not the record, could be what tells the hub.
        b = cluster.node("b", secret=None, peers=[hub.url], advertise=False,
                         extra_args=[*FAST, "--name", "b"])
        add_device(hub, b, "b")
        wait_until(lambda: device_id(b) in linked_devices(hub), LINK_TIMEOUT_S, "b linked")
        remove_device(b, device_id(hub), "retired")
        wait_until(lambda: removed_here(hub, device_id(hub)), LINK_TIMEOUT_S,
                   "the hub stored its removal")
        removal = hub.get("/v1/node")["removed"]
        assert removal == {"by": device_id(b), "at_ms": removal["at_ms"],
                           "reason": "retired", "told_by": None, "told_at_ms": None}
        assert device_view(hub)["removed"]["by"] == device_id(b)
        shown = run_cli(hub, "status")
        assert any(line.startswith("REMOVED: this device was removed from the cluster by ")
                   for line in shown.stdout.splitlines()), shown.stdout
        late = run_cli(hub, "append", "chat", "message_received", "content=still here")
        assert late.returncode == 0 and "warning: this device was removed" in late.stderr
