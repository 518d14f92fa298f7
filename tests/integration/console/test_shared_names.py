"""Members that came to share a name, in the console (a real headless Chromium against
real node processes), as ``clawsync devices`` and ``clawsync status`` show them: both
rows of the devices view are marked "(name shared)", the device card says which names in
one line, and renaming one ends both. A name's invisible characters are shown escaped."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from crdt.device import shown_name
from tests.support.cluster import Cluster
from tests.support.console import expect, open_console
from tests.support.devices import device_id, sharing_a_name
from tests.support.processes import run_cli

#: A name recorded before its characters were refused in new names: a Hangul filler, a
#: braille blank, a musical format control and an ignorable joiner show as nothing or as
#: a blank; an emoji's joiner spells the emoji.
HIDDEN_NAME = "phone\u3164\u2800\U0001d173\u034f \U0001f469\u200d\U0001f4bb"

pytestmark = pytest.mark.integration

if TYPE_CHECKING:
    from playwright.sync_api import Page


def test_members_sharing_a_name_are_marked_in_the_devices_view(
        tmp_path: Path, page: Page) -> None:
    with Cluster(tmp_path) as cluster:
        a, b, phone, tablet = sharing_a_name(cluster)

        open_console(page, a)
        marks = page.get_by_test_id("name-shared")
        expect(marks).to_have_count(2)
        for member in (phone, tablet):
            row = page.locator(f'[data-testid=device-row][data-device-id="{member}"]')
            expect(row.get_by_test_id("device-name")).to_have_text(
                "phone (name shared)" if member == phone else "Phone (name shared)")
        for member in (device_id(a), device_id(b)):
            row = page.locator(f'[data-testid=device-row][data-device-id="{member}"]')
            expect(row.get_by_test_id("name-shared")).to_have_count(0)
        spelled = min((phone, "phone"), (tablet, "Phone"))[1]
        expect(page.get_by_test_id("node-shared-names")).to_have_text(
            f"Members share names: {spelled} (2 members): people cannot tell them apart; "
            "rename all but one (the devices below are marked; `clawsync devices` prints "
            "the commands).")

        done = run_cli(a, "devices", "add", tablet, "--name", "tablet")
        assert done.returncode == 0, done.stderr
        expect(marks).to_have_count(0)
        expect(page.get_by_test_id("node-shared-names")).to_have_count(0)


def test_a_name_s_invisible_characters_are_shown_escaped(tmp_path: Path, page: Page) -> None:
    with Cluster(tmp_path) as cluster:
        a = cluster.node("a", secret=None, extra_args=["--name", HIDDEN_NAME])
        open_console(page, a)
        shown = shown_name(HIDDEN_NAME)
        assert shown == ("phone\\u3164\\u2800\\U0001d173\\u034f "
                         "\U0001f469\u200d\U0001f4bb")
        row = page.locator(f'[data-testid=device-row][data-device-id="{device_id(a)}"]')
        expect(row.get_by_test_id("device-name")).to_have_text(f"{shown} (this device)")
        expect(page.get_by_test_id("node-name")).to_have_text(shown)
