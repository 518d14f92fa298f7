"""The console's devices view, in a real headless Chromium against real node processes:
node B going down and coming back in node A's view, the devices and their ids, rows
patched in place, names that would reorder the page, and parts of the view the node does
not answer. Each view is saved as a picture: in the test's temporary folder, or with
``--screenshots DIR`` in DIR (``tests/screenshots`` holds the README's).

Nothing sleeps: Playwright's ``expect`` waits for each condition, with a generous
deadline, and fails with what the page last showed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from node.text import printable
from tests.support.cluster import (
    Cluster,
    append,
    head,
    message,
    request,
    wait_until,
)
from tests.support.console import WAIT_MS, expect, node_id, open_console, peer_rows
from tests.support.processes import NodeProcess

pytestmark = pytest.mark.integration

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page, Route


def test_b_going_down_and_coming_back_shows_in_a_devices_view(
        pair: tuple[NodeProcess, NodeProcess], page: Page,
        screenshot: Callable[[str], None]) -> None:
    # Both nodes dial each other and keep the link the smaller node id dialed: watched
    # from the larger, B has two links (its own, up, and ours, on standby) and one row.
    a, b = sorted(pair, key=node_id, reverse=True)
    b_id = node_id(b)
    open_console(page, a)
    expect(page.get_by_test_id("this-node").get_by_test_id("node-id")) \
        .to_contain_text(node_id(a))
    expect(peer_rows(page, b_id, "up")).to_have_count(1)
    wait_until(lambda: len([p for p in a.get("/v1/peers")["peers"] if p["node_id"] == b_id]) == 2,
               WAIT_MS / 1000, "A lists both links to B")
    expect(peer_rows(page, b_id)).to_have_count(1)

    b.stop()
    expect(peer_rows(page, b_id, "up")).to_have_count(0)
    expect(peer_rows(page, b_id, "!up")).to_have_count(1)
    # Written while B is away: B lacks it until the link is back, and with it A's
    # device-key record, which A writes before its first event.
    append(a, "while-b-was-away", [message("catch up on this")])
    # Counted at the last contact, which the cell says: the link is not up.
    expect(peer_rows(page, b_id).get_by_test_id("peer-sync")) \
        .to_have_text("2 events behind as of last contact")
    # A's dials back off, and its row says why, as `clawsync status` does.
    failure = backoff_failure(a, b_id)
    expect(peer_rows(page, b_id, "backoff").get_by_test_id("peer-why")) \
        .to_contain_text(failure)

    b.start()
    expect_back_in_sync(page, b_id)
    wait_until(lambda: b.get("/v1/sessions/while-b-was-away")["message_count"] == 1,
               WAIT_MS / 1000, "B caught up on what A wrote while it was away")
    screenshot("devices")


def backoff_failure(node: NodeProcess, peer_id: str) -> str:
    """Why ``node``'s dials to the peer back off: its link's ``failure`` in
    ``GET /v1/peers``, once it has one."""
    def failure() -> str | None:
        return next((str(link["failure"]) for link in node.get("/v1/peers")["peers"]
                     if link["node_id"] == peer_id and link["failure"]), None)

    wait_until(lambda: failure() is not None, WAIT_MS / 1000, "a link to the peer backs off")
    return printable(failure() or "")


def test_a_peer_s_links_rank_refused_below_standby_and_above_down(
        node: NodeProcess, page: Page) -> None:
    """A peer's row shows its best link: one refused syncs nothing, so a link on
    standby or backing off outranks it, and it outranks a link that ended."""
    open_console(page, node)
    ranked = page.evaluate("""async () => {
        const { byRank } = await import("/console/devices.js");
        const links = ["down", "refused", "standby", "up", "backoff", "connecting"];
        return links.map((state) => ({ state })).sort(byRank).map((link) => link.state);
    }""")
    assert ranked == ["up", "connecting", "backoff", "standby", "refused", "down"]


def expect_back_in_sync(page: Page, peer_id: str) -> None:
    """The peer's one row is ``up`` and ``in sync`` (no stale row of an old link)."""
    row = peer_rows(page, peer_id)
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-state", "up")
    expect(row.get_by_test_id("peer-state")).to_have_text("up")
    expect(row.get_by_test_id("peer-sync")).to_have_text("in sync")


def device_of(node: NodeProcess) -> str:
    return str(node.get("/v1/node")["device_id"])


