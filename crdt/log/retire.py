"""Retiring an origin: the rules, as functions of the log's ``Meta``.

Every data folder that ever wrote is an origin, and each active origin takes a row of
every version vector (and of every hello). An origin that will never write again (a
wiped device's old folder) can be retired. A retirement is an ordinary event, so it
replicates as every event does and older nodes store and forward it as a kind they do
not know (``crdt.kinds``): in the session ``ORIGINS_SESSION``,

    {"type": "origin_retired", "origin": <origin>, "final_seq": <highest seq held>}

The rules, the same on every node, so that nodes holding the same events agree:

* An origin's final seq is the highest that any retirement of it names: concurrent
  retirements with different final seqs resolve alike everywhere (highest wins).
* A node that holds the origin without a gap up to its final seq drops it from its
  version vector and keeps ``origin -> final seq`` in ``retired``: its events stay
  where they are (positions, sessions), late copies of them are recognised, and events
  numbered above the final seq are refused (``sync.peer``).
* Until then the origin stays active (``retiring``), so that its missing events are
  asked for and nothing is lost; an origin a node never heard of is asked for from 0,
  while the table has room (``room``).
* A node that holds more of the origin than its final seq retires it again at what it
  holds (``held_past``), so the events past the old final seq reach every node.
* A retirement naming a higher final seq than one already dropped makes the origin
  active again, from the old final seq (while the table has room).
* A node whose own origin is dropped takes a new origin (``EventLog``).

>>> meta = Meta("n1", version={"old": 5, "n1": 2})
>>> learn(meta, "old", 5, room=10)
>>> settle(meta), meta.version, meta.retired
(['old'], {'n1': 2}, {'old': 5})
>>> learn(meta, "old", 7, room=10)     # a concurrent retirement held more: 7 wins
>>> settle(meta), meta.version, meta.retiring
([], {'n1': 2, 'old': 5}, {'old': 7})
"""

from __future__ import annotations

from crdt.errors import InvalidInput
from crdt.events import Draft, Event
from crdt.keys import check_name
from crdt.kinds import NODES_AGENT_ID
from crdt.log.records import Meta

#: The session that holds retirements (a session key clients do not need).
ORIGINS_SESSION = "clawsync:origins"
KIND = "origin_retired"
AGENT_ID = NODES_AGENT_ID
#: Longest origin a retirement may name (node ids are 16 hex digits), and the highest
#: seq: as the peer protocol's (``sync.peer.limits``).
ORIGIN_BYTES_MAX = 64
SEQ_MAX = 2**63 - 1
#: Retired origins a node keeps (dropped or not yet): the entries live in the log's meta
#: record, which every commit rewrites. A retirement of a further origin retires nothing
#: (it stays an event like any other); the table of active origins is as large.
RETIRED_MAX = 4096
#: Active origins beyond which an origin known only from a retirement is not asked for
#: (``sync.peer.limits``: the table's part any peer may fill).
ROOM_DEFAULT = 4096 - 256


def retirement(origin: str, final_seq: int) -> Draft:
    """The event that retires ``origin`` at ``final_seq`` (stamped when appended)."""
    return Draft(ORIGINS_SESSION, AGENT_ID, KIND, {"origin": origin, "final_seq": final_seq})


def read(event: Event) -> tuple[str, int] | None:
    """``(origin, final_seq)`` if ``event`` is a well-formed retirement, else None (an
    event that only looks like one is kept as any event, and retires nothing)."""
    if event.kind != KIND or event.session_key != ORIGINS_SESSION:
        return None
    final_seq = event.payload.get("final_seq")
    try:
        origin = check_name(event.payload.get("origin"), "origin", bytes_max=ORIGIN_BYTES_MAX)
    except InvalidInput:
        return None
    if isinstance(final_seq, bool) or not isinstance(final_seq, int):
        return None
    return (origin, final_seq) if 1 <= final_seq <= SEQ_MAX else None


def learn(meta: Meta, origin: str, final_seq: int, room: int) -> None:
    """Take in a retirement of ``origin`` at ``final_seq`` (call ``settle`` after)."""
    dropped = meta.retired.get(origin)
    if dropped is not None:
        if final_seq > dropped and len(meta.version) < room:
            # More of it exists: active again, to fetch the rest.
            del meta.retired[origin]
            meta.version[origin] = dropped
            meta.retiring[origin] = final_seq
        return
    if origin not in meta.retiring and len(meta.retired) + len(meta.retiring) >= RETIRED_MAX:
        return
    meta.retiring[origin] = max(meta.retiring.get(origin, 0), final_seq)
    if origin not in meta.version and len(meta.version) < room:
        meta.version[origin] = 0  # never heard of: ask peers for all of it


def held_past(meta: Meta) -> list[tuple[str, int]]:
    """Retiring origins (not our own) that we hold past their final seq, with what we
    hold: a node that learns a retirement while holding more retires the origin again
    at that, so that no event of it stays behind on one node."""
    return [(origin, meta.version[origin]) for origin, final_seq in meta.retiring.items()
            if origin != meta.node_id and meta.version.get(origin, 0) > final_seq]


def settle(meta: Meta) -> list[str]:
    """Drop every retiring origin held up to its final seq; return those dropped."""
    dropped = []
    for origin, final_seq in list(meta.retiring.items()):
        if meta.version.get(origin, -1) >= final_seq:
            del meta.retiring[origin], meta.version[origin]
            meta.retired[origin] = final_seq
            dropped.append(origin)
    return dropped


def final_seq(meta: Meta, origin: str) -> int | None:
    """The highest seq of ``origin`` any retirement known here names (None: none)."""
    return meta.retired.get(origin, meta.retiring.get(origin))
