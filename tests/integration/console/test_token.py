"""The console of a node that needs a token, in a real headless Chromium against a real
node process: the token form, what it says of a wrong or an app's token, and where the
token is kept. The form is saved as a picture: in the test's temporary folder, or with
``--screenshots DIR`` in DIR (``tests/screenshots`` holds the README's).

Nothing sleeps: Playwright's ``expect`` waits for each condition, with a generous
deadline, and fails with what the page last showed.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from tests.support.console import expect, node_id
from tests.support.processes import NodeProcess, run_cli

pytestmark = pytest.mark.integration

if TYPE_CHECKING:
    from playwright.sync_api import Page, Route


TOKEN = "s3cret"

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


def test_a_token_sent_to_a_node_that_checks_none_is_said_until_it_checks_one(
        node: NodeProcess, page: Page) -> None:
    """A token kept in the tab (the node was restarted without --token) opens nothing:
    the node says so of every answer, and the page says it under the header, in every
    view. Once the node is restarted with --token (the tab's), its answers no longer say
    it, and the page no longer does."""
    page.goto(node.url + "/")
    expect(page.get_by_test_id("live-status")).to_have_text("live")
    notice = page.get_by_test_id("token-unused")
    expect(notice).to_be_hidden()
    page.evaluate(f"sessionStorage.setItem('clawsync.token', '{TOKEN}')")
    page.reload()
    expect(notice).to_be_visible()
    expect(notice).to_have_text(
        "This node runs without --token: it does not check the token this tab sends, and "
        "anyone who reaches it can read it. Start the node with --token to require one.")
    page.locator("a[data-view=sessions]").click()
    expect(page.get_by_test_id("session-filter")).to_be_visible()
    expect(notice).to_be_visible()

    node.token = TOKEN
    node.restart()
    expect(notice).to_be_hidden()
    expect(page.get_by_test_id("live-status")).to_have_text("live")
    expect(page.get_by_test_id("session-filter")).to_be_visible()


def test_the_live_streams_answer_alone_says_the_token_is_checked_again(
        node: NodeProcess, page: Page) -> None:
    """The stream's own answer says whether the token went unused: with every other
    request of the page failing after the restart, the notice still goes once the node
    checks the token."""
    page.goto(node.url + "/")
    page.evaluate(f"sessionStorage.setItem('clawsync.token', '{TOKEN}')")
    page.reload()
    notice = page.get_by_test_id("token-unused")
    expect(notice).to_be_visible()

    def only_the_stream(url: str) -> bool:
        return "/v1/" in url and "/v1/events" not in url

    page.route(only_the_stream, lambda route: route.abort())
    node.token = TOKEN
    node.restart()
    expect(notice).to_be_hidden()


def test_a_late_answer_from_before_the_token_was_checked_does_not_say_it_again(
        node: NodeProcess, page: Page) -> None:
    """The notice follows the newest answer: the session list's answer, given while the
    node checked no token but held back till the node, restarted with --token, has
    answered the live stream and the list's next read since, does not bring the notice
    back."""
    appended = run_cli(node, "append", "tg:alice", "message_received", "content=hi")
    assert appended.returncode == 0, appended.stderr
    page.add_init_script(HEARD)
    page.goto(node.url + "/")
    page.evaluate(f"sessionStorage.setItem('clawsync.token', '{TOKEN}')")
    page.reload()
    notice = page.get_by_test_id("token-unused")
    expect(notice).to_be_visible()
    held: list[tuple[Route, int, dict[str, str], bytes]] = []

    def hold_the_first(route: Route) -> None:
        if held:  # the reads after the restart
            route.continue_()
            return
        # The node's answer to the first read, which says the token went unused, taken
        # now and held; then the node restarted with the tab's token.
        asked = urllib.request.Request(route.request.url, headers=route.request.headers)
        with urllib.request.urlopen(asked, timeout=10) as answer:
            held.append((route, answer.status, dict(answer.headers), answer.read()))
        assert held[0][2].get("X-Clawsync-Token-Unused") == "true", held[0][2]
        node.token = TOKEN
        node.restart()

    page.route(re.compile(r"/v1/sessions\?"), hold_the_first)
    page.locator("a[data-view=sessions]").click()
    expect(notice).to_be_hidden()  # the stream's answer, from the restarted node
    # The list read again once the stream is back: its rows are that read's.
    expect(page.get_by_test_id("session-row")).to_be_visible()
    [(route, status, headers, body)] = held
    route.fulfill(status=status, headers=headers, body=body)
    # At least: a third read (a re-read after a stream event) is no failure of this test.
    page.wait_for_function("window.heard.filter((url) => url.includes('/v1/sessions?'))"
                           ".length >= 2")
    assert notice.is_hidden()


#: Counts each answer the page's code has read: in a task after its fetch resolved, so
#: after the code awaiting it has run on (a microtask). A script run before the page's.
HEARD = """
const fetched = window.fetch.bind(window);
window.heard = [];
window.fetch = async (...args) => {
  const response = await fetched(...args);
  setTimeout(() => window.heard.push(String(args[0])));
  return response;
};
"""
