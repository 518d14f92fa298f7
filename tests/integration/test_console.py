"""The web console in a real headless Chromium, against real node processes: what a person
sees in node A's console while node B appends, stops and comes back, the token form of
a node that needs one, and a lost event stream that recovers by itself. Each view is
saved as a picture: in the test's temporary folder, or with ``--screenshots DIR`` in DIR
(``tests/screenshots`` holds the README's).

Nothing sleeps: Playwright's ``expect`` waits for each condition, with a generous
deadline, and fails with what the page last showed.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest

from crdt.membership import DEVICES_SESSION
from tests.support.browser import browser_missing, headless_chromium, in_ci
from tests.support.cluster import (
    Cluster,
    append,
    head,
    message,
    request,
    session_path,
    wait_until,
)
from tests.support.processes import NodeProcess, run_cli

pytestmark = pytest.mark.integration

#: Why no browser can run here (None when one can): a skip on a developer's machine, a
#: failure of every test here in CI, where a skipped browser test would hide a broken console.
MISSING = browser_missing()
if MISSING is not None and not in_ci():
    pytest.skip(f"no headless browser: {MISSING}", allow_module_level=True)
if MISSING is None:
    from playwright.sync_api import expect
if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Locator, Page, Route

#: Milliseconds a page gets to show what we wait for: a peer that was down redials after
#: a back-off, and CI machines are slow.
WAIT_MS = 60_000
#: A key that needs escaping in the URL (``#/session/<encodeURIComponent(key)>``).
KEY = "telegram:chat/42 ü"
TOKEN = "s3cret"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[BrowserContext]:
    """A fresh headless Chromium (its own profile folder)."""
    if MISSING is not None:
        pytest.fail(f"the console tests need a browser: {MISSING}", pytrace=False)
    with headless_chromium(tmp_path / "profile") as context:
        yield context


@pytest.fixture
def page(browser: BrowserContext) -> Page:
    page = browser.new_page()
    page.set_default_timeout(WAIT_MS)
    expect.set_options(timeout=WAIT_MS)
    return page


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    """Nodes A and B, each dialing the other, with the cluster secret."""
    with Cluster(tmp_path) as cluster:
        b = cluster.node("b", start=False)
        a = cluster.node("a", peers=[b.url])
        b.extra_args += ["--peer", a.url]
        b.start()
        yield a, b


def node_id(node: NodeProcess) -> str:
    return str(node.get("/healthz")["node_id"])


def open_console(page: Page, node: NodeProcess, route: str = "#/devices") -> None:
    page.goto(f"{node.url}/{route}")
    expect(page.get_by_test_id("live-status")).to_have_text("live")


def peer_rows(page: Page, peer_id: str, state: str = "") -> Locator:
    """``peer``'s rows (one per peer, however many links), only those in ``state`` if
    given, or in any other state with ``state="!up"``."""
    rows = f'[data-testid=peer-row][data-node-id="{peer_id}"]'
    if state.startswith("!"):
        return page.locator(f'{rows}:not([data-state="{state[1:]}"])')
    return page.locator(f'{rows}[data-state="{state}"]' if state else rows)


@pytest.fixture
def screenshot(page: Page, request: pytest.FixtureRequest,
               tmp_path: Path) -> Callable[[str], None]:
    """``screenshot(name)`` saves the page as ``<name>.png``, in the folder given with
    ``--screenshots``, else in the test's temporary folder: a run leaves the checkout's
    files as they were, and refreshing the README's pictures is a choice."""
    chosen: Path | None = request.config.getoption("screenshots")
    folder = chosen if chosen is not None else tmp_path

    def take(name: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / f"{name}.png"))

    return take


