"""A removed device's console, in a real headless Chromium against real node processes:
it says what ``clawsync status`` says (removed, by whom, why), once, the peer row says
that the peer refuses it and when it dials again, and shows no catch-up that will never
come. The
remover's name and the reason carry a right-to-left override, shown escaped as the
command shows it, not obeyed; a remover's name typed as an escape reads as the command
shows it, its backslash doubled once."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from node.text import printable
from tests.support.cluster import Cluster, append, message, wait_until
from tests.support.console import expect, node_id, open_console, peer_rows
from tests.support.devices import LINK_TIMEOUT_S, device_id, removed_phone
from tests.support.processes import run_cli

pytestmark = pytest.mark.integration

if TYPE_CHECKING:
    from playwright.sync_api import Page

#: What the console shows for a count it does not know (an en dash).
NOT_KNOWN = "\u2013"
#: A remover's name and a reason whose override (U+202E), obeyed, would show the device
#: id, the date and the reason after it backwards.
REMOVER = "mallory\u202e"
REASON = "lost\u202e on the train"


def test_a_removed_device_says_so_and_its_refused_peer_shows_why(
        tmp_path: Path, page: Page) -> None:
    with Cluster(tmp_path) as cluster:
        a, phone = removed_phone(cluster, REMOVER, REASON)
        # Stored on the phone, and never taken by A: the counts of the link's last
        # contact say A lacks it.
        append(phone, "chat", [message("written after the removal")])
        removed = f"removed from the cluster by {printable(REMOVER)} ({device_id(a)}) at "
        reason = f"({printable(REASON)})"
        status = run_cli(phone, "status").stdout
        assert f"REMOVED: this device was {removed}" in status, status
        assert reason in status, status

        open_console(page, phone)
        said = page.get_by_test_id("this-node").get_by_test_id("node-removed")
        expect(said).to_contain_text(f"Removed: this device was {removed}")
        expect(said).to_contain_text(f"{reason}; no member links with it any more")
        row = peer_rows(page, node_id(a))
        expect(row).to_have_attribute("data-state", "refused")
        # As `clawsync status` shows the link: refused, and when it dials again, in its
        # words, rounded up (never "0s" for a dial still to come).
        wait_until(lambda: any(
            peer["node_id"] == node_id(a) and peer["state"] == "refused"
            and peer["retry_in_s"] is not None for peer in phone.get("/v1/peers")["peers"]),
            LINK_TIMEOUT_S, "the phone's refused link to a waits to dial again")
        # Said once: a's refusal of the link, in the same words, is left out under the table.
        status = run_cli(phone, "status").stdout
        assert status.count(removed) == 1, status
        expect(row.get_by_test_id("peer-state")).to_have_text(
            re.compile(r"^refused \(retry in [1-9]\d*s\)$"))
        expect(row.get_by_test_id("peer-name")).to_have_text(printable(REMOVER))
        expect(row.get_by_test_id("peer-sync")).to_have_text("not syncing")
        # The refusal says the removal the card above says: not said twice (a row drawn
        # with its state is drawn with its why).
        assert not any("removed from the cluster" in why for why in
                       row.get_by_test_id("peer-why").all_inner_texts())
        assert page.locator("body").inner_text().count("removed from the cluster by") == 1
        # A dash, as `clawsync status` shows them: not the counts of the last contact.
        expect(row.get_by_test_id("peer-we-lack")).to_have_text(NOT_KNOWN)
        expect(row.get_by_test_id("peer-lacks")).to_have_text(NOT_KNOWN)


def test_a_removers_name_typed_as_an_escape_reads_as_status_shows_it(
        tmp_path: Path, page: Page) -> None:
    """The node names the remover as the tables show names (``shown_name``): a name
    typed with the six characters ``\\u3164`` has its backslash doubled in the sentence,
    once, and the console shows the sentence as ``clawsync status`` does, escaping
    nothing twice."""
    with Cluster(tmp_path) as cluster:
        a, phone = removed_phone(cluster, "mallory\\u3164", "lost\u3164")
        removed = f"removed from the cluster by mallory\\\\u3164 ({device_id(a)}) at "
        status = run_cli(phone, "status").stdout
        assert f"REMOVED: this device was {removed}" in status, status
        assert "(lost\\u3164); no member" in status, status

        open_console(page, phone)
        said = page.get_by_test_id("this-node").get_by_test_id("node-removed")
        expect(said).to_contain_text(f"Removed: this device was {removed}")
        expect(said).to_contain_text("(lost\\u3164); no member links with it any more.")
