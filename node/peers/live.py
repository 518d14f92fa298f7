"""Whether an origin still writes, so that ``DELETE /v1/origins/{origin}`` refuses to
retire it unless forced (``node.peers.api``): the node writing under it would take a new
origin and lose nothing, but whoever asked most likely named the wrong origin.

An origin still writes if it is

* the current origin of a member device: bound to that device's key, the one with the
  highest ``n`` known here, and not retired (a device takes a new origin only once its
  current one is retired); a removed device's origins are retired by its removal, and
  the devices of a cluster linked by its secret alone are no members, so a wiped
  device's origin there is retired without a word, as before;
* or the node id that a peer linked to this node now names in its hello (bound or not:
  an older node linked by the cluster secret writes under a random origin).

This node's own origin is refused by the store whatever is asked (``EventStore.retire``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from crdt.log.store import EventStore
from crdt.membership import Member


def current_origin(store: EventStore, device_id: str) -> str | None:
    """The origin ``device_id`` writes under as far as this node knows: its bound origin
    with the highest ``n``, if that one is not retired; else None."""
    best: tuple[int, str] | None = None
    for origin in store.device_origins(device_id):
        binding = store.log.binding(origin)
        if binding is not None and (best is None or binding.n > best[0]):
            best = (binding.n, origin)
    if best is None:
        return None
    origin = best[1]
    return None if origin in store.retired or origin in store.retiring else origin


class Writer(NamedTuple):
    """Who still writes under an origin: words for people, and the member device whose
    removal would retire it (None for a linked peer known by its node id alone)."""

    who: str
    device_id: str | None


def writer(store: EventStore, origin: str, member: Callable[[str], Member | None],
           links: Iterable[dict[str, Any]]) -> Writer | None:
    """Who still writes under ``origin`` (None: nobody known to): the member device whose
    current origin it is (``member`` answers a device id with its record, None for a
    device that is no member), or the peer linked now under that node id (``links``:
    ``Gossip.status`` rows)."""
    device_id = store.origin_device(origin)
    found = member(device_id) if device_id is not None else None
    if found is not None and device_id is not None \
            and current_origin(store, device_id) == origin:
        return Writer(f"the member device {found.name} ({device_id}) writes under it",
                      device_id)
    for link in links:
        if link["state"] == "up" and link["node_id"] == origin:
            named = f" (device {link['device_id']})" if link["device_id"] else ""
            return Writer(f"the node linked from {link['url'] or 'a peer'}{named} writes "
                          "under it", None)
    return None


def refusal(origin: str, found: Writer) -> str:
    """The words of the 409 ``origin_live``: who writes, and what to do instead."""
    remove = (f" If that device is gone for good, remove it (`clawsync devices remove "
              f"{found.device_id}`): that retires its origins.") if found.device_id else ""
    return (f"{origin} still writes: {found.who}. Retire only an origin that will "
            f"never write again (a wiped device's old data folder).{remove} To retire it "
            "anyway (that node then writes under a new origin, losing nothing), add "
            "--force (force=1).")
