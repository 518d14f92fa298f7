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
routes carry from one to the next, and the browser starts once.

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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, ViewportSize

#: The Debian package's browser (``apt-get install chromium``).
CHROMIUM = Path("/usr/bin/chromium")
#: Headless, and nothing that reaches for the network on its own (updates, sync, QUIC
#: probes): the browser talks only to the nodes under test.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
#: The page size of every screenshot and measurement.
VIEWPORT: ViewportSize = {"width": 1200, "height": 800}


def browser_missing() -> str | None:
    """Why the browser cannot run here, or None when it can."""
    if importlib.util.find_spec("playwright") is None:
        return "Playwright for Python is not installed (pip install -e '.[test]')"
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing (run tests/support/install-tools as root)"
    return None


@contextmanager
def headless_chromium(profile_dir: Path) -> Iterator[BrowserContext]:
    """A browser context of a fresh Chromium with its profile in ``profile_dir``; closed
    (and the browser ended) on exit."""
    from playwright.sync_api import sync_playwright

    profile_dir.mkdir(parents=True, exist_ok=True)
    # Chromium's own temporary folder, removed here: a browser stopped by Ctrl-C leaves
    # it behind. Short, in TMPDIR: it holds a socket, whose path has at most 107 bytes.
    scratch = tempfile.mkdtemp(prefix="chromium-")
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(profile_dir), executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                headless=True, viewport=VIEWPORT, env={**os.environ, "TMPDIR": scratch})
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@contextmanager
def headless_browser() -> Iterator[Browser]:
    """A fresh headless Chromium (no profile kept), for ``browser.new_context()`` each
    test; ended on exit."""
    from playwright.sync_api import sync_playwright

    # As in headless_chromium: Chromium's temporary folder, short and removed here.
    scratch = tempfile.mkdtemp(prefix="chromium-")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True,
                env={**os.environ, "TMPDIR": scratch})
            try:
                yield browser
            finally:
                browser.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