def test_a_session_written_on_b_appears_and_updates_live_on_a(
        pair: tuple[NodeProcess, NodeProcess], page: Page,
        screenshot: Callable[[str], None]) -> None:
    a, b = pair
    open_console(page, a, "#/sessions")
    append(b, KEY, [message("hello from the phone")])
    row = page.locator("[data-testid=session-row]").filter(has_text="telegram:chat/42")
    expect(row).to_have_attribute("data-key", KEY)
    append(b, "cron:nightly", [message("unrelated")])
    expect(page.locator('[data-testid=session-row][data-key="cron:nightly"]')).to_be_visible()
    # The cluster's own session (B's and A's device key records) is not the user's: it
    # is not listed, yet its page still shows it.
    expect(page.get_by_test_id("session-row")).to_have_count(2)
    expect(page.locator(f'[data-testid=session-row][data-key="{DEVICES_SESSION}"]')) \
        .to_have_count(0)
    screenshot("sessions")

    page.get_by_test_id("session-filter").fill("telegram")
    expect(page.get_by_test_id("session-row")).to_have_count(1)
    row.click()
    expect(page).to_have_url(re.compile(re.escape("#/session/" + quote(KEY, safe=""))))
    transcript = page.get_by_test_id("transcript")
    expect(transcript.get_by_test_id("message")).to_have_count(1)
    expect(page.locator(".summary")).to_contain_text(" · 1 message received · 1 event · ")
    expect(page.get_by_test_id("automerge-url")).to_contain_text("automerge:")

    # Marks this document: a reload would drop the mark.
    page.evaluate("window.stillTheSamePage = true")
    append(b, KEY, [
        {"agent_id": "main", "kind": {"type": "agent_response", "content": "on it",
                                      "model": "m"}},
        {"agent_id": "main", "kind": {"type": "tool_called", "tool_name": "weather",
                                      "params": {"city": "Oslo"}}},
        {"agent_id": "main", "kind": {"type": "tool_result", "tool_name": "weather",
                                      "result": {"celsius": -3}, "success": True}},
        message("and one more thing"),
    ])
    last = transcript.get_by_test_id("message").filter(has_text="and one more thing")
    expect(last).to_have_attribute("data-direction", "inbound")
    expect(transcript.get_by_test_id("message").filter(has_text="on it")) \
        .to_have_attribute("data-direction", "outbound")
    call = transcript.get_by_test_id("tool-call").filter(has_text="weather")
    expect(call.get_by_test_id("tool-result")).to_contain_text("-3")
    assert page.evaluate("window.stillTheSamePage") is True
    screenshot("session")


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
    expect(peer_rows(page, b_id).get_by_test_id("peer-sync")).to_have_text("2 events behind")

    b.start()
    expect_back_in_sync(page, b_id)
    wait_until(lambda: b.get("/v1/sessions/while-b-was-away")["message_count"] == 1,
               WAIT_MS / 1000, "B caught up on what A wrote while it was away")
    screenshot("devices")


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
    open_console(page, a)
    card = page.get_by_test_id("this-node")
    peer = peer_rows(page, node_id(b))
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
        pair: tuple[NodeProcess, NodeProcess], page: Page) -> None:
    """A device named with U+202E (right-to-left override) shows its name reversed, as
    written, but the id, the Copy button and the words after it stay in order."""
    a, b = pair
    a_device, b_device = device_of(a), device_of(b)
    request(a, "POST", "/v1/devices", {"device_id": a_device, "name": "\u202eevil"})
    request(a, "POST", "/v1/devices", {"device_id": b_device, "name": "phone"})
    open_console(page, b)
    peer = peer_rows(page, node_id(a))
    expect(peer.get_by_test_id("peer-name")).to_have_text("\u202eevil")
    shown = peer.get_by_test_id("device-id")
    code, button = shown.locator("code"), shown.get_by_role("button", name="Copy")
    assert x_of(peer.get_by_test_id("peer-device"), "evil") < x_of(code, a_device[0]) \
        < x_of(code, "…") < (button.bounding_box() or {"x": 0})["x"]
    since = page.locator(f'[data-testid=device-row][data-device-id="{b_device}"] td').last
    expect(since).to_contain_text("added by \u202eevil, ")
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


def test_an_app_token_gets_the_form_back_with_the_nodes_words(token_node: NodeProcess,
                                                               page: Page) -> None:
    """An Automerge app's token is known to the node, which answers 403: the console
    says so under the form, instead of "Cannot reach the node" and asking again every
    2 s for good."""
    made = run_cli(token_node, "tokens", "create", "--sessions", "*", "--json")
    assert made.returncode == 0, made.stderr
    page.goto(token_node.url + "/")
    form = page.locator("form[data-testid=token-form]")
    form.locator("input[name=token]").fill(json.loads(made.stdout)["token"])
    form.locator("[type=submit]").click()
    expect(page.get_by_test_id("token-error")).to_contain_text("this is an app token")
    expect(page.get_by_test_id("live-status")).to_have_text("token needed")
    expect(form).to_be_visible()
    expect(page.get_by_test_id("this-node")).to_be_hidden()
    assert page.evaluate("Object.values(sessionStorage)") == []


def test_a_node_with_a_token_asks_for_it_and_keeps_it_out_of_the_url(
        token_node: NodeProcess, page: Page, screenshot: Callable[[str], None]) -> None:
    page.goto(token_node.url + "/")
    form = page.locator("form[data-testid=token-form]")
    expect(form).to_be_visible()
    expect(page.get_by_test_id("this-node")).to_be_hidden()
    screenshot("token-form")

    form.locator("input[name=token]").fill("wrong-token")
    form.locator("[type=submit]").click()
    # The error line is there (empty) from the start: wait for words in it.
    expect(page.get_by_test_id("token-error")).to_have_text(re.compile(r"\w"))
    expect(page.get_by_test_id("this-node")).to_be_hidden()

    form.locator("input[name=token]").fill(TOKEN)
    form.locator("[type=submit]").click()
    expect(page.get_by_test_id("this-node").get_by_test_id("node-id")) \
        .to_contain_text(node_id(token_node))
    expect(page.get_by_test_id("live-status")).to_have_text("live")
    assert TOKEN not in page.url
    assert TOKEN in page.evaluate("Object.values(sessionStorage)")
    assert TOKEN not in page.evaluate("Object.values(localStorage)")

    # Kept for the browser session: a reload and a move to another view ask no more.
    page.reload()
    page.locator("a[data-view=sessions]").click()
    expect(page.get_by_test_id("session-filter")).to_be_visible()
    expect(form).to_be_hidden()
    assert TOKEN not in page.url


