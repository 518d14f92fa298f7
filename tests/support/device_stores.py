"""Stores that sign, one per device, each with its ``node.devices.Devices`` (``Node``;
the ``nodes`` fixture of ``tests/node/conftest.py`` opens three), records copied between
them as a peer sends them (``copy``), and each read up to what it holds (``settled``)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from crdt.log.store import EventStore
from node.device import DeviceKey
from node.devices import Devices
from node.store import AsyncStore


@dataclass
class Node:
    store: EventStore
    astore: AsyncStore
    devices: Devices
    key: DeviceKey


async def copy(source: Node, target: Node) -> None:
    """What the target lacks of the source's origins, as a peer sends it (signed)."""
    for origin in source.store.version:
        held = target.store.version.get(origin, 0)
        items = [(s.event, s.origin, s.seq, s.signature)
                 for s in source.store.origin_after(origin, held, 1000)]
        if items:
            await target.astore.write(partial(EventStore.ingest, items=items))


async def settled(*nodes: Node) -> None:
    """Until every node has read what its store holds."""
    for node in nodes:
        await node.devices.refresh()