def expect_device_id(widget: Locator, device_id: str) -> None:
    """A device id shown as its first group, the whole id on hover."""
    shown = widget.locator("code")
    expect(shown).to_have_text(device_id[:7] + "…")
    expect(shown).to_have_attribute("title", device_id)


def test_the_devices_view_names_each_device_with_its_id(
        pair: tuple[NodeProcess, NodeProcess], page: Page) -> None:
    a, b = pair
    a_device, b_device = device_of(a), device_of(b)
    a_name = a.get("/v1/node")["name"]  # the host name: no record names it yet
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=a.url)
    open_console(page, a)
    expect(page.get_by_test_id("this-node").get_by_test_id("node-name")).to_have_text(a_name)
    # README's words for it (its Console section), the whole size in its title.
    size = page.get_by_test_id("this-node").get_by_test_id("node-data-folder")
    expect(size).to_have_attribute("title", re.compile(r"^[1-9][0-9]* bytes$"))
    expect(page.get_by_test_id("this-node").locator("dt", has_text="Data folder size")) \
        .to_have_count(1)
    expect_device_id(page.get_by_test_id("this-node").get_by_test_id("device-id"), a_device)
    own = page.locator(f'[data-testid=device-row][data-device-id="{a_device}"]')
    expect(own).to_have_attribute("data-state", "member")
    expect(own.get_by_test_id("device-name")).to_have_text(f"{a_name} (this device)")
    # B links by the cluster secret: a device, no member yet, so without a name.
    phone = page.locator(f'[data-testid=device-row][data-device-id="{b_device}"]')
    expect(phone).to_have_attribute("data-state", "linked")
    expect(phone).to_contain_text("by the cluster secret")
    peer = peer_rows(page, node_id(b))
    expect(peer.get_by_test_id("peer-name")).to_have_text("not a member")
    expect_device_id(peer.get_by_test_id("device-id"), b_device)

    request(a, "POST", "/v1/devices", {"device_id": b_device, "name": "phone"})
    expect(phone).to_have_attribute("data-state", "member")
    expect(phone.get_by_test_id("device-name")).to_have_text("phone")
    expect_device_id(phone.get_by_test_id("device-id"), b_device)
    expect(phone).to_contain_text("added by this device")
    expect(peer.get_by_test_id("peer-name")).to_have_text("phone")

    # Copy puts the whole id on the clipboard, and says which for a while. The button
    # is patched in place as the view refreshes, never swapped under the click.
    phone.get_by_role("button", name="Copy").click()
    expect(page.get_by_test_id("copy-note")).to_have_text(f"Copied the device id {b_device}")
    assert page.evaluate("navigator.clipboard.readText()") == b_device
    expect(page.get_by_test_id("copy-note")).to_be_hidden()


def test_the_devices_view_changes_only_what_changed(
        pair: tuple[NodeProcess, NodeProcess], page: Page) -> None:
    """A refresh patches the card and the rows in place: the Copy buttons of this node
    and of a peer are the same elements after it, and the one focused keeps focus (a
    button swapped between a press and its release loses the click, and a tooltip
    vanishes), also when the peer's row changes its state."""
    a, b = pair
    b_id = node_id(b)

    def settled() -> bool:
        links = [p["state"] for p in a.get("/v1/peers")["peers"] if p["node_id"] == b_id]
        return links.count("up") == 1 and set(links) <= {"up", "standby"}

    # The links of the two dials settled (one kept, the other on standby or gone) before
    # the page opens: one coming up or giving way meanwhile redraws the row's cells.
    wait_until(settled, WAIT_MS / 1000, "A's links to B settled")
    open_console(page, a)
    card = page.get_by_test_id("this-node")
    peer = peer_rows(page, b_id)
    expect(peer.get_by_test_id("device-id")).to_have_count(1)
    page.evaluate("""() => {
        const button = (where) => document.querySelector(
            `[data-testid=${where}] [data-testid=device-id] button`);
        window.kept = [button("this-node"), button("peer-row")];
        window.kept[1].focus();
    }""")
    before = head(a)
    append(a, "chat", [message("a redraw")])
    expect(card.get_by_test_id("node-head")).not_to_have_text(str(before))
    assert page.evaluate("window.kept.map((button) => button.isConnected)") == [True, True]
    assert page.evaluate("document.activeElement === window.kept[1]") is True

    b.stop()  # the peer's row goes from up to backoff (A dials it) or down
    expect(peer).not_to_have_attribute("data-state", "up")
    expect(peer.get_by_test_id("device-id")).to_have_count(1)
    assert page.evaluate("window.kept.map((button) => button.isConnected)") == [True, True]
    assert page.evaluate("document.activeElement === window.kept[1]") is True


