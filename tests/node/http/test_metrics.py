"""Storage metrics of a real node in this process, and Prometheus' naming rules held
over every family a node exposes."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from crdt import codec
from crdt.log.records import META
from crdt.storage.disk import DiskStorage
from node.server.run import RunningNode
from tests.support.metrics import samples, scrape, value
from tests.support.nodes import post
from tests.support.waits import until

NodeFactory = Callable[..., Awaitable[RunningNode]]
EventFactory = Callable[..., dict[str, Any]]
#: Base units a name may end in (before ``_total``), per Prometheus' naming rules.
UNITS = ("seconds", "bytes")


async def test_storage_families_after_appends(make_node: NodeFactory,
                                              event_body: EventFactory) -> None:
    node = await make_node()
    # Concurrent appends: the node groups them, so commits are fewer than requests.
    await asyncio.gather(*(post(node, f"s{n % 2}", event_body(n)) for n in range(1, 21)))
    families = await scrape(node.url)
    # The 20 events and the device key record written before the first of them, in its
    # own session beside s0 and s1.
    assert value(families, "clawsync_events_stored") == node.astore.head == 20 + 1
    assert value(families, "clawsync_sessions") == 2 + 1
    commits = families["clawsync_commit_seconds"]
    assert commits.type == "histogram"
    assert value(families, "clawsync_commit_seconds", "_count") == node.astore.commits
    buckets = [count for _, count in samples(families, "clawsync_commit_seconds", "_bucket")]
    assert buckets == sorted(buckets) and buckets[-1] == node.astore.commits
    total_s = value(families, "clawsync_commit_seconds", "_sum")
    assert total_s is not None and total_s > 0
    assert families["clawsync_data_folder_bytes"].type == "gauge"
    size = value(families, "clawsync_data_folder_bytes")
    assert size is not None and size > 0


async def test_every_family_follows_the_naming_rules(make_node: NodeFactory,
                                                     event_body: EventFactory) -> None:
    node = await make_node(cluster_secret="s" * 32)
    await post(node, "s1", event_body(1))
    families = await scrape(node.url)
    ours = {name: family for name, family in families.items() if name.startswith("clawsync_")}
    # No ``_created`` series: their value is when the process first made them, not news.
    series = {sample.name for family in families.values() for sample in family.samples}
    assert not [name for name in series | set(families) if name.endswith("_created")]
    assert len(ours) >= 20
    for name, family in ours.items():
        assert re.fullmatch(r"clawsync_[a-z0-9_]+", name), name
        assert family.documentation.strip(), f"{name} has no help text"
        if family.type == "counter":
            assert all(sample.name == name + "_total" for sample in family.samples), name
        else:
            assert not name.endswith("_total"), name
        for unit in UNITS:  # a unit is the name's last word, never in its middle
            if f"_{unit}" in name:
                assert name.endswith(f"_{unit}"), name
        assert "_milliseconds" not in name and "_ms" not in name, name


async def test_a_peers_batch_is_timed_as_a_commit(make_node: NodeFactory,
                                                  event_body: EventFactory) -> None:
    """A hub stores mostly peers' batches: they count in the commit latency that the
    ClawsyncCommitsSlow alert reads (they did not)."""
    secret = "s" * 32
    source = await make_node(cluster_secret=secret)
    for n in range(1, 4):
        await post(source, "s1", event_body(n))
    hub = await make_node(cluster_secret=secret, peers=(source.url,))
    await until(lambda: hub.astore.head >= source.astore.head)
    families = await scrape(hub.url)
    assert hub.astore.commits == 0  # no client appended here
    count = value(families, "clawsync_commit_seconds", "_count")
    assert count is not None and count >= 1
    assert value(families, "clawsync_commit_events", "_sum") == hub.astore.head


def _damage_forgotten_count(folder: Path, forgotten: int) -> None:
    """The log's count of sessions forgotten whole set to ``forgotten`` (a damaged
    folder): no session reads as forgotten."""
    storage = DiskStorage.open(folder)
    try:
        with storage.transaction() as tx:
            meta = codec.decode_trusted(tx.get(META))
            meta["forgotten"] = forgotten
            tx.put(META, codec.encode_fast(meta))
    finally:
        storage.close()


@pytest.mark.parametrize("damaged", [5, -2])
async def test_the_forgotten_gauge_stays_within_the_sessions_listed(
        make_node: NodeFactory, event_body: EventFactory, tmp_path: Path,
        damaged: int) -> None:
    """A forgotten count off in a damaged folder is kept within 0 and the sessions
    listed, as ``GET /v1/node`` keeps it: the gauge is its ``sessions`` less its
    ``sessions_live`` (it was the raw count)."""
    folder = tmp_path / "damaged"
    first = await make_node(data_dir=folder)
    for n in range(1, 3):
        await post(first, f"s{n}", event_body(n))
    await first.stop()
    _damage_forgotten_count(folder, damaged)
    node = await make_node(data_dir=folder)
    async with aiohttp.ClientSession() as client, \
            client.get(f"{node.url}/v1/node") as response:
        told = await response.json()
    families = await scrape(node.url)
    assert told["sessions"] == 2
    assert (value(families, "clawsync_sessions_forgotten")
            == told["sessions"] - told["sessions_live"] == (2 if damaged > 0 else 0))


async def test_failures_after_a_commit_are_counted(make_node: NodeFactory,
                                                   event_body: EventFactory) -> None:
    """A listener told of forget records that fails leaves the forget committed: the
    store counts it, and so does ``clawsync_after_commit_failures_total``."""
    node = await make_node()
    families = await scrape(node.url)
    assert families["clawsync_after_commit_failures"].type == "counter"
    assert value(families, "clawsync_after_commit_failures", "_total") == 0

    def failing(_records: list[Any]) -> None:
        raise RuntimeError("the derived state could not drop the content")

    await node.astore.read(lambda store: store.erased_listeners.append(failing))
    await post(node, "gone", event_body(1))
    async with aiohttp.ClientSession() as session, \
            session.delete(f"{node.url}/v1/sessions/gone") as response:
        assert response.status == 200, await response.text()
    failures = await node.astore.read(lambda store: store.after_commit_failures)
    assert failures >= 1
    families = await scrape(node.url)
    assert value(families, "clawsync_after_commit_failures", "_total") == failures
