"""The web console as a person meets it, measured in headless Chromium against two real
nodes on loopback (A and B, each dialing the other):

- first paint: from navigation start to the first contentful paint, and to the devices
  view showing this node's id (recorded in the page by a MutationObserver), over loads
  of A's console, each in a new tab (the first cold, the rest with the browser's cache);
- live delay: from an append on node B to the message showing in node A's open session
  view. The append is timestamped just before its HTTP POST (wall clock); the page
  records the arrival with a MutationObserver as ``performance.timeOrigin +
  performance.now()`` (wall clock too), so the two are comparable. Median and p90.

    python -m bench.console_latency [--loads 10] [--appends 20]

Needs Playwright for Python (``pip install -e '.[test]'``) and Debian's chromium
(``apt-get install chromium``; ``tests/support/install-tools`` installs it as root).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from bench import cli
from bench.cli import Cluster
from tests.support.browser import browser_missing, headless_chromium
from tests.support.cluster import append, message
from tests.support.processes import NodeProcess

if TYPE_CHECKING:  # imported when the browser starts: --help works without Playwright
    from playwright.sync_api import BrowserContext, Page

KEY = "bench:console"
#: Milliseconds any single wait in the page may take before the run gives up.
WAIT_MS = 60_000

#: Records when this node's id first shows in the devices view (ms since navigation start).
FIRST_VIEW_PROBE = """
new MutationObserver((_, observer) => {
  const id = document.querySelector('[data-testid=this-node] [data-testid=node-id]');
  if (id && id.textContent.trim()) {
    window.devicesShownAt = performance.now();
    observer.disconnect();
  }
}).observe(document, {childList: true, subtree: true, characterData: true});
"""

#: Records (wall clock, ms) when each message whose text holds ``#<n>#`` first shows.
ARRIVAL_PROBE = """
window.arrivals = {};
new MutationObserver(() => {
  const now = performance.timeOrigin + performance.now();
  for (const item of document.querySelectorAll('[data-testid=message]')) {
    const mark = /#(\\d+)#/.exec(item.textContent);
    if (mark && !(mark[1] in window.arrivals)) window.arrivals[mark[1]] = now;
  }
}).observe(document.body, {childList: true, subtree: true, characterData: true});
"""


def first_paint(context: BrowserContext, node: NodeProcess) -> tuple[float, float]:
    """One cold load of the console: ms to first contentful paint, ms to this node's id."""
    page = context.new_page()
    page.add_init_script(FIRST_VIEW_PROBE)
    page.goto(node.url + "/#/devices")
    page.wait_for_function("() => window.devicesShownAt !== undefined", timeout=WAIT_MS)
    page.wait_for_function(
        "() => performance.getEntriesByName('first-contentful-paint').length > 0",
        timeout=WAIT_MS)
    fcp, shown = page.evaluate(
        "[performance.getEntriesByName('first-contentful-paint')[0].startTime,"
        " window.devicesShownAt]")
    page.close()
    return float(fcp), float(shown)


def open_session(context: BrowserContext, node: NodeProcess) -> Page:
    """A's session view, showing the session's first message, with the arrival probe."""
    page = context.new_page()
    page.goto(f"{node.url}/#/session/{quote(KEY, safe='')}")
    page.locator("[data-testid=message]").first.wait_for(timeout=WAIT_MS)
    page.evaluate(ARRIVAL_PROBE)
    return page


def live_delays(page: Page, writer: NodeProcess, appends: int) -> list[float]:
    """Milliseconds from each append on ``writer`` to its message showing on ``page``."""
    delays = []
    for n in range(appends):
        sent_ms = time.time() * 1000
        append(writer, KEY, [message(f"bench message #{n}#")])
        page.wait_for_function(f"() => window.arrivals['{n}'] !== undefined", timeout=WAIT_MS)
        delays.append(float(page.evaluate(f"window.arrivals['{n}']")) - sent_ms)
    return delays


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[-1]


def report(name: str, values: list[float]) -> None:
    print(f"  {name:<44} median {statistics.median(values):7.1f} ms   "
          f"p90 {p90(values):7.1f} ms   (n={len(values)})")


def run(loads: int, appends: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, Cluster(Path(tmp)) as cluster:
        quiet = ["--log-level", "warning"]
        b = cluster.node("b", start=False, extra_args=quiet)
        a = cluster.node("a", peers=[b.url], extra_args=quiet)
        b.extra_args += ["--peer", a.url]
        b.start()
        append(b, KEY, [message("the session starts")])
        with headless_chromium(Path(tmp) / "profile") as context:
            paints = [first_paint(context, a) for _ in range(loads)]
            page = open_session(context, a)
            delays = live_delays(page, b, appends)
    return {"fcp": [p[0] for p in paints], "devices": [p[1] for p in paints],
            "delays": delays}


def main() -> None:
    parser = cli.parser("bench.console_latency", __doc__)
    parser.add_argument("--loads", type=cli.at_least(2), default=10,
                        help="loads of the console, each in a new tab (the first cold)")
    parser.add_argument("--appends", type=cli.at_least(2), default=20,
                        help="appends on node B, each timed until shown on A")
    args = parser.parse_args()
    if (missing := browser_missing()) is not None:
        cli.refuse(f"no headless browser: {missing}\nthis benchmark needs both Playwright "
                   "for Python (.venv/bin/pip install -e '.[test]') and Debian's chromium "
                   "(apt-get install chromium, or tests/support/install-tools as root)")
    figures = run(args.loads, args.appends)
    print("console in headless Chromium, two nodes on loopback")
    print(f"  first (cold) load: first contentful paint {figures['fcp'][0]:.1f} ms, "
          f"devices view {figures['devices'][0]:.1f} ms")
    report("navigation start -> first contentful paint", figures["fcp"])
    report("navigation start -> devices view shows node", figures["devices"])
    report("append on B -> message shown on A (live)", figures["delays"])


if __name__ == "__main__":
    cli.run(main)
