"""A removed device's console, in a real headless Chromium against real node processes:
it says what ``clawsync status`` says (removed, by whom, why), the peer row says why the
peer refuses it, and shows no catch-up that will never come."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.integration.console.test_devices import peer_rows
from tests.integration.test_pairing import (
    LINK_TIMEOUT_S,
    add_device,
    device_id,
    device_node,
    device_view,
    linked_devices,
)
from tests.support.cluster import Cluster, append, message, wait_until
from tests.support.console import expect, node_id, open_console
from tests.support.processes import run_cli

pytestmark = pytest.mark.integration

if TYPE_CHECKING:
    from playwright.sync_api import Page

#: What the console shows for a count it does not know (an en dash).
NOT_KNOWN = "\u2013"


def test_a_removed_device_says_so_and_its_refused_peer_shows_why(
        tmp_path: Path, page: Page) -> None:
    with Cluster(tmp_path) as cluster:
        a = device_node(cluster, "a")
        phone = device_node(cluster, "phone", peers=[a.url])
        add_device(a, phone, "phone")
        wait_until(lambda: device_id(phone) in linked_devices(a), LINK_TIMEOUT_S,
                   "the phone linked with a")
        done = run_cli(a, "devices", "remove", device_id(phone), "--reason", "lost on the train")
        assert done.returncode == 0, done.stderr
        wait_until(lambda: device_view(phone)["removed"], LINK_TIMEOUT_S,
                   "the phone told it was removed")
        # Stored on the phone, and never taken by A: the counts of the link's last
        # contact say A lacks it.
        append(phone, "chat", [message("written after the removal")])
        removed = f"removed from the cluster by a ({device_id(a)}) at "
        status = run_cli(phone, "status").stdout
        assert f"REMOVED: this device was {removed}" in status, status

        open_console(page, phone)
        said = page.get_by_test_id("this-node").get_by_test_id("node-removed")
        expect(said).to_contain_text(f"Removed: this device was {removed}")
        expect(said).to_contain_text("(lost on the train); no member links with it any more")
        row = peer_rows(page, node_id(a))
        expect(row).to_have_attribute("data-state", "refused")
        expect(row.get_by_test_id("peer-state")).to_have_text("refused")
        expect(row.get_by_test_id("peer-why")).to_contain_text(removed)
        expect(row.get_by_test_id("peer-why")).to_contain_text("(lost on the train)")
        expect(row.get_by_test_id("peer-sync")).to_have_text("not syncing")
        # A dash, as `clawsync status` shows them: not the counts of the last contact.
        expect(row.get_by_test_id("peer-we-lack")).to_have_text(NOT_KNOWN)
        expect(row.get_by_test_id("peer-lacks")).to_have_text(NOT_KNOWN)