def test_a_pasted_token_is_taken_without_the_white_space_around_it(
        token_node: NodeProcess, page: Page) -> None:
    """A token copied with the spaces or the line end around it is the token: the node
    refuses to start on one that begins or ends with white space, so that is never part
    of it, and the console keeps and sends the token alone."""
    sent: list[str | None] = []
    page.on("request", lambda request: sent.append(request.headers.get("authorization"))
            if request.url.endswith("/v1/node") else None)
    page.goto(token_node.url + "/")
    form = page.locator("form[data-testid=token-form]")
    form.locator("input[name=token]").fill(f" \t{TOKEN} \u00a0\n")
    form.locator("[type=submit]").click()
    expect(page.get_by_test_id("live-status")).to_have_text("live")
    assert page.evaluate("Object.values(sessionStorage)") == [TOKEN]
    assert sent[-1] == f"Bearer {TOKEN}", sent


def test_a_late_refusal_of_an_earlier_token_does_not_undo_the_current_one(
        token_node: NodeProcess, page: Page) -> None:
    held: list[Route] = []

    def hold_the_wrong_token(route: Route) -> None:
        if route.request.header_value("authorization") == "Bearer wrong-token":
            held.append(route)
        else:
            route.continue_()

    page.route("**/v1/node", hold_the_wrong_token)
    page.goto(token_node.url + "/")
    form = page.locator("form[data-testid=token-form]")
    form.locator("input[name=token]").fill("wrong-token")
    form.locator("[type=submit]").click()
    # Its answer is held back: the form is still there for the right token.
    form.locator("input[name=token]").fill(TOKEN)
    form.locator("[type=submit]").click()
    expect(page.get_by_test_id("live-status")).to_have_text("live")
    assert len(held) == 1

    # The node's 401 to the first token arrives now, after the second was accepted.
    with page.expect_response(lambda response: response.status == 401):
        held[0].continue_()
    page.evaluate("() => new Promise((resolve) => setTimeout(resolve))")  # let it land
    expect(form).to_be_hidden()
    expect(page.get_by_test_id("token-error")).to_have_text("")
    assert TOKEN in page.evaluate("Object.values(sessionStorage)")
    page.locator("a[data-view=sessions]").click()
    expect(page.get_by_test_id("session-filter")).to_be_visible()


def test_a_lost_event_stream_shows_and_recovers_by_itself(node: NodeProcess,
                                                          page: Page) -> None:
    open_console(page, node, "#/sessions")
    node.stop()
    expect(page.get_by_test_id("live-status")).to_have_text("reconnecting…")
    node.start()
    expect(page.get_by_test_id("live-status")).to_have_text("live")
    append(node, "after-the-restart", [message("still watching")])
    expect(page.locator('[data-testid=session-row][data-key="after-the-restart"]')) \
        .to_be_visible()


def test_a_forget_on_another_node_takes_the_content_off_an_open_session(
        pair: tuple[NodeProcess, NodeProcess], page: Page) -> None:
    a, b = pair
    said = append(b, KEY, [message("my pin is 4711"), message("see you")])
    open_console(page, a, "#/session/" + quote(KEY, safe=""))
    transcript = page.get_by_test_id("transcript")
    expect(transcript.get_by_test_id("message")).to_have_count(2)
    old_url = page.get_by_test_id("automerge-url").text_content()
    page.evaluate("window.stillTheSamePage = true")
    request(b, "POST", session_path(KEY) + "/forget", {"events": [said[0]["id"]]})
    # The page, open all along, drops what was forgotten and names the new document.
    expect(transcript.get_by_test_id("message")).to_have_count(1)
    expect(transcript).not_to_contain_text("4711")
    expect(transcript).to_contain_text("see you")
    expect(page.get_by_test_id("automerge-url")).not_to_have_text(old_url or "")
    assert page.evaluate("window.stillTheSamePage") is True
    request(b, "DELETE", session_path(KEY))
    expect(transcript.get_by_test_id("message")).to_have_count(0)
    expect(transcript).not_to_contain_text("see you")


