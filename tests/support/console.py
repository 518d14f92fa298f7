"""What the console tests share besides their fixtures (``tests/integration/console/
conftest.py``): whether a browser can run here, how long a page gets, opening the
console of a node, and a peer's rows in it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.support.browser import browser_missing
from tests.support.processes import NodeProcess

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page, expect
else:
    def expect(*args: Any, **kwargs: Any) -> Any:
        """Playwright's ``expect``, imported once a test calls it: the console tests'
        modules import this one without Playwright installed, and then skip (or fail in
        CI: ``MISSING``)."""
        from playwright.sync_api import expect as playwright_expect

        return playwright_expect(*args, **kwargs)

#: Why no browser can run here (None when one can): a skip on a developer's machine, a
#: failure of every console test in CI, where a skipped browser test would hide a broken
#: console.
MISSING = browser_missing()

#: Milliseconds a page gets to show what we wait for: a peer that was down redials after
#: a back-off, and CI machines are slow.
WAIT_MS = 60_000


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