def test_a_peer_row_added_above_another_leaves_it_in_place(
        tmp_path: Path, page: Page) -> None:
    """Rows are matched by their node, not their place: a peer that comes first leaves
    the row of the one that was first where it is, its Copy button and its focus."""
    with Cluster(tmp_path) as cluster:
        a = cluster.node("a")
        b = cluster.node("b", peers=[a.url])
        b_id = node_id(b)
        open_console(page, a)
        peer = peer_rows(page, b_id, "up")
        expect(peer.get_by_test_id("device-id")).to_have_count(1)
        page.evaluate("""() => {
            window.kept = document.querySelector(
                "[data-testid=peer-row] [data-testid=device-id] button");
            window.kept.focus();
        }""")
        b.stop()  # A lists the link B opened as down; it comes back second
        expect(peer_rows(page, b_id, "down")).to_have_count(1)
        c = cluster.node("c", peers=[a.url])
        expect(peer_rows(page, node_id(c), "up")).to_have_count(1)
        assert page.evaluate("""() => [...document.querySelectorAll(
            "[data-testid=peer-row]")].map((row) => row.dataset.nodeId)""")[-1] == b_id
        assert page.evaluate("window.kept.isConnected") is True
        assert page.evaluate("document.activeElement === window.kept") is True


#: Where (x, in CSS pixels) the first character of ``text`` inside an element shows.
X_OF = """([element, text]) => {
    const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const at = node.data.indexOf(text);
        if (at < 0) continue;
        const range = document.createRange();
        range.setStart(node, at);
        range.setEnd(node, at + 1);
        return range.getBoundingClientRect().left;
    }
    throw new Error(`no ${text} in ${element.textContent}`);
}"""


def x_of(widget: Locator, text: str) -> float:
    return float(widget.evaluate(f"(element, text) => ({X_OF})([element, text])", text))


def test_a_name_with_a_bidi_override_reorders_nothing_beside_it(
        tmp_path: Path, page: Page) -> None:
    """A device named with U+202E (right-to-left override) shows its name with the
    override escaped, as `clawsync status` shows it, and the id, the Copy button and the
    words after it stay in order. A new name may no longer hold it, but a node's own
    name still may (warned of at start), and records written before hold such names."""
    with Cluster(tmp_path) as cluster:
        b = cluster.node("b", start=False)
        a = cluster.node("a", peers=[b.url], extra_args=["--name", "\u202eevil"])
        b.extra_args += ["--peer", a.url]
        b.start()
        shows_the_override_escaped(a, b, page)


def shows_the_override_escaped(a: NodeProcess, b: NodeProcess, page: Page) -> None:
    a_device, b_device = device_of(a), device_of(b)
    request(a, "POST", "/v1/devices", {"device_id": b_device, "name": "phone"})
    open_console(page, b)
    peer = peer_rows(page, node_id(a))
    expect(peer.get_by_test_id("peer-name")).to_have_text(printable("\u202eevil"))
    shown = peer.get_by_test_id("device-id")
    code, button = shown.locator("code"), shown.get_by_role("button", name="Copy")
    assert x_of(peer.get_by_test_id("peer-device"), "evil") < x_of(code, a_device[0]) \
        < x_of(code, "…") < (button.bounding_box() or {"x": 0})["x"]
    since = page.locator(f'[data-testid=device-row][data-device-id="{b_device}"] td').last
    expect(since).to_contain_text(f"added by {printable(chr(0x202e))}evil, ")
    assert x_of(since, "added") < x_of(since, "evil") < x_of(since, ", ")


