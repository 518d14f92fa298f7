"""Reading a node's ``/metrics`` the way Prometheus does: through prometheus_client's
own parser of the text format, so a malformed exposition fails the test.

    families = await scrape(node.url)
    assert value(families, "clawsync_peer_up", peer=node_id) == 1
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from tests.support.waits import DEADLINE_S


async def scrape(url: str, token: str | None = None) -> dict[str, Metric]:
    """The node's families by name (counters without ``_total``, as the parser names
    them)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, \
            session.get(f"{url}/metrics", headers=headers) as response:
        assert response.status == 200, await response.text()
        text = await response.text()
    return {family.name: family for family in text_string_to_metric_families(text)}


async def scraped_until(url: str, check: Callable[[dict[str, Metric]], bool], what: str,
                        token: str | None = None) -> dict[str, Metric]:
    """Scrape the node at ``url`` until ``check`` holds for what it shows (every 50 ms);
    fail after ``DEADLINE_S`` saying ``what`` was waited for and the last scrape."""
    families: dict[str, Metric] = {}
    try:
        async with asyncio.timeout(DEADLINE_S):
            while not check(families := await scrape(url, token)):
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{what}; last scrape: {families}") from None
    return families


def exposed_names(families: dict[str, Metric]) -> set[str]:
    """Every series name a query may use: counters with ``_total``, histograms with
    ``_bucket``, ``_sum`` and ``_count``."""
    names = {family.name for family in families.values()}
    names |= {sample.name for family in families.values() for sample in family.samples}
    for family in families.values():
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names |= {family.name + suffix for suffix in ("_bucket", "_sum", "_count")}
    return names


def samples(families: dict[str, Metric], name: str, suffix: str = "",
            **labels: str) -> list[tuple[dict[str, str], float]]:
    """The samples of family ``name`` (``suffix``: ``_total``, ``_bucket``, ...) whose
    labels include ``labels``."""
    found = []
    for sample in families[name].samples:
        if sample.name == name + suffix and labels.items() <= sample.labels.items():
            found.append((dict(sample.labels), float(sample.value)))
    return found


def value(families: dict[str, Metric], name: str, suffix: str = "",
          **labels: str) -> float | None:
    """The one sample of ``name`` with these labels, or None if there is none."""
    found = samples(families, name, suffix, **labels)
    assert len(found) <= 1, f"{name}{labels} is not one series: {found}"
    return found[0][1] if found else None


def label_values(families: dict[str, Metric], name: str, label: str) -> set[Any]:
    """Every value ``label`` takes in family ``name``."""
    return {sample.labels[label] for sample in families[name].samples if label in sample.labels}
