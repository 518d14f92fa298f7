"""What people and metrics see of the links: one row per link (``status``), the peers
whose accepted link ended (``peers``), the learned addresses held off (``held_off``), the devices
linked without being members (``linked_not_members``) and this device's own standing
(``device_status``).

Cheap and without I/O: every metrics scrape and ``GET /v1/peers`` reads them. A row
names the member device behind a link when the membership records can tell.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crdt.membership import Member
from node.config import Config
from node.device import DeviceKey
from node.devices import Devices
from node.peers.admission import Admission
from node.peers.links import removal_text
from node.peers.runner import Runner
from sync.peer.forgotten import HeldOff

#: Addresses held off that ``GET /v1/peers`` lists, those with the longest hold-off still
#: to run; it says how many there are in all. Up to ``forgotten_kept_max`` (1,024) are
#: kept: a page a person reads, and a console polling every few seconds, need not carry
#: them all.
HELD_OFF_LISTED_MAX = 100
#: Why an address is not dialed now, as ``GET /v1/peers`` counts them
#: (``held_off_kinds``) and the metric ``clawsync_peer_addresses_held_off`` labels them:
#: ``failing``, a learned address forgotten after its failures (those ``held_off`` lists
#: and ``held_off_total`` counts); ``answered_by_another_device``, an address where a
#: device that may not link answered our dial (``node.peers.holds``);
#: ``asked_to_wait``, a dial whose peer asked for a wait (``node.asked_waits``).
HELD_OFF_KINDS = ("failing", "answered_by_another_device", "asked_to_wait")


class Rows:
    """The status rows of the links in ``runners`` (``Gossip``'s), the last rows of
    peers gone and the rows of addresses held off. ``now``: the event loop's clock;
    ``stopping``: whether the node stops; ``held_off``: the learned addresses held off
    now (``Learning.held_off``)."""

    def __init__(self, config: Config, device: DeviceKey, membership: Devices | None,
                 runners: dict[str, Runner], own_urls: set[str], admission: Admission, *,
                 now: Callable[[], float], stopping: Callable[[], bool],
                 held_off: Callable[[], list[HeldOff]]) -> None:
        self.config = config
        self.device = device
        self.membership = membership
        self.runners = runners
        self.own_urls = own_urls
        self.admission = admission
        self._now = now
        self._stopping = stopping
        self._held_off = held_off
        #: Peers whose accepted link ended, by node id: the link's last ``status`` row
        #: and last contact (``went``).
        self._gone: dict[str, tuple[dict[str, Any], float | None]] = {}

    def linked_not_members(self) -> dict[str, dict[str, Any]]:
        """Devices with a link up that proved their key but are no members here, by id:
        linked by the cluster secret or a certificate of our CA (or, pairing, at a
        ``--peer`` address), which the membership records do not list. Each: its node id, its
        address (dialed, or advertised on a link it opened) and ``via``, what links it."""
        found: dict[str, dict[str, Any]] = {}
        for runner in self.runners.values():
            if runner.device is None or runner.state != "up":
                continue
            device = runner.device.device_id
            if device == self.device.device_id or self.admission.is_member(device):
                continue
            # As admission counts it: a certificate only where one was verified.
            via = self.admission.credential(runner) \
                or ("device_key" if runner.direction == "in" else "peer_address")
            row = {"node_id": runner.linked_to, "address": runner.url, "via": via}
            if device not in found or (found[device]["address"] is None and runner.url):
                found[device] = row
        return found

    def status(self) -> list[dict[str, Any]]:
        """Per link: state, last contact, events behind, bytes in and out. Cheap (no
        I/O): every metrics scrape reads it (``node.peers.metrics``: current links only)."""
        now = self._now()
        members = self.membership.members() if self.membership is not None else {}
        by_address = {member.address: device_id for device_id, member in members.items()
                      if member.address}
        return [self.row(runner, now, members, by_address) for runner in self.runners.values()]

    def peers(self) -> list[dict[str, Any]]:
        """What ``GET /v1/peers`` lists: ``status``, then, as ``down``, each peer whose
        accepted link ended and that has no link now (``went``), unless it was removed.
        A link up now with the address a gone peer gave supersedes it too: a node
        upgraded in place may come back with another node id (and a device, where it had
        none)."""
        rows = self.status()
        # Up: a hello on the link named its node. Not a dial that fails, nor one waiting
        # for its hello: their rows name the node of their last link.
        linked = {value for row in rows if row["state"] == "up"
                  for value in (row["node_id"], row["device_id"], row["url"])}
        linked.discard(None)
        removed = self.membership.removed() if self.membership is not None else {}
        now = self._now()
        for node, (row, contact) in self._gone.items():
            if node in linked or row["device_id"] in linked or row["url"] in linked \
                    or row["device_id"] in removed:
                continue  # linked again (by another link, node id or address), or removed
            rows.append({**row, "last_contact_s_ago":
                         None if contact is None else round(now - contact, 3)})
        return rows

    def held_off(self) -> tuple[list[dict[str, Any]], int]:
        """What ``GET /v1/peers`` lists as ``held_off``: the learned addresses forgotten
        after their failures whose hold-off runs (``sync.peer.forgotten``), not dialed
        though a peer lists them: for ``held_off_s`` more, and why (``times_forgotten``).
        The ``HELD_OFF_LISTED_MAX`` with the longest hold-off still to run, and how many
        there are in all."""
        held = self._held_off_undialed()
        held.sort(key=lambda one: (-one.for_s, one.url))
        return [held_off_row(one) for one in held[:HELD_OFF_LISTED_MAX]], len(held)

    def held_off_total(self) -> int:
        """How many addresses ``held_off`` counts, none listed (``held_off_kinds``)."""
        return len(self._held_off_undialed())

    def _held_off_undialed(self) -> list[HeldOff]:
        dialed = {runner.url for runner in self.runners.values() if runner.url}
        return [one for one in self._held_off() if one.url not in dialed]

    def row(self, runner: Runner, now: float, members: dict[str, Member],
             by_address: dict[str, str]) -> dict[str, Any]:
        """One link's ``status`` row. A dialed address whose link never came up since
        this node started names the member device that advertises it, if one does."""
        machine = runner.machine.status()
        contact = machine["last_contact"]
        device = runner.device.device_id if runner.device \
            else by_address.get(runner.url) if runner.url and runner.direction == "out" \
            else None  # an accepted link's address is only what the peer claims
        member = members.get(device) if device else None
        return {
            "link": runner.key, "url": runner.url, "direction": runner.direction,
            "node_id": machine["peer_node"],
            "device_id": device, "device_name": member.name if member else None,
            "refused": self.admission.refusal(runner),
            # A link is "up" once the peer's hello on it named it; until then it connects
            # (a redial's machine still names the node of its last link).
            "state": "refused" if runner.refused and runner.state != "up"
            else "connecting" if runner.state == "up" and runner.linked_to is None
            else runner.state,
            "last_contact_s_ago": None if contact is None else round(now - contact, 3),
            "events_we_lack": machine["events_we_lack"],
            "events_peer_lacks": machine["events_peer_lacks"],
            "bytes_in": machine["bytes_in"], "bytes_out": machine["bytes_out"],
            "events_sent": machine["events_sent"],
            "events_received": machine["events_received"],
            "faults": machine["faults"],
            "batches_resent": machine["batches_resent"],
            "events_ahead": machine["events_ahead"],
            "events_skipped": machine["events_skipped"],
            "origins_refused": machine["origins_refused"],
            "events_late": machine["events_late"],
            "events_refused": machine["events_refused"],
            "events_forged": machine["events_forged"],
            "events_unsigned": machine["events_unsigned"],
            "software": machine["peer_software"], "schema": machine["peer_schema"],
            # When it really dials again: sooner than the back-off while it waits to be
            # added (``Runner.redial_at``).
            "retry_in_s": max(0.0, round((runner.redial_at or machine["retry_at"]) - now, 3))
            if runner.state == "backoff" else None,
            "failure": runner.failure if runner.state == "backoff" else None,
            "throttled_s": round(runner.budget.throttled_s, 3) if runner.budget else 0.0,
        }

    def went(self, runner: Runner) -> None:
        """An accepted link ended: its peer stays in ``peers`` as ``down``, with the
        link's last row, until a link to its node comes up again (``back``). A
        dialed address needs none of this: its runner stays, backing off. At most
        ``peers_max`` such peers, the longest gone dropped first."""
        node = runner.node
        if node is None or self._stopping():
            return  # its hello never came: nothing to show for it
        members = self.membership.members() if self.membership is not None else {}
        now = self._now()
        row = self.row(runner, now, members, {})
        ago = row["last_contact_s_ago"]
        row.update(state="down", retry_in_s=None, events_we_lack=None,
                   events_peer_lacks=None)
        self._gone.pop(node, None)  # the newest last
        self._gone[node] = (row, None if ago is None else now - ago)
        while len(self._gone) > self.config.sync.peers_max:
            del self._gone[next(iter(self._gone))]

    def device_status(self) -> dict[str, Any]:
        """This device for ``GET /v1/peers`` (its ``device``; ``/v1/node`` has none): its
        id, whether a member told it it was removed (by whom, when), which members it
        waits to be added on (``waiting``, lines for people, and ``waiting_on``, their
        ids for a program), which devices dialed it waiting to be added here (``to_add``:
        ids as claimed), and which of its ``--peer`` addresses turned out to
        be its own (not dialed: a typo of a port shows as a node with no peer otherwise),
        and the names members share (``shared_names``)."""
        removal = self.admission.own_removal()
        waiting = sorted({r.refused for r in self.runners.values()
                          if r.refused and r.refused.startswith("waiting")})
        # As the lines: a dial that failed since keeps ``waiting_on`` but says no line.
        waiting_on = sorted({r.waiting_on for r in self.runners.values()
                             if r.refused and r.waiting_on is not None})
        own = self.own_urls | {self.config.advertise_url}
        return {"device_id": self.device.device_id, "removed": removal,
                "removed_text": removal_text(self.admission.named(removal)) if removal else None,
                "waiting": waiting, "waiting_on": waiting_on,
                # Devices that dialed this node and wait to be added here (claimed ids).
                "to_add": self.admission.waiting_rows(),
                "own_peers": [url for url in self.config.peers if url.rstrip("/") in own],
                "shared_names": self.shared_names()}

    def shared_names(self) -> list[dict[str, Any]]:
        """The names that more than one member has, as people read them: per name (the
        first member's spelling of it), its members' ids, from the members ``GET
        /v1/devices`` lists (``Devices.name_groups``: without this device once told it
        was removed), so that the two agree."""
        if self.membership is None:
            return []
        members = self.membership.members()
        told = self.admission.removed.view() is not None
        return [{"name": members[group[0]].name, "members": group}
                for group in self.membership.name_groups(told)]

    def back(self, node: str) -> None:
        """A link to ``node`` came up: it is no peer gone (``went``)."""
        self._gone.pop(node, None)


def held_off_row(held: HeldOff) -> dict[str, Any]:
    """A learned address held off (``Rows.held_off``): the node it stood for, when known,
    how long it is held off still and how often it was forgotten."""
    return {"url": held.url, "node_id": held.node, "held_off_s": round(held.for_s, 3),
            "times_forgotten": held.times}
