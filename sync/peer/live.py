"""Whether an origin still writes, so that retiring it (``DELETE /v1/origins/{origin}``)
is refused unless forced: the node writing under it would take a new origin and lose
nothing, but whoever asked most likely named the wrong origin.

An origin still writes if it is

* the current origin of a member device: bound to that device's key, the one with the
  highest ``n`` known here, and not retired (a device takes a new origin only once its
  current one is retired); a removed device's origins are retired by its removal, and
  the devices of a cluster linked by its secret alone are no members, so a wiped
  device's origin there is retired without a word, as before;
* or the node id that a peer linked to this node now names in its hello (bound or not:
  an older node linked by the cluster secret writes under a random origin).

The node gathers the facts (``node.peers.live``); this module only decides.

>>> members = {"d1": "phone"}
>>> check("o2", device_id="d1", current=current_origin({"o1": 1, "o2": 2}, set()),
...       members=members, links=[])
Traceback (most recent call last):
sync.peer.live.OriginLive: o2 still writes: the member device phone (d1)...
>>> check("o1", device_id="d1", current="o2", members=members, links=[])
>>> check("n9", device_id=None, current=None, members={},
...       links=[Link("n9", "http://b:8080", None)])
Traceback (most recent call last):
sync.peer.live.OriginLive: n9 still writes: the node linked from http://b:8080 writes...
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping
from typing import NamedTuple

from sync.errors import SyncError


class Link(NamedTuple):
    """A peer linked to this node now: the node id its hello names, where it was
    reached from (None: it dialed us) and its device id (None: an older node)."""

    node_id: str
    url: str | None
    device_id: str | None


class OriginLive(SyncError):
    """Refused: the origin still writes. ``who`` in words for people; ``device_id``:
    the member device whose removal would retire it (None for a peer known by its
    node id alone)."""

    def __init__(self, origin: str, who: str, device_id: str | None) -> None:
        self.origin = origin
        self.who = who
        self.device_id = device_id
        remove = (f" If that device is gone for good, remove it (`clawsync devices "
                  f"remove {device_id}`): that retires its origins.") if device_id else ""
        super().__init__(
            f"{origin} still writes: {who}. Retire only an origin that will never write "
            f"again (a wiped device's old data folder).{remove} To retire it anyway (that "
            "node then writes under a new origin, losing nothing), add --force (force=1).")


def current_origin(bindings: Mapping[str, int], retired: Container[str]) -> str | None:
    """The origin a device writes under, from its bound origins (``bindings``: origin
    -> its binding's ``n``): the one with the highest ``n``, unless it is retired (or
    being retired); else None."""
    if not bindings:
        return None
    origin = max(bindings, key=lambda name: (bindings[name], name))
    return None if origin in retired else origin


def check(origin: str, *, device_id: str | None, current: str | None,
          members: Mapping[str, str], links: Iterable[Link]) -> None:
    """Raise ``OriginLive`` if ``origin`` still writes: it is the ``current`` origin of
    the device it is bound to (``device_id``), and that device is a member (``members``:
    device id -> name); or a peer linked now names it (``links``)."""
    if device_id is not None and device_id in members and current == origin:
        raise OriginLive(origin, f"the member device {members[device_id]} ({device_id}) "
                                 "writes under it", device_id)
    for link in links:
        if link.node_id == origin:
            named = f" (device {link.device_id})" if link.device_id else ""
            raise OriginLive(origin, f"the node linked from {link.url or 'a peer'}{named} "
                                     "writes under it", None)