def test_the_cluster_sessions_are_not_listed_but_open_by_key(node: NodeProcess,
                                                              page: Page) -> None:
    append(node, "chat", [message("hello")])
    open_console(page, node, "#/sessions")
    expect(page.locator('[data-testid=session-row][data-key="chat"]')).to_be_visible()
    expect(page.get_by_test_id("session-row")).to_have_count(1)
    page.goto(f"{node.url}/#/session/{quote(DEVICES_SESSION, safe='')}")
    expect(page.locator(".summary")).to_contain_text("events")
    expect(page.get_by_test_id("automerge-url")).to_contain_text("automerge:")


def test_the_node_shows_every_session_listed_and_how_many_were_forgotten(
        node: NodeProcess, page: Page) -> None:
    for key in ("kept", "gone"):
        append(node, key, [message("hello")])
    request(node, "DELETE", session_path("gone"))
    open_console(page, node)
    expect(page.get_by_test_id("node-sessions")).to_have_text("2 (1 forgotten)")


@pytest.mark.parametrize("name", [".", ".."])
def test_a_session_named_dot_or_dot_dot_is_named_not_asked_for(node: NodeProcess, page: Page,
                                                               name: str) -> None:
    """A browser folds ``/v1/sessions/..`` (escaped or not) into ``/v1/``: the page said
    the session was not on the node and, at its next event, asked again without pause."""
    append(node, name, [message("first")])
    asked: list[str] = []
    page.on("request", lambda sent: asked.append(sent.url))
    open_console(page, node, "#/session/" + "%2E" * len(name))
    expect(page.locator(".summary")).to_contain_text(
        f'A browser cannot ask for a session named "{name}"')
    assert not any("/v1/sessions" in url for url in asked), asked
    before = len(asked)
    append(node, name, [message("second")])
    # What the page does with the event is asked in vain: none of it may be a request.
    # It would be hundreds a second, so a short look is enough to see them.
    page.wait_for_timeout(1500)
    assert asked[before:] == []
    page.goto(f"{node.url}/#/session/")  # no key at all: the list to pick one from
    expect(page.get_by_test_id("session-filter")).to_be_visible()
    assert page.evaluate("location.hash") == "#/sessions"


def test_the_live_stream_starts_at_the_head_the_console_loaded(node: NodeProcess,
                                                                page: Page) -> None:
    """On a node with a long log, the console's stream starts at the head it read when
    it loaded (not at the log's start), and an event stored between that load and the
    stream's start still shows."""
    for start in range(0, 2000, 500):
        append(node, "bulk", [message(f"old {n}") for n in range(start, start + 500)])
    append(node, "chat", [message("before the console")])
    loaded_head = head(node)
    held: list[Route] = []
    asked: list[str] = []
    page.on("request", lambda sent: asked.append(sent.url) if "/v1/events" in sent.url
            else None)
    page.route("**/v1/events?*", lambda route: held.append(route))
    page.goto(f"{node.url}/#/session/chat")
    transcript = page.get_by_test_id("transcript")
    expect(transcript.get_by_test_id("message")).to_have_count(1)
    expect(page.get_by_test_id("live-status")).not_to_have_text("live")
    assert len(held) == 1
    assert asked == [f"{node.url}/v1/events?after={loaded_head}"]

    # Stored after the page read the session, before its stream reached the node.
    append(node, "chat", [message("while the stream connects")])
    held[0].continue_()
    expect(page.get_by_test_id("live-status")).to_have_text("live")
    expect(transcript.get_by_test_id("message")).to_have_count(2)
    expect(transcript).to_contain_text("while the stream connects")
    assert asked == [f"{node.url}/v1/events?after={loaded_head}"]  # no second stream


def test_a_node_restored_from_an_older_backup_is_read_again(node: NodeProcess,
                                                            page: Page) -> None:
    """The node's log goes back under an open console (restored from a backup): its
    stream's position is then past the node's head, which the node refuses. The console
    reads everything again and goes on live, rather than retrying that position."""
    append(node, "kept", [message("in the backup")])
    node.stop()
    backup = node.data_dir.with_name("backup")
    shutil.copytree(node.data_dir, backup)
    node.start()
    append(node, "lost", [message(f"after the backup {n}") for n in range(5)])
    open_console(page, node, "#/sessions")
    expect(page.locator('[data-testid=session-row][data-key="lost"]')).to_be_visible()

    node.stop()
    shutil.rmtree(node.data_dir)
    backup.rename(node.data_dir)
    node.start()
    expect(page.get_by_test_id("live-status")).to_have_text("live")
    expect(page.locator('[data-testid=session-row][data-key="lost"]')).to_have_count(0)
    append(node, "after-the-restore", [message("seen live")])
    expect(page.locator('[data-testid=session-row][data-key="after-the-restore"]')) \
        .to_be_visible()
