"""What a node answers to ``/peer/v1/members`` (``Learning.member_list``): itself and
the peers it can name, with whether it has a link up to each. Reads nothing but what it
is given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from typing import Any

from node.peers.runner import Runner
from sync.peer.forgotten import linked_at


def member_list(node_id: str, advertise_url: str | None, members: Mapping[str, str | None],
                runners: Iterable[Runner], *, secret_urls: Set[str], own_urls: Set[str],
                reached_as: Mapping[str, Set[str]],
                advertised_by: Mapping[str, str | None]) -> dict[str, Any]:
    """This node (``node_id``, ``advertise_url``) and the peers it can name
    (``members``: address to node id, if known; those at ``own_urls`` left out), each
    with whether this node has a link up to that node now (``node_linked``) and to it
    at that address (``linked``: the address a link up uses, or one our dial reached
    it at during that link, dropped as a duplicate (``reached_as``), or the one the
    node advertises itself; not another it is remembered at, such as the dead one of
    a node that moved: ``sync.peer.forgotten.linked_at``). Older nodes ignore both;
    they read ``linked`` as news of the node, which it still is.

    A node whose link ended stays listed: when a partition heals, a peer that learned
    it dials it, sooner than its own configured dial in a long back-off. A learner
    that forgot the address after its failures takes it up again only after a
    hold-off, or once a list says it is linked (``sync.peer.forgotten``): a node gone
    for good is not dialed round after round by every node that asks."""
    up: dict[str, set[str]] = {}
    for runner in runners:
        if runner.linked_to is not None:
            urls = up.setdefault(runner.linked_to, set())
            if runner.url:
                urls.add(runner.url.rstrip("/"))
    for node, reached in reached_as.items():
        if node in up:  # a link to it is up: those addresses reached it during it
            up[node] |= reached
    peers = [{"url": url, "node_id": node, "cluster_secret": url in secret_urls,
              "linked": linked_at(url, node, up=up, advertised=advertised_by),
              "node_linked": node is not None and node in up}
             for url, node in sorted(members.items()) if url not in own_urls]
    return {"node_id": node_id, "advertise_url": advertise_url, "peers": peers}
