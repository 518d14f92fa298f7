"""What ``sync.peer.live`` needs to know whether an origin still writes, gathered from
the store, the membership and the peer links (``DELETE /v1/origins/{origin}``:
``node.peers.api``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from crdt.log.store import EventStore
from crdt.membership import Member
from sync.peer import live


def links_up(status: Iterable[dict[str, Any]]) -> list[live.Link]:
    """The peers linked now, from ``Gossip.status`` rows."""
    return [live.Link(row["node_id"], row["url"], row["device_id"]) for row in status
            if row["state"] == "up" and row["node_id"]]


def check(store: EventStore, origin: str, members: Mapping[str, Member],
          links: Iterable[live.Link]) -> None:
    """On the writer thread: raise ``live.OriginLive`` if ``origin`` still writes."""
    device_id = store.origin_device(origin)
    current = None
    if device_id is not None:
        bindings = {}
        for name in store.device_origins(device_id):
            binding = store.log.binding(name)
            if binding is not None:
                bindings[name] = binding.n
        current = live.current_origin(bindings, {**store.retired, **store.retiring})
    live.check(origin, device_id=device_id, current=current,
               members={device: member.name for device, member in members.items()},
               links=links)
