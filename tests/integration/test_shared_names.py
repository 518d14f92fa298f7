"""Two members under one name: each node refuses a name a member has there, but two nodes
not linked yet each find a name free and add a device under it; once their records meet,
``clawsync devices`` marks both and prints the commands that rename them, ``clawsync
status`` says so in one line, and renaming one ends it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cluster import Cluster, request, wait_until
from tests.support.devices import LINK_TIMEOUT_S, device_id, sharing_a_name
from tests.support.processes import run_cli

pytestmark = pytest.mark.integration


def test_members_that_came_to_share_a_name_are_pointed_out(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        a, b, phone, tablet = sharing_a_name(cluster)

        for node in (a, b):
            shared = {row["device_id"]: row["name_shared_with"]
                      for row in node.get("/v1/devices")["members"]}
            assert shared == {device_id(a): [], device_id(b): [], phone: [tablet],
                              tablet: [phone]}
        assert a.get("/v1/peers")["device"]["shared_names"] == [
            {"name": min((phone, "phone"), (tablet, "Phone"))[1],
             "members": sorted([phone, tablet])}]

        listed = run_cli(a, "devices")
        assert listed.returncode == 0, listed.stderr
        marked = [line for line in listed.stdout.splitlines() if "(name shared)" in line]
        assert len(marked) == 2 and all("hone (name shared)" in line for line in marked)
        assert "2 members share the name" in listed.stderr
        for member in (phone, tablet):
            assert f"clawsync devices add {member} --name NEW" in listed.stderr

        shown = run_cli(a, "status")
        assert shown.returncode == 0, shown.stderr
        [line] = [line for line in shown.stdout.splitlines() if "share names" in line]
        assert line.startswith("members share names: '") and "(2 members)" in line
        assert f"`clawsync devices --node {a.url}` lists them" in line

        # An add that keeps the name answers it shared, as GET /v1/devices lists it,
        # and devices add says so, with the commands.
        answer = json.loads(request(b, "POST", "/v1/devices",
                                    {"device_id": tablet, "name": "Phone"}))
        assert answer == {"created": False, "device": next(
            row for row in b.get("/v1/devices")["members"] if row["device_id"] == tablet)}
        assert answer["device"]["name_shared_with"] == [phone]
        again = run_cli(b, "devices", "add", tablet, "--name", "Phone")
        assert again.returncode == 0, again.stderr
        assert again.stdout.startswith("is a member already")
        first = min((phone, "phone"), (tablet, "Phone"))[1]  # as the list names them
        assert f"2 members share the name '{first}' (people cannot" in again.stderr
        for member in (phone, tablet):
            assert f"clawsync devices add {member} --name NEW --node {b.url}" in again.stderr

        # Renaming one ends it, on every node.
        done = run_cli(a, "devices", "add", tablet, "--name", "tablet")
        assert done.returncode == 0, done.stderr
        assert "share" not in done.stderr
        wait_until(lambda: not b.get("/v1/peers")["device"]["shared_names"],
                   LINK_TIMEOUT_S, "the rename reached b")
        listed = run_cli(b, "devices")
        assert "(name shared)" not in listed.stdout and "share" not in listed.stderr
        shown = run_cli(b, "status")
        assert "share names" not in shown.stdout


def test_names_apart_only_by_a_joiner_are_pointed_out_as_one(tmp_path: Path) -> None:
    """An emoji with its zero-width joiner and the same emoji without it look alike:
    both are allowed and shown as they are, and their members share a name, in the API,
    the table, the lines that say what to do, and ``clawsync status``."""
    coder, apart = "\U0001f469\u200d\U0001f4bb", "\U0001f469\U0001f4bb"
    with Cluster(tmp_path) as cluster:
        a, b, phone, tablet = sharing_a_name(cluster, (coder, apart))

        for node in (a, b):
            shared = {row["device_id"]: (row["name"], row["name_shared_with"])
                      for row in node.get("/v1/devices")["members"]}
            assert shared[phone] == (coder, [tablet]) and shared[tablet] == (apart, [phone])

        listed = run_cli(a, "devices")
        assert listed.returncode == 0, listed.stderr
        assert f"{coder} (name shared)" in listed.stdout
        assert f"{apart} (name shared)" in listed.stdout
        first = min((phone, coder), (tablet, apart))[1]
        assert f"2 members share the name '{first}' (people" in listed.stderr

        shown = run_cli(a, "status")
        assert shown.returncode == 0, shown.stderr
        assert f"members share names: '{first}' (2 members)" in shown.stdout


def test_an_add_whose_second_look_at_the_members_fails_says_the_shared_name_still(
        tmp_path: Path) -> None:
    """``devices add`` lists the members again after an add that keeps a shared name;
    where that second list fails, the add stands (exit 0) and the commands come from the
    node's answer and the list before the add, which lacks the member sharing the name
    (its record came in after that list): the answer names it, so its command is said
    too."""
    with Cluster(tmp_path) as cluster:
        _, b, phone, tablet = sharing_a_name(
            cluster, program="tests.support.relist_failing_node")
        request(b, "POST", "/test/hide", {"device_id": phone})  # from the first list
        again = run_cli(b, "devices", "add", tablet, "--name", "Phone")
        assert again.returncode == 0, again.stderr
        assert again.stdout.startswith(f"is a member already: {tablet} (Phone)")
        # The phone by the name it shares, as the answer gives it (no list holds it).
        assert "2 members share the name 'Phone' (people cannot" in again.stderr
        for member in (phone, tablet):
            assert f"clawsync devices add {member} --name NEW --node {b.url}" in again.stderr
        # The second list did fail (the node logs the handler's failure), once.
        assert "the device records cannot be read" in b.log_tail(200)
        assert b.get("/v1/devices")["members"]
