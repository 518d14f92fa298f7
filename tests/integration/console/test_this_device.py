"""What the console says of this device besides its id, in `clawsync status`'s words: the
member it waits to be added on, with the command to run there, and a ``--peer`` address
that is this node's own (not dialed). In a real headless Chromium against real node
processes; the member's name carries a right-to-left override, shown escaped as the
command shows it, not obeyed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from node.text import printable
from tests.support.cluster import Cluster, wait_until
from tests.support.console import expect, open_console
from tests.support.devices import FAST, LINK_TIMEOUT_S, device_view
from tests.support.processes import run_cli

pytestmark = pytest.mark.integration

if TYPE_CHECKING:
    from playwright.sync_api import Page

#: The member's name: its override (U+202E), obeyed, would show the command after it
#: backwards.
MEMBER = "laptop\u202e"


def test_a_device_not_yet_added_says_what_to_run_and_which_peer_is_its_own(
        tmp_path: Path, page: Page) -> None:
    with Cluster(tmp_path) as cluster:
        member = cluster.node("laptop", secret=None, advertise=True,
                              extra_args=[*FAST, "--name", MEMBER])
        phone = cluster.node("phone", secret=None, peers=[member.url], advertise=True,
                             extra_args=[*FAST, "--name", "phone"], start=False)
        phone.extra_args += ["--peer", f"{phone.url}/"]  # a typo of a port, say
        phone.start()
        wait_until(lambda: device_view(phone)["waiting"], LINK_TIMEOUT_S,
                   "the phone told to wait")
        [told] = device_view(phone)["waiting"]
        own = f"--peer {phone.url}/ is this node's own address: it is not dialed"
        status = run_cli(phone, "status").stdout
        assert printable(told) in status and own in status, status
        assert "\\u202e" in printable(told)

        open_console(page, phone)
        shown = page.get_by_test_id("this-node")
        expect(shown.get_by_test_id("node-waiting")).to_have_text(printable(told))
        expect(shown.get_by_test_id("node-own-peer")).to_have_text(own)
        # The member's refusal of the link is that line: said once, above, as `clawsync
        # status` says it, not again under the peer's row.
        expect(page.locator('[data-testid=peer-row][data-state="refused"]')).to_have_count(1)
        assert (page.locator("main").text_content() or "").count(printable(told)) == 1
