"""A real headless browser for the console tests and benchmark: Debian's Chromium, driven
by Playwright for Python.

Playwright never downloads a browser here (the machines have no internet): it is pointed
at ``/usr/bin/chromium``, which ``tests/support/install-tools`` installs. Each launch
gets a fresh profile folder, so no state leaks between runs.

    with headless_chromium(tmp_path / "profile") as context:
        page = context.new_page()
        page.goto(node.url + "/")

``headless_browser()`` is one Chromium for many tests, each with a fresh context of its
own (``browser.new_context(viewport=VIEWPORT)``): no cookies, storage, permissions or
routes carry from one to the next, and the browser starts once. The clipboard does carry
(it is the browser's, not a context's): ``clipboard_eraser(browser)`` gives the
``erase()`` to call before each test.

``browser_missing()`` says why no browser can run (or ``None``); the tests turn that into
a skip on a developer's machine and a failure in CI (``CI=true``:
``tests.support.unavailable``), where a silently skipped browser test would hide a broken
console.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, BrowserType, ViewportSize

#: The Debian package's browser (``apt-get install chromium``).
CHROMIUM = Path("/usr/bin/chromium")
#: Headless, and nothing that reaches for the network on its own (updates, sync, QUIC
#: probes): the browser talks only to the nodes under test.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
#: The page size of every screenshot and measurement.
VIEWPORT: ViewportSize = {"width": 1200, "height": 800}
#: Where ``clipboard_eraser``'s page is (never fetched: its context answers it).
_ERASER_PAGE = "http://localhost/"


def browser_missing() -> str | None:
    """Why the browser cannot run here, or None when it can."""
    if importlib.util.find_spec("playwright") is None:
        return "Playwright for Python is not installed (pip install -e '.[test]')"
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing (run tests/support/install-tools as root)"
    return None


@contextmanager
def _launching() -> Iterator[tuple[BrowserType, dict[str, str | float | bool]]]:
    """Playwright's Chromium and the environment a launch gets; Playwright stopped, and
    Chromium's own temporary folder removed, on exit."""
    from playwright.sync_api import sync_playwright

    # Chromium's own temporary folder, removed here: a browser stopped by Ctrl-C leaves
    # it behind. Short, in TMPDIR: it holds a socket, whose path has at most 107 bytes.
    scratch = tempfile.mkdtemp(prefix="chromium-")
    try:
        with sync_playwright() as playwright:
            yield playwright.chromium, {**os.environ, "TMPDIR": scratch}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@contextmanager
def headless_chromium(profile_dir: Path) -> Iterator[BrowserContext]:
    """A browser context of a fresh Chromium with its profile in ``profile_dir``; closed
    (and the browser ended) on exit."""
    profile_dir.mkdir(parents=True, exist_ok=True)
    with _launching() as (chromium, env):
        context = chromium.launch_persistent_context(
            str(profile_dir), executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
            headless=True, viewport=VIEWPORT, env=env)
        try:
            yield context
        finally:
            context.close()


@contextmanager
def headless_browser() -> Iterator[Browser]:
    """A fresh headless Chromium (no profile kept), for ``browser.new_context()`` each
    test; ended on exit."""
    with _launching() as (chromium, env):
        browser = chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                  headless=True, env=env)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def clipboard_eraser(browser: Browser) -> Iterator[Callable[[], None]]:
    """``erase()``, which empties ``browser``'s clipboard; for as long as the ``with``
    lasts.

    The clipboard is the browser's, not a context's: what one test's page copied, the
    next test's page (in a context of its own) could read. ``erase()`` writes nothing
    to it from a page of a context kept for that alone, a few milliseconds, where a
    page opened each time took a third of a second."""
    context = browser.new_context()
    try:
        # A page of its own origin, which the route answers: the clipboard wants a
        # secure context, and localhost is one over plain http.
        context.route(_ERASER_PAGE, lambda route: route.fulfill(
            body="", content_type="text/html"))
        context.grant_permissions(["clipboard-write"], origin=_ERASER_PAGE)
        page = context.new_page()
        page.goto(_ERASER_PAGE)

        def erase() -> None:
            page.evaluate("navigator.clipboard.writeText('')")

        yield erase
    finally:
        context.close()
