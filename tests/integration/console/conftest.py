"""The console tests' fixtures: a headless Chromium, a fresh context and page of it for
each test, two nodes that dial each other, and the pictures a test saves
(``--screenshots``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.browser import VIEWPORT, clipboard_eraser, headless_browser
from tests.support.cluster import Cluster
from tests.support.console import MISSING, WAIT_MS
from tests.support.processes import NodeProcess
from tests.support.unavailable import unavailable

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page


@pytest.fixture(scope="module", autouse=True)
def need_browser() -> None:
    """Without a browser, the console tests skip on a developer's machine, and fail in
    CI, before any other fixture starts nodes: ``MISSING``."""
    if MISSING is not None:
        unavailable(f"no headless browser: {MISSING}")


@pytest.fixture(scope="module")
def chromium(need_browser: None) -> Iterator[Browser]:
    """One headless Chromium for the module's tests (each pytest worker starts its own):
    a launch took about two seconds a test. ``need_browser`` has made sure there is one."""
    with headless_browser() as started:
        yield started


@pytest.fixture(scope="module")
def erase_clipboard(chromium: Browser) -> Iterator[Callable[[], None]]:
    """Empties that Chromium's clipboard, which its contexts share."""
    with clipboard_eraser(chromium) as erase:
        yield erase


@pytest.fixture
def browser(chromium: Browser,
            erase_clipboard: Callable[[], None]) -> Iterator[BrowserContext]:
    """A fresh browser context of that Chromium for each test: no cookies, storage,
    permissions or routes of another test's, and an empty clipboard (the browser's, so
    emptied here: a test could read what the one before copied)."""
    if not chromium.is_connected():
        # Else each later test fails with only "Target ... has been closed".
        pytest.fail("this module's Chromium ended in an earlier test")
    erase_clipboard()
    context = chromium.new_context(viewport=VIEWPORT)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(browser: BrowserContext) -> Page:
    from playwright.sync_api import expect  # only once a browser runs

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