def test_each_part_of_the_devices_view_is_read_on_its_own(node: NodeProcess,
                                                          page: Page) -> None:
    """A device list without its ``linked`` still shows its members; a node that cannot
    list its devices still shows itself, refreshed, with the devices' own error; a
    list that can be read again clears it."""
    own = device_of(node)
    answer = {"as": "partial"}

    def devices(route: Route) -> None:
        if answer["as"] == "failing":
            route.fulfill(status=503, json={"error": {"code": "unavailable",
                                                      "message": "not now"}})
            return
        view = route.fetch().json()
        if answer["as"] == "partial":
            del view["linked"]
        route.fulfill(json=view)

    page.route("**/v1/devices", devices)
    open_console(page, node)
    row = page.locator(f'[data-testid=device-row][data-device-id="{own}"]')
    expect(row).to_have_attribute("data-state", "member")
    errors = page.get_by_test_id("devices-error")
    expect(errors).to_have_text("")

    answer["as"] = "failing"
    expect(errors).to_have_text("Cannot read the devices: not now")
    card = page.get_by_test_id("this-node")
    before = head(node)
    append(node, "chat", [message("still shown")])
    expect(card.get_by_test_id("node-head")).not_to_have_text(str(before))
    expect(page.locator("main .node-error")).to_have_text("")

    answer["as"] = "whole"
    expect(errors).to_have_text("")
    expect(row).to_be_visible()


def test_a_part_the_node_does_not_answer_is_not_asked_again_until_it_times_out(
        node: NodeProcess, page: Page) -> None:
    """A node that does not answer ``/v1/devices`` gets no other request for it while
    one waits (so no late answer can overwrite a newer one), though the view refreshes
    meanwhile; the view says so once the wait is over, and reads the devices again."""
    asked: list[Route] = []
    hold = {"on": True}

    def devices(route: Route) -> None:
        asked.append(route)
        if not hold["on"]:
            route.continue_()

    page.route("**/v1/devices", devices)
    open_console(page, node)
    card = page.get_by_test_id("this-node")
    for text in ("one", "two"):  # the node's part is read again, twice at least
        before = head(node)
        append(node, "chat", [message(text)])
        expect(card.get_by_test_id("node-head")).not_to_have_text(str(before))
    errors = page.get_by_test_id("devices-error")
    expect(errors).to_have_text("Cannot read the devices: no answer within 10 s")
    # The one that timed out, and perhaps the next (a refresh as it timed out).
    assert len(asked) in (1, 2)
    hold["on"] = False
    own = page.locator(f'[data-testid=device-row][data-device-id="{device_of(node)}"]')
    expect(own).to_have_attribute("data-state", "member")
    expect(errors).to_have_text("")


def test_a_device_id_the_page_may_not_copy_is_shown_whole_and_selected(
        node: NodeProcess, page: Page) -> None:
    """Over plain http to another machine the page may not write the clipboard: the
    whole id is then shown selected, for Ctrl+C, and stays so while the view redraws."""
    page.add_init_script(
        "navigator.clipboard.writeText = () => Promise.reject(new Error('not allowed'))")
    device_id = device_of(node)
    open_console(page, node)
    card = page.get_by_test_id("this-node")
    expect(card.get_by_test_id("node-id")).not_to_be_empty()
    heading = page.get_by_role("heading", name="This node")
    where = heading.bounding_box()
    card.get_by_test_id("device-id").get_by_role("button", name="Copy").click()
    note = page.get_by_test_id("copy-note")
    expect(note).to_have_text(f"Press Ctrl+C to copy the device id {device_id}")
    assert page.evaluate("getSelection().toString()") == device_id
    assert heading.bounding_box() == where  # the note moved nothing
    before = head(node)
    append(node, "chat", [message("a redraw")])
    expect(card.get_by_test_id("node-head")).not_to_have_text(str(before))
    assert page.evaluate("getSelection().toString()") == device_id
    # Copied: the note has done its work.
    page.keyboard.press("Control+c")
    expect(note).to_be_hidden()


def test_a_peer_that_dialed_and_stopped_stays_as_down_until_it_is_back(
        tmp_path: Path, page: Page) -> None:
    with Cluster(tmp_path) as cluster:
        a = cluster.node("a")
        b = cluster.node("b", peers=[a.url])  # only B dials: A's link to it is accepted
        b_id = node_id(b)
        open_console(page, a)
        expect(peer_rows(page, b_id, "up")).to_have_count(1)

        b.stop()
        row = peer_rows(page, b_id)
        expect(row).to_have_attribute("data-state", "down")
        expect(row.get_by_test_id("peer-state")).to_have_text(re.compile(r"^down, last seen "))
        expect(row.get_by_test_id("peer-sync")).to_have_text("not known")

        b.start()
        expect_back_in_sync(page, b_id)
